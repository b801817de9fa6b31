#!/usr/bin/env bash
# bench/director/run.sh — director benchmark: a client, a director and two
# backends in network namespaces on one bridge, and four ways through it,
# in one run: direct to a backend (no director), HAProxy (mode tcp) and
# fulcrum's proxy on the director, and fulcrum's direct routing (XDP; the
# backends answer the client themselves). docs/BENCHMARKS.md ("Director")
# explains the method and how to read the output.
#
# Per target:
#   conn/s      new TCP connections per second: CONCURRENCY workers each
#               loop "connect, send 64 bytes, read a 64-byte reply, close"
#               (bench/l4/loadgen, bench/l4/backend);
#   MB/s        bulk: STREAMS streams backend -> client (10^6 bytes/s);
#   director CPU per 1,000 connections: for a proxy its process's CPU time
#               (/proc/PID/stat), for direct routing the XDP program's run
#               time by the kernel's own accounting (BPF_ENABLE_STATS); and
#               for every target the director's whole CPU time: its process
#               plus the kernel thread that runs its interface's receive
#               path (threaded NAPI, below), XDP included;
#   response bytes through the director: TCP segments from the backends'
#               service ports that the switch delivered to the director
#               during the bulk test (an nftables counter on the director's
#               switch port), against the bytes the client received;
#   pps         a UDP flood of 60-byte frames from FLOOD_PORTS source
#               ports, written as raw frames onto the switch's port toward
#               the director (bench/director/dirtool -mode rawflood):
#               frames per second the director hands back to the switch
#               (its port's receive counter; an nftables rule drops them
#               there), and per second of the director's CPU time.
#               fulcrum's UDP proxy and direct routing; for direct, the
#               same frames written toward a backend (the sender's ceiling).
# Every measurement is repeated REPEAT times; targets take turns within a
# round (direct, fulcrum-direct, fulcrum-generic, haproxy, fulcrum, direct,
# ...), direct's connection test last in its turn and the others' first;
# medians are reported.
#
# Placement (2+ CPUs): CPU 0 is the director's, CPU 1 everyone else's. The
# proxies are pinned with taskset (GOMAXPROCS=1, nbthread 1). The kernel's
# receive path runs where a packet arrives, not where the proxy runs; on a
# veth that is the sender's CPU. So the director's interface polls in NAPI
# (GRO on; its switch port hands over finished frames, tx offload off) in a
# kernel thread of its own (threaded NAPI), pinned to CPU 0 at the bench's
# nice, sharing the core with the proxy as ksoftirqd would under load; the
# XDP program, native or generic, runs there too. What the
# director sends is received on CPU 1 (RPS on its switch port; with native
# XDP that port needs an XDP program of its own for XDP_TX to reach it, an
# XDP_PASS one from dirtool -mode xdppass, and its NAPI thread is pinned to
# CPU 1; for the flood at a real-time priority, see pin_napi).
#
# Environment (defaults in brackets):
#   DURATION [3]       measured seconds per run (after WARMUP [0.5] s)
#   CONCURRENCY [64]   connection-rate workers
#   STREAMS [4]        bulk streams
#   FLOOD_PORTS [256]  UDP source ports of the flood
#   REPEAT [3]         runs per target and metric; the median is reported
#   TARGETS ["direct fulcrum-direct fulcrum-generic haproxy fulcrum"]
#                      fulcrum-direct: direct routing with xdp_mode XDP_MODE;
#                      fulcrum-generic: the same in generic XDP
#   XDP_MODE [auto]    fulcrum-direct's director.xdp_mode: auto (native,
#                      else generic), native or generic
#   HAPROXY_SPLICE [1] HAProxy's bulk service splices (1 MiB pipes), as
#                      fulcrum does through Go's io.Copy
#   FULCRUM_REV        build fulcrum from this git revision (e.g. HEAD)
#   FULCRUM_BIN        use this fulcrum binary
#   RESULTS            append every raw JSON line to this file
#   NICE [0]           run the bench at this priority (see bench/l4/run.sh);
#                      -10 on a shared machine
#   QUIET_WAIT [30]    before each run, wait until other programs use less
#                      than QUIET_BUSY [25] % of a core, QUIET_WAIT seconds
#                      at most in all
#   KEEP [0]           1: keep the work directory with the logs
#
# Needs root. The addresses (10.216.0.0/24) exist only inside the
# namespaces, whose names carry this script's pid; every setting (RPS,
# threaded NAPI and its threads' CPU and nice, GRO, offloads, tcp_tw_reuse,
# the port range, the backends' ARP settings) belongs to their interfaces
# or namespaces and goes with them. The kernel's BPF run-time statistics
# are on only while a measurement of direct routing holds them on
# (BPF_ENABLE_STATS; kernel.bpf_stats_enabled is not touched). Installs
# haproxy with apt-get when missing. Everything started here is killed and
# the namespaces deleted on exit, also on Ctrl-C.
set -euo pipefail

DURATION=${DURATION:-3}
WARMUP=${WARMUP:-0.5}
CONCURRENCY=${CONCURRENCY:-64}
STREAMS=${STREAMS:-4}
FLOOD_PORTS=${FLOOD_PORTS:-256}
REPEAT=${REPEAT:-3}
TARGETS=${TARGETS:-"direct fulcrum-direct fulcrum-generic haproxy fulcrum"}
XDP_MODE=${XDP_MODE:-auto}
HAPROXY_SPLICE=${HAPROXY_SPLICE:-1}
RESULTS=${RESULTS:-}
NICE=${NICE:-0}
KEEP=${KEEP:-0}
QUIET_WAIT=${QUIET_WAIT:-30}
QUIET_BUSY=${QUIET_BUSY:-25}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cmdline="$(env | grep -E '^(DURATION|WARMUP|CONCURRENCY|STREAMS|FLOOD_PORTS|REPEAT|TARGETS|XDP_MODE|HAPROXY_SPLICE|FULCRUM_REV|FULCRUM_BIN|NICE)=' | sed -E 's/=(.*[ ].*)$/="\1"/' | sort | tr '\n' ' ')bench/director/run.sh"

log() { printf '%s\n' "director-bench: $*" >&2; }
die() {
	log "$*"
	exit 1
}
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
bench_nice_session "${BASH_SOURCE[0]}" "$@"

for v in DURATION CONCURRENCY STREAMS FLOOD_PORTS REPEAT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: want a positive integer"
done
[[ $WARMUP =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "WARMUP=$WARMUP: want seconds"
[[ $XDP_MODE =~ ^(auto|native|generic)$ ]] || die "XDP_MODE=$XDP_MODE: want auto, native or generic"
for t in $TARGETS; do
	[[ $t =~ ^(direct|haproxy|fulcrum|fulcrum-direct|fulcrum-generic)$ ]] || die "TARGETS: unknown target $t"
done
# is_dr T — T is a direct-routing target (fulcrum's XDP program).
is_dr() { [[ $1 == fulcrum-direct || $1 == fulcrum-generic ]]; }
[[ $(id -u) == 0 ]] || die "needs root (network namespaces, XDP)"
{ command -v ip && command -v nft; } >/dev/null || die "needs ip (iproute2) and nft (nftables)"
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

# ---- cleanup: namespaces, processes, the work directory ----
id=$$
ns() { echo "fdir-$id-$1"; }
hosts=(client dir be1 be2)
sw=$(ns sw)
bench_start fulcrum-dirbench
bench_before_cleanup() {
	local h p
	{
		for h in "${hosts[@]}" sw; do
			ip netns list | grep -qw "$(ns "$h")" || continue
			for p in $(ip netns pids "$(ns "$h")"); do kill -KILL "$p" || true; done
		done
		wait || true
	} 2>/dev/null # no "Killed" line per process
	for h in "${hosts[@]}" sw; do ip netns del "$(ns "$h")" 2>/dev/null || true; done
}

json_num() { sed -n "s/.*\"$1\":\\([-0-9.e+]*\\).*/\\1/p"; }
# json_elem FIELD I — element I (from 0) of the array FIELD.
json_elem() { sed -n "s/.*\"$1\":\\[\\([^]]*\\)\\].*/\\1/p" | tr ',' '\n' | sed -n "$(($2 + 1))p"; }
# calc EXPR [DIGITS] — EXPR evaluated by awk; "-" when it cannot be (a
# missing value, a division by zero).
calc() { awk "BEGIN{printf \"%.${2:-3}f\n\", $1}" 2>/dev/null || echo -; }

# ---- packages, build ----
if has_target haproxy && ! command -v haproxy >/dev/null; then
	bench_apt_install haproxy || die "cannot install haproxy"
fi
log "building into $work"
(cd "$root" && go build -o "$work/backend" ./bench/l4/backend && go build -o "$work/loadgen" ./bench/l4/loadgen &&
	go build -o "$work/dirtool" ./bench/director/dirtool) || die "cannot build the bench tools"
fulcrum_note="" fulcrum_version=""
if has_target fulcrum || has_target fulcrum-direct || has_target fulcrum-generic; then
	if build_fulcrum "$root"; then
		fulcrum_version="$("$work/fulcrum" version 2>&1 | sed -n 1p || true) ($fulcrum_from)"
	else
		fulcrum_note="fulcrum did not build ($fulcrum_build_error); it was left out of this run"
		log "WARNING: $fulcrum_note"
		TARGETS=$(sed -E 's/\bfulcrum(-direct|-generic)?\b//g' <<<"$TARGETS")
	fi
fi

# ---- CPU placement ----
ncpu=$(nproc)
dir_cpus="" load_cpus="" load_mask=""
if ((ncpu >= 2)); then
	dir_cpus=0 load_cpus="1-$((ncpu - 1))"
	load_mask=$(printf '%x' $(((1 << ncpu) - 2)))
	placement="director on CPU 0 (process by taskset, receive path in its interface's NAPI thread), client, backends and switch on CPU $load_cpus"
else
	placement="not pinned (1 CPU)"
fi

# ---- the lab ----
net=10.216.0
vip=$net.100
declare -A addr=([client]=$net.10 [dir]=$net.11 [be1]=$net.21 [be2]=$net.22)
dif=dr$((id % 100000))  # the director's interface; its NAPI thread is napi/$dif-N
dport=pd$((id % 100000)) # the director's port on the switch
ip netns add "$sw"
ip -n "$sw" link set lo up
ip -n "$sw" link add br0 type bridge stp_state 0 mcast_snooping 0
ip -n "$sw" link set br0 up
for h in "${hosts[@]}"; do
	n=$(ns "$h") ifn=eth0 port=p-$h
	if [[ $h == dir ]]; then ifn=$dif port=$dport; fi
	ip netns add "$n"
	ip -n "$sw" link add "$port" type veth peer name "$ifn" netns "$n"
	ip -n "$sw" link set "$port" master br0 up
	ip -n "$n" link set "$ifn" addrgenmode none
	ip -n "$n" link set lo up
	ip -n "$n" addr add "${addr[$h]}/24" dev "$ifn"
	ip -n "$n" link set "$ifn" up
done
in_ns() { # in_ns HOST CMD... — run CMD in HOST's namespace
	local h=$1
	shift
	ip netns exec "$(ns "$h")" "$@"
}
# spawn HOST CPUS CMD... — become CMD in HOST's namespace, at nice $NICE,
# pinned to CPUS; in a background subshell, $! is CMD's pid.
spawn() {
	local h=$1 c=$2
	shift 2
	exec ip netns exec "$(ns "$h")" nice -n "$NICE" taskset -c "${c:-0}" "$@"
}
# The director holds the VIP (it answers ARP for it; the backends must not).
ip -n "$(ns dir)" addr add "$vip/32" dev "$dif"
# Connections close client-first at thousands per second: without loopback's
# TIME_WAIT reuse the client would run out of ports within seconds (and the
# proxies, which close toward the backends, likewise).
for h in client dir; do
	in_ns "$h" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65535"
done
# A veth passes a frame to its peer's NAPI poll (GRO, XDP) only when the
# sending end cannot hand it over unsegmented and checksum-pending (TSO):
# the switch's port toward the director checksums and segments in software,
# as a real NIC's receive ring would only ever hold finished frames.
in_ns sw ethtool -K "$dport" tx off >/dev/null
# The director's receive path in a thread of its own, on the director's
# core: a veth polls in NAPI when GRO is on (or an XDP program is attached),
# and threaded NAPI gives that poll a kernel thread (napi/IFNAME-N) which is
# pinned and whose CPU time /proc shows. What the director sends is received
# on CPU 1 (RPS on its switch port).
in_ns dir ethtool -K "$dif" gro on >/dev/null
in_ns dir sh -c "echo 1 >/sys/class/net/$dif/threaded"
if [[ -n $load_mask ]]; then
	in_ns sw sh -c "echo $load_mask >/sys/class/net/$dport/queues/rx-0/rps_cpus"
fi
# napi_threads IFNAME — pids of the NAPI threads of IFNAME (napi/IFNAME-N).
napi_threads() { ps -eo pid=,comm= | awk -v p="napi/$1-" 'index($2, p) == 1 {print $1}'; }
# pin_napi — pin the director's NAPI threads to its core (again after an
# XDP program came or went: the kernel makes new ones) at the bench's nice
# (at nice 0 behind other programs' busy processes they overflow the veth's
# 256-frame ring; at a real-time priority they starve the UDP proxy of its
# core under a flood), and set $dir_napi to their pids, comma-separated.
# The switch port's thread (native XDP only) stands for the switch's own
# silicon, which must not lose what the director sends: at the bench's nice
# it keeps up with the TCP tests (nothing finds its ring full), but the
# flood's sender keeps it off CPU 1 until its 256-frame ring overflows, so
# for the flood it gets a real-time priority (as the softirq that does the
# same work without XDP, by RPS, preempts processes). At a real-time
# priority throughout, its preemptions cost the TCP tests' load core more.
pin_napi() {
	local p i now prev=""
	# Attaching or detaching XDP replaces the threads; wait until the set
	# has been the same for half a second (at most 5 s).
	for ((i = 0; i < 10; i++)); do
		sleep 0.5
		now=$(napi_threads "$dif" | sort | tr '\n' ' ')
		[[ -n $now && $now == "$prev" ]] && break
		prev=$now
	done
	dir_napi=""
	for p in $(napi_threads "$dif"); do
		if [[ -n $dir_cpus ]]; then taskset -pc "$dir_cpus" "$p" >/dev/null; fi
		renice -n "$NICE" -p "$p" >/dev/null
		dir_napi+=${dir_napi:+,}$p
	done
	[[ -n $dir_napi ]] || die "no NAPI thread for $dif (threaded NAPI on a veth with GRO)"
	sw_napi=""
	for p in $(napi_threads "$dport"); do
		if [[ -n $load_cpus ]]; then taskset -pc "$load_cpus" "$p" >/dev/null; fi
		sw_napi+=${sw_napi:+,}$p
	done
	sw_priority normal
}
# sw_priority normal|realtime — the switch port's NAPI threads (native XDP)
# at the bench's nice, or at a real-time priority for the flood.
sw_priority() {
	local p
	for p in ${sw_napi//,/ }; do
		if [[ $1 == realtime ]]; then
			chrt -f -p 1 "$p"
		else
			chrt -o -p 0 "$p"
			renice -n "$NICE" -p "$p" >/dev/null
		fi
	done
}
pin_napi
for h in "${hosts[@]}"; do wait_carrier "$(ns "$h")" "$([[ $h == dir ]] && echo "$dif" || echo eth0)"; done

# Response bytes through the director: TCP from the backends' service ports
# (8080, 8081) that the switch sends to the director (nftables' egress hook).
# The UDP flood ends where the director hands it to the switch: the frames
# are counted there (the port's receive counter) and dropped, so that what
# the director forwards costs the rest of the lab (CPU 1) one port's receive,
# not a bridge pass and a backend's too.
ip netns exec "$sw" nft -f - <<EOF
table netdev bench {
  chain to_director {
    type filter hook egress device "$dport" priority 0;
    tcp sport 8080-8081 counter
  }
  chain from_director {
    type filter hook ingress device "$dport" priority 0;
    udp dport 9000 counter drop
  }
}
EOF
flood_dropped() { ip netns exec "$sw" nft list chain netdev bench from_director | sed -n 's/.*counter packets \([0-9]*\) bytes.*/\1/p'; }
resp_bytes() { ip netns exec "$sw" nft list chain netdev bench to_director | sed -n 's/.*counter packets [0-9]* bytes \([0-9]*\).*/\1/p'; }
client_rx() { ip -n "$(ns client)" -s -j link show dev eth0 | sed -n 's/.*"rx":{"bytes":\([0-9]*\).*/\1/p'; }

mac_of() { ip -n "$(ns "$1")" -j link show dev "$2" | sed -n 's/.*"address":"\([0-9a-f:]*\)".*/\1/p'; }
dif_mac=$(mac_of dir "$dif") client_mac=$(mac_of client eth0) be1_mac=$(mac_of be1 eth0)

# ---- backends: the same two for every target ----
# Each serves the 64-byte exchange on :8080 and bulk on :8081 on every
# address (its own and, for direct routing, the VIP), and drops the UDP
# flood (:9000) at its interface, before its IP stack: the switch's
# counters show what was delivered.
declare -A backend_pid
realserver_how=""
for b in be1 be2; do
	if [[ -x $work/fulcrum ]] && "$work/fulcrum" realserver --help >/dev/null 2>&1; then
		in_ns "$b" "$work/fulcrum" realserver up --mode direct --state "$work/$b-realserver.json" "$vip" \
			>"$work/$b-realserver.log" 2>&1 ||
			{ cat "$work/$b-realserver.log" >&2; die "fulcrum realserver up failed on $b"; }
		realserver_how="with \`fulcrum realserver up --mode direct $vip\`"
	else
		# What a real server for LVS-DR needs, by hand.
		ip -n "$(ns "$b")" addr add "$vip/32" dev lo
		in_ns "$b" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
			net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
		realserver_how="by hand (VIP on lo, arp_ignore=1, arp_announce=2)"
	fi
	in_ns "$b" nft -f - <<EOF
table netdev bench {
  chain sink {
    type filter hook ingress device "eth0" priority 0;
    udp dport 9000 drop
  }
}
EOF
	(spawn "$b" "$load_cpus" "$work/backend" -reply ":8080" -bulk ":8081") 2>"$work/$b.log" &
	pids+=("$!")
	backend_pid[$b]=$!
done
log "backends set up for direct routing $realserver_how"
in_ns client "$work/loadgen" -mode wait -d 10s -addr "${addr[be1]}:8080,${addr[be2]}:8081" ||
	die "backends did not start"

declare -A conn_addr bulk_addr udp_addr pid_of
conn_addr[direct]="${addr[be1]}:8080,${addr[be2]}:8080"
bulk_addr[direct]="${addr[be1]}:8081,${addr[be2]}:8081"
udp_addr[direct]="${addr[be1]}:9000"
d=${addr[dir]}

# ---- HAProxy ----
haproxy_version=""
if has_target haproxy; then
	haproxy_version=$(haproxy -v | sed -n 1p)
	haproxy_tcp_settings
	cat >"$work/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $maxconn
    $pipesize
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend conn
    bind $d:1080
    default_backend conn
backend conn
    balance roundrobin
    server b1 ${addr[be1]}:8080
    server b2 ${addr[be2]}:8080
frontend bulk
    bind $d:1081
    default_backend bulk
    $splice
backend bulk
    balance roundrobin
    $splice
    server b1 ${addr[be1]}:8081
    server b2 ${addr[be2]}:8081
EOF
	(spawn dir "$dir_cpus" haproxy -db -f "$work/haproxy.cfg") >"$work/haproxy.log" 2>&1 &
	pids+=("$!")
	pid_of[haproxy]=$!
	conn_addr[haproxy]=$d:1080
	bulk_addr[haproxy]=$d:1081
	in_ns client "$work/loadgen" -mode wait -d 10s -addr "$d:1080,$d:1081" ||
		{ cat "$work/haproxy.log" >&2; die "haproxy did not start"; }
fi

# ---- fulcrum's proxy ----
if has_target fulcrum; then
	cat >"$work/fulcrum.yaml" <<EOF
admin: { listen: "off" }
log: { level: warn }
services:
  - name: conn
    listen: $d:2080
    protocol: tcp
    scheduler: rr
    backends: [{ address: ${addr[be1]}:8080 }, { address: ${addr[be2]}:8080 }]
  - name: bulk
    listen: $d:2081
    protocol: tcp
    scheduler: rr
    backends: [{ address: ${addr[be1]}:8081 }, { address: ${addr[be2]}:8081 }]
  - name: flood
    listen: $d:2090
    protocol: udp
    scheduler: rr
    backends: [{ address: ${addr[be1]}:9000 }, { address: ${addr[be2]}:9000 }]
EOF
	(spawn dir "$dir_cpus" env GOMAXPROCS=1 "$work/fulcrum" run -c "$work/fulcrum.yaml") >"$work/fulcrum.log" 2>&1 &
	pids+=("$!")
	pid_of[fulcrum]=$!
	conn_addr[fulcrum]=$d:2080
	bulk_addr[fulcrum]=$d:2081
	udp_addr[fulcrum]=$d:2090
	in_ns client "$work/loadgen" -mode wait -d 10s -addr "$d:2080,$d:2081" ||
		{ cat "$work/fulcrum.log" >&2; die "fulcrum did not start"; }
fi

# ---- fulcrum's direct routing: started for its turn, stopped after ----
# Its XDP program is attached to the director's interface only while it is
# measured, so that the proxies are measured on a plain interface.
declare -A xdp_got
xdp_prog=""
for t in fulcrum-direct fulcrum-generic; do
	conn_addr[$t]="$vip:8080"
	bulk_addr[$t]="$vip:8081"
	udp_addr[$t]="$vip:9000"
	has_target "$t" || continue
	mode=$XDP_MODE
	if [[ $t == fulcrum-generic ]]; then mode=generic; fi
	cat >"$work/$t.yaml" <<EOF
admin: { listen: "off" }
log: { level: warn }
director:
  interfaces: [$dif]
  xdp_mode: $mode
services:
  - name: conn
    listen: $vip:8080
    protocol: tcp
    forwarding: direct
    scheduler: maglev
    backends: [{ address: ${addr[be1]}:8080 }, { address: ${addr[be2]}:8080 }]
  - name: bulk
    listen: $vip:8081
    protocol: tcp
    forwarding: direct
    scheduler: maglev
    backends: [{ address: ${addr[be1]}:8081 }, { address: ${addr[be2]}:8081 }]
  - name: flood
    listen: $vip:9000
    protocol: udp
    forwarding: direct
    scheduler: maglev
    backends: [{ address: ${addr[be1]}:9000 }, { address: ${addr[be2]}:9000 }]
EOF
	if ! in_ns dir "$work/fulcrum" check -c "$work/$t.yaml" >"$work/check.log" 2>&1; then
		cat "$work/check.log" >&2
		fulcrum_note+="${fulcrum_note:+; }this fulcrum refuses the direct-routing config ($(grep -m1 . "$work/check.log")); $t was left out of this run"
		log "WARNING: $t left out: fulcrum check refused its config"
		TARGETS=$(sed -E "s/\\b$t\\b//g" <<<"$TARGETS")
	fi
done
# xdp_info — "MODE ID" of the XDP program on the director's interface
# (MODE: native or generic), or nothing.
xdp_info() {
	local j
	j=$(ip -n "$(ns dir)" -d -j link show dev "$dif")
	local mode pid
	mode=$(sed -n 's/.*"xdp":{"mode":\([0-9]*\).*/\1/p' <<<"$j")
	pid=$(sed -n 's/.*"xdp":{[^}]*"prog":{[^}]*"id":\([0-9]*\).*/\1/p' <<<"$j")
	[[ -n $mode && -n $pid ]] || return 0
	case $mode in 1) echo "native $pid" ;; 2) echo "generic $pid" ;; *) echo "mode$mode $pid" ;; esac
}
start_direct() { # start_direct TARGET
	local t=$1
	(spawn dir "$dir_cpus" env GOMAXPROCS=1 "$work/fulcrum" run -c "$work/$t.yaml") >>"$work/$t.log" 2>&1 &
	pids+=("$!")
	pid_of[$t]=$!
	local i info=""
	for ((i = 0; i < 100; i++)); do
		info=$(xdp_info)
		[[ -n $info ]] && break
		kill -0 "${pid_of[$t]}" 2>/dev/null || break
		sleep 0.1
	done
	[[ -n $info ]] || {
		cat "$work/$t.log" >&2
		die "fulcrum direct routing attached no XDP program to $dif"
	}
	local got
	read -r got xdp_prog <<<"$info"
	xdp_got[$t]=$got
	if [[ $got == native ]]; then
		# XDP_TX toward the switch needs a program on the switch's end, whose
		# NAPI thread goes to CPU 1.
		ip netns exec "$sw" "$work/dirtool" -mode xdppass -iface "$dport" || die "cannot attach XDP_PASS to $dport"
		in_ns sw sh -c "echo 1 >/sys/class/net/$dport/threaded"
	fi
	pin_napi
	in_ns client "$work/loadgen" -mode wait -d 10s -addr "$vip:8080,$vip:8081" ||
		{ cat "$work/$t.log" >&2; die "direct routing does not reach the backends"; }
}
stop_direct() { # stop_direct TARGET
	local t=$1 p=${pid_of[$1]:-} i
	[[ -n $p ]] || return 0
	kill -TERM "$p" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	pid_of[$t]=""
	ip -n "$sw" link set dev "$dport" xdpdrv off 2>/dev/null || true
	[[ -z $(xdp_info) ]] || die "an XDP program is still attached to $dif after fulcrum stopped"
	pin_napi
}

read -r -a targets <<<"$TARGETS"
((${#targets[@]} > 0)) || die "no targets left"

# ---- measure ----
mkdir -p "$work/res"
# busy_probe — for wait_quiet (bench/lib.sh).
busy_probe() { "$work/loadgen" -mode idle -d 0.5s | json_num busy_pct; }

# watch_start T MODE — the window's watcher, in the background; its JSON
# goes to $work/watch.json.
watch_start() {
	local t=$1 args=(-mode watch -warmup "${WARMUP}s" -d "${DURATION}s")
	# The director: its process (none for direct) and its NAPI threads
	# (the kernel's receive path; XDP's too).
	local p=${pid_of[$t]:-}
	if [[ $t != direct ]]; then args+=(-pids "$p${p:+,}$dir_napi"); fi
	# The switch port's NAPI thread (native XDP), on the load core: apart.
	if [[ $t == fulcrum-direct && -n $sw_napi ]]; then args+=(-also-pids "$sw_napi"); fi
	if is_dr "$t"; then args+=(-bpf-progs "$xdp_prog"); fi
	args+=(-links "$sw:$dport,$sw:p-client,$sw:p-be1,$sw:p-be2,$(ns dir):$dif")
	(nice -n "$NICE" taskset -c "${load_cpus:-0}" "$work/dirtool" "${args[@]}") >"$work/watch.json" 2>"$work/watch.err" &
	watch_pid=$!
}
# watch_end — wait for the watcher (in this shell: a subshell cannot wait
# for it) and set $w to its JSON.
watch_end() {
	wait "$watch_pid" || die "the watcher failed: $(cat "$work/watch.err")"
	w=$(cat "$work/watch.json")
	if [[ -n $RESULTS ]]; then printf '%s\n' "$w" >>"$RESULTS"; fi
}
# record METRIC TARGET VALUE — one run's value; a missing one ("-") is left out.
record() { if [[ $3 =~ ^-?[0-9.e+]+$ ]]; then echo "$3" >>"$work/res/$1.$2"; fi; }

measure_tcp() { # measure_tcp conn|bulk TARGET
	local kind=$1 t=$2 out w args r0 c0 r1 c1 value
	wait_quiet
	if [[ $kind == conn ]]; then
		args=(-mode conn -c "$CONCURRENCY" -addr "${conn_addr[$t]}")
	else
		args=(-mode bulk -c "$STREAMS" -dir down -addr "${bulk_addr[$t]}")
	fi
	args+=(-warmup "${WARMUP}s" -d "${DURATION}s" -label "$t" -ours "${backend_pid[be1]},${backend_pid[be2]}")
	[[ -n ${pid_of[$t]:-} ]] && args+=(-pid "${pid_of[$t]}")
	r0=$(resp_bytes) c0=$(client_rx)
	watch_start "$t"
	out=$(in_ns client nice -n "$NICE" taskset -c "${load_cpus:-0}" "$work/loadgen" "${args[@]}") ||
		die "loadgen failed: $kind $t"
	watch_end
	r1=$(resp_bytes) c1=$(client_rx)
	if [[ -n $RESULTS ]]; then printf '%s\n' "$out" >>"$RESULTS"; fi
	local secs dirms procms core0 errors n bpfns
	secs=$(json_num seconds <<<"$w")
	dirms=$(json_num pid_ms <<<"$w")          # process + NAPI threads
	procms=$(json_elem pid_ms_each 0 <<<"$w") # the process alone
	bpfns=$(json_num bpf_run_ns <<<"$w")
	core0=$(json_elem core_busy_ms 0 <<<"$w")
	errors=$(json_num errors <<<"$out")
	record "$kind.err" "$t" "$errors"
	if [[ $kind == conn ]]; then
		value=$(json_num rate <<<"$out")
		record conn "$t" "$value"
		n=$(calc "$value * $secs" 0) # connections in the watcher's window
		if is_dr "$t"; then
			record cpu "$t" "$(calc "$bpfns / 1e6 / $n * 1000")"
			record bpfrun "$t" "$(calc "$bpfns / $(json_num bpf_run_cnt <<<"$w")" 0)"
		elif [[ $t != direct ]]; then
			record cpu "$t" "$(calc "$procms / $n * 1000")"
		fi
		if [[ $t != direct ]]; then record total "$t" "$(calc "$dirms / $n * 1000")"; fi
		# The load side's core (client, backends, switch; other programs' share
		# included): where the lab's extra hop through the director costs.
		if [[ -n $load_cpus ]]; then record load "$t" "$(calc "$(json_elem core_busy_ms 1 <<<"$w") / $n * 1000")"; fi
		record swport "$t" "$(calc "$(json_num also_ms <<<"$w") / $n * 1000")"
		record tcpfull "$t" "$(json_elem link_tx_dropped 4 <<<"$w")"
		log "$(printf 'conn %-14s %8s conn/s  director CPU %s ms (process, NAPI: %s), XDP program %s ns over %s runs; core 0 busy %s ms; errors %s' \
			"$t" "$value" "$dirms" "$(sed -n 's/.*"pid_ms_each":\[\([^]]*\)\].*/\1/p' <<<"$w")" "$bpfns" "$(json_num bpf_run_cnt <<<"$w")" "$core0" "$errors")"
		log "conn $t: $(json_elem link_tx_dropped 4 <<<"$w") frames from the director found the switch port full"
	else
		value=$(json_num mb_per_s <<<"$out")
		record bulk "$t" "$value"
		record resp "$t" "$((r1 - r0))"
		record resp_share "$t" "$(calc "($r1 - $r0) / ($c1 - $c0)" 4)"
		# Bytes into the director's interface per byte the client received.
		local lin ltx
		lin=$(json_elem link_tx_bytes 0 <<<"$w") ltx=$(json_elem link_tx_bytes 1 <<<"$w")
		record dirin "$t" "$(calc "$lin / $ltx" 4)"
		log "$(printf 'bulk %-14s %8s MB/s   response bytes to the director %s of %s the client received; director in/client in %s; errors %s' \
			"$t" "$value" "$((r1 - r0))" "$((c1 - c0))" "$(calc "$lin / $ltx" 3)" "$errors")"
	fi
	if [[ $errors != 0 ]]; then log "$kind $t errors: $(sed -n 's/.*"error_kinds":\({[^}]*}\).*/\1/p' <<<"$out")"; fi
}

measure_udp() { # measure_udp TARGET
	local t=$1 out w secs fwd core0 sirq0 dirms pps d0 d1
	[[ -n ${udp_addr[$t]:-} ]] || return 0
	wait_quiet
	d0=$(flood_dropped)
	sw_priority realtime
	watch_start "$t"
	# Frames from the client's addresses, written onto the switch's port
	# toward the director (toward be1 for direct).
	local port=$dport to=$dif_mac
	if [[ $t == direct ]]; then port=p-be1 to=$be1_mac; fi
	out=$(in_ns sw nice -n "$NICE" taskset -c "${load_cpus:-0}" "$work/dirtool" -mode rawflood \
		-iface "$port" -src-mac "$client_mac" -dst-mac "$to" -src "${addr[client]}" \
		-addr "${udp_addr[$t]}" -ports "$FLOOD_PORTS" -warmup "${WARMUP}s" -d "${DURATION}s") ||
		die "the flood failed: $t"
	watch_end
	sw_priority normal
	d1=$(flood_dropped)
	if [[ -n $RESULTS ]]; then printf '%s\n' "$out" >>"$RESULTS"; fi
	secs=$(json_num seconds <<<"$w")
	# Forwarded: without a director the frames written to be1 (p-be1), else
	# the frames the director sent to the switch: those the switch's port
	# took, and those it had no room for (a veth counts them as the
	# sender's tx_dropped; XDP_TX's too).
	local lost=0
	if [[ $t == direct ]]; then
		fwd=$(json_elem link_tx_packets 2 <<<"$w")
	else
		lost=$(json_elem link_tx_dropped 4 <<<"$w")
		fwd=$(($(json_elem link_rx_packets 0 <<<"$w") + lost))
	fi
	pps=$(calc "$fwd / $secs" 0)
	core0=$(json_elem core_busy_ms 0 <<<"$w")
	sirq0=$(json_elem core_softirq_ms 0 <<<"$w")
	dirms=$(json_num pid_ms <<<"$w")
	record pps "$t" "$pps"
	record lost_share "$t" "$(calc "$lost / $fwd" 3)"
	record sent "$t" "$(json_num sent_pps <<<"$out")"
	if [[ $t != direct ]]; then
		record dir_pct "$t" "$(calc "$dirms / $secs / 10" 1)"
		# Packets forwarded per second of the director's CPU time.
		record pps_cpu "$t" "$(calc "$fwd / ($dirms / 1000)" 0)"
	fi
	if is_dr "$t"; then
		record pps_bpfns "$t" "$(calc "$(json_num bpf_run_ns <<<"$w") / $(json_num bpf_run_cnt <<<"$w")" 0)"
	fi
	log "$(printf 'udp  %-14s %8s pps forwarded (%s in the window found the switch port full; sent %s pps; the switch dropped %s from the director in the whole run); core 0 busy %s ms, softirq %s ms, director proc/thread %s ms, BPF %s ns / %s runs' \
		"$t" "$pps" "$lost" "$(json_num sent_pps <<<"$out")" "$((d1 - d0))" "$core0" "$sirq0" "$dirms" "$(json_num bpf_run_ns <<<"$w")" "$(json_num bpf_run_cnt <<<"$w")")"
}

log "targets: ${targets[*]}; $placement; DURATION=${DURATION}s REPEAT=$REPEAT CONCURRENCY=$CONCURRENCY STREAMS=$STREAMS FLOOD_PORTS=$FLOOD_PORTS"
for ((r = 1; r <= REPEAT; r++)); do
	log "round $r/$REPEAT"
	for t in "${targets[@]}"; do
		if is_dr "$t"; then start_direct "$t"; fi
		# direct measures its connection rate last, so that the next target's
		# (first) comes seconds after it: the ratio the goal is about.
		if [[ $t == direct ]]; then
			measure_udp "$t"
			measure_tcp bulk "$t"
			measure_tcp conn "$t"
		else
			measure_tcp conn "$t"
			measure_tcp bulk "$t"
			measure_udp "$t"
		fi
		if is_dr "$t"; then stop_direct "$t"; fi
	done
done

# ---- report ----
m() { median "$work/res/$1.$2"; }
f1() { awk -v v="$1" 'BEGIN{if(v=="-")print "-";else printf "%.1f\n", v}'; }
f3() { awk -v v="$1" 'BEGIN{if(v=="-")print "-";else printf "%.3f\n", v}'; }
echo
echo "### Director: direct vs HAProxy vs fulcrum proxy vs fulcrum direct routing (network namespaces)"
echo
echo "- command: \`$cmdline\`"
echo "- machine: $ncpu CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)), Linux $(uname -r), $(go version | cut -d' ' -f3)"
[[ -n $haproxy_version ]] && echo "- ${haproxy_version%% - *}: nbthread 1, splice $([[ $HAPROXY_SPLICE == 1 ]] && echo "on for bulk (1 MiB pipes)" || echo off)"
[[ -n $fulcrum_version ]] && echo "- fulcrum: $fulcrum_version, GOMAXPROCS=1"
for t in fulcrum-direct fulcrum-generic; do
	if has_target "$t"; then
		echo "- $t: XDP attached in **${xdp_got[$t]:-?}** mode (xdp_mode: $([[ $t == fulcrum-generic ]] && echo generic || echo "$XDP_MODE"))"
	fi
done
echo "- lab: client → switch (bridge) → director → backends, veth pairs; backends set up $realserver_how"
echo "- placement: $placement$( ((NICE == 0)) || echo ", nice $NICE")"
echo "- median of $REPEAT runs of ${DURATION}s (after ${WARMUP}s); conn: $CONCURRENCY workers, 64-byte request and reply, client closes; bulk: $STREAMS streams backend→client; flood: 60-byte frames from $FLOOD_PORTS source ports"
echo
echo "| target | conn/s | director CPU ms / 1k conn | director total ms / 1k conn | conn per director CPU-s | load core ms / 1k conn | bulk MB/s | response bytes via director | director in / client in (bulk) | UDP pps forwarded | director CPU (UDP) | pps per director CPU-s | errors (conn / bulk) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for t in "${targets[@]}"; do
	cpu=$(m cpu "$t")
	if [[ $cpu != - ]]; then
		if is_dr "$t"; then cpu="$(f3 "$cpu") (XDP program)"; else cpu="$(f1 "$cpu") (process)"; fi
	fi
	pct=$(m dir_pct "$t")
	[[ $pct == - ]] || pct=$pct%
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n' "$t" \
		"$(fmt0 "$(m conn "$t")")" "$cpu" "$(f1 "$(m total "$t")")" \
		"$(awk -v v="$(m total "$t")" 'BEGIN{if(v=="-"||v==0)print "-";else printf "%.0f\n", 1e6/v}')" "$(f1 "$(m load "$t")")" \
		"$(fmt0 "$(m bulk "$t")")" "$(fmt0 "$(m resp "$t")")" "$(m dirin "$t")" \
		"$(fmt0 "$(m pps "$t")")" "$pct" "$(fmt0 "$(m pps_cpu "$t")")" \
		"$(sum "$work/res/conn.err.$t")" "$(sum "$work/res/bulk.err.$t")"
done
echo
# rat A B DIGITS — A/B, "-" when either is missing or B is 0.
rat() { awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN{if(a=="-"||b=="-"||b==0)print "-";else printf "%." d "f\n", a/b}'; }
goal() { awk -v v="$1" -v g="$2" -v op="$3" 'BEGIN{if(v=="-"||v=="")print "not measured";else if((op=="ge"&&v+0>=g)||(op=="le"&&v+0<=g)||(op=="eq"&&v+0==g))print "met";else print "**missed**"}'; }
for t in fulcrum-direct fulcrum-generic; do
	has_target "$t" || continue
	r_conn=$(rat "$(m conn "$t")" "$(m conn direct)" 2)
	r_cpu=$(rat "$(m cpu "$t")" "$(m cpu haproxy)" 4)
	r_tot=$(rat "$(m total "$t")" "$(m total haproxy)" 3)
	r_pps=$(rat "$(m pps_cpu "$t")" "$(m pps_cpu fulcrum)" 1)
	r_ppsabs=$(rat "$(m pps "$t")" "$(m pps fulcrum)" 1)
	echo "Goal (issue 12), $t (${xdp_got[$t]:-?} XDP):"
	echo
	echo "- new connections per second vs direct to a backend: **${r_conn}×** (goal ≥ 0.95×: $(goal "$r_conn" 0.95 ge)); connections one director core carries per CPU-second (1e6 / director total ms per 1k) vs direct's conn/s: $(awk -v v="$(m total "$t")" -v d="$(m conn direct)" 'BEGIN{if(v=="-"||d=="-"||v==0||d==0)print "-";else printf "%.2f\n", 1e6/v/d}')×; the load core's ms per 1k connections: $(f1 "$(m load "$t")") against $(f1 "$(m load direct)") direct$([[ -s $work/res/swport.$t ]] && echo ", of which the switch port's NAPI thread (which carries the frames on into the backends' receive path) $(f1 "$(m swport "$t")")")"
	echo "- director CPU per connection vs HAProxy's: **${r_cpu}×**, the XDP program's run time against HAProxy's process time (goal ≤ 0.1×: $(goal "$r_cpu" 0.1 le)); all of the director's CPU (process + NAPI thread: with the kernel's receive path and, for XDP, the driver and XDP_TX) against all of HAProxy's: ${r_tot}×"
	echo "- response bytes through the director: **$(m resp "$t")** (goal 0: $(goal "$(m resp "$t")" 0 eq))"
	echo "- forwarded packets per second per director CPU-second vs fulcrum's UDP proxy: **${r_pps}×** (goal ≥ 10×: $(goal "$r_pps" 10 ge)); forwarded pps, not per CPU: ${r_ppsabs}×; of the frames $t forwarded, $(m lost_share "$t") (median share) found the switch port's ring full (the UDP proxy's: $(m lost_share fulcrum))"
	echo "- XDP program run time per packet: $(m bpfrun "$t") ns (conn test), $(m pps_bpfns "$t") ns (flood)"
	echo
done
echo "All runs (min–max):"
for t in "${targets[@]}"; do
	line="- $t: conn/s $(spread "$work/res/conn.$t"), MB/s $(spread "$work/res/bulk.$t")"
	[[ -s $work/res/pps.$t ]] && line+=", UDP pps $(spread "$work/res/pps.$t") (sent $(spread "$work/res/sent.$t"))"
	echo "$line"
done
if [[ -n $fulcrum_note ]]; then
	echo
	echo "WARNING: $fulcrum_note"
fi
