// Package xdp is the director's data plane: an eBPF program attached with
// XDP that forwards packets for virtual services to their backends by
// direct routing (LVS-DR: only the MACs change) or tunnelling (LVS-TUN: an
// outer IPv4/IPv6 header is pushed), and the Go loader that sizes its
// maps, attaches it and programs it.
//
// # Why eBPF/XDP
//
// A director forwards every client packet of a connection and none of the
// replies. Done in user space, each packet crosses the kernel twice and
// costs a wakeup; IPVS would do it in the kernel but is a module this
// project cannot count on (and lacks here). XDP runs a verified program in
// the driver's receive path, before the kernel allocates an skb, and can
// send the frame back out (XDP_TX) or to another interface (redirect):
// the way Katran, Cilium and GLB forward. The verifier proves the program
// never reads past the packet and terminates; what it does not handle it
// gives to the kernel untouched (XDP_PASS).
//
// # What goes to the kernel, and why
//
// The program forwards only what it fully understands: IPv4 without
// options and IPv6 without extension headers, unfragmented, carrying TCP
// or UDP to a configured VIP:port (or VIP:0), in an untagged Ethernet frame
// addressed to the ingress interface's MAC, and ICMP/ICMPv6 errors
// (destination unreachable including fragmentation needed, packet too big,
// time exceeded) quoting a packet of a known flow. Everything else is
// XDP_PASS, counted by reason in Global(): ARP and other protocols
// (passed_unknown), VLAN tags (passed_vlan; attach to the VLAN interface
// instead), frames for other MACs (passed_not_local), fragments
// (passed_fragment: only the first carries ports, so no flow can be found
// for the rest; the kernel reassembles), IPv4 options and IPv6 extension
// headers (their lengths vary; constant offsets keep the program simple
// and the verifier happy), traffic to no service, a service without a
// usable backend (passed_no_backend), an ICMP error for no known flow,
// and a packet too big to tunnel (passed_too_big: the kernel, which holds
// the VIP as well, answers it as it would; real servers must use an MSS
// that leaves room for the 20 or 40 bytes of outer header, as with
// LVS-TUN), and a tunnelled packet that cannot be encapsulated
// (passed_encap_failed: no tunnel source, no headroom). Only frames the kernel's IP input would drop anyway —
// truncated headers, a header length below 5, a total length beyond the
// frame or below the header — are dropped (dropped_malformed).
//
// # Scheduling
//
// A packet for a service first looks up its flow (the 5-tuple, an LRU hash
// of FlowTableSize entries): a flow seen within FlowTimeout whose slot is
// set and not Dead keeps its slot, so established connections survive ring
// changes. Otherwise, with persistence, the entry of (group, client under
// netmask) names a backend address; members maps (service, address) to the
// service's slot for that backend, so services of one group (80 and 443 of
// a shop) share the table as ipvsadm's firewall-mark services do. Failing
// both, the service's ring entry ring[ID*RingSize + hash%RingSize] names
// the slot; the hash is jhash2 over the 5-tuple (or client address, and
// port, for source hashing), fixed, so every director computing the same
// ring picks the same backend (RingIndex computes it in Go). The new flow
// is recorded, counted, and announced on a ring buffer (ReadNewFlows) for
// flow sync; a full buffer loses the event (events_lost), never the packet.
// Flow and persistence timestamps are written at most once a second per
// entry, so a busy flow does not bounce a cache line between CPUs.
//
// # Maps
//
//	services      hash      (VIP, port, proto) -> id, mode, hashing, persistence
//	rings         array     MaxServices*RingSize slot ids (NoSlot: none)
//	reals         array     MaxSlots: address, MACs, egress ifindex, tunnel source, MTU, dead
//	members       hash      (service id, backend address) -> slot
//	flows         LRU hash  5-tuple -> slot, last seen (ns, CLOCK_MONOTONIC_COARSE ±1 tick)
//	persists      LRU hash  (group, masked client) -> backend address, last seen
//	slot_counters per-CPU array: packets, bytes, new flows per slot
//	global        per-CPU array: a counter per reason
//	ifmacs        array     ifindex (< 4096) -> MAC, written by Attach
//	ifmacs_big    hash      larger ifindex -> MAC, written by Attach
//	events        ring buffer of new flows
//
// Sizes come from Options and are set on the collection spec before load;
// the flow timeout is a constant of the program, set the same way, and so
// are the tick and offset of its clock (clock.go).
//
// # Forwarding
//
// Direct: the destination MAC becomes Real.DstMAC and the source
// Real.SrcMAC; nothing else changes. Tunnel: the program grows the head
// by an outer IPv4 header (protocol 4 for IPv4 inside, 41 for IPv6) or
// IPv6 header (next header 41 or 4) from Real.TunnelSrc to Real.Addr, TTL
// or hop limit 64, TOS/traffic class copied, IPv4 DF and id copied from an
// IPv4 inner packet (DF set for IPv6 inside), the IPv6 flow label from the
// flow hash for ECMP spread. The frame leaves by XDP_TX when
// Real.IfIndex is the ingress interface, else by bpf_redirect (in native
// mode the target interface needs an XDP program too, as veth does).
package xdp
