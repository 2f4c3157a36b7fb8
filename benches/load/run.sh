#!/usr/bin/env bash
# Load run: hushtale /healthz vs /collect (50-event JSON batches, 204 = durable) in one run,
# against the release build on loopback. Usage: benches/load/run.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
CONNS=${2:-64}
THREADS=1
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk"; exit 1; }
cargo build --release --quiet
DATA=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
printf "[rate_limit]\ncollect_per_second = 0\n" > "$DATA.toml"
HUSHTALE_ADMIN_TOKEN=bench RUST_LOG=warn ./target/release/hushtale --listen 127.0.0.1:$PORT --data "$DATA" --config "$DATA.toml" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$DATA" "$DATA.toml"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.05; done

run() { # name, wrk args...
  local name=$1; shift
  local out; out=$(wrk -t$THREADS -c$CONNS -d${SECS}s --latency "$@")
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local p50; p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  local p99; p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local bad; bad=$(echo "$out" | awk '/non-2xx/ {print $2}'); bad=${bad:-0}
  echo "$name $rps $p50 $p99 $bad"
}

H=$(run healthz http://127.0.0.1:$PORT/healthz)
C=$(run collect -s benches/load/collect.lua http://127.0.0.1:$PORT)
ACCEPTED=$(curl -s http://127.0.0.1:$PORT/metrics | awk '/^hushtale_batches_accepted_total/ {print $2}')
[ "${ACCEPTED:-0}" -gt 0 ] || { echo "no batch was stored: the load script failed"; exit 1; }
RSS=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
echo
printf "%-10s %12s %12s %10s %10s %8s\n" target "req/s" "events/s" p50 p99 non-2xx
for line in "$H" "$C"; do
  set -- $line
  ev=0; [ "$1" = collect ] && ev=$(awk -v r=$2 'BEGIN{printf "%.0f", r*50}')
  printf "%-10s %12s %12s %10s %10s %8s\n" "$1" "$2" "$ev" "$3" "$4" "$5"
done
hz=$(echo "$H" | awk '{print $2}'); co=$(echo "$C" | awk '{print $2}')
echo
awk -v c=$co -v h=$hz 'BEGIN{printf "collect / healthz = %.2f\n", c/h}'
echo "peak RSS of hushtale: $((RSS / 1024)) MiB"
TOKEN=bench
curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/sites/demo/stats" | head -c 300; echo
curl -s http://127.0.0.1:$PORT/metrics | grep -E "^hushtale_(batches_accepted|events_accepted|flush_seconds_(sum|count)|group_batches_(sum|count))" 
