// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fulcrum's director data plane: an XDP program that forwards packets for
 * virtual services to real servers by direct routing (rewrite the MACs)
 * or tunnelling (push an outer IPv4/IPv6 header, IPIP/IP6IP6/SIT style).
 * The package documentation of internal/director/xdp explains the design;
 * the comments here explain the code.
 *
 * Every packet the program does not fully understand goes to the kernel
 * (XDP_PASS) and is counted by reason; only packets the kernel's own IP
 * input would drop as malformed are dropped (counted too). All header
 * offsets are constant (no IPv4 options, no IPv6 extension headers), and
 * every read is bounds-checked against data_end before it happens.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdp.h"

/* linux/icmp.h pulls in libc's socket headers; the part used is this. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__u32 rest;
};
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader before load (Options.FlowTimeout). */
const volatile __u64 flow_timeout_ns = 300000000000ULL;

/* The program's clock, CLOCK_MONOTONIC_COARSE to within a tick: jiffies
 * times the tick's length plus an offset the loader measures (clock.go).
 * bpf_jiffies64 is a load the verifier inlines; bpf_ktime_get_ns and even
 * bpf_ktime_get_coarse_ns are helper calls, and the clock read was ~15% of
 * the established-flow path's run time. Timeouts are seconds: a tick's
 * resolution is plenty. */
const volatile __u64 tick_ns = 4000000;
const volatile __u64 clock_offset_ns = 0;

static __always_inline __u64 clock_now(void)
{
	return bpf_jiffies64() * tick_ns + clock_offset_ns;
}

/* Entry counts below are placeholders: the loader sets them from Options. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct svc_key);
	__type(value, struct svc);
	__uint(max_entries, 1);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct real);
	__uint(max_entries, 1);
} reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct member_key);
	__type(value, __u32);
	__uint(max_entries, 1);
} members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key);
	__type(value, struct flow);
	__uint(max_entries, 1);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct persist_key);
	__type(value, struct persist);
	__uint(max_entries, 1);
} persists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct counters);
	__uint(max_entries, 1);
} slot_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, R_MAX);
} global SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ifmac);
	__uint(max_entries, IFMAC_ARRAY);
} ifmacs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct ifmac);
	__uint(max_entries, 256);
} ifmacs_big SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Used only so that bpf2go emits the Go types of the ring buffer record
 * and of the counter index. */
const struct event *unused_event __attribute__((unused));
const enum reason *unused_reason __attribute__((unused));

/* A packet reduced to what forwarding needs. */
struct pkt {
	struct flow_key fk; /* client -> VIP; for an ICMP error, of the flow it is about */
	__u32 l3_len;	    /* IP header + payload, as the IP header says */
	__u16 ip_id;	    /* IPv4 identification, network order */
	__u8 tos;	    /* IPv4 TOS or IPv6 traffic class */
	__u8 df;	    /* IPv4 don't-fragment */
	__u8 icmp;	    /* an ICMP error, following the flow fk */
};

#define PASS -1 /* parse result: keep going */

static __always_inline void bump(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&global, &reason);

	if (c)
		*c += 1;
}

static __always_inline int verdict(__u32 reason, int action)
{
	bump(reason);
	return action;
}

/* jhash2 (Bob Jenkins' lookup3, as the kernel's jhash2) over the ten
 * 32-bit words of a flow_key, initval 0. internal/director/xdp/hash.go
 * has the same function in Go; the tests check that both agree. */
static __always_inline __u32 rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

#define JHASH_MIX(a, b, c)                                                     \
	{                                                                      \
		a -= c; a ^= rol32(c, 4); c += b;                              \
		b -= a; b ^= rol32(a, 6); a += c;                              \
		c -= b; c ^= rol32(b, 8); b += a;                              \
		a -= c; a ^= rol32(c, 16); c += b;                             \
		b -= a; b ^= rol32(a, 19); a += c;                             \
		c -= b; c ^= rol32(b, 4); b += a;                              \
	}

#define JHASH_FINAL(a, b, c)                                                   \
	{                                                                      \
		c ^= b; c -= rol32(b, 14);                                     \
		a ^= c; a -= rol32(c, 11);                                     \
		b ^= a; b -= rol32(a, 25);                                     \
		c ^= b; c -= rol32(b, 16);                                     \
		a ^= c; a -= rol32(c, 4);                                      \
		b ^= a; b -= rol32(a, 14);                                     \
		c ^= b; c -= rol32(b, 24);                                     \
	}

static __always_inline __u32 flow_hash(const struct flow_key *k)
{
	const __u32 *w = (const __u32 *)k;
	__u32 a, b, c;

	a = b = c = 0xdeadbeef + (10 << 2);
	a += w[0]; b += w[1]; c += w[2];
	JHASH_MIX(a, b, c);
	a += w[3]; b += w[4]; c += w[5];
	JHASH_MIX(a, b, c);
	a += w[6]; b += w[7]; c += w[8];
	JHASH_MIX(a, b, c);
	a += w[9];
	JHASH_FINAL(a, b, c);
	return c;
}

/* The scheduling hash of a service: the whole 5-tuple, or for a
 * source-hashing scheduler the client address (and port with HashPort). */
static __always_inline __u32 sched_hash(const struct pkt *p, const struct svc *s)
{
	struct flow_key k = {};

	if (!(s->flags & SVC_HASH_SOURCE))
		return flow_hash(&p->fk);
	__builtin_memcpy(k.src, p->fk.src, sizeof(k.src));
	if (s->flags & SVC_HASH_PORT)
		k.sport = p->fk.sport;
	k.family = p->fk.family;
	return flow_hash(&k);
}

static __always_inline int ports(struct pkt *p, void *l4, void *end, __u8 proto,
				 __u32 l4_len)
{
	/* The kernel drops a TCP segment shorter than its header and a UDP
	 * datagram shorter than 8 bytes; so do we. */
	__u32 need = proto == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr);
	struct udphdr *u = l4;

	if (l4_len < need || (void *)(u + 1) > end)
		return verdict(R_DROPPED_MALFORMED, XDP_DROP);
	p->fk.sport = u->source;
	p->fk.dport = u->dest;
	p->fk.proto = proto;
	return PASS;
}

/* Inner ports of an ICMP error: the first 4 bytes of the quoted L4 header. */
static __always_inline int quoted_ports(struct pkt *p, void *l4, void *end, __u8 proto)
{
	struct udphdr *u = l4;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return verdict(R_PASSED_UNKNOWN, XDP_PASS);
	if (l4 + 4 > end)
		return verdict(R_PASSED_UNKNOWN, XDP_PASS);
	/* The quoted packet went VIP:port -> client:port; its flow is the
	 * reverse. */
	p->fk.sport = u->dest;
	p->fk.dport = u->source;
	p->fk.proto = proto;
	p->icmp = 1;
	return PASS;
}

static __always_inline int parse_ipv4(struct pkt *p, void *data, void *end)
{
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 tot;

	if ((void *)(ip + 1) > end)
		return verdict(R_DROPPED_MALFORMED, XDP_DROP);
	tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || ip->ihl < 5 || tot < ip->ihl * 4 ||
	    (void *)ip + tot > end)
		return verdict(R_DROPPED_MALFORMED, XDP_DROP);
	if (ip->ihl != 5)
		return verdict(R_PASSED_IP_OPTIONS, XDP_PASS);
	if (ip->frag_off & bpf_htons(0x3fff)) /* MF or an offset */
		return verdict(R_PASSED_FRAGMENT, XDP_PASS);

	p->l3_len = tot;
	p->ip_id = ip->id;
	p->tos = ip->tos;
	p->df = !!(ip->frag_off & bpf_htons(0x4000));
	p->fk.family = 4;

	if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) {
		p->fk.src[0] = ip->saddr;
		p->fk.dst[0] = ip->daddr;
		return ports(p, ip + 1, end, ip->protocol, tot - sizeof(*ip));
	}
	if (ip->protocol == IPPROTO_ICMP) {
		struct icmphdr *icmp = (void *)(ip + 1);
		struct iphdr *in = (void *)(icmp + 1);

		if (tot < sizeof(*ip) + sizeof(*icmp) || (void *)(icmp + 1) > end)
			return verdict(R_DROPPED_MALFORMED, XDP_DROP);
		if (icmp->type != ICMP_DEST_UNREACH && icmp->type != ICMP_TIME_EXCEEDED)
			return verdict(R_PASSED_UNKNOWN, XDP_PASS);
		/* The quoted header and ports, within the packet's length (not
		 * in Ethernet padding). */
		if (tot < sizeof(*ip) + sizeof(*icmp) + sizeof(*in) + 4 ||
		    (void *)(in + 1) > end || in->version != 4 || in->ihl != 5 ||
		    in->saddr != ip->daddr)
			return verdict(R_PASSED_UNKNOWN, XDP_PASS);
		p->fk.src[0] = in->daddr;
		p->fk.dst[0] = in->saddr;
		return quoted_ports(p, in + 1, end, in->protocol);
	}
	return verdict(R_PASSED_UNKNOWN, XDP_PASS);
}

/* Byte compares written out: clang leaves memcmp a call BPF cannot make. */
static __always_inline int addr6_eq(const struct in6_addr *a, const struct in6_addr *b)
{
	return a->in6_u.u6_addr32[0] == b->in6_u.u6_addr32[0] &&
	       a->in6_u.u6_addr32[1] == b->in6_u.u6_addr32[1] &&
	       a->in6_u.u6_addr32[2] == b->in6_u.u6_addr32[2] &&
	       a->in6_u.u6_addr32[3] == b->in6_u.u6_addr32[3];
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] &&
	       a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

static __always_inline int ext_header(__u8 nh)
{
	switch (nh) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_DSTOPTS:
	case IPPROTO_AH:
	case IPPROTO_ESP:
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
		return 1;
	}
	return 0;
}

static __always_inline int parse_ipv6(struct pkt *p, void *data, void *end)
{
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	__u32 plen;

	if ((void *)(ip6 + 1) > end)
		return verdict(R_DROPPED_MALFORMED, XDP_DROP);
	plen = bpf_ntohs(ip6->payload_len);
	if (ip6->version != 6 || (void *)(ip6 + 1) + plen > end)
		return verdict(R_DROPPED_MALFORMED, XDP_DROP);
	if (ip6->nexthdr == IPPROTO_FRAGMENT)
		return verdict(R_PASSED_FRAGMENT, XDP_PASS);
	if (ext_header(ip6->nexthdr))
		return verdict(R_PASSED_IPV6_EXT, XDP_PASS);

	p->l3_len = sizeof(*ip6) + plen;
	p->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
	p->fk.family = 6;

	if (ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_UDP) {
		__builtin_memcpy(p->fk.src, &ip6->saddr, 16);
		__builtin_memcpy(p->fk.dst, &ip6->daddr, 16);
		return ports(p, ip6 + 1, end, ip6->nexthdr, plen);
	}
	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		struct icmp6hdr *icmp = (void *)(ip6 + 1);
		struct ipv6hdr *in = (void *)(icmp + 1);

		if (plen < sizeof(*icmp) || (void *)(icmp + 1) > end)
			return verdict(R_DROPPED_MALFORMED, XDP_DROP);
		if (icmp->icmp6_type != ICMPV6_DEST_UNREACH &&
		    icmp->icmp6_type != ICMPV6_PKT_TOOBIG &&
		    icmp->icmp6_type != ICMPV6_TIME_EXCEED)
			return verdict(R_PASSED_UNKNOWN, XDP_PASS);
		if (plen < sizeof(*icmp) + sizeof(*in) + 4 ||
		    (void *)(in + 1) > end || in->version != 6 ||
		    !addr6_eq(&in->saddr, &ip6->daddr))
			return verdict(R_PASSED_UNKNOWN, XDP_PASS);
		__builtin_memcpy(p->fk.src, &in->daddr, 16);
		__builtin_memcpy(p->fk.dst, &in->saddr, 16);
		return quoted_ports(p, in + 1, end, in->nexthdr);
	}
	return verdict(R_PASSED_UNKNOWN, XDP_PASS);
}

static __always_inline __u16 ipv4_csum(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static __always_inline void set_macs(struct ethhdr *eth, const struct real *r)
{
	__builtin_memcpy(eth->h_dest, r->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, r->smac, ETH_ALEN);
}

/* Push an outer header to the real. Returns PASS when done, else the
 * (counted) verdict. */
static __always_inline int encap(struct xdp_md *ctx, const struct pkt *p,
				 const struct real *r)
{
	int hdr = r->family == 4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	__u8 inner = p->fk.family == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
	void *data, *end;
	struct ethhdr *eth;

	/* A real without a tunnel source cannot be tunnelled to (the
	 * control plane fills it in; 0.0.0.0 would be dropped on the way). */
	if (!(r->tsrc[0] | r->tsrc[1] | r->tsrc[2] | r->tsrc[3]))
		return verdict(R_PASSED_ENCAP_FAILED, XDP_PASS);

	/* A packet too big for the tunnel goes to the kernel, which has the
	 * VIP too and answers as it would (frag-needed / too-big for DF
	 * traffic, see the package doc): real servers must advertise an MSS
	 * that leaves room for the outer header, as with LVS-TUN. */
	if (r->mtu) {
		if (p->l3_len + hdr > r->mtu)
			return verdict(R_PASSED_TOO_BIG, XDP_PASS);
	} else {
		__u32 mtu_len = p->l3_len;
		long rc = bpf_check_mtu(ctx, r->ifindex, &mtu_len, hdr, 0);

		if (rc < 0)
			return verdict(R_PASSED_ENCAP_FAILED, XDP_PASS);
		if (rc > 0)
			return verdict(R_PASSED_TOO_BIG, XDP_PASS);
	}

	if (bpf_xdp_adjust_head(ctx, -hdr))
		return verdict(R_PASSED_ENCAP_FAILED, XDP_PASS);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;

	if (r->family == 4) {
		struct iphdr *ip = data + sizeof(*eth);

		if ((void *)(ip + 1) > end)
			return verdict(R_DROPPED_MALFORMED, XDP_DROP);
		set_macs(eth, r);
		eth->h_proto = bpf_htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = p->tos;
		ip->tot_len = bpf_htons(p->l3_len + sizeof(*ip));
		if (p->fk.family == 4) {
			/* RFC 2003: DF copied from the inner header. */
			ip->id = p->ip_id;
			ip->frag_off = p->df ? bpf_htons(0x4000) : 0;
		} else {
			/* IPv6 is never fragmented on the way: DF. */
			ip->id = 0;
			ip->frag_off = bpf_htons(0x4000);
		}
		ip->ttl = 64;
		ip->protocol = inner;
		ip->saddr = r->tsrc[0];
		ip->daddr = r->addr[0];
		ip->check = 0;
		ip->check = ipv4_csum(ip);
	} else {
		struct ipv6hdr *ip6 = data + sizeof(*eth);
		__u32 hash = flow_hash(&p->fk);

		if ((void *)(ip6 + 1) > end)
			return verdict(R_DROPPED_MALFORMED, XDP_DROP);
		set_macs(eth, r);
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		/* The flow label carries the flow's hash so that routers on
		 * the way spread tunnels over their paths (RFC 6438). */
		ip6->version = 6;
		ip6->priority = p->tos >> 4;
		ip6->flow_lbl[0] = ((p->tos & 0xf) << 4) | ((hash >> 16) & 0xf);
		ip6->flow_lbl[1] = hash >> 8;
		ip6->flow_lbl[2] = hash;
		ip6->payload_len = bpf_htons(p->l3_len);
		ip6->nexthdr = inner;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, r->tsrc, 16);
		__builtin_memcpy(&ip6->daddr, r->addr, 16);
	}
	return PASS;
}

static __always_inline int forward(struct xdp_md *ctx, const struct pkt *p,
				   const struct svc *s, const struct real *r,
				   __u32 slot, __u32 len)
{
	struct counters *c;

	if (s->mode == MODE_TUNNEL) {
		int rc = encap(ctx, p, r);

		if (rc != PASS)
			return rc;
	} else {
		void *data = (void *)(long)ctx->data;
		void *end = (void *)(long)ctx->data_end;
		struct ethhdr *eth = data;

		if ((void *)(eth + 1) > end)
			return verdict(R_DROPPED_MALFORMED, XDP_DROP);
		set_macs(eth, r);
	}

	c = bpf_map_lookup_elem(&slot_counters, &slot);
	if (c) {
		c->packets++;
		c->bytes += len;
	}
	if (p->icmp)
		bump(R_ICMP);
	if (r->ifindex == ctx->ingress_ifindex)
		return verdict(R_TX, XDP_TX);
	return verdict(R_REDIRECT, bpf_redirect(r->ifindex, 0));
}

static __always_inline int expired(__u64 now, __u64 seen, __u64 timeout)
{
	/* Signed: another CPU may have stamped the entry after we read now. */
	return (__s64)(now - seen) > (__s64)timeout;
}

static __always_inline void addr_copy(__u32 *dst, const __u32 *src)
{
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	dst[3] = src[3];
}

/* The client address under the service's persistence netmask. */
static __always_inline void persist_key(struct persist_key *k, const struct pkt *p,
					const struct svc *s)
{
	__u32 bits = p->fk.family == 4 ? s->bits4 : s->bits6;

	k->group = s->group;
	k->family = p->fk.family;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 keep;

		if (bits >= 32)
			keep = 32;
		else
			keep = bits;
		bits -= keep;
		/* Addresses are in network order: the first byte is the low
		 * byte of the (little-endian) word. */
		k->addr[i] = keep == 32 ? p->fk.src[i] :
			     keep == 0 ? 0 :
			     p->fk.src[i] & bpf_htonl(~0U << (32 - keep));
	}
}

static __always_inline void persist_stamp(const struct pkt *p, const struct svc *s,
					  const struct real *r, __u64 now)
{
	struct persist_key k = {};
	struct persist v = {};

	persist_key(&k, p, s);
	addr_copy(v.addr, r->addr);
	v.family = r->family;
	v.seen_ns = now;
	bpf_map_update_elem(&persists, &k, &v, BPF_ANY);
}

static __always_inline void emit(const struct pkt *p, const struct svc *s,
				 __u32 slot, __u8 persisted)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		bump(R_EVENTS_LOST);
		return;
	}
	__builtin_memcpy(&e->flow, &p->fk, sizeof(e->flow));
	e->slot = slot;
	e->svc = s->id;
	e->persisted = persisted;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	bpf_ringbuf_submit(e, 0);
}

SEC("xdp")
int fulcrum_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 len = end - data;
	struct ethhdr *eth = data;
	struct pkt p = {};
	struct svc_key sk = {};
	struct svc *s;
	struct real *r = NULL;
	struct flow *f;
	struct persist *pv = NULL;
	struct ifmac *mac;
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 slot = NO_SLOT;
	__u64 now;
	__u8 persisted = 0;
	int rc;

	if ((void *)(eth + 1) > end)
		return verdict(R_DROPPED_MALFORMED, XDP_DROP);
	if (eth->h_proto == bpf_htons(ETH_P_8021Q) || eth->h_proto == bpf_htons(ETH_P_8021AD))
		return verdict(R_PASSED_VLAN, XDP_PASS);
	if (eth->h_proto != bpf_htons(ETH_P_IP) && eth->h_proto != bpf_htons(ETH_P_IPV6))
		return verdict(R_PASSED_UNKNOWN, XDP_PASS);
	/* Two call sites, each with its own map, so the verifier inlines
	 * the array's lookup: the empty asm keeps clang from merging them
	 * into one call on a selected map pointer (a real helper call). */
	if (ifindex < IFMAC_ARRAY) {
		mac = bpf_map_lookup_elem(&ifmacs, &ifindex);
	} else {
		mac = bpf_map_lookup_elem(&ifmacs_big, &ifindex);
		asm volatile("" ::: "memory");
	}
	if (!mac || !mac->set || !mac_eq(mac->mac, eth->h_dest))
		return verdict(R_PASSED_NOT_LOCAL, XDP_PASS);

	if (eth->h_proto == bpf_htons(ETH_P_IP))
		rc = parse_ipv4(&p, data, end);
	else
		rc = parse_ipv6(&p, data, end);
	if (rc != PASS)
		return rc;

	addr_copy(sk.addr, p.fk.dst);
	sk.port = p.fk.dport;
	sk.proto = p.fk.proto;
	sk.family = p.fk.family;
	s = bpf_map_lookup_elem(&services, &sk);
	if (!s) {
		sk.port = 0;
		s = bpf_map_lookup_elem(&services, &sk);
		if (!s)
			return verdict(R_PASSED_NO_SERVICE, XDP_PASS);
	}

	now = clock_now();

	/* 1. A live flow to a usable real keeps it. */
	f = bpf_map_lookup_elem(&flows, &p.fk);
	if (f && !expired(now, f->seen_ns, flow_timeout_ns)) {
		slot = f->slot;
		r = bpf_map_lookup_elem(&reals, &slot);
		if (r && r->family && !(r->flags & REAL_DEAD)) {
			/* Stamp at most once a second: a write per packet
			 * would bounce the entry between CPUs. */
			if (!p.icmp && now - f->seen_ns > 1000000000ULL) {
				f->seen_ns = now;
				if (s->group)
					persist_stamp(&p, s, r, now);
			}
			return forward(ctx, &p, s, r, slot, len);
		}
		if (!p.icmp)
			bump(R_FLOWS_RESCHEDULED);
	}
	/* An ICMP error about a flow we do not know: the kernel's. */
	if (p.icmp)
		return verdict(R_PASSED_ICMP_NO_FLOW, XDP_PASS);

	/* 2. Persistence: the group's backend for this client's network,
	 * if this service has it (members) and it is usable. */
	r = NULL;
	if (s->group) {
		struct persist_key pk = {};

		persist_key(&pk, &p, s);
		pv = bpf_map_lookup_elem(&persists, &pk);
		if (pv && !expired(now, pv->seen_ns, s->persist_timeout_ns)) {
			struct member_key mk = {};
			__u32 *ms;

			mk.svc = s->id;
			addr_copy(mk.addr, pv->addr);
			mk.family = pv->family;
			ms = bpf_map_lookup_elem(&members, &mk);
			if (ms) {
				slot = *ms;
				r = bpf_map_lookup_elem(&reals, &slot);
				if (r && r->family && !(r->flags & REAL_DEAD))
					persisted = 1;
				else
					r = NULL;
			}
		}
	}

	/* 3. The service's ring. */
	if (!r) {
		__u32 idx = s->id * RING_SIZE + sched_hash(&p, s) % RING_SIZE;
		__u32 *e = bpf_map_lookup_elem(&rings, &idx);

		if (!e || *e == NO_SLOT)
			return verdict(R_PASSED_NO_BACKEND, XDP_PASS);
		slot = *e;
		r = bpf_map_lookup_elem(&reals, &slot);
		if (!r || !r->family)
			return verdict(R_PASSED_NO_BACKEND, XDP_PASS);
	}

	{
		struct flow nf = { .slot = slot, .seen_ns = now };
		struct counters *c;

		bpf_map_update_elem(&flows, &p.fk, &nf, BPF_ANY);
		/* A client going where it went before: its entry already says
		 * so, restamp it in place (as the flow's stamp above) rather
		 * than replace it with an update, which takes a new LRU node. */
		if (persisted && pv)
			pv->seen_ns = now;
		else if (s->group)
			persist_stamp(&p, s, r, now);
		c = bpf_map_lookup_elem(&slot_counters, &slot);
		if (c)
			c->new_flows++;
		bump(R_FLOWS_NEW);
		if (persisted)
			bump(R_FLOWS_PERSISTED);
		emit(&p, s, slot, persisted);
	}
	return forward(ctx, &p, s, r, slot, len);
}
