// Package xdplink attaches XDP programs to interfaces over netlink, finds
// what is attached, and detaches it again. Both of fulcrum's XDP programs
// use it: the director's forwarder (internal/director/xdp) and the real
// server's decapsulator (internal/realserver/decap).
//
// The attachment is the netlink ("legacy") one, the one `ip link set dev
// X xdp` makes, not a bpf_link: it belongs to the interface, not to a file
// descriptor, so the program outlives the process that attached it.
//
//   - A director that is killed (kill -9, a crash) keeps forwarding with
//     its last tables, as IPVS keeps forwarding when ipvsadm's caller
//     dies, until the backup director takes the VIP. With a bpf_link the
//     program would go with the process while the VIP stays on the
//     interface, and the dead node's TCP stack would reset every flow
//     that reaches it meanwhile.
//   - `fulcrum realserver up` exits once the decapsulator is attached,
//     whatever mount namespace it ran in (`ip netns exec` mounts its own
//     /sys, without the host's bpffs, where a pinned link would vanish
//     with the process).
//
// So a program is found again by its id (`ip link` shows "xdp id N"), and
// it is removed explicitly with Detach, which removes only the program it
// is given.
package xdplink
