/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared layout of fulcrum's XDP forwarder: the map keys and values the
 * Go loader (internal/director/xdp) reads and writes. bpf2go turns every
 * struct named with -type into a Go type, so the two sides cannot drift.
 * Addresses are 16 bytes; an IPv4 address uses the first 4 and family 4.
 * Ports are in network byte order, as on the wire.
 */
#ifndef FULCRUM_XDP_H
#define FULCRUM_XDP_H

#include <linux/types.h>

#define RING_SIZE 65537
#define NO_SLOT 0xffffffffU

#define MODE_DIRECT 1
#define MODE_TUNNEL 2

#define SVC_HASH_SOURCE 1
#define SVC_HASH_PORT 2

#define REAL_DEAD 1

/* Global counters, one per reason; the Go side names them (reasons.go). */
enum reason {
	R_TX,
	R_REDIRECT,
	R_ICMP,
	R_PASSED_UNKNOWN,
	R_PASSED_VLAN,
	R_PASSED_NOT_LOCAL,
	R_PASSED_FRAGMENT,
	R_PASSED_IP_OPTIONS,
	R_PASSED_IPV6_EXT,
	R_PASSED_NO_SERVICE,
	R_PASSED_NO_BACKEND,
	R_PASSED_TOO_BIG,
	R_PASSED_ICMP_NO_FLOW,
	R_PASSED_ENCAP_FAILED,
	R_DROPPED_MALFORMED,
	R_EVENTS_LOST,
	R_FLOWS_NEW,
	R_FLOWS_RESCHEDULED,
	R_FLOWS_PERSISTED,
	R_MAX,
};

struct svc_key {
	__u32 addr[4];
	__u16 port;
	__u8 proto;
	__u8 family;
};

struct svc {
	__u32 id;
	__u32 group; /* 0: no persistence */
	__u64 persist_timeout_ns;
	__u8 mode;
	__u8 flags;
	__u8 bits4;
	__u8 bits6;
	__u32 pad;
};

struct real {
	__u32 addr[4];
	__u32 tsrc[4];
	__u8 dmac[6];
	__u8 smac[6];
	__u32 ifindex;
	__u16 mtu;	/* L3 MTU toward the real; 0: the egress device's */
	__u8 family;	/* 0: slot unused */
	__u8 flags;
};

struct member_key {
	__u32 svc;
	__u32 addr[4];
	__u8 family;
	__u8 pad[3];
};

struct flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

struct flow {
	__u32 slot;
	__u32 pad;
	__u64 seen_ns; /* the program's clock, xdp.c's clock_now */
};

struct persist_key {
	__u32 group;
	__u32 addr[4];
	__u8 family;
	__u8 pad[3];
};

struct persist {
	__u32 addr[4];
	__u64 seen_ns;
	__u8 family;
	__u8 pad[7];
};

struct counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

struct ifmac {
	__u8 mac[6];
	__u8 set;	/* 0: not an interface the program is attached to */
	__u8 pad;
};

/* Interfaces with an index below this are looked up in the ifmacs array
 * (an inlined load); the rare larger index in the ifmacs_big hash. */
#define IFMAC_ARRAY 4096

struct event {
	struct flow_key flow;
	__u32 slot;
	__u32 svc;
	__u8 persisted;
	__u8 pad[7];
};

#endif
