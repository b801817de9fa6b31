// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// decap: fulcrum's IP-in-IP decapsulator for real servers of a tunnelling
// director, for kernels without the ipip/sit/ip6_tunnel modules.
//
// A frame is decapsulated when all of this holds, else it goes to the
// kernel untouched (XDP_PASS), counted by reason:
//   - Ethernet (no VLAN tag), then IPv4 or IPv6;
//   - outer IPv4: version 4, no options (IHL 5), no fragment, a total
//     length that fits the frame, a correct header checksum, protocol 4
//     (IPv4 inside) or 41 (IPv6 inside);
//     outer IPv6: next header 4 or 41 straight after the fixed header (no
//     extension headers), a payload length that fits the frame;
//   - the outer destination is one of this host's addresses (map locals);
//   - the inner header is whole, of the version the protocol says, fits
//     the outer payload, and its destination is a VIP (map vips).
// The outer header is then cut off with bpf_xdp_adjust_head and the
// Ethernet header rebuilt in front of the inner one with the inner
// ethertype, so the kernel receives the inner packet as if it had arrived
// so on the interface. ECN follows RFC 6040: an outer CE marks an ECN
// capable inner packet CE and drops a not-ECT one (as the kernel's
// tunnels do). Inner fragments are not looked into: the kernel
// reassembles them.
//
// The program never reads past data_end; the verifier holds it to that.

#include "decap.h"

char __license[] SEC("license") = "Dual BSD/GPL";

// An address: IPv6, or IPv4 mapped (::ffff:a.b.c.d).
struct addr {
	__u8 b[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct addr);
	__type(value, __u8);
} locals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct addr);
	__type(value, __u8);
} vips SEC(".maps");

// Counters, by reason; the Go side names them (decap.go, statNames).
enum stat {
	STAT_DECAP_4IN4,
	STAT_DECAP_6IN4,
	STAT_DECAP_4IN6,
	STAT_DECAP_6IN6,
	STAT_PASS_NOT_TUNNEL,
	STAT_PASS_NOT_LOCAL,
	STAT_PASS_NOT_VIP,
	STAT_PASS_FRAGMENT,
	STAT_PASS_OPTIONS,
	STAT_PASS_MALFORMED,
	STAT_PASS_ADJUST_FAILED,
	STAT_DROP_ECN,
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline int count(__u32 reason, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &reason);
	if (v)
		*v += 1;
	return verdict;
}

static __always_inline int is_local(const struct addr *a)
{
	return bpf_map_lookup_elem(&locals, a) != NULL;
}

static __always_inline int is_vip(const struct addr *a)
{
	return bpf_map_lookup_elem(&vips, a) != NULL;
}

static __always_inline void addr4(struct addr *a, const __u8 *p)
{
	__builtin_memset(a, 0, sizeof(*a));
	a->b[10] = 0xff;
	a->b[11] = 0xff;
	a->b[12] = p[0];
	a->b[13] = p[1];
	a->b[14] = p[2];
	a->b[15] = p[3];
}

static __always_inline void addr6(struct addr *a, const __u8 *p)
{
	__builtin_memcpy(a->b, p, 16);
}

// ipv4_csum_ok checks the checksum of a 20-byte IPv4 header.
static __always_inline int ipv4_csum_ok(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

// The ECN field of an inner header the caller checked to be whole.
static __always_inline __u8 ecn_of(const __u8 *inner, int v6)
{
	if (v6)
		return (inner[1] >> 4) & 3;
	return inner[1] & 3;
}

// set_ce marks the inner packet Congestion Experienced; for IPv4 the
// header checksum is updated incrementally (RFC 1624) over the 16-bit
// word that holds version, IHL and TOS.
static __always_inline void set_ce(__u8 *inner, int v6)
{
	if (v6) {
		inner[1] |= 3 << 4;
		return;
	}
	struct iphdr *ip = (struct iphdr *)inner;
	__u16 old = *(__u16 *)inner;
	inner[1] |= 3;
	__u16 new = *(__u16 *)inner;
	__u32 sum = (__u16)~ip->check;
	sum += (__u16)~old;
	sum += new;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->check = ~sum;
}

// inner checks the packet inside a tunnel header: whole, of the version
// proto announces, no longer than the room the outer header gives it
// (len), and addressed to a VIP. It returns a stat to count and pass on,
// or -1 when the packet is to be decapsulated.
static __always_inline int inner_ok(const __u8 *inner, const void *data_end, __u8 proto, __u32 len)
{
	struct addr dst;
	if (proto == IPPROTO_IPIP) {
		const struct iphdr *ip = (const struct iphdr *)inner;
		if ((const void *)(ip + 1) > data_end)
			return STAT_PASS_MALFORMED;
		if (ip->version != 4 || ip->ihl < 5 || bpf_ntohs(ip->tot_len) > len ||
		    bpf_ntohs(ip->tot_len) < ip->ihl * 4)
			return STAT_PASS_MALFORMED;
		addr4(&dst, (const __u8 *)&ip->daddr);
	} else {
		const struct ipv6hdr *ip6 = (const struct ipv6hdr *)inner;
		if ((const void *)(ip6 + 1) > data_end)
			return STAT_PASS_MALFORMED;
		if (ip6->version != 6 || (__u32)bpf_ntohs(ip6->payload_len) + sizeof(*ip6) > len)
			return STAT_PASS_MALFORMED;
		addr6(&dst, ip6->daddr);
	}
	if (!is_vip(&dst))
		return STAT_PASS_NOT_VIP;
	return -1;
}

SEC("xdp")
int decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return count(STAT_PASS_MALFORMED, XDP_PASS);

	__u32 hlen;
	__u8 proto, outer_ecn;
	struct addr dst;
	__u8 *inner;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (struct iphdr *)(eth + 1);
		if ((void *)(ip + 1) > data_end)
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		if (ip->protocol != IPPROTO_IPIP && ip->protocol != IPPROTO_IPV6)
			return count(STAT_PASS_NOT_TUNNEL, XDP_PASS);
		if (ip->version != 4 || ip->ihl < 5)
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		if (ip->ihl != 5)
			return count(STAT_PASS_OPTIONS, XDP_PASS);
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return count(STAT_PASS_FRAGMENT, XDP_PASS);
		__u32 tot = bpf_ntohs(ip->tot_len);
		if (tot < sizeof(*ip) || (void *)ip + tot > data_end || !ipv4_csum_ok(ip))
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		addr4(&dst, (__u8 *)&ip->daddr);
		if (!is_local(&dst))
			return count(STAT_PASS_NOT_LOCAL, XDP_PASS);
		hlen = sizeof(*ip);
		proto = ip->protocol;
		outer_ecn = ip->tos & 3;
		inner = (__u8 *)(ip + 1);
		int s = inner_ok(inner, data_end, proto, tot - hlen);
		if (s >= 0)
			return count(s, XDP_PASS);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		if (ip6->nexthdr != IPPROTO_IPIP && ip6->nexthdr != IPPROTO_IPV6)
			return count(STAT_PASS_NOT_TUNNEL, XDP_PASS);
		__u32 plen = bpf_ntohs(ip6->payload_len);
		if (ip6->version != 6 || (void *)(ip6 + 1) + plen > data_end)
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		addr6(&dst, ip6->daddr);
		if (!is_local(&dst))
			return count(STAT_PASS_NOT_LOCAL, XDP_PASS);
		hlen = sizeof(*ip6);
		proto = ip6->nexthdr;
		outer_ecn = ((ip6->priority << 4) | (ip6->flow_lbl[0] >> 4)) & 3;
		inner = (__u8 *)(ip6 + 1);
		int s = inner_ok(inner, data_end, proto, plen);
		if (s >= 0)
			return count(s, XDP_PASS);
	} else {
		return count(STAT_PASS_NOT_TUNNEL, XDP_PASS);
	}

	int v6 = proto == IPPROTO_IPV6;
	if (outer_ecn == 3) {
		// inner_ok has checked the inner fixed header is whole; the
		// verifier wants to see it again here.
		if ((void *)inner + (v6 ? 40 : 20) > data_end)
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		if (ecn_of(inner, v6) == 0)
			return count(STAT_DROP_ECN, XDP_DROP);
		set_ce(inner, v6);
	}

	__u8 macs[12];
	__builtin_memcpy(macs, eth, 12);
	if (bpf_xdp_adjust_head(ctx, hlen))
		return count(STAT_PASS_ADJUST_FAILED, XDP_PASS);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED; // cannot be: the inner header is behind
	__builtin_memcpy(eth, macs, 12);
	eth->h_proto = v6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);

	__u32 s = (hlen == 20) ? (v6 ? STAT_DECAP_6IN4 : STAT_DECAP_4IN4)
			       : (v6 ? STAT_DECAP_6IN6 : STAT_DECAP_4IN6);
	return count(s, XDP_PASS);
}
