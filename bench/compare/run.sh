#!/usr/bin/env bash
# Compares the ingress with HAProxy and nginx doing the same job: TLS
# termination with the allowed suites, SNI routing over 1,000 dbids to
# plain TCP echo/sink/source backends. Each proxy runs pinned to CPU 0 with
# one worker (GOMAXPROCS=1, nbthread 1, worker_processes 1); the load
# generator (bench/loadgen) runs on CPU 1. The proxies are interleaved,
# ROUNDS times; the table gives medians and our ratio to the best peer.
# Loopback only.
#
#   bench/compare/run.sh                 # RSA-2048 leaf, 10 s loads, 2 rounds
#   LEAVES="rsa ecdsa" bench/compare/run.sh
#   DURATION=5 ROUNDS=3 IDLE=2000 bench/compare/run.sh
#   OPENSSL=1 bench/compare/run.sh       # the ingress built with -tags openssl
#   KEY_EXCHANGE="X25519, P-256" bench/compare/run.sh  # the ingress's tls.key_exchange:
#                                         # without it, Go clients get X25519MLKEM768,
#                                         # which the OpenSSL 3.0 peers cannot offer
#   ONLY="down pp16" bench/compare/run.sh  # only these workloads
#   PROFILE=/tmp/prof bench/compare/run.sh  # also CPU profiles of the ingress under
#                                         # each load, allocations after each, and a
#                                         # heap profile while idle
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=local
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
IDLE=${IDLE:-5000}
LEAVES=${LEAVES:-rsa}
PROXIES=${PROXIES:-"ingress haproxy nginx"}

need=()
for p in haproxy nginx libnginx-mod-stream openssl; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if ((${#need[@]})); then
	sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
ulimit -n 65536 2>/dev/null || true
# One run at a time: two runs on two cores would measure each other.
exec 9>"${TMPDIR:-/tmp}/bench-compare.lock"
flock -n 9 || { echo "bench/compare: another run holds ${TMPDIR:-/tmp}/bench-compare.lock" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT
# OPENSSL=1: the ingress signs RSA through OpenSSL's libcrypto (make build-openssl).
if [ -n "${OPENSSL:-}" ]; then
	CGO_ENABLED=1 go build -tags openssl -o "$work/ingress" ./cmd/ingress
else
	go build -o "$work/ingress" ./cmd/ingress
fi
go build -o "$work/loadgen" ./bench/loadgen
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A CA, an RSA-2048 and an ECDSA P-256 leaf for the wildcard.
cd "$work"
san="subjectAltName=DNS:*.production-orch-0000.neo4j.io"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.csr -subj "/CN=*.production-orch-0000.neo4j.io" 2>/dev/null
openssl x509 -req -in rsa.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out rsa.crt -days 2 -extfile <(echo "$san") 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ecdsa.key -out ecdsa.csr -subj "/CN=*.production-orch-0000.neo4j.io" 2>/dev/null
openssl x509 -req -in ecdsa.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ecdsa.crt -days 2 -extfile <(echo "$san") 2>/dev/null
cat rsa.crt rsa.key >rsa.pem
cat ecdsa.crt ecdsa.key >ecdsa.pem
cd - >/dev/null

# Backends: 4 greet-then-echo, a sink, a source.
taskset -c 1 "$work/loadgen" backends -echo 4 >"$work/backends.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/backends.log" ] && break; sleep 0.1; done
read -r -a backend <"$work/backends.log" # echo0..echo3 sink source
sink=${backend[4]}
source=${backend[5]}

# The same routing map for each: db<i> -> echo<i mod 4>.
{
	echo "instances:"
	for i in $(seq 0 999); do printf '  - {dbid: db%04d, orch: "0000", public: true, backends: {bolt: ["%s"]}}\n' "$i" "${backend[i % 4]}"; done
	echo "  - {dbid: sink, orch: \"0000\", public: true, backends: {bolt: [\"$sink\"]}}"
	echo "  - {dbid: source, orch: \"0000\", public: true, backends: {bolt: [\"$source\"]}}"
} >"$work/routes.yaml"
{
	for i in $(seq 0 999); do printf 'db%04d.production-orch-0000.neo4j.io echo%d\n' "$i" $((i % 4)); done
	echo "sink.production-orch-0000.neo4j.io sink"
	echo "source.production-orch-0000.neo4j.io source"
} >"$work/haproxy.map"
nginx_map=$(for i in $(seq 0 999); do printf '    db%04d.production-orch-0000.neo4j.io %s;\n' "$i" "${backend[i % 4]}"; done)

tls12="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
tls13="TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

# start_proxy NAME LEAVES PORT: starts it on CPU 0; prints the pid to measure.
start_proxy() {
	local name=$1 leaves=$2 port=$3
	case $name in
	ingress)
		local certs="{cert: $work/rsa.crt, key: $work/rsa.key}"
		[[ $leaves == *ecdsa* ]] && certs="$certs, {cert: $work/ecdsa.crt, key: $work/ecdsa.key}"
		cat >"$work/ingress.yaml" <<-YAML
			orchestras: ["0000"]
			listeners: [{service: bolt, address: "127.0.0.1:$port"}]
			tls: {certificates: [$certs]${KEY_EXCHANGE:+, key_exchange: [$KEY_EXCHANGE]}}
			routes: {file: $work/routes.yaml}
			limits: {max_connections: 100000}
			admin: {address: "127.0.0.1:$admin_port", pprof: true}  # PROFILE reads /debug/pprof/
			log: {level: error}
		YAML
		GOGC=${INGRESS_GOGC:-100} GOMAXPROCS=1 taskset -c 0 "$work/ingress" serve -config "$work/ingress.yaml" >"$work/ingress.log" 2>&1 &
		echo $!
		;;
	haproxy)
		local crt="crt $work/rsa.pem"
		[[ $leaves == *ecdsa* ]] && crt="$crt crt $work/ecdsa.pem"
		cat >"$work/haproxy.cfg" <<-CFG
			global
			    nbthread 1
			    maxconn 9000
			    ssl-default-bind-ciphers $tls12
			    ssl-default-bind-ciphersuites $tls13
			    ssl-default-bind-options ssl-min-ver TLSv1.2
			defaults
			    mode tcp
			    timeout connect 5s
			    timeout client 120s
			    timeout server 120s
			frontend fe
			    bind 127.0.0.1:$port ssl $crt
			    use_backend %[ssl_fc_sni,lower,map($work/haproxy.map)]
			backend echo0
			    server s ${backend[0]}
			backend echo1
			    server s ${backend[1]}
			backend echo2
			    server s ${backend[2]}
			backend echo3
			    server s ${backend[3]}
			backend sink
			    server s $sink
			backend source
			    server s $source
		CFG
		taskset -c 0 haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
		echo $!
		;;
	nginx)
		local crt="ssl_certificate $work/rsa.crt; ssl_certificate_key $work/rsa.key;"
		[[ $leaves == *ecdsa* ]] && crt="$crt ssl_certificate $work/ecdsa.crt; ssl_certificate_key $work/ecdsa.key;"
		cat >"$work/nginx.conf" <<-CFG
			load_module /usr/lib/nginx/modules/ngx_stream_module.so;
			worker_processes 1;
			worker_rlimit_nofile 19000;
			daemon off;
			master_process off;
			pid $work/nginx.pid;
			error_log $work/nginx.err;
			events { worker_connections 19000; }
			stream {
			  map \$ssl_server_name \$upstream {
			    hostnames;
			$nginx_map
			    sink.production-orch-0000.neo4j.io $sink;
			    source.production-orch-0000.neo4j.io $source;
			  }
			  server {
			    listen 127.0.0.1:$port ssl;
			    $crt
			    ssl_protocols TLSv1.2 TLSv1.3;
			    ssl_ciphers $tls12;
			    ssl_conf_command Ciphersuites $tls13;
			    ssl_session_tickets on;
			    proxy_pass \$upstream;
			  }
			}
		CFG
		taskset -c 0 nginx -c "$work/nginx.conf" >"$work/nginx.log" 2>&1 &
		echo $!
		;;
	esac
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
lg() { taskset -c 1 "$work/loadgen" "$@" -ca "$work/ca.pem"; }

# measure NAME ROUND METRIC LOADGEN-ARGS...: runs one load; with PROFILE set,
# the ingress's CPU profile under it lands in $PROFILE/<leaves>-<metric>-<round>.pprof.
measure() {
	local name=$1 round=$2 metric=$3 prof=""
	shift 3
	wanted "$metric" || return 0
	if [[ -n ${PROFILE:-} && $name == ingress ]]; then
		mkdir -p "$PROFILE"
		curl -s -o "$PROFILE/$leaves-$metric-$round.pprof" "http://127.0.0.1:$admin_port/debug/pprof/profile?seconds=$((DURATION > 2 ? DURATION - 1 : 1))" &
		prof=$!
	fi
	local before used out
	before=$(cpu_ticks)
	used=$(proc_ticks "$proxy_pid")
	out=$(lg "$@")
	used=$(($(proc_ticks "$proxy_pid") - used))
	echo "$out"
	# The proxy's own CPU per operation (user+system, all its threads and
	# processes' ticks at 100 Hz) tells its cost even when the load
	# generator's core is the limit.
	awk -v name="$name" -v m="$metric" -v r="$round" -v busy="$(cpu_busy "$before" "$(cpu_ticks)")" -v t="$used" -v rate="${out%% *}" -v d="$DURATION" \
		'BEGIN{ printf "%-8s %-8s round %s: %s, proxy CPU %.0f%%", name, m, r, busy, t/d; if (rate > 0) printf ", %.2f µs per op", t*10000/(rate*d); print "" }' >>"$work/cpu.log"
	awk -v t="$used" -v rate="${out%% *}" -v d="$DURATION" 'BEGIN{ if (rate > 0) printf "%.1f\n", t*10000/(rate*d) }' >"$work/cpu.$name.$leaves.$metric.$round"
	if [[ -n $prof ]]; then
		wait "$prof"
		# Allocations since start; diff two with pprof -base.
		curl -s -o "$PROFILE/$leaves-$metric-$round.allocs.pprof" "http://127.0.0.1:$admin_port/debug/pprof/allocs"
	fi
}

# proc_ticks prints the user+system ticks a process has used.
proc_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# wanted METRIC: whether ONLY (a list of workloads, e.g. ONLY="down pp16") includes it.
wanted() { [[ -z ${ONLY:-} || " $ONLY " == *" $1 "* ]]; }

# cpu_ticks prints "busy total" jiffies of CPU 0 and CPU 1 from /proc/stat;
# cpu_busy turns two samples into percentages, to tell whether the proxy's
# core or the load generator's was the limit.
cpu_ticks() { awk '/^cpu[01] / {printf "%d %d ", $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
cpu_busy() {
	awk -v a="$1" -v b="$2" 'BEGIN{split(a,x," "); split(b,y," "); printf "cpu0 %.0f%% cpu1 %.0f%%", 100*(y[1]-x[1])/(y[2]-x[2]), 100*(y[3]-x[3])/(y[4]-x[4])}'
}

declare -A results
run_proxy() {
	local name=$1 leaves=$2 round=$3 port pid
	port=$(free_port)
	admin_port=$(free_port)
	pid=$(start_proxy "$name" "$leaves" "$port")
	pids+=("$pid")
	proxy_pid=$pid
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
	lg check -addr "127.0.0.1:$port" >/dev/null || { echo "$name: routing check failed" >&2; cat "$work/$name.log" "$work/nginx.err" 2>/dev/null >&2; exit 1; }
	local d=${DURATION}s
	results[$name,hs13,$round]=$(measure "$name" "$round" hs13 handshakes -addr "127.0.0.1:$port" -tls 1.3 -duration "$d" | awk '{print $1}')
	results[$name,hs12,$round]=$(measure "$name" "$round" hs12 handshakes -addr "127.0.0.1:$port" -tls 1.2 -duration "$d" | awk '{print $1}')
	if [[ $leaves == rsa ]]; then
		results[$name,resumed,$round]=$(measure "$name" "$round" resumed handshakes -addr "127.0.0.1:$port" -tls 1.3 -resume -duration "$d" | awk '{print $1}')
		results[$name,up,$round]=$(measure "$name" "$round" up bulk -addr "127.0.0.1:$port" -dir up -conns 4 -duration "$d" | awk '{print $1}')
		results[$name,down,$round]=$(measure "$name" "$round" down bulk -addr "127.0.0.1:$port" -dir down -conns 4 -duration "$d" | awk '{print $1}')
		results[$name,pp1,$round]=$(measure "$name" "$round" pp1 pingpong -addr "127.0.0.1:$port" -conns 1 -duration "$d" | awk '{print $1}')
		local pp16
		pp16=$(measure "$name" "$round" pp16 pingpong -addr "127.0.0.1:$port" -conns 16 -duration "$d")
		results[$name,pp16,$round]=$(awk '{print $1}' <<<"$pp16")
		results[$name,p99,$round]=$(awk '{print $9}' <<<"$pp16")
	fi
	if [[ $leaves == rsa ]] && wanted idle; then
		local before held
		before=$(rss_kib "$pid")
		lg idle -addr "127.0.0.1:$port" -conns "$IDLE" -hold 9s >"$work/idle.out" &
		local idler=$!
		for _ in $(seq 600); do grep -q open "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
		# Idle past the ingress's timeouts.park (2 s) and the time its one
		# core takes to park 5,000 connections (about 4 s after the last
		# opens): they hold no goroutine then, as a driver's pooled ones do.
		sleep 5
		held=$(rss_kib "$pid")
		if [[ -n ${PROFILE:-} && $name == ingress ]]; then
			mkdir -p "$PROFILE"
			curl -s -o "$PROFILE/$leaves-idle-heap-$round.pprof" "http://127.0.0.1:$admin_port/debug/pprof/heap"
			curl -s -o "$PROFILE/$leaves-idle-goroutine-$round.txt" "http://127.0.0.1:$admin_port/debug/pprof/goroutine?debug=1"
		fi
		wait "$idler"
		results[$name,idle,$round]=$(awk -v a="$before" -v b="$held" -v n="$IDLE" 'BEGIN{printf "%.1f", (b-a)/n}')
	fi
	kill "$pid"; wait "$pid" 2>/dev/null || true
	echo "round $round $name ($leaves): done" >&2
}

median() { printf '%s\n' "$@" | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END{if (NR==0) {print "-"} else print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for leaves in $LEAVES; do
	for r in $(seq "$ROUNDS"); do
		for p in $PROXIES; do run_proxy "$p" "$leaves" "$r"; done
	done
	echo
	echo "leaves: $leaves, ingress key exchange: ${KEY_EXCHANGE:-Go default (X25519MLKEM768 with Go clients)}${OPENSSL:+, OpenSSL signer} ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), ${DURATION}s loads, medians of $ROUNDS rounds)"
	metrics="hs13 hs12"
	[[ $leaves == rsa ]] && metrics="hs13 hs12 resumed up down pp1 pp16 p99 idle"
	printf '%-10s' workload
	for p in $PROXIES; do printf '%14s' "$p"; done
	printf '%12s\n' "ours/best"
	for m in $metrics; do
		printf '%-10s' "$m"
		declare -A med=()
		for p in $PROXIES; do
			vals=()
			for r in $(seq "$ROUNDS"); do vals+=("${results[$p,$m,$r]:-}"); done
			med[$p]=$(median "${vals[@]}")
			printf '%14s' "${med[$p]}"
		done
		# Lower is better for latency and memory.
		best=$(for p in $PROXIES; do [[ $p == ingress ]] || echo "${med[$p]}"; done | sort -g | { if [[ $m == p99 || $m == idle ]]; then head -1; else tail -1; fi; })
		ours=${med[ingress]:-}
		if [[ -n $ours && -n $best && $best != - && $ours != - ]]; then
			awk -v a="$ours" -v b="$best" 'BEGIN{ printf "%11.2fx\n", a/b }'
		else
			echo
		fi
		unset med
	done
	# The proxy's CPU per operation (lower is better): where the load
	# generator's core was the limit (see the busy figures below), this,
	# not the rate, compares the proxies.
	for m in $metrics; do
		[[ $m == p99 || $m == idle ]] && continue
		printf '%-10s' "cpu:$m"
		declare -A med=()
		for p in $PROXIES; do
			vals=()
			for r in $(seq "$ROUNDS"); do vals+=("$(cat "$work/cpu.$p.$leaves.$m.$r" 2>/dev/null || true)"); done
			med[$p]=$(median "${vals[@]}")
			printf '%14s' "${med[$p]}"
		done
		best=$(for p in $PROXIES; do [[ $p == ingress ]] || echo "${med[$p]}"; done | sed '/^-$/d' | sort -g | head -1)
		ours=${med[ingress]:-}
		if [[ -n $ours && -n $best && $ours != - ]]; then
			awk -v a="$ours" -v b="$best" 'BEGIN{ printf "%11.2fx\n", a/b }'
		else
			echo
		fi
		unset med
	done
done
echo
[[ -f $work/cpu.log ]] && cat "$work/cpu.log"  # absent when ONLY=idle
echo "cpu: the proxy's own CPU (user+system) per operation in µs: per handshake, per MB (up, down), per round trip (lower is better)"
echo "units: handshakes/s (hs13, hs12, resumed: TLS 1.3 tickets), MB/s (up: client to backend, down), round trips/s (pp1, pp16: 1 and 16 connections), p99 of pp16 in µs (lower is better), idle: KiB of RSS per held connection (lower is better)"
