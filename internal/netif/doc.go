// Package netif is fulcrum's privileged network code: it puts virtual
// addresses on an interface and takes them off again, and tells the
// neighbours where they went. It implements vrrp.Announcer, so that the
// rest of fulcrum, VRRP included, is tested against fakes without root.
//
//   - announcer.go: the Announcer. Acquire adds the addresses over
//     rtnetlink and announces them, Release stops announcing and removes
//     them, Announce repeats the announcement for a split brain's winner.
//     Both directions are idempotent. The first announcement goes out
//     before Acquire returns, the repeats and periodic refreshes from a
//     goroutine of the Announcer's, so a caller never waits for them.
//   - packet.go: the frames. IPv4 addresses get a gratuitous ARP (a
//     broadcast request with sender = target = the address), IPv6 ones
//     an unsolicited neighbour advertisement to ff02::1 with Override set
//     and hop limit 255.
//   - system_linux.go: rtnetlink (github.com/vishvananda/netlink) and one
//     send-only AF_PACKET socket; LinkUp for interface tracking.
//
// Addresses are added as keepalived adds its virtual_ipaddress: with the
// prefix length configured (Options.Prefixes), else as host addresses.
// IPv6 ones skip duplicate address detection (IFA_F_NODAD), which would
// otherwise leave them unusable for a second or more after a failover.
// IPv4 ones carry the label IFNAME:fulcrum where it fits the kernel's 15
// bytes, so that `ip addr` shows whose they are.
//
// The needed privilege is CAP_NET_ADMIN (addresses) and CAP_NET_RAW (the
// packet socket). The sockets belong to the network namespace New is
// called in.
package netif
