#!/usr/bin/env bash
# bench/failover/run.sh — failover benchmark: how long the service on a VIP
# is gone when the master balancer dies or loses its cable, for fulcrum at
# its defaults and for keepalived + HAProxy, in one run.
# docs/BENCHMARKS.md ("Failover (bench/failover)") explains the method and
# how to read the output.
#
# The lab is network namespaces on one bridge (its own namespace): a
# client, two balancer nodes lb1 (priority 150) and lb2 (priority 100) and
# two HTTP backends, in 10.215.0.0/24, which exists only inside them. The
# client requests http://VIP/ every 10 ms, each on a new connection with a
# short timeout; a fault is injected on lb1 and the client measures the
# service gap (from the last success before the fault to the first success
# after), the failed requests, and when its neighbour entry for the VIP
# moved to lb2 (lb2's gratuitous ARP).
#
# Stacks (STACKS):
#   fulcrum   fulcrum at its defaults (100 ms adverts), one tcp service on
#             the VIP
#   ka100     keepalived (vrrp_version 3, advert_int 0.1) + HAProxy
#             (mode tcp) on the VIP
#   ka1000    keepalived at its default advert_int 1 + HAProxy
#   fulcrumN, kaN  the same with adverts every N ms (e.g. fulcrum70)
# Faults (FAULTS):
#   kill      every process of lb1's stack gets SIGSTOP then SIGKILL at
#             once (no farewell advert, the VIP stays on lb1's interface)
#   cable     lb1's switch port is set down
#
# Environment (defaults in brackets):
#   REPEAT [5]            trials per stack and fault; median and max reported
#   STACKS ["fulcrum ka100 ka1000"]
#   FAULTS ["kill cable"]
#   TIMEOUT [500ms]       bound of each client request
#   FULCRUM_BIN           use this fulcrum binary instead of building one
#   RECORD [1]            append the report to docs/BENCHMARKS.md, at the end
#                         of the "Failover (bench/failover)" section; 0: print
#                         only
#   RESULTS               also append every trial's raw JSON line to this file
#   KEEP [0]              1: keep the work directory, with every trial's logs
#                         in trials/N/
#
# Needs root. Installs keepalived and haproxy with apt-get when missing.
# Touches nothing outside its namespaces (ip_nonlocal_bind is set inside
# the balancers' namespaces only), and kills everything it started on exit.
set -euo pipefail

REPEAT=${REPEAT:-5}
STACKS=${STACKS:-"fulcrum ka100 ka1000"}
FAULTS=${FAULTS:-"kill cable"}
TIMEOUT=${TIMEOUT:-500ms}
RECORD=${RECORD:-1}
RESULTS=${RESULTS:-}
KEEP=${KEEP:-0}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cmdline="bench/failover/run.sh${*:+ $*}"

log() { printf '%s\n' "failover: $*" >&2; }
die() {
	log "$*"
	exit 1
}
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"

[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT=$REPEAT: want a positive integer"
[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
command -v ip >/dev/null || die "needs the ip command (iproute2)"
for s in $STACKS; do
	[[ $s =~ ^(fulcrum|ka)([0-9]*)$ && ($s == fulcrum || ${BASH_REMATCH[2]} -ge 10) ]] ||
		die "STACKS: unknown stack $s (want fulcrum, fulcrumN or kaN, N ms >= 10)"
done
for f in $FAULTS; do [[ $f =~ ^(kill|cable)$ ]] || die "FAULTS: unknown fault $f"; done

# ---- cleanup: our namespaces, whatever runs in them, the work dir ----
work=$(mktemp -d /tmp/fulcrum-failover.XXXXXX)
id=$$
ns() { echo "fulcrum-fo-$id-$1"; }
hosts=(client lb1 lb2 be1 be2)
sw=$(ns sw)
client_pid=""
kill_ns() { # kill_ns NS — SIGSTOP then SIGKILL every process in NS
	local pids
	pids=$(ip netns pids "$1" 2>/dev/null | grep -vx "$$" || true)
	[[ -z $pids ]] && return 0
	# shellcheck disable=SC2086
	kill -STOP $pids 2>/dev/null || true
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null || true
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -z $(ip netns pids "$1" 2>/dev/null) ]] && return 0
		sleep 0.02
	done
}
cleanup() {
	local h
	exec 3>&- 2>/dev/null || true
	for h in "${hosts[@]}" sw; do
		ip netns list | grep -qw "$(ns "$h")" || continue
		kill_ns "$(ns "$h")"
		ip netns del "$(ns "$h")" 2>/dev/null || true
	done
	if [[ $KEEP == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- packages ----
need=()
[[ " $STACKS " == *" ka"* ]] && ! command -v keepalived >/dev/null && need+=(keepalived)
[[ " $STACKS " == *" ka"* ]] && ! command -v haproxy >/dev/null && need+=(haproxy)
if ((${#need[@]})); then
	log "installing ${need[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 install -y "${need[@]}" >&2 ||
		{ apt-get -o DPkg::Lock::Timeout=600 update >&2 &&
			apt-get -o DPkg::Lock::Timeout=600 install -y "${need[@]}" >&2; } ||
		die "cannot install ${need[*]}"
fi

# ---- build ----
log "building into $work"
(cd "$root" && go build -o "$work/client" ./bench/failover/client && go build -o "$work/backend" ./bench/failover/backend) ||
	die "cannot build the bench tools"
fulcrum_rev=""
if [[ " $STACKS " == *" fulcrum"* ]]; then
	if [[ -n ${FULCRUM_BIN:-} ]]; then
		cp "$FULCRUM_BIN" "$work/fulcrum"
		fulcrum_rev="binary $FULCRUM_BIN"
	else
		(cd "$root" && go build -o "$work/fulcrum" ./cmd/fulcrum) || die "cannot build fulcrum"
		fulcrum_rev="commit $(git -C "$root" rev-parse --short HEAD)"
		[[ -z $(git -C "$root" status --porcelain -- cmd internal 2>/dev/null) ]] || fulcrum_rev+=" + uncommitted changes"
	fi
fi

# ---- the lab ----
net=10.215.0
vip=$net.100
declare -A addr=([client]=$net.10 [lb1]=$net.11 [lb2]=$net.12 [be1]=$net.21 [be2]=$net.22)
ip netns add "$sw"
ip -n "$sw" link set lo up
ip -n "$sw" link add br0 type bridge stp_state 0 mcast_snooping 0
ip -n "$sw" link set br0 up
for h in "${hosts[@]}"; do
	n=$(ns "$h")
	ip netns add "$n"
	ip -n "$sw" link add "p-$h" type veth peer name eth0 netns "$n"
	ip -n "$sw" link set "p-$h" master br0 up
	ip -n "$n" link set eth0 addrgenmode none
	ip -n "$n" link set lo up
	ip -n "$n" addr add "${addr[$h]}/24" dev eth0
	ip -n "$n" link set eth0 up
done
# HAProxy binds the VIP before it holds it (fulcrum uses IP_FREEBIND).
for h in lb1 lb2; do ip netns exec "$(ns "$h")" sysctl -qw net.ipv4.ip_nonlocal_bind=1; done
for h in "${hosts[@]}"; do wait_carrier "$(ns "$h")" eth0; done

for b in be1 be2; do
	ip netns exec "$(ns "$b")" "$work/backend" -listen "${addr[$b]}:8080" -name "$b" 2>"$work/$b.log" &
done

# ---- configs ----
cat >"$work/fulcrum.tmpl" <<EOF
node: { name: NODE }
admin: { listen: 127.0.0.1:9900 }
shutdown: { drain_timeout: 1s }
services:
  - name: web
    listen: $vip:80
    protocol: tcp
    scheduler: rr
    backends:
      - { address: ${addr[be1]}:8080 }
      - { address: ${addr[be2]}:8080 }
ha:
  groups:
    - name: web
      interface: eth0
      vrid: 51
      vips: [$vip/24]
      priority: { lb1: 150, lb2: 100 }
EOF
fulcrum_conf() { # fulcrum_conf NODE STACK
	sed "s/NODE/$1/" "$work/fulcrum.tmpl"
	[[ $2 == fulcrum ]] || echo "      advert_interval: ${2#fulcrum}ms"
}

cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 1s
    timeout client 10s
    timeout server 10s
frontend web
    bind $vip:80
    default_backend web
backend web
    balance roundrobin
    server be1 ${addr[be1]}:8080
    server be2 ${addr[be2]}:8080
EOF

keepalived_conf() { # keepalived_conf NODE ADVERT_INT
	local state=BACKUP prio=100
	[[ $1 == lb1 ]] && state=MASTER prio=150
	cat <<EOF
global_defs {
    router_id failover_$1
    vrrp_version 3
    enable_script_security
}
vrrp_instance VI_1 {
    state $state
    interface eth0
    virtual_router_id 51
    priority $prio
    advert_int $2
    virtual_ipaddress {
        $vip/24 dev eth0
    }
}
EOF
}
for s in $STACKS; do
	for h in lb1 lb2; do
		case $s in
		fulcrum*) fulcrum_conf "$h" "$s" >"$work/$s-$h.yaml" ;;
		ka*) keepalived_conf "$h" "$(awk -v n="${s#ka}" 'BEGIN{ print n / 1000 }')" >"$work/$s-$h.conf" ;;
		esac
	done
done

# ---- one trial ----
adv_ms() { # adv_ms STACK — its advert interval in ms
	case $1 in
	fulcrum) echo 100 ;;
	fulcrum*) echo "${1#fulcrum}" ;;
	ka*) echo "${1#ka}" ;;
	esac
}
has_vip() { ip -n "$(ns "$1")" -o addr show dev eth0 | grep -q " $vip/"; }
wait_until() { # wait_until SECONDS DESCRIPTION CMD... — poll CMD every 10 ms
	local limit=$1 what=$2 i
	shift 2
	for ((i = 0; i < limit * 100; i++)); do
		"$@" && return 0
		sleep 0.01
	done
	log "timed out after ${limit}s waiting for $what"
	return 1
}
fulcrum_state() { # fulcrum_state NODE — the group's state from `fulcrum status --json`
	ip netns exec "$(ns "$1")" "$work/fulcrum" status --json --admin 127.0.0.1:9900 2>/dev/null |
		sed -n 's/^ *"state": "\([a-z]*\)",*$/\1/p' | tail -1
}
is_backup() {
	case $stack in
	fulcrum*) [[ $(fulcrum_state "$1") == backup ]] ;;
	*) grep -q "Entering BACKUP STATE" "$work/$stack-$1.log" ;;
	esac
}
node_pids=()
start_node() { # start_node NODE
	local n
	n=$(ns "$1")
	case $stack in
	fulcrum*)
		ip netns exec "$n" "$work/fulcrum" run -c "$work/$stack-$1.yaml" >"$work/$stack-$1.log" 2>&1 &
		node_pids+=($!)
		;;
	ka*)
		ip netns exec "$n" haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy-$1.log" 2>&1 &
		node_pids+=($!)
		ip netns exec "$n" keepalived --dont-fork --log-console --log-detail --no-syslog --vrrp \
			--use-file "$work/$stack-$1.conf" --pid "$work/ka-$1.pid" --vrrp_pid "$work/ka-vrrp-$1.pid" \
			--checkers_pid "$work/ka-checkers-$1.pid" >"$work/$stack-$1.log" 2>&1 &
		node_pids+=($!)
		;;
	esac
}
reset_lab() {
	local h
	for h in lb1 lb2; do
		kill_ns "$(ns "$h")"
		ip -n "$(ns "$h")" addr del "$vip/24" dev eth0 2>/dev/null || true
		ip -n "$sw" link set "p-$h" up
	done
	for h in lb1 lb2; do wait_carrier "$(ns "$h")" eth0; done
	ip -n "$(ns client)" neigh flush dev eth0 2>/dev/null || true
	local p
	for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	node_pids=()
	# keepalived refuses to start while its pid files name a live process.
	rm -f "$work"/ka-*.pid
}

# trial STACK FAULT — prints the client's JSON line; returns 1 when the trial
# could not be set up.
trial() {
	stack=$1 fault=$2
	reset_lab
	start_node lb1
	wait_until 15 "lb1 master" has_vip lb1 || return 1
	start_node lb2
	wait_until 15 "lb2 backup" is_backup lb2 || return 1
	# lb2 has heard lb1: a few adverts.
	sleep "$(awk -v a="$(adv_ms "$stack")" 'BEGIN{ printf "%.3f", (a < 250 ? 0.3 : 1.2 * a / 1000) }')"
	has_vip lb1 && ! has_vip lb2 || { log "not settled on lb1"; return 1; }

	# (The old output goes first: the shell truncates it only once the
	# client's process has started, and a stale "ready" must not count.)
	rm -f "$work/ctl" "$work/client.out"
	mkfifo "$work/ctl"
	exec 3<>"$work/ctl"
	ip netns exec "$(ns client)" "$work/client" -url "http://$vip/" -timeout "$TIMEOUT" \
		<"$work/ctl" >"$work/client.out" 2>"$work/client.err" &
	client_pid=$!
	wait_until 30 "client ready" grep -qs ready "$work/client.out" || {
		cat "$work/client.err" >&2
		return 1
	}
	# The backup's master-down timer restarts at every advert it hears:
	# fault at a random point of the advert cycle, not in step with it.
	sleep "$(awk -v a="$(adv_ms "$stack")" -v r="$RANDOM" 'BEGIN{ printf "%.3f", a * r / 32768 / 1000 }')"
	local pids t0
	pids=$(ip netns pids "$(ns lb1)")
	t0=${EPOCHREALTIME/./}000
	case $fault in
	kill)
		# shellcheck disable=SC2086
		kill -STOP $pids
		# shellcheck disable=SC2086
		kill -KILL $pids
		;;
	cable) ip -n "$sw" link set p-lb1 down ;;
	esac
	echo "fault $t0" >&3
	wait "$client_pid" || true
	exec 3>&-
	grep '^{' "$work/client.out" || {
		cat "$work/client.err" >&2
		return 1
	}
}

# ---- run: interleaved, so that a slow minute hits every stack alike ----
raw=$work/raw.txt
: >"$raw"
total=$((REPEAT * $(wc -w <<<"$STACKS") * $(wc -w <<<"$FAULTS")))
k=0
for ((r = 1; r <= REPEAT; r++)); do
	for stack_ in $STACKS; do
		for fault_ in $FAULTS; do
			k=$((k + 1))
			line=""
			for attempt in 1 2; do
				if line=$(trial "$stack_" "$fault_"); then break; fi
				line=""
				log "trial $stack_ $fault_ #$r failed to set up (attempt $attempt); logs:"
				tail -n 5 "$work"/*-lb1.log "$work"/*-lb2.log >&2 2>/dev/null || true
			done
			[[ -n $line ]] || die "giving up"
			printf '%s %s %s\n' "$stack_" "$fault_" "$line" >>"$raw"
			if [[ $KEEP == 1 ]]; then
				mkdir -p "$work/trials/$k"
				cp "$work"/*.log "$work/client.out" "$work/trials/$k/" 2>/dev/null || true
			fi
			[[ -z $RESULTS ]] || printf '{"stack":"%s","fault":"%s","run":%s}\n' "$stack_" "$fault_" "$line" >>"$RESULTS"
			gap=$(sed -n 's/.*"gap_ms":\([-0-9.]*\).*/\1/p' <<<"$line")
			failed=$(sed -n 's/.*"failed":\([0-9]*\).*/\1/p' <<<"$line")
			arp=$(sed -n 's/.*"arp_moved_ms":\([-0-9.]*\).*/\1/p' <<<"$line")
			log "[$k/$total] $stack_ $fault_: gap ${gap} ms, ${failed} failed, client's ARP entry moved after ${arp} ms"
		done
	done
done
reset_lab

# ---- report ----
field() { sed -n "s/.*\"$1\":\\([-0-9.a-z]*\\).*/\\1/p"; }
stat() { # stat STACK FAULT FIELD — "median max" of FIELD
	grep "^$1 $2 " "$raw" | cut -d' ' -f3- | field "$3" | sort -g |
		awk '{v[NR]=$1} END{ if (NR==0) {print "- -"; exit}
			m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%s %s\n", m, v[NR] }'
}
secs() { awk -v v="$1" 'BEGIN{ if (v == "-" || v < 0) print "-"; else printf "%.2f s", v/1000 }'; }
label() {
	case $1 in
	fulcrum) echo "fulcrum, defaults (100 ms adverts)" ;;
	fulcrum*) echo "fulcrum, advert_interval ${1#fulcrum}ms" ;;
	ka1000) echo "keepalived + HAProxy, advert_int 1 (default)" ;;
	ka*) echo "keepalived + HAProxy, advert_int $(awk -v n="${1#ka}" 'BEGIN{ print n / 1000 }')" ;;
	esac
}
declare -A fault_label=([kill]="kill -9 of the master" [cable]="master's cable pulled")

report=$work/report.md
{
	echo "| stack | fault | master-down interval | gap median | gap max | failed requests median (max) | client's ARP moved, median | not recovered |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	for s in $STACKS; do
		for f in $FAULTS; do
			read -r gm gx < <(stat "$s" "$f" gap_ms)
			read -r fm fx < <(stat "$s" "$f" failed)
			read -r am _ < <(stat "$s" "$f" arp_moved_ms)
			nr=$(grep "^$s $f " "$raw" | grep -c '"recovered":false' || true)
			# Adverts missed before taking over: fulcrum's default 2, RFC 9568's 3 for keepalived.
			n=3; [[ $s == fulcrum* ]] && n=2
			md=$(awk -v a="$(adv_ms "$s")" -v n="$n" 'BEGIN{ printf "%.2f s", (n*a + 156*a/256)/1000 }')
			echo "| $(label "$s") | ${fault_label[$f]} | $md | **$(secs "$gm")** | $(secs "$gx") | $fm ($fx) | $(secs "$am") | $nr |"
		done
	done
} >"$report"

machine="$(nproc) vCPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)), $(awk '/MemTotal/{printf "%.0f GB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(go version | awk '{print $3}')"
versions=""
[[ " $STACKS " == *" fulcrum"* ]] && versions+="fulcrum $fulcrum_rev; "
[[ " $STACKS " == *" ka"* ]] && versions+="$(keepalived --version 2>&1 | sed -n 1p | awk '{print $1, $2}'); HAProxy $(haproxy -v | sed -n 1p | awk '{print $3}'); "
summary="$(date -u +%Y-%m-%d), \`$cmdline\` (REPEAT=$REPEAT, TIMEOUT=$TIMEOUT, STACKS=\"$STACKS\", FAULTS=\"$FAULTS\")

- machine: $machine
- ${versions%; }
- client: one HTTP GET every 10 ms on a new connection, timeout $TIMEOUT; lb1 priority 150, lb2 priority 100"

printf '\n%s\n\n' "$summary"
cat "$report"

if [[ $RECORD == 1 ]]; then
	doc=$root/docs/BENCHMARKS.md
	heading="## Failover (bench/failover)"
	block=$work/block.md
	{
		printf '\n### Results, %s\n\n' "$summary"
		cat "$report"
	} >"$block"
	if ! grep -qxF "$heading" "$doc"; then
		printf '\n%s\n' "$heading" >>"$doc"
	fi
	# Insert at the end of our section: before the next "## " heading after
	# it, or at the end of the file.
	awk -v h="$heading" -v blk="$block" '
		function dump(  l) { while ((getline l < blk) > 0) print l; close(blk); done = 1 }
		$0 == h { in_s = 1; print; next }
		in_s && /^## / && !done { dump(); print ""; in_s = 0 }
		{ print }
		END { if (!done) dump() }' "$doc" >"$work/doc.new"
	cat "$work/doc.new" >"$doc"
	log "appended the report to docs/BENCHMARKS.md"
fi
