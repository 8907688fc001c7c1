#!/usr/bin/env bash
# Compares the DNS stub with Knot DNS serving the same wildcard zone:
# each server pinned to CPU 0 (one thread), dnsperf pinned to CPU 1, the same
# random-dbid query mix for DURATION seconds each, interleaved ROUNDS times.
# Prints queries/s, lost queries and server CPU µs per query for each, and the
# stub/Knot ratio of the medians. Loopback only.
#
#   bench/dnscompare/run.sh             # 10 s per run, 2 rounds
#   DURATION=30 ROUNDS=3 bench/dnscompare/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=local
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-4}

need=()
for p in dnsperf knot; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p"); done
if ((${#need[@]})); then
	sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/ingress" ./cmd/ingress

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
stub_port=$(free_port)
knot_port=$(free_port)

# The same zone for both: SOA, NS and a wildcard A.
cat >"$work/ingress.yaml" <<YAML
orchestras: ["0000"]
dns: {address: "127.0.0.1:$stub_port", answer_ipv4: ["10.10.10.10"], ttl: 60}
admin: {address: "127.0.0.1:0"}
log: {level: error}
YAML
cat >"$work/zone" <<ZONE
\$ORIGIN production-orch-0000.neo4j.io.
\$TTL 60
@ IN SOA ns1 hostmaster 1 3600 600 86400 60
@ IN NS ns1
* IN A 10.10.10.10
ZONE
cat >"$work/knot.conf" <<KNOT
server:
    listen: 127.0.0.1@$knot_port
    rundir: $work
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: $work
template:
  - id: default
    storage: $work
zone:
  - domain: production-orch-0000.neo4j.io
    file: zone
KNOT

# Random dbids, as the wildcard sees them in production.
python3 - "$work/queries" <<'PY'
import random, string, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    for _ in range(100000):
        dbid = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        f.write(f"{dbid}.production-orch-0000.neo4j.io A\n")
PY

# run NAME PORT CMD...: start the server on CPU 0, load it from CPU 1, print "qps lost cpu_us".
run() {
	local name=$1 port=$2; shift 2
	taskset -c 0 "$@" >"$work/$name.log" 2>&1 &
	local pid=$!
	for _ in $(seq 50); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" x.production-orch-0000.neo4j.io >/dev/null 2>&1 && break; sleep 0.1; done
	local t0 t1
	t0=$(awk '{print $14+$15}' /proc/$pid/stat)
	taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -l "$DURATION" -c "$CLIENTS" -q 500 >"$work/$name.perf" 2>&1
	t1=$(awk '{print $14+$15}' /proc/$pid/stat)
	kill $pid; wait $pid 2>/dev/null || true
	local qps lost completed
	qps=$(awk '/Queries per second/ {print $4}' "$work/$name.perf")
	lost=$(awk '/Queries lost/ {print $3}' "$work/$name.perf")
	completed=$(awk '/Queries completed/ {print $3}' "$work/$name.perf")
	local hz; hz=$(getconf CLK_TCK)
	echo "$qps $lost $(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$completed" 'BEGIN{printf "%.2f", t/hz*1e6/n}')"
}

declare -a stub_qps knot_qps stub_cpu knot_cpu
for r in $(seq "$ROUNDS"); do
	read -r q l c < <(GOMAXPROCS=1 run stub "$stub_port" "$work/ingress" dns -config "$work/ingress.yaml")
	echo "round $r  stub: $q q/s, lost $l, $c µs CPU/query"
	stub_qps+=("$q"); stub_cpu+=("$c")
	read -r q l c < <(run knot "$knot_port" knotd -c "$work/knot.conf")
	echo "round $r  knot: $q q/s, lost $l, $c µs CPU/query"
	knot_qps+=("$q"); knot_cpu+=("$c")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
sq=$(median "${stub_qps[@]}"); kq=$(median "${knot_qps[@]}")
sc=$(median "${stub_cpu[@]}"); kc=$(median "${knot_cpu[@]}")
printf '\n%-6s %12s %14s\n' server "queries/s" "µs CPU/query"
printf '%-6s %12.0f %14s\n' stub "$sq" "$sc" knot "$kq" "$kc"
awk -v a="$sq" -v b="$kq" 'BEGIN{printf "stub/knot queries/s: %.2fx\n", a/b}'
