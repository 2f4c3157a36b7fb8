#!/usr/bin/env bash
# The "Scaling out" measurement, in one run on this machine: /collect events/s with the sled
# store, with one collector on ClickHouse, with two collectors on the same ClickHouse, and —
# when a 2-shard cluster runs (CH_SHARDS=2) — with one and two collectors on the cluster (each
# collector writing to its own shard). Needs wrk and ClickHouse: run it as
#   CH_SHARDS=2 scripts/with-clickhouse.sh scripts/bench-scaling.sh [seconds] [connections]
# Uses benches/load/collect.lua with the bodies file of `ceiling bodies` (benches/ceiling.rs),
# as benches/load/run.sh does: 50-event JSON batches, ten per session, every (sid, seq) new,
# 204 = stored. Each row also says how many of the 2 cores' seconds the collectors and the
# ClickHouse servers used per second of the run, and the load average after it.
# Env: HUSHTALE_BIN, CEILING_BIN — binaries already built (skip the release builds).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-64}
CH=${HUSHTALE_TEST_CLICKHOUSE:?run under scripts/with-clickhouse.sh}
SHARDS=${HUSHTALE_TEST_CLICKHOUSE_SHARDS:-}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk"; exit 1; }
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${HUSHTALE_BIN:-}
if [ -z "$BIN" ]; then cargo build --release --quiet --locked --bin hushtale; BIN="$TARGET/release/hushtale"; fi
CEILING=${CEILING_BIN:-$(cargo bench --quiet --locked --no-run --bench ceiling --message-format=json 2>/dev/null |
  grep '"name":"ceiling"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)}
[ -x "$CEILING" ] || { echo "could not build the ceiling bench target (or set CEILING_BIN)"; exit 1; }
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
"$CEILING" bodies --events 50 --count 1 --out "$WORK/bodies" >/dev/null
# A copy of the load script with its own run id (the middle of every session id), so that two
# wrk processes, or two runs against the same database, never send the same (sid, seq).
NEXT_RUN=$(( $(date +%s) % 0xff0000 ))
lua_for() { # file
  NEXT_RUN=$((NEXT_RUN + 1))
  sed "s/^local run = .*/local run = $NEXT_RUN/" benches/load/collect.lua > "$1"
  grep -q "^local run = $NEXT_RUN\$" "$1" || { echo "benches/load/collect.lua has no 'local run =' line" >&2; exit 1; }
}
load() { # port conns lua -> prints non-2xx (+ socket errors)
  LOAD_BODIES="$WORK/bodies" wrk -t1 -c"$2" -d"${SECS}s" --timeout 10s -s "$3" "http://127.0.0.1:$1" |
    awk '/non-2xx:/ {n += $2} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}'
}
# CPU seconds (user + system) used so far by the processes listening on these ports.
cpu_of_ports() {
  local p pid total=0
  for p in "$@"; do
    pid=$(ss -Hltnp "sport = :$p" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
    [ -n "$pid" ] && total=$(awk -v t="$total" -v hz="$(getconf CLK_TCK)" '{printf "%.2f", t + ($14 + $15) / hz}' "/proc/$pid/stat")
  done
  echo "$total"
}
CH_PORTS=("${CH##*:}")
for s in ${SHARDS//,/ }; do [ "${s##*:}" = "${CH_PORTS[0]}" ] || CH_PORTS+=("${s##*:}"); done
run() { # label ports...
  local label=$1; shift
  local before=0 after=0 p
  for p in "$@"; do before=$((before + $(accepted "$p"))); done
  local i=0 per=$((CONNS / $#)) bad
  local outs=()
  for p in "$@"; do i=$((i + 1)); lua_for "$WORK/collect$i.lua"; done
  local hc0 cc0 hc1 cc1
  hc0=$(cpu_of_ports "$@"); cc0=$(cpu_of_ports "${CH_PORTS[@]}")
  i=0
  for p in "$@"; do i=$((i + 1)); load "$p" "$per" "$WORK/collect$i.lua" > "$WORK/bad$i" & outs+=($!); done
  for o in "${outs[@]}"; do wait "$o"; done
  hc1=$(cpu_of_ports "$@"); cc1=$(cpu_of_ports "${CH_PORTS[@]}")
  bad=$(cat "$WORK"/bad* | awk '{s+=$1} END {print s+0}'); rm -f "$WORK"/bad*
  for p in "$@"; do after=$((after + $(accepted "$p"))); done
  printf "%-34s %10.0f %8s %10.2f %11.2f %8s\n" "$label" "$(awk -v a=$after -v b=$before -v s=$SECS 'BEGIN{print (a-b)/s}')" "$bad" \
    "$(awk -v a="$hc0" -v b="$hc1" -v s="$SECS" 'BEGIN{print (b-a)/s}')" \
    "$(awk -v a="$cc0" -v b="$cc1" -v s="$SECS" 'BEGIN{print (b-a)/s}')" "$(cut -d' ' -f1 /proc/loadavg)"
}

P_SLED=$(free_port); start sled "$WORK/sled.toml" "$P_SLED"
P_CH1=$(free_port); start ch1 "$WORK/ch.toml" "$P_CH1"
P_CH2=$(free_port); start ch2 "$WORK/ch.toml" "$P_CH2"
echo "ClickHouse $(curl -s "$CH/?query=SELECT%20version()"), $(nproc) cores, ${SECS}s per run, $CONNS connections in total"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-34s %10s %8s %10s %11s %8s\n" setup "events/s" non-2xx "hushtale" "ClickHouse" "load 1m"
printf "%-34s %10s %8s %10s %11s %8s\n" "" "" "" "cores" "cores" ""
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
