#!/usr/bin/env bash
# Soak: two fulcrum nodes in network namespaces hold one VRRP group at the
# default 100 ms adverts for DURATION seconds while a busy loop keeps one
# core saturated; then both nodes' transition counters are read. Any
# transition after the initial election is a spurious one (a flap).
#
#   bench/failover/soak.sh            # as root; DURATION=600 by default
#
# Only addresses inside the namespaces made here are used (10.216.0.0/24),
# and everything is torn down on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-600}
BUSY=${BUSY:-1} # busy loops pinned to CPU 0 (the "other core busy")
ADVERTS=${ADVERTS:-} # master_down_adverts; empty: fulcrum's default (2)
[ "$(id -u)" = 0 ] || { echo "soak: needs root (network namespaces)" >&2; exit 1; }

id=$$
work=$(mktemp -d)
a=fsoak-$id-a b=fsoak-$id-b
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	ip netns del "$a" 2>/dev/null || true
	ip netns del "$b" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/fulcrum" ./cmd/fulcrum

ip netns add "$a"
ip netns add "$b"
ip link add "sk$id" type veth peer name "sl$id"
ip link set "sk$id" netns "$a"
ip link set "sl$id" netns "$b"
ip -n "$a" link set "sk$id" name eth0
ip -n "$b" link set "sl$id" name eth0
for n in "$a" "$b"; do
	ip -n "$n" link set lo up
	ip -n "$n" link set eth0 up
done
ip -n "$a" addr add 10.216.0.11/24 dev eth0
ip -n "$b" addr add 10.216.0.12/24 dev eth0

conf() { # conf NODE
	cat <<EOF
node: { name: $1 }
admin: { listen: 127.0.0.1:9900 }
log: { level: warn }
services:
  - name: web
    listen: 10.216.0.100:80
    backends: [ { address: 10.216.0.200:80 } ]
ha:
  groups:
    - name: web
      interface: eth0
      vrid: 61
      vips: [10.216.0.100/24]
      priority: { lb1: 150, lb2: 100 }
EOF
	if [ -n "$ADVERTS" ]; then echo "      master_down_adverts: $ADVERTS"; fi
}
conf lb1 >"$work/lb1.yaml"
conf lb2 >"$work/lb2.yaml"
ip netns exec "$a" "$work/fulcrum" run -c "$work/lb1.yaml" 2>"$work/lb1.log" &
pids+=($!)
ip netns exec "$b" "$work/fulcrum" run -c "$work/lb2.yaml" 2>"$work/lb2.log" &
pids+=($!)

state() { # state NS — "state transitions" of the group
	ip netns exec "$1" "$work/fulcrum" status --json --admin 127.0.0.1:9900 2>/dev/null |
		python3 -c 'import json,sys; g=json.load(sys.stdin)["ha"][0]; print(g["state"], g["transitions"])'
}
for _ in $(seq 100); do
	[ "$(state "$a" 2>/dev/null | cut -d' ' -f1)" = master ] && [ "$(state "$b" 2>/dev/null | cut -d' ' -f1)" = backup ] && break
	sleep 0.1
done
read -r sa ta <<<"$(state "$a")"
read -r sb tb <<<"$(state "$b")"
echo "soak: elected: lb1 $sa ($ta transitions), lb2 $sb ($tb transitions); soaking ${DURATION}s with $BUSY busy loop(s) on CPU 0" >&2

for _ in $(seq "$BUSY"); do
	taskset -c 0 sh -c 'while :; do :; done' &
	pids+=($!)
done
sleep "$DURATION"

read -r sa2 ta2 <<<"$(state "$a")"
read -r sb2 tb2 <<<"$(state "$b")"
flaps=$(((ta2 - ta) + (tb2 - tb)))
adverts=$(ip netns exec "$b" "$work/fulcrum" status --json --admin 127.0.0.1:9900 |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["ha"][0]["adverts_received"])')
echo "| $(date -u +%Y-%m-%d) | ${DURATION}s | $BUSY | ${ADVERTS:-2 (default)} | $(cut -d' ' -f1-3 /proc/loadavg) | $adverts | lb1 $sa2, lb2 $sb2 | $flaps |"
[ "$flaps" = 0 ]
