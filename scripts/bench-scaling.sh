#!/usr/bin/env bash
# The "Scaling out" measurement, in one run on this machine: /collect events/s with the sled
# store, with one collector on ClickHouse, with two collectors on the same ClickHouse, and —
# when a 2-shard cluster runs (CH_SHARDS=2) — with one and two collectors on the cluster (each
# collector writing to its own shard). Needs wrk and ClickHouse: run it as
#   CH_SHARDS=2 scripts/with-clickhouse.sh scripts/bench-scaling.sh [seconds] [connections]
# Uses benches/load/collect.lua (50-event JSON batches, ten per session, 204 = stored).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-64}
CH=${HUSHTALE_TEST_CLICKHOUSE:?run under scripts/with-clickhouse.sh}
SHARDS=${HUSHTALE_TEST_CLICKHOUSE_SHARDS:-}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk"; exit 1; }
TARGET=${CARGO_TARGET_DIR:-target}
# HUSHTALE_BIN: a binary already built (skips the release build).
BIN=${HUSHTALE_BIN:-}
if [ -z "$BIN" ]; then cargo build --release --quiet --locked; BIN="$TARGET/release/hushtale"; fi
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  curl -s "$CH/" --data-binary "DROP DATABASE IF EXISTS hushtale_bench" >/dev/null || true
  for s in ${SHARDS//,/ }; do
    curl -s "http://$s/" --data-binary "DROP DATABASE IF EXISTS hushtale_bench_cluster" >/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
printf "[rate_limit]\ncollect_per_second = 0\n" > "$WORK/sled.toml"
printf 'store = "clickhouse+%s/hushtale_bench"\n[rate_limit]\ncollect_per_second = 0\n' "$CH" > "$WORK/ch.toml"
for s in ${SHARDS//,/ }; do
  printf 'store = "clickhouse+http://%s/hushtale_bench_cluster?cluster=hushtale_test&shards=%s"\n[rate_limit]\ncollect_per_second = 0\n' \
    "$s" "$SHARDS" > "$WORK/cluster-$s.toml"
done
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
NEXT_PORT=28701
free_port() { while ! port_free "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done; echo "$NEXT_PORT"; NEXT_PORT=$((NEXT_PORT + 1)); }

start() { # name config port
  mkdir -p "$WORK/$1"
  [ -f "$WORK/secret" ] && cp "$WORK/secret" "$WORK/$1/secret"
  HUSHTALE_ADMIN_TOKEN=bench-operator-token RUST_LOG=warn "$BIN" --listen "127.0.0.1:$3" --data "$WORK/$1" --config "$2" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$3/healthz" >/dev/null && break; sleep 0.05; done
  [ -f "$WORK/secret" ] || cp "$WORK/$1/secret" "$WORK/secret"
}
accepted() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^hushtale_events_accepted_total/ {print $2}'; }
# A copy of the load script whose session ids cannot collide with another wrk's.
lua_for() { sed "s/(tid or 0)/(tid or 0) + $1/" benches/load/collect.lua > "$WORK/collect$1.lua"; echo "$WORK/collect$1.lua"; }
load() { # port conns offset -> prints non-2xx
  wrk -t1 -c"$2" -d"${SECS}s" -s "$(lua_for "$3")" "http://127.0.0.1:$1" | awk '/non-2xx:/ {print $2}'
}
run() { # label ports...
  local label=$1; shift
  local before=0 after=0 p
  for p in "$@"; do before=$((before + $(accepted "$p"))); done
  local n=$# i=0 per=$((CONNS / $#)) bad
  local outs=()
  for p in "$@"; do i=$((i + 1)); load "$p" "$per" $((i * 1000 + RANDOM)) > "$WORK/bad$i" & outs+=($!); done
  for o in "${outs[@]}"; do wait "$o"; done
  bad=$(cat "$WORK"/bad* | awk '{s+=$1} END {print s+0}'); rm -f "$WORK"/bad*
  for p in "$@"; do after=$((after + $(accepted "$p"))); done
  printf "%-34s %12.0f %10s\n" "$label" "$(awk -v a=$after -v b=$before -v s=$SECS 'BEGIN{print (a-b)/s}')" "$bad"
}

P_SLED=$(free_port); start sled "$WORK/sled.toml" "$P_SLED"
P_CH1=$(free_port); start ch1 "$WORK/ch.toml" "$P_CH1"
P_CH2=$(free_port); start ch2 "$WORK/ch.toml" "$P_CH2"
echo "ClickHouse $(curl -s "$CH/?query=SELECT%20version()"), $(nproc) cores, ${SECS}s per run, $CONNS connections in total"
printf "%-34s %12s %10s\n" setup "events/s" non-2xx
run "sled, one collector" "$P_SLED"
run "ClickHouse, one collector" "$P_CH1"
run "ClickHouse, two collectors" "$P_CH1" "$P_CH2"
if [ -n "$SHARDS" ]; then
  set -- ${SHARDS//,/ }
  P_A=$(free_port); start shard1 "$WORK/cluster-$1.toml" "$P_A"
  P_B=$(free_port); start shard2 "$WORK/cluster-$2.toml" "$P_B"
  run "2-shard cluster, one collector" "$P_A"
  run "2-shard cluster, two collectors" "$P_A" "$P_B"
fi
for p in "$P_SLED" "$P_CH1"; do
  echo "port $p: $(curl -s -H 'Authorization: Bearer bench-operator-token' "http://127.0.0.1:$p/api/sites/demo/stats" | head -c 160)"
done
