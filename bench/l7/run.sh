#!/usr/bin/env bash
# bench/l7/run.sh — layer-7 benchmark: fulcrum (protocol: http) against
# HAProxy (mode http), nginx as a reverse proxy and Caddy (reverse_proxy),
# and against the backend directly, on loopback, in one run.
# bench/l7/README.md explains the method and how to read the output.
#
# Two nginx backends answer GET / with a fixed BODY_BYTES-byte body over
# keep-alive connections. wrk drives each target with CONNS keep-alive
# connections for DURATION seconds (after a discarded WARMUP run) and
# reports req/s and the p50/p99 latency. Every proxy balances round robin
# over both backends, keeps connections alive on both sides, adds
# X-Forwarded-For/-Proto/-Host, logs nothing and runs no health checks.
# Runs are interleaved (direct, fulcrum, haproxy, nginx, caddy, direct, ...)
# so a slow minute hits every target alike; each cell is the median of
# REPEAT runs.
#
# Environment (defaults in brackets):
#   DURATION [10]       measured seconds per run
#   WARMUP [2]          seconds of the discarded warm-up run before each
#                       measured run (same settings); 0 = none
#   CONNS ["64 512"]    wrk connection counts, each measured for every target
#   REPEAT [3]          runs per target and connection count; median reported
#   CPUS [1]            CPU budget of each proxy: fulcrum GOMAXPROCS, HAProxy
#                       nbthread, nginx worker_processes, Caddy GOMAXPROCS
#   PIN [auto]          auto: pin the proxy under test to CPUs 0..CPUS-1 and
#                       the backends and wrk to the others (needs
#                       nproc > CPUS); 0: no pinning
#   BACKEND_CPUS, WRK_CPUS  CPU lists (taskset -c syntax) for the backends
#                       and for wrk; default: the CPUs the proxy does not use
#   WRK_THREADS         wrk threads [number of CPUs in WRK_CPUS]
#   WRK_TIMEOUT [2s]    wrk's per-request timeout (counted as an error)
#   BODY_BYTES [200]    size of the backends' response body
#   BACKEND_WORKERS [1] nginx worker_processes of each backend
#   HAPROXY_REUSE [always]  HAProxy http-reuse mode (never|safe|aggressive|
#                       always); always matches a per-backend pool of idle
#                       connections any request may take
#   UPSTREAM_IDLE [1024] idle upstream connections nginx (keepalive, per
#                       worker) and Caddy (per backend) may keep
#   TARGETS ["direct fulcrum haproxy nginx caddy"]
#   FULCRUM_REV         build fulcrum from this git revision (git archive)
#                       instead of the working tree, e.g. HEAD or l7engine
#   FULCRUM_BIN         use this fulcrum binary instead of building one
#   FULCRUM_MAX_IDLE    set fulcrum's http.max_idle_per_backend (its
#                       default is 1024, UPSTREAM_IDLE's value for nginx
#                       and Caddy; a smaller pool makes it open and close
#                       upstream connections at 512 connections); unset: the
#                       minimal config, fulcrum's defaults
#   OUT [bench/l7/results-<UTC date and time>.md]  also write the report
#                       here; "-" = stdout only
#   PORT_BASE [18080]   first of 6 consecutive loopback ports; moved up by
#                       100 until all 6 are free
#   KEEP [0]            1: keep the work directory (configs, logs, every wrk
#                       output) and print its path
#   NICE [0]            run the bench (proxies, backends, wrk) at this
#                       priority, e.g. -10 on a shared machine; with
#                       autogroup scheduling the script re-runs itself in a
#                       session of its own and sets that session's autogroup
#                       nice (bench/lib.sh)
#   QUIET_WAIT [30]     before each run, wait until other programs use less
#                       than QUIET_BUSY [25] % of a core; at most QUIET_WAIT
#                       seconds in total per invocation
#
# A target that cannot be installed, started or verified (e.g. a fulcrum
# build that rejects "protocol: http") is reported as "n/a: <reason>" and
# the others are measured. Before measuring, every target is checked with
# curl: bodies of both backends come back (round robin), the client
# connection is reused, and X-Forwarded-For reaches the backend. During
# every run the backends' request counters (nginx stub_status) must grow
# by as many requests as wrk completed: a proxy cannot answer by itself.
#
# Only 127.0.0.1 is used and no system setting is changed (nginx, haproxy,
# caddy, wrk and curl are installed with apt-get when missing). Every
# process started here is killed on exit; every wait and run is bounded.
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-"64 512"}
REPEAT=${REPEAT:-3}
CPUS=${CPUS:-1}
PIN=${PIN:-auto}
WRK_TIMEOUT=${WRK_TIMEOUT:-2s}
BODY_BYTES=${BODY_BYTES:-200}
BACKEND_WORKERS=${BACKEND_WORKERS:-1}
HAPROXY_REUSE=${HAPROXY_REUSE:-always}
UPSTREAM_IDLE=${UPSTREAM_IDLE:-1024}
FULCRUM_MAX_IDLE=${FULCRUM_MAX_IDLE:-}
TARGETS=${TARGETS:-"direct fulcrum haproxy nginx caddy"}
PORT_BASE=${PORT_BASE:-18080}
QUIET_WAIT=${QUIET_WAIT:-30}
QUIET_BUSY=${QUIET_BUSY:-25}
KEEP=${KEEP:-0}
NICE=${NICE:-0}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
started=$(date -u +%Y-%m-%dT%H%MZ)
OUT=${OUT:-$here/results-$started.md}

log() { printf '%s\n' "l7bench: $*" >&2; }
die() {
	log "$*"
	exit 1
}
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"
bench_nice_session "${BASH_SOURCE[0]}" "$@"

for v in DURATION REPEAT CPUS BODY_BYTES BACKEND_WORKERS UPSTREAM_IDLE PORT_BASE; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: want a positive integer"
done
[[ -z $FULCRUM_MAX_IDLE || $FULCRUM_MAX_IDLE =~ ^[1-9][0-9]*$ ]] || die "FULCRUM_MAX_IDLE=$FULCRUM_MAX_IDLE: want a positive integer"
for v in WARMUP QUIET_WAIT QUIET_BUSY; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v=${!v}: want a number"
done
for c in $CONNS; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "CONNS: $c is not a positive integer"; done
[[ -n ${CONNS// /} ]] || die "CONNS is empty"
[[ $PIN == auto || $PIN == 0 ]] || die "PIN=$PIN: want auto or 0"
[[ $HAPROXY_REUSE =~ ^(never|safe|aggressive|always)$ ]] || die "HAPROXY_REUSE=$HAPROXY_REUSE: want never, safe, aggressive or always"
((BODY_BYTES >= 32 && BODY_BYTES <= 4000)) || die "BODY_BYTES=$BODY_BYTES: want 32..4000"
all_targets="direct fulcrum haproxy nginx caddy"
for t in $TARGETS; do [[ " $all_targets " == *" $t "* ]] || die "TARGETS: unknown target $t (want some of: $all_targets)"; done
read -r -a targets <<<"$TARGETS"
((${#targets[@]} > 0)) || die "TARGETS is empty"
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

# ---- cleanup: every process started here is recorded and killed on exit ----
bench_start fulcrum-l7bench
chmod 755 "$work" # nginx workers run as nobody
wrk_pid=""
bench_before_cleanup() { if [[ -n $wrk_pid ]]; then kill -TERM "$wrk_pid" 2>/dev/null; fi; }

# 512 connections through a proxy need ~1100 descriptors in one process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# na[T] holds why target T is not measured; such a target prints "n/a: ...".
declare -A na
# set_na T REASON — keep T out of the measurement with REASON (one line).
set_na() {
	na[$1]=$(printf '%s' "$2" | tr '\n\r' '  ' | sed 's/  */ /g; s/ $//' | cut -c1-200)
	log "$1: n/a: ${na[$1]}"
}

# ---- install what is missing ----
# (Each command comes in the Debian package of the same name.)
need=()
for cmd in nginx wrk curl; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
for cmd in haproxy caddy; do
	if has_target "$cmd" && ! command -v "$cmd" >/dev/null; then need+=("$cmd"); fi
done
for p in "${need[@]}"; do bench_apt_install "$p" || log "cannot install $p"; done
for cmd in nginx wrk curl; do command -v "$cmd" >/dev/null || die "$cmd is missing and could not be installed"; done
for cmd in haproxy caddy; do
	if has_target "$cmd" && ! command -v "$cmd" >/dev/null; then set_na "$cmd" "$cmd is not installed and apt-get could not install it"; fi
done
nginx -V 2>&1 | grep -q http_stub_status_module || die "this nginx has no stub_status module (needed to count backend requests)"

# ---- build fulcrum ----
fulcrum_version=""
if has_target fulcrum; then
	build_fulcrum "$root" || set_na fulcrum "build failed: $fulcrum_build_error"
	if [[ -z ${na[fulcrum]:-} ]]; then
		fulcrum_version="$("$work/fulcrum" version 2>&1 | sed -n 1p || true) ($fulcrum_from)"
	fi
fi

# ---- CPU placement ----
ncpu=$(nproc)
proxy_cpus="" load_cpus=""
if [[ $PIN == auto ]] && ((ncpu > CPUS)); then
	proxy_cpus=0 load_cpus=$CPUS
	if ((CPUS > 1)); then proxy_cpus="0-$((CPUS - 1))"; fi
	if ((ncpu - 1 > CPUS)); then load_cpus="$CPUS-$((ncpu - 1))"; fi
fi
BACKEND_CPUS=${BACKEND_CPUS:-$load_cpus}
WRK_CPUS=${WRK_CPUS:-$load_cpus}
# cpu_list LIST — the CPU numbers of a taskset list ("0-2,5"), one per line.
cpu_list() {
	local part
	for part in ${1//,/ }; do
		if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
	done
}
if [[ -n $WRK_CPUS ]]; then
	WRK_THREADS=${WRK_THREADS:-$(cpu_list "$WRK_CPUS" | wc -l)}
else
	WRK_THREADS=${WRK_THREADS:-$ncpu}
fi
[[ $WRK_THREADS =~ ^[1-9][0-9]*$ ]] || die "WRK_THREADS=$WRK_THREADS: want a positive integer"
if [[ -n $proxy_cpus ]]; then
	placement="proxy on CPU $proxy_cpus, backends on CPU ${BACKEND_CPUS:-any}, wrk on CPU ${WRK_CPUS:-any} (taskset)"
else
	placement="not pinned (PIN=$PIN, nproc=$ncpu, CPUS=$CPUS)"
fi

# ---- ports ----
base=$(bench_ports 6)
ip=127.0.0.1
be1=$ip:$base be2=$ip:$((base + 1))
declare -A addr_of=(
	[direct]=$be1
	[fulcrum]=$ip:$((base + 2))
	[haproxy]=$ip:$((base + 3))
	[nginx]=$ip:$((base + 4))
	[caddy]=$ip:$((base + 5))
)
declare -A pid_of

# wait_http ADDR PID LOG — wait up to 10 s until http://ADDR/ answers; fail
# at once when PID exits. Prints the last lines of LOG on failure.
wait_http() {
	local addr=$1 pid=$2 logf=$3 i
	for ((i = 0; i < 100; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 5 "$logf" 2>/dev/null >&2
			return 1
		fi
		curl -s -o /dev/null --max-time 1 "http://$addr/" && return 0
		sleep 0.1
	done
	tail -n 5 "$logf" 2>/dev/null >&2
	return 1
}

# ---- backends: nginx, one instance each, a fixed body on GET / ----
# body_of N — backend N's body: BODY_BYTES bytes naming the backend.
body_of() {
	local head="fulcrum l7 bench backend $1 "
	printf '%s' "$head"
	head -c $((BODY_BYTES - ${#head})) /dev/zero | tr '\0' x
}
body1=$(body_of 1) body2=$(body_of 2)
for n in 1 2; do
	baddr=$be1 body=$body1
	if ((n == 2)); then baddr=$be2 body=$body2; fi
	mkdir -p "$work/be$n"
	cat >"$work/be$n/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $BACKEND_WORKERS;
worker_rlimit_nofile $(ulimit -Hn);
pid $work/be$n/nginx.pid;
error_log $work/be$n/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    server_tokens off;
    keepalive_timeout 120s;
    keepalive_requests 100000000;
    client_body_temp_path $work/be$n/body;
    proxy_temp_path $work/be$n/proxy;
    fastcgi_temp_path $work/be$n/fastcgi;
    uwsgi_temp_path $work/be$n/uwsgi;
    scgi_temp_path $work/be$n/scgi;
    server {
        listen $baddr backlog=4096;
        default_type text/plain;
        location = / { return 200 "$body"; }
        # What the proxy added, for the forwarding check before measuring.
        location = /hdrs { return 200 "xff=\$http_x_forwarded_for xfp=\$http_x_forwarded_proto xfh=\$http_x_forwarded_host"; }
        # Accepted connections and requests, read around every run.
        location = /status { stub_status; }
    }
}
EOF
	(on_cpus "$BACKEND_CPUS" nginx -e "$work/be$n/error.log" -p "$work/be$n" -c "$work/be$n/nginx.conf") >"$work/be$n/out.log" 2>&1 &
	pids+=("$!")
	wait_http "$baddr" "$!" "$work/be$n/error.log" || die "backend $n (nginx on $baddr) did not start"
	got=$(curl -s --max-time 2 "http://$baddr/") || die "backend $n does not answer"
	[[ $got == "$body" ]] || die "backend $n answers an unexpected body: $got"
done
pid_of[direct]=""

# ---- HAProxy ----
haproxy_version=""
if has_target haproxy && [[ -z ${na[haproxy]:-} ]]; then
	haproxy_version=$(haproxy -v | sed -n 1p)
	maxconn=$((($(ulimit -Hn) - 500) / 3))
	if ((maxconn > 50000)); then maxconn=50000; fi
	# The tutorials' haproxy.cfg (option forwardfor, balance roundrobin), but
	# with keep-alive to the servers instead of option http-server-close, as
	# every other proxy here does; no logs and no checks, like the others.
	cat >"$work/haproxy.cfg" <<EOF
global
    nbthread $CPUS
    maxconn $maxconn
defaults
    mode http
    option http-keep-alive
    option forwardfor
    http-reuse $HAPROXY_REUSE
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s
frontend http
    bind ${addr_of[haproxy]}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend app_pool
backend app_pool
    balance roundrobin
    server app-1 $be1
    server app-2 $be2
EOF
	if ! haproxy -c -q -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1; then
		set_na haproxy "config rejected: $(head -1 "$work/haproxy.log")"
	else
		(on_cpus "$proxy_cpus" haproxy -db -f "$work/haproxy.cfg") >"$work/haproxy.log" 2>&1 &
		pid_of[haproxy]=$!
		pids+=("$!")
	fi
fi

# ---- nginx as a reverse proxy ----
nginx_version=$(nginx -v 2>&1 | sed 's/^nginx version: //')
if has_target nginx; then
	mkdir -p "$work/px"
	cat >"$work/px/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $CPUS;
worker_rlimit_nofile $(ulimit -Hn);
pid $work/px/nginx.pid;
error_log $work/px/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    server_tokens off;
    keepalive_timeout 60s;
    keepalive_requests 100000000; # the default 1000 would reconnect wrk's connections
    client_body_temp_path $work/px/body;
    proxy_temp_path $work/px/proxy;
    fastcgi_temp_path $work/px/fastcgi;
    uwsgi_temp_path $work/px/uwsgi;
    scgi_temp_path $work/px/scgi;
    upstream app_pool {
        server $be1;
        server $be2;
        keepalive $UPSTREAM_IDLE;
        keepalive_requests 100000000;
        keepalive_timeout 60s;
    }
    server {
        listen ${addr_of[nginx]} reuseport backlog=4096;
        location / {
            proxy_pass http://app_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$http_host;
        }
    }
}
EOF
	if ! nginx -t -q -e "$work/px/error.log" -p "$work/px" -c "$work/px/nginx.conf" >"$work/px/out.log" 2>&1; then
		set_na nginx "config rejected: $(grep -m1 emerg "$work/px/out.log" "$work/px/error.log" 2>/dev/null | head -1)"
	else
		(on_cpus "$proxy_cpus" nginx -e "$work/px/error.log" -p "$work/px" -c "$work/px/nginx.conf") >"$work/px/out.log" 2>&1 &
		pid_of[nginx]=$!
		pids+=("$!")
	fi
fi

# ---- Caddy ----
caddy_version=""
if has_target caddy && [[ -z ${na[caddy]:-} ]]; then
	caddy_version=$(caddy version 2>/dev/null | cut -d' ' -f1)
	mkdir -p "$work/caddy"
	# reverse_proxy sets X-Forwarded-For/-Proto/-Host itself. Access logs
	# are off unless a site asks for them; the admin endpoint is off so no
	# port outside the range is bound.
	cat >"$work/caddy/Caddyfile" <<EOF
{
    admin off
    auto_https off
}
http://:${addr_of[caddy]##*:} {
    bind $ip
    reverse_proxy $be1 $be2 {
        lb_policy round_robin
        transport http {
            keepalive 60s
            keepalive_idle_conns $UPSTREAM_IDLE
            keepalive_idle_conns_per_host $UPSTREAM_IDLE
        }
    }
}
EOF
	caddy_env=(env HOME="$work/caddy" XDG_CONFIG_HOME="$work/caddy" XDG_DATA_HOME="$work/caddy" GOMAXPROCS="$CPUS")
	if ! "${caddy_env[@]}" caddy validate --config "$work/caddy/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1; then
		set_na caddy "config rejected: $(grep -m1 -i error "$work/caddy.log")"
	else
		(on_cpus "$proxy_cpus" "${caddy_env[@]}" caddy run --config "$work/caddy/Caddyfile" --adapter caddyfile) >"$work/caddy.log" 2>&1 &
		pid_of[caddy]=$!
		pids+=("$!")
	fi
fi

# ---- fulcrum ----
if has_target fulcrum && [[ -z ${na[fulcrum]:-} ]]; then
	# Minimal on purpose: fulcrum's own defaults for everything else.
	cat >"$work/fulcrum.yaml" <<EOF
admin: { listen: "off" }
log: { level: warn }
services:
  - name: web
    listen: ${addr_of[fulcrum]}
    protocol: http
    scheduler: rr
    backends:
      - { address: $be1 }
      - { address: $be2 }
EOF
	if [[ -n $FULCRUM_MAX_IDLE ]]; then
		printf '    http: { max_idle_per_backend: %s }\n' "$FULCRUM_MAX_IDLE" >>"$work/fulcrum.yaml"
	fi
	if ! "$work/fulcrum" check -c "$work/fulcrum.yaml" >"$work/fulcrum.log" 2>&1; then
		set_na fulcrum "$(grep -v '^$' "$work/fulcrum.log" | head -1 | sed "s|^$work/fulcrum.yaml:[0-9:]* *||")"
	else
		(
			export GOMAXPROCS=$CPUS
			on_cpus "$proxy_cpus" "$work/fulcrum" run -c "$work/fulcrum.yaml"
		) >>"$work/fulcrum.log" 2>&1 &
		pid_of[fulcrum]=$!
		pids+=("$!")
	fi
fi

# proxy_pids T — the processes whose CPU time is the proxy's (nginx: the
# master and its workers).
proxy_pids() {
	local p=${pid_of[$1]:-}
	[[ -n $p ]] || return 0
	echo "$p"
	if [[ $1 == nginx ]]; then pgrep -P "$p" || true; fi
}
log_of() {
	case $1 in
	nginx) echo "$work/px/error.log" ;;
	*) echo "$work/$1.log" ;;
	esac
}

# verify T — check that T forwards: both backends' bodies come back over
# one reused client connection, and X-Forwarded-For reaches the backend.
# Prints the forwarded headers; fails with a reason on stdout.
verify() {
	local t=$1 a=${addr_of[$1]} out lines=() conns=0 saw1=0 saw2=0 i line hdrs
	out=$(curl -sS --max-time 5 -w '\n%{http_code} %{num_connects}\n' \
		"http://$a/" "http://$a/" "http://$a/" "http://$a/" 2>&1) || {
		echo "curl through it failed: $(tail -1 <<<"$out")"
		return 1
	}
	mapfile -t lines <<<"$out"
	for ((i = 0; i + 1 < ${#lines[@]}; i += 2)); do
		line=${lines[i + 1]}
		[[ ${line% *} == 200 ]] || {
			echo "GET / answered status ${line% *}: ${lines[i]:0:80}"
			return 1
		}
		conns=$((conns + ${line#* }))
		case ${lines[i]} in
		"$body1") saw1=1 ;;
		"$body2") saw2=1 ;;
		*)
			echo "GET / returned a body that is not a backend's: ${lines[i]:0:80}"
			return 1
			;;
		esac
	done
	((${#lines[@]} == 8)) || {
		echo "4 GETs gave unexpected output: ${out:0:120}"
		return 1
	}
	if [[ $t == direct ]]; then
		((saw1)) || { echo "backend 1 did not answer"; return 1; }
	else
		((saw1 && saw2)) || { echo "4 GETs did not reach both backends (round robin)"; return 1; }
	fi
	((conns == 1)) || { echo "the client connection was not kept alive ($conns connects for 4 GETs)"; return 1; }
	hdrs=$(curl -sS --max-time 5 "http://$a/hdrs" 2>&1) || {
		echo "GET /hdrs failed: $hdrs"
		return 1
	}
	if [[ $t != direct && $hdrs != xff=127.0.0.1\ * ]]; then
		echo "X-Forwarded-For did not reach the backend (backend saw: $hdrs)"
		return 1
	fi
	echo "$hdrs"
}

declare -A fwd
for t in "${targets[@]}"; do
	[[ -z ${na[$t]:-} ]] || continue
	if [[ $t != direct ]]; then
		wait_http "${addr_of[$t]}" "${pid_of[$t]}" "$(log_of "$t")" || {
			set_na "$t" "did not start: $(tail -n 3 "$(log_of "$t")" 2>/dev/null)"
			continue
		}
	fi
	if res=$(verify "$t"); then
		fwd[$t]=$res
		log "$t on ${addr_of[$t]}: forwards to both backends, client keep-alive ok; backend saw $res"
	else
		set_na "$t" "$res"
	fi
done

measured=()
for t in "${targets[@]}"; do [[ -n ${na[$t]:-} ]] || measured+=("$t"); done
((${#measured[@]} > 0)) || die "no target left to measure"

# ---- measurement helpers ----
cat >"$work/report.lua" <<'EOF'
-- One machine-readable line at the end of every wrk run (latencies in µs).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
EOF
kv() { sed -n "s/.* $1=\\([0-9.]*\\).*/\\1/p" <<<" $2"; } # kv KEY LINE
clk=$(getconf CLK_TCK)
# cpu_ticks PID... — user + system clock ticks of the processes (all threads).
cpu_ticks() {
	local p s=0 v
	for p in "$@"; do
		v=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) || continue
		s=$((s + ${v:-0}))
	done
	echo "$s"
}
# cpu_snap — "cpu busy total" jiffies per CPU, one line each.
cpu_snap() { awk '/^cpu[0-9]/{b=$2+$3+$4+$7+$8+$9; print substr($1,4), b, b+$5+$6}' /proc/stat; }
# busy_pct BEFORE AFTER CPULIST — busy share of the CPUs in CPULIST ("" =
# all) between two snapshots, in % of one core (2 busy cores = 200).
busy_pct() {
	local want=""
	if [[ -n $3 ]]; then want=" $(cpu_list "$3" | tr '\n' ' ')"; fi
	awk -v want="$want" 'NR==FNR{b[$1]=$2; t[$1]=$3; next}
		want=="" || index(want, " " $1 " ") {db+=$2-b[$1]; dt+=$3-t[$1]; n++}
		END{if(dt>0) printf "%.0f\n", 100*n*db/dt; else print 0}' <(echo "$1") <(echo "$2")
}
# backend_counts — "accepts requests" summed over both backends.
backend_counts() {
	local a s acc=0 req=0 r
	for a in "$be1" "$be2"; do
		s=$(curl -s --max-time 2 "http://$a/status") || die "cannot read backend $a's stub_status"
		r=$(awk 'NR==3{print $1, $3}' <<<"$s")
		acc=$((acc + ${r% *})) req=$((req + ${r#* }))
	done
	echo "$acc $req"
}

# busy_probe — % of a core all programs use over 0.5 s (wait_quiet; between
# runs everything started here is idle).
busy_probe() {
	local s0
	s0=$(cpu_snap)
	sleep 0.5
	busy_pct "$s0" "$(cpu_snap)" ""
}

# run_wrk T C SECONDS OUTFILE — one wrk run, bounded in time.
run_wrk() {
	local t=$1 c=$2 d=$3 threads=$WRK_THREADS
	((threads <= c)) || threads=$c
	# In the background so that a signal ends the script at once (bash runs
	# traps only after a foreground child ends); cleanup kills wrk_pid.
	(on_cpus "$WRK_CPUS" timeout -k 5 $((d + 30)) wrk -t "$threads" -c "$c" -d "${d}s" \
		--timeout "$WRK_TIMEOUT" --latency -s "$work/report.lua" "http://${addr_of[$t]}/") >"$4" 2>&1 &
	wrk_pid=$!
	wait "$wrk_pid"
}

mkdir -p "$work/res" "$work/wrk"
# alive T — succeed while T's process runs (direct: always).
alive() { [[ -z ${pid_of[$1]:-} ]] || kill -0 "${pid_of[$1]}" 2>/dev/null; }
# gone T C — T's process died or wrk failed against it at C connections:
# it is n/a from now on, the other targets go on.
gone() {
	local why rc=0
	if alive "$1"; then
		why="wrk failed at $2 connections: $(tail -n 2 "$3" | tr '\n' ' ')"
	else
		wait "${pid_of[$1]}" 2>/dev/null || rc=$?
		why="exited (status $rc) during the run at $2 connections: $(tail -n 2 "$(log_of "$1")" 2>/dev/null | tr '\n' ' ')"
	fi
	set_na "$1" "$why"
}
# measure T C R — warm-up, then one measured run of T at C connections.
measure() {
	local t=$1 c=$2 r=$3 f="$work/wrk/$1.$2.$3.txt" key="$1.$2"
	local ps=() t0 t1 s0 s1 b0 b1 line req dur rps p50 p99 errs cpu="" eff="" newconns breq pbusy lbusy
	alive "$t" || { gone "$t" "$c" /dev/null; return; }
	wait_quiet
	if ((WARMUP > 0)); then
		run_wrk "$t" "$c" "$WARMUP" "$f.warmup" || { gone "$t" "$c" "$f.warmup"; return; }
	fi
	mapfile -t ps < <(proxy_pids "$t")
	b0=$(backend_counts)
	t0=$(cpu_ticks "${ps[@]}")
	s0=$(cpu_snap)
	run_wrk "$t" "$c" "$DURATION" "$f" || { gone "$t" "$c" "$f"; return; }
	s1=$(cpu_snap)
	t1=$(cpu_ticks "${ps[@]}")
	b1=$(backend_counts)
	alive "$t" || { gone "$t" "$c" "$f"; return; }
	line=$(grep '^RESULT ' "$f") || { gone "$t" "$c" "$f"; return; }
	req=$(kv requests "$line") dur=$(kv duration_us "$line")
	rps=$(awk -v n="$req" -v d="$dur" 'BEGIN{printf "%.0f\n", (d > 0 ? n / (d / 1e6) : 0)}')
	p50=$(kv p50_us "$line") p99=$(kv p99_us "$line")
	errs=$(($(kv err_connect "$line") + $(kv err_read "$line") + $(kv err_write "$line") + $(kv err_status "$line") + $(kv err_timeout "$line")))
	# Each stub_status read is one connection and one request on each
	# backend: the read after the run is in the difference.
	newconns=$(($(cut -d' ' -f1 <<<"$b1") - $(cut -d' ' -f1 <<<"$b0") - 2))
	breq=$(($(cut -d' ' -f2 <<<"$b1") - $(cut -d' ' -f2 <<<"$b0") - 2))
	pbusy=$(busy_pct "$s0" "$s1" "$proxy_cpus")
	lbusy=$(busy_pct "$s0" "$s1" "$load_cpus")
	if ((${#ps[@]} > 0)); then
		cpu=$(awk -v d="$((t1 - t0))" -v hz="$clk" -v us="$dur" 'BEGIN{printf "%.0f\n", (us > 0 ? 100 * (d / hz) / (us / 1e6) : 0)}')
		eff=$(awk -v r="$rps" -v c="$cpu" 'BEGIN{if(c>0)printf "%.0f\n", r/(c/100); else print "-"}')
		echo "$cpu" >>"$work/res/$key.cpu"
		echo "$eff" >>"$work/res/$key.eff"
	fi
	echo "$rps" >>"$work/res/$key.rps"
	echo "$p50" >>"$work/res/$key.p50"
	echo "$p99" >>"$work/res/$key.p99"
	echo "$errs" >>"$work/res/$key.err"
	echo "$newconns" >>"$work/res/$key.conns"
	if [[ -n $proxy_cpus ]]; then echo $((pbusy - ${cpu:-0})) >>"$work/res/other"; fi
	local busy="cpus(proxy/load)=$pbusy%/$lbusy%"
	if [[ -z $proxy_cpus ]]; then busy="cpus(all)=$pbusy%"; fi
	log "$(printf '%-7s c=%-4s %8s req/s p50=%sms p99=%sms proxy_cpu=%s%% %s new_upstream_conns=%s errors=%s' \
		"$t" "$c" "$rps" "$(ms "$p50")" "$(ms "$p99")" "${cpu:--}" "$busy" "$newconns" "$errs")"
	# The backends must have served every request wrk counted.
	if ((breq < req)); then
		log "WARNING: $t: wrk counted $req responses but the backends served only $breq requests"
		echo "$t at $c connections: wrk counted $req responses, the backends served $breq requests" >>"$work/res/warnings"
	fi
	if ((errs > 0)); then
		log "$t errors: $(sed -n 's/^RESULT .*\(err_connect.*\)$/\1/p' "$f")"
	fi
}
ms() { awk -v u="$1" 'BEGIN{if(u=="-"||u=="")print "-"; else printf "%.2f\n", u/1000}'; }

read -r -a conns <<<"$CONNS"
runs=$((${#measured[@]} * ${#conns[@]} * REPEAT))
log "targets: ${measured[*]}; CONNS=${conns[*]} DURATION=${DURATION}s WARMUP=${WARMUP}s REPEAT=$REPEAT CPUS=$CPUS; $placement"
log "$runs runs, about $((runs * (DURATION + WARMUP + 2) / 60 + 1)) min"
for ((r = 1; r <= REPEAT; r++)); do
	log "round $r/$REPEAT"
	for c in "${conns[@]}"; do
		for t in "${measured[@]}"; do
			[[ -n ${na[$t]:-} ]] || measure "$t" "$c" "$r"
		done
	done
done

# ---- report ----
md_escape() { sed 's/|/\\|/g'; }

report() {
	local t c
	echo "### Layer 7: fulcrum vs HAProxy vs nginx vs Caddy vs direct (loopback)"
	echo
	echo "Run on $(date -u +%Y-%m-%d) ($started): \`bench/l7/run.sh\` with DURATION=$DURATION WARMUP=$WARMUP REPEAT=$REPEAT CPUS=$CPUS CONNS=\"$CONNS\"${FULCRUM_REV:+ FULCRUM_REV=$FULCRUM_REV}"
	echo
	echo "- machine: $ncpu CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)), Linux $(uname -r)"
	if has_target fulcrum; then
		if [[ -n $fulcrum_version ]]; then
			echo "- fulcrum: $fulcrum_version, GOMAXPROCS=$CPUS; config: listen, protocol http, scheduler rr, the 2 backends$([[ -z $FULCRUM_MAX_IDLE ]] || echo ", http.max_idle_per_backend $FULCRUM_MAX_IDLE")"
		else
			echo "- fulcrum: n/a"
		fi
	fi
	if [[ -n $haproxy_version ]]; then echo "- ${haproxy_version%% - *}: nbthread $CPUS, http-reuse $HAPROXY_REUSE, option forwardfor, keep-alive both sides"; fi
	if has_target nginx; then echo "- nginx $nginx_version as proxy: worker_processes $CPUS, upstream keepalive $UPSTREAM_IDLE"; fi
	if [[ -n $caddy_version ]]; then echo "- Caddy $caddy_version: GOMAXPROCS=$CPUS, reverse_proxy round_robin, $UPSTREAM_IDLE idle conns per backend"; fi
	echo "- backends: 2 × nginx $nginx_version (worker_processes $BACKEND_WORKERS each), GET / → 200 with a $BODY_BYTES-byte body, keep-alive, no access log"
	echo "- load: $(wrk -v 2>&1 | sed -n '1s/ \[.*//p'), $WRK_THREADS thread(s), keep-alive, --timeout $WRK_TIMEOUT"
	echo "- placement: $placement$( ((NICE == 0)) || echo ", nice $NICE")"
	echo "- median of $REPEAT runs of ${DURATION}s each, each after a discarded ${WARMUP}s warm-up; runs interleaved across targets"
	echo
	echo "| target | conns | req/s | p50 ms | p99 ms | proxy CPU % | req per proxy CPU-s | new upstream conns | errors |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for c in "${conns[@]}"; do
		for t in "${targets[@]}"; do
			if [[ -n ${na[$t]:-} ]]; then
				printf '| %s | %s | n/a: %s | | | | | | |\n' "$t" "$c" "$(md_escape <<<"${na[$t]}")"
				continue
			fi
			local k="$work/res/$t.$c"
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$c" \
				"$(fmt0 "$(median "$k.rps")")" "$(ms "$(median "$k.p50")")" "$(ms "$(median "$k.p99")")" \
				"$(fmt0 "$(median "$k.cpu")")" "$(fmt0 "$(median "$k.eff")")" \
				"$(fmt0 "$(median "$k.conns")")" "$(sum "$k.err")"
		done
	done
	echo
	if has_target fulcrum && has_target haproxy; then
		for c in "${conns[@]}"; do
			local f="$work/res/fulcrum.$c" h="$work/res/haproxy.$c"
			if [[ -n ${na[fulcrum]:-} || -n ${na[haproxy]:-} ]]; then
				echo "fulcrum / HAProxy at $c connections: n/a (fulcrum: ${na[fulcrum]:-ok}; haproxy: ${na[haproxy]:-ok})" | md_escape
				echo
				continue
			fi
			local frps hrps fp99 hp99
			frps=$(median "$f.rps") hrps=$(median "$h.rps") fp99=$(median "$f.p99") hp99=$(median "$h.p99")
			printf 'fulcrum / HAProxy at %s connections: req/s **%s**, p99 **%s**; req per proxy CPU-second %s' "$c" \
				"$(ratio "$frps" "$hrps")" "$(ratio "$fp99" "$hp99")" "$(ratio "$(median "$f.eff")" "$(median "$h.eff")")"
			if [[ $c == 64 && $frps != - && $hrps != - && $fp99 != - && $hp99 != - ]]; then
				if awk -v fr="$frps" -v hr="$hrps" -v fp="$fp99" -v hp="$hp99" 'BEGIN{exit !(fr >= hr && fp <= 1.25 * hp)}'; then
					printf ' — goal (≥ 1.0× req/s, p99 ≤ 1.25×) met'
				else
					printf ' — goal (≥ 1.0× req/s, p99 ≤ 1.25×) not met'
				fi
			fi
			printf '\n\n'
		done
	fi
	if [[ -s $work/res/other ]]; then
		echo "Other programs used a median $(median "$work/res/other")% (max $(sort -g "$work/res/other" | sed -n '$p')%) of the proxy's CPUs during the measured runs (busy share of CPU $proxy_cpus minus the proxy's own CPU time)."
		echo
	fi
	if [[ -s $work/res/warnings ]]; then
		echo "Warnings:"
		sed 's/^/- /' "$work/res/warnings"
		echo
	fi
	echo "All runs (min–max):"
	for c in "${conns[@]}"; do
		for t in "${measured[@]}"; do
			local k="$work/res/$t.$c"
			[[ -z ${na[$t]:-} && -s $k.rps ]] || continue
			printf -- '- %s, %s conns: req/s %s, p99 ms %s–%s\n' "$t" "$c" "$(spread "$k.rps")" \
				"$(ms "$(sort -g "$k.p99" | sed -n 1p)")" "$(ms "$(sort -g "$k.p99" | sed -n '$p')")"
		done
	done
	echo
	echo "Forwarded headers as the backend saw them (GET /hdrs through each proxy):"
	for t in "${measured[@]}"; do
		[[ $t == direct ]] || printf -- "- %s: \`%s\`\n" "$t" "${fwd[$t]}"
	done
}

report >"$work/report.md"
echo
cat "$work/report.md"
if [[ $OUT != - ]]; then
	cp "$work/report.md" "$OUT"
	log "report written to $OUT"
fi
