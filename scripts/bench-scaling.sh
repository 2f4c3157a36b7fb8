#!/usr/bin/env bash
# The "Scaling out" measurement, in one run on this machine: /collect events/s with the sled
# store, with one collector on ClickHouse, and with two collectors on the same ClickHouse.
# Needs wrk and a ClickHouse: run it as
#   scripts/with-clickhouse.sh scripts/bench-scaling.sh [seconds] [connections]
# Uses benches/load/collect.lua (50-event JSON batches, ten per session, 204 = stored).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-64}
CH=${HUSHTALE_TEST_CLICKHOUSE:?run under scripts/with-clickhouse.sh}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk"; exit 1; }
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --locked
BIN="$TARGET/release/hushtale"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  curl -s "$CH/" --data-binary "DROP DATABASE IF EXISTS hushtale_bench" >/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
printf "[rate_limit]\ncollect_per_second = 0\n" > "$WORK/sled.toml"
printf 'store = "clickhouse+%s/hushtale_bench"\n[rate_limit]\ncollect_per_second = 0\n' "$CH" > "$WORK/ch.toml"

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

start sled "$WORK/sled.toml" 28701
start ch1 "$WORK/ch.toml" 28702
start ch2 "$WORK/ch.toml" 28703
echo "ClickHouse $(curl -s "$CH/?query=SELECT%20version()"), $(nproc) cores, ${SECS}s per run, $CONNS connections in total"
printf "%-34s %12s %10s\n" setup "events/s" non-2xx
run "sled, one collector" 28701
run "ClickHouse, one collector" 28702
run "ClickHouse, two collectors" 28702 28703
for p in 28701 28702; do
  echo "port $p: $(curl -s -H 'Authorization: Bearer bench-operator-token' "http://127.0.0.1:$p/api/sites/demo/stats" | head -c 160)"
done
