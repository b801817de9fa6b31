#!/usr/bin/env bash
# bench/l4/run.sh — layer-4 benchmark: fulcrum vs HAProxy (mode tcp) vs
# direct-to-backend, on loopback, in one run. docs/BENCHMARKS.md ("Layer 4")
# explains the method and how to read the output.
#
# For every target it measures:
#   conn/s   new connections per second: CONCURRENCY workers each loop
#            "connect, send 64 bytes, read a 64-byte reply, close";
#   MB/s     bulk throughput: STREAMS parallel streams backend -> client
#            (10^6 bytes per second).
# Every measurement is repeated REPEAT times, interleaved across targets
# (direct, haproxy, fulcrum, direct, ...); the median is reported.
#
# Environment (defaults in brackets):
#   DURATION [3]        measured seconds per run (each run adds 0.5 s warm-up)
#   CONCURRENCY [64]    connection-rate workers
#   STREAMS [8]         bulk streams
#   REPEAT [5]          runs per target and metric
#   THREADS [1]         CPU budget of each proxy: fulcrum GOMAXPROCS and
#                       HAProxy nbthread
#   PIN [auto]          auto: pin the proxy under test to CPUs 0..THREADS-1
#                       and backends + load generator to the others (needs
#                       nproc > THREADS); 0: no pinning
#   HAPROXY_SPLICE [1]  1: HAProxy's bulk service forwards with splice(2)
#                       and 1 MiB pipes, as fulcrum does through Go's
#                       io.Copy; 0: HAProxy's default buffer copies
#   TARGETS ["direct haproxy fulcrum"]
#   PORT_BASE [18080]   first of 8 consecutive loopback ports; moved up by
#                       100 until all 8 are free
#   FULCRUM_REV         build fulcrum from this git revision (git archive)
#                       instead of the working tree, e.g. HEAD
#   FULCRUM_BIN         use this fulcrum binary instead of building one
#   RESULTS             append every raw JSON result line to this file
#   LINGER0 [0]         1: the load generator closes with SO_LINGER 0 (RST,
#                       no TIME_WAIT); only if the conn test reports
#                       "cannot assign requested address" errors
#   QUIET_WAIT [30]     before each run, wait until other programs use less
#                       than QUIET_BUSY [25] % of a core; at most QUIET_WAIT
#                       seconds in total per invocation
#   NICE [0]            run the bench (proxies, backends, load generator) at
#                       this priority; -10 shields it from other busy programs
#                       on a shared machine. With autogroup scheduling (the
#                       default on desktop and many server kernels) nice only
#                       orders processes within one session, so the script
#                       then re-runs itself in a new session (setsid) and
#                       sets that session's autogroup nice.
#   NOISE_MAX [15]      a run during which other programs used more than this
#                       % of a core is repeated, at most MAX_RETRIES [6] times
#                       per invocation; the least disturbed attempt counts
#
# Only 127.0.0.1 is used and no system setting is changed (haproxy is
# installed with apt-get when missing). Every process started here is killed
# on exit.
set -euo pipefail

DURATION=${DURATION:-3}
CONCURRENCY=${CONCURRENCY:-64}
STREAMS=${STREAMS:-8}
REPEAT=${REPEAT:-5}
THREADS=${THREADS:-1}
PIN=${PIN:-auto}
HAPROXY_SPLICE=${HAPROXY_SPLICE:-1}
TARGETS=${TARGETS:-"direct haproxy fulcrum"}
PORT_BASE=${PORT_BASE:-18080}
RESULTS=${RESULTS:-}
QUIET_WAIT=${QUIET_WAIT:-30}
QUIET_BUSY=${QUIET_BUSY:-25}
NOISE_MAX=${NOISE_MAX:-15}
MAX_RETRIES=${MAX_RETRIES:-6}
NICE=${NICE:-0}
LINGER0=${LINGER0:-0}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

log() { printf '%s\n' "l4bench: $*" >&2; }
die() {
	log "$*"
	exit 1
}
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
bench_nice_session "${BASH_SOURCE[0]}" "$@"

for v in DURATION CONCURRENCY STREAMS REPEAT THREADS PORT_BASE; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: want a positive integer"
done
for v in QUIET_WAIT QUIET_BUSY NOISE_MAX MAX_RETRIES; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v=${!v}: want a number"
done

# ---- cleanup: every process started here is recorded and killed on exit ----
bench_start fulcrum-l4bench

# json_num FIELD — print the number after "FIELD": in the JSON line on stdin.
json_num() { sed -n "s/.*\"$1\":\\([-0-9.e+]*\\).*/\\1/p"; }
# lt A B — succeed when number A < number B.
lt() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a+0 < b+0)}'; }
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

# ---- haproxy ----
if has_target haproxy && ! command -v haproxy >/dev/null; then
	bench_apt_install haproxy || die "cannot install haproxy"
fi

# ---- build ----
log "building into $work"
(cd "$root" && go build -o "$work/backend" ./bench/l4/backend && go build -o "$work/loadgen" ./bench/l4/loadgen) ||
	die "cannot build the bench tools"
fulcrum_note=""
if has_target fulcrum; then
	if ! build_fulcrum "$root"; then
		fulcrum_note="fulcrum did not build; it was left out of this run"
		log "WARNING: $fulcrum_note"
		TARGETS=$(sed 's/\bfulcrum\b//' <<<"$TARGETS")
	fi
fi

# ---- CPU placement ----
ncpu=$(nproc)
proxy_cpus="" load_cpus=""
if [[ $PIN == auto ]] && ((ncpu > THREADS)); then
	proxy_cpus="0-$((THREADS - 1))"
	load_cpus="$THREADS-$((ncpu - 1))"
	placement="proxy on CPU $proxy_cpus, backends and load generator on CPU $load_cpus (taskset)"
else
	placement="not pinned (PIN=$PIN, nproc=$ncpu, THREADS=$THREADS)"
fi

# ---- ports ----
base=$(bench_ports 8)
ip=127.0.0.1
p_reply1=$ip:$base p_reply2=$ip:$((base + 1)) p_bulk1=$ip:$((base + 2)) p_bulk2=$ip:$((base + 3))
p_hap_conn=$ip:$((base + 4)) p_hap_bulk=$ip:$((base + 5))
p_ful_conn=$ip:$((base + 6)) p_ful_bulk=$ip:$((base + 7))

declare -A pid_of conn_addr bulk_addr
conn_addr[direct]="$p_reply1,$p_reply2"
bulk_addr[direct]="$p_bulk1,$p_bulk2"

# ---- backends ----
(on_cpus "$load_cpus" "$work/backend" -reply "$p_reply1,$p_reply2" -bulk "$p_bulk1,$p_bulk2") 2>"$work/backend.log" &
backend_pid=$!
pids+=("$backend_pid")
"$work/loadgen" -mode wait -d 10s -addr "$p_reply1,$p_reply2,$p_bulk1,$p_bulk2" ||
	{ cat "$work/backend.log" >&2; die "backends did not start"; }

# ---- HAProxy ----
haproxy_version=""
if has_target haproxy; then
	haproxy_version=$(haproxy -v | sed -n 1p)
	haproxy_tcp_settings
	cat >"$work/haproxy.cfg" <<EOF
global
    nbthread $THREADS
    maxconn $maxconn
    $pipesize
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend conn
    bind $p_hap_conn
    default_backend conn
backend conn
    balance roundrobin
    server b1 $p_reply1
    server b2 $p_reply2
frontend bulk
    bind $p_hap_bulk
    default_backend bulk
    $splice
backend bulk
    balance roundrobin
    $splice
    server b1 $p_bulk1
    server b2 $p_bulk2
EOF
	(on_cpus "$proxy_cpus" haproxy -db -f "$work/haproxy.cfg") >"$work/haproxy.log" 2>&1 &
	pid_of[haproxy]=$!
	pids+=("$!")
	conn_addr[haproxy]=$p_hap_conn
	bulk_addr[haproxy]=$p_hap_bulk
	"$work/loadgen" -mode wait -d 10s -addr "$p_hap_conn,$p_hap_bulk" ||
		{ cat "$work/haproxy.log" >&2; die "haproxy did not start"; }
fi

# ---- fulcrum ----
fulcrum_version=""
if has_target fulcrum; then
	fulcrum_version="$("$work/fulcrum" version 2>&1 | sed -n 1p || true) ($fulcrum_from)"
	cat >"$work/fulcrum.yaml" <<EOF
admin: { listen: "off" }
log: { level: warn }
services:
  - name: conn
    listen: $p_ful_conn
    protocol: tcp
    scheduler: rr
    backends:
      - { address: $p_reply1 }
      - { address: $p_reply2 }
  - name: bulk
    listen: $p_ful_bulk
    protocol: tcp
    scheduler: rr
    backends:
      - { address: $p_bulk1 }
      - { address: $p_bulk2 }
EOF
	(
		export GOMAXPROCS=$THREADS
		on_cpus "$proxy_cpus" "$work/fulcrum" run -c "$work/fulcrum.yaml"
	) >"$work/fulcrum.log" 2>&1 &
	pid_of[fulcrum]=$!
	pids+=("$!")
	conn_addr[fulcrum]=$p_ful_conn
	bulk_addr[fulcrum]=$p_ful_bulk
	"$work/loadgen" -mode wait -d 10s -addr "$p_ful_conn,$p_ful_bulk" ||
		{ cat "$work/fulcrum.log" >&2; die "fulcrum did not start"; }
fi

read -r -a targets <<<"$TARGETS"
((${#targets[@]} > 0)) || die "no targets left"

# ---- measure ----
mkdir -p "$work/res"
retries=0 noisy=0

# busy_probe — % of a core that other programs use, over 0.5 s (wait_quiet).
busy_probe() { "$work/loadgen" -mode idle -d 0.5s | json_num busy_pct; }

# run_loadgen MODE TARGET — one measurement; prints loadgen's JSON line.
run_loadgen() {
	local mode=$1 t=$2 args
	if [[ $mode == conn ]]; then
		args=(-mode conn -c "$CONCURRENCY" -addr "${conn_addr[$t]}")
		if ((LINGER0)); then args+=(-linger0); fi
	else
		args=(-mode bulk -c "$STREAMS" -dir down -addr "${bulk_addr[$t]}")
	fi
	if [[ -n ${pid_of[$t]:-} ]]; then
		kill -0 "${pid_of[$t]}" 2>/dev/null || { cat "$work/$t.log" >&2; die "$t exited"; }
		args+=(-pid "${pid_of[$t]}")
	fi
	(on_cpus "$load_cpus" "$work/loadgen" "${args[@]}" -ours "$backend_pid" -d "${DURATION}s" -label "$t") ||
		die "loadgen failed for $mode $t"
}

# measure MODE TARGET — one measurement, repeated while other programs
# disturbed it (within MAX_RETRIES); records the least disturbed attempt.
measure() {
	local mode=$1 t=$2 out other best="" best_other=""
	while :; do
		wait_quiet
		out=$(run_loadgen "$mode" "$t")
		if [[ -n $RESULTS ]]; then printf '%s\n' "$out" >>"$RESULTS"; fi
		other=$(json_num other_cpu_pct <<<"$out")
		if [[ -z $best ]] || lt "$other" "$best_other"; then best=$out best_other=$other; fi
		lt "$NOISE_MAX" "$other" || break
		if ((retries >= MAX_RETRIES)); then
			noisy=$((noisy + 1))
			log "$mode $t: other programs used ${other}% of a core; no retries left, keeping the run"
			break
		fi
		retries=$((retries + 1))
		log "$mode $t: other programs used ${other}% of a core; repeating the run"
	done
	out=$best other=$best_other

	local value cpu errors unit=MB/s
	if [[ $mode == conn ]]; then
		value=$(json_num rate <<<"$out") unit=conn/s
	else
		value=$(json_num mb_per_s <<<"$out")
	fi
	cpu=$(json_num proc_cpu_pct <<<"$out")
	errors=$(json_num errors <<<"$out")
	echo "$value" >>"$work/res/$mode.$t"
	echo "$errors" >>"$work/res/$mode.$t.err"
	echo "$other" >>"$work/res/other"
	if [[ -n $cpu ]]; then
		echo "$cpu" >>"$work/res/$mode.$t.cpu"
		# Efficiency: connections or MB per second of proxy CPU time.
		awk -v c="$cpu" -v v="$value" 'BEGIN{if(c>0)printf "%.1f\n", v/(c/100)}' >>"$work/res/$mode.$t.eff"
	fi
	log "$(printf '%-4s %-8s %9s %-6s proxy_cpu=%s%% other_cpu=%s%% errors=%s cores=%s' "$mode" "$t" "$value" "$unit" \
		"${cpu:--}" "$other" "$errors" "$(sed -n 's/.*"cpu_busy_pct":\[\([^]]*\)\].*/\1/p' <<<"$out")")"
	if [[ $errors != 0 ]]; then
		log "$mode $t errors: $(sed -n 's/.*"error_kinds":\({[^}]*}\).*/\1/p' <<<"$out")"
	fi
}

log "targets: ${targets[*]}; $placement; THREADS=$THREADS DURATION=${DURATION}s REPEAT=$REPEAT CONCURRENCY=$CONCURRENCY STREAMS=$STREAMS"
for ((r = 1; r <= REPEAT; r++)); do
	log "round $r/$REPEAT"
	for t in "${targets[@]}"; do measure conn "$t"; done
	for t in "${targets[@]}"; do measure bulk "$t"; done
done

# ---- report ----
declare -A med
for t in "${targets[@]}"; do
	for m in conn bulk; do
		med[$m.$t]=$(median "$work/res/$m.$t")
		med[$m.cpu.$t]=$(median "$work/res/$m.$t.cpu")
		med[$m.eff.$t]=$(median "$work/res/$m.$t.eff")
	done
done

echo
echo "### Layer 4: fulcrum vs HAProxy vs direct (loopback)"
echo
echo "- machine: $ncpu CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)), Linux $(uname -r), $(go version | cut -d' ' -f3)"
if [[ -n $haproxy_version ]]; then
	echo "- ${haproxy_version%% - *}: nbthread $THREADS, splice $([[ $HAPROXY_SPLICE == 1 ]] && echo "on for bulk (1 MiB pipes)" || echo off)"
fi
if [[ -n $fulcrum_version ]]; then echo "- fulcrum: $fulcrum_version, GOMAXPROCS=$THREADS"; fi
echo "- placement: $placement$( ((NICE == 0)) || echo ", nice $NICE")"
echo "- median of $REPEAT runs of ${DURATION}s each; conn: $CONCURRENCY workers, 64-byte request and reply, client closes$( ((LINGER0)) && echo " with RST (LINGER0)"); bulk: $STREAMS streams backend→client"
echo
echo "| target | conn/s | conn per proxy CPU-s | bulk MB/s | MB per proxy CPU-s | proxy CPU % (conn / bulk) | errors (conn / bulk) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for t in "${targets[@]}"; do
	printf '| %s | %s | %s | %s | %s | %s / %s | %s / %s |\n' "$t" \
		"$(fmt0 "${med[conn.$t]}")" "$(fmt0 "${med[conn.eff.$t]}")" \
		"$(fmt0 "${med[bulk.$t]}")" "$(fmt0 "${med[bulk.eff.$t]}")" \
		"$(fmt0 "${med[conn.cpu.$t]}")" "$(fmt0 "${med[bulk.cpu.$t]}")" \
		"$(sum "$work/res/conn.$t.err")" "$(sum "$work/res/bulk.$t.err")"
done
echo
if [[ -n ${med[conn.fulcrum]:-} && -n ${med[conn.haproxy]:-} ]]; then
	echo "fulcrum / HAProxy: conn/s **$(ratio "${med[conn.fulcrum]}" "${med[conn.haproxy]}")**," \
		"bulk MB/s **$(ratio "${med[bulk.fulcrum]}" "${med[bulk.haproxy]}")**;" \
		"per proxy CPU-second: connections $(ratio "${med[conn.eff.fulcrum]}" "${med[conn.eff.haproxy]}")," \
		"MB $(ratio "${med[bulk.eff.fulcrum]}" "${med[bulk.eff.haproxy]}")"
	echo
fi
echo "Other programs used a median $(median "$work/res/other")% of a core during the kept runs (max $(sort -g "$work/res/other" | sed -n '$p')%); $retries runs were repeated because of them, $noisy kept although disturbed."
echo
echo "All runs (min–max):"
for t in "${targets[@]}"; do
	printf -- '- %s: conn/s %s, MB/s %s\n' "$t" "$(spread "$work/res/conn.$t")" "$(spread "$work/res/bulk.$t")"
done
if [[ -n $fulcrum_note ]]; then
	echo
	echo "WARNING: $fulcrum_note"
fi
