# bench/lib.sh — shell helpers shared by the bench/*/run.sh scripts: a work
# directory whose processes are killed on exit, a session of its own for
# NICE, CPU pinning, free loopback ports, apt-get installs, fulcrum built
# from the tree, a revision or a binary, waiting for a quiet machine, and
# medians of result files, HAProxy's settings for the TCP benchmarks, and
# waiting for a namespace's link.
#
# Source it after `set -euo pipefail` and after defining log and die.
# shellcheck shell=bash

# bench_nice_session SCRIPT ARGS... — with NICE != 0 and autogroup
# scheduling (where plain nice only orders processes within one session),
# re-run SCRIPT in a session of its own whose autogroup gets NICE, pass
# signals on, and exit with its status. Returns in that inner run, or at
# once when there is nothing to do.
bench_nice_session() {
	local inner rc
	[[ $NICE =~ ^-?[0-9]+$ ]] || die "NICE=$NICE: want an integer"
	if [[ $NICE != 0 && -z ${_BENCH_SESSION:-} && $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null) == 1 ]]; then
		_BENCH_SESSION=1 setsid bash "$@" &
		inner=$!
		trap 'kill -TERM $inner 2>/dev/null' HUP INT TERM
		while :; do
			rc=0
			wait "$inner" || rc=$?
			kill -0 "$inner" 2>/dev/null || exit "$rc"
		done
	fi
	if [[ -n ${_BENCH_SESSION:-} ]]; then
		echo "$NICE" >/proc/self/autogroup 2>/dev/null ||
			log "cannot set the autogroup nice to $NICE; continuing without"
	fi
}

# bench_start NAME — make $work, a temporary directory, and arrange that on
# exit (also on HUP, INT, PIPE, TERM) every pid in $pids is killed and $work
# removed. A script may define bench_before_cleanup (run first) and set
# KEEP=1 to keep $work.
bench_start() {
	work=$(mktemp -d "/tmp/$1.XXXXXX")
	pids=()
	trap bench_cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 141' PIPE
	trap 'exit 143' TERM
}
bench_cleanup() {
	local p i
	if declare -F bench_before_cleanup >/dev/null; then bench_before_cleanup || true; fi
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for ((i = 0; i < 30; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [[ ${KEEP:-0} == 1 ]]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}

# on_cpus CPULIST CMD... — exec CMD at nice ${NICE:-0}, pinned to CPULIST
# ("" = anywhere).
on_cpus() {
	local cpus=$1
	shift
	if [[ -n $cpus ]]; then exec nice -n "${NICE:-0}" taskset -c "$cpus" "$@"; else exec nice -n "${NICE:-0}" "$@"; fi
}

# bench_ports COUNT — print the first port P, from PORT_BASE up in steps of
# 100, such that nothing listens on P..P+COUNT-1.
bench_ports() {
	local base=$PORT_BASE try i ok
	for ((try = 1; ; try++)); do
		ok=1
		for ((i = 0; i < $1; i++)); do
			[[ -z $(ss -Htanl "( sport = :$((base + i)) )" 2>/dev/null) ]] || {
				ok=0
				break
			}
		done
		((ok)) && break
		((try < 10)) || die "no $1 consecutive free ports found from $PORT_BASE"
		base=$((base + 100))
	done
	echo "$base"
}

# bench_apt_install PKG — install a Debian package, waiting up to 10 min for
# the dpkg lock, updating the package lists when the first try fails.
bench_apt_install() {
	local apt=(apt-get -o DPkg::Lock::Timeout=600)
	log "$1 missing: installing it with apt-get"
	DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "$1" >&2 ||
		{ "${apt[@]}" update >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "$1" >&2; }
}

# build_fulcrum ROOT — $work/fulcrum from FULCRUM_BIN (copied), from
# FULCRUM_REV (git archive of ROOT's repository) or from the working tree at
# ROOT. Sets fulcrum_from to where it came from. A failed build prints its
# log and returns 1, leaving its first error line in fulcrum_build_error.
# shellcheck disable=SC2034 # fulcrum_from and fulcrum_build_error are for the caller
build_fulcrum() {
	local src=$1
	fulcrum_build_error=""
	if [[ -n ${FULCRUM_BIN:-} ]]; then
		cp "$FULCRUM_BIN" "$work/fulcrum" || die "cannot copy FULCRUM_BIN=$FULCRUM_BIN"
		fulcrum_from=$FULCRUM_BIN
		return 0
	fi
	fulcrum_from="built from $(git -C "$1" describe --always --dirty 2>/dev/null || echo "an unknown commit")"
	if [[ -n ${FULCRUM_REV:-} ]]; then
		src=$work/src
		mkdir -p "$src"
		git -C "$1" archive "$FULCRUM_REV" | tar -x -C "$src" || die "cannot export revision $FULCRUM_REV"
		fulcrum_from="built from $(git -C "$1" rev-parse --short "$FULCRUM_REV")"
	fi
	log "building fulcrum ($fulcrum_from)"
	if ! (cd "$src" && timeout 600 go build -o "$work/fulcrum" ./cmd/fulcrum) >"$work/fulcrum-build.log" 2>&1; then
		cat "$work/fulcrum-build.log" >&2
		fulcrum_build_error=$(grep -v '^#' "$work/fulcrum-build.log" | head -1)
		return 1
	fi
}

# wait_quiet — wait until other programs use less than QUIET_BUSY % of a
# core, as the script's busy_probe prints it (one probe takes ~0.5 s),
# within a budget of QUIET_WAIT seconds per invocation.
wait_quiet() {
	local busy
	: "${quiet_left:=$((QUIET_WAIT * 2))}"
	while :; do
		busy=$(busy_probe)
		awk -v b="$busy" -v m="$QUIET_BUSY" 'BEGIN{exit !(b+0 < m+0)}' && return 0
		if ((quiet_left <= 0)); then
			log "other programs keep ${busy}% of a core busy; measuring anyway"
			return 0
		fi
		quiet_left=$((quiet_left - 1))
	done
}

# median FILE — the median of the numbers in FILE, one a line; "-" when
# FILE is missing or empty.
median() {
	if [[ ! -s $1 ]]; then
		echo -
		return
	fi
	sort -g "$1" | awk '{a[NR]=$1} END{if(NR%2)print a[(NR+1)/2];else print (a[NR/2]+a[NR/2+1])/2}'
}
# sum FILE — the sum of the numbers in FILE; "-" when missing or empty.
sum() { if [[ -s $1 ]]; then awk '{s+=$1} END{print s+0}' "$1"; else echo -; fi; }
# spread FILE — "min–max" of the numbers in FILE, rounded.
spread() { sort -g "$1" | awk 'NR==1{lo=$1} {hi=$1} END{printf "%.0f–%.0f", lo, hi}'; }
# fmt0 VALUE — VALUE rounded to an integer; "-" stays "-".
fmt0() { awk -v v="$1" 'BEGIN{if(v=="-")print "-";else printf "%.0f\n", v}'; }
# ratio A B — "A/B×" with two decimals; "-" when either is missing or B is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if(a=="-"||b=="-"||b==0)print "-";else printf "%.2f×\n", a/b}'; }

# haproxy_tcp_settings — set maxconn, splice and pipesize for a HAProxy
# config of the TCP benchmarks: maxconn as high as the fd limit allows
# (HAProxy refuses to start when the limit cannot hold maxconn: two fds per
# connection plus splice pipes; the bench needs far fewer), and with
# HAPROXY_SPLICE=1 splice(2) with pipes as big as the 1 MiB ones Go's
# io.Copy uses, for the bulk frontend and backend only (splice-auto never
# engages on loopback; splicing the 64-byte exchanges costs HAProxy ~5% CPU).
# shellcheck disable=SC2034 # the variables are for the caller
haproxy_tcp_settings() {
	maxconn=$((($(ulimit -Hn) - 500) / 3))
	if ((maxconn > 50000)); then maxconn=50000; fi
	splice="" pipesize=""
	if ((HAPROXY_SPLICE)); then
		splice=$'option splice-request\n    option splice-response'
		pipesize="tune.pipesize 1048576"
	fi
}

# wait_carrier NS DEV — wait up to 5 s until DEV in network namespace NS is
# up with a carrier.
wait_carrier() {
	local i
	for ((i = 0; i < 250; i++)); do
		ip -n "$1" -o link show dev "$2" | grep -q 'state UP' && return 0
		sleep 0.02
	done
	die "$2 in $1 has no carrier"
}
