#!/usr/bin/env bash
# Load run: four targets measured side by side in one run, against release builds on loopback,
# each in a fresh process (so peak RSS is per target) with a fresh data folder on disk:
#   ceiling       bare hyper server answering 204 to the same JSON POST (benches/ceiling.rs)
#   healthz       hushtale GET /healthz
#   collect-json  hushtale POST /collect, 50-event JSON batches (204 = durably stored)
#   collect-mp    the same batches as MessagePack + gzip
# Usage: benches/load/run.sh [seconds=10] [connections=64] [wrk threads=1] [rounds=1]
# With rounds > 1 the four targets run again in turn (ceiling, healthz, json, mp, ceiling, …), each
# round's ratios are taken against that round's own ceiling, and the median round is reported too:
# this machine's ceiling alone moves by 2× from minute to minute.
# Env: LOAD_DATA_ROOT (where data folders go; default target dir), HUSHTALE_BIN (a prebuilt
# hushtale binary to measure instead of building one, e.g. to compare two builds), CEILING_BIN
# (likewise for the ceiling), PERF=1 (record a perf
# profile of collect-json into $LOAD_OUT/perf-collect.data; PERF_CALLGRAPH='--call-graph dwarf' for
# call stacks through code built without frame pointers), LOAD_OUT (results; default a temp dir),
# LOAD_TARGETS (which targets run, default "ceiling healthz json mp"; e.g. "json" for long runs of
# the store alone: rows without a ceiling in their round get no ratio).
# Every hushtale row also gets its CPU per request split by thread (the request threads —
# hushtale-core-N, tokio-rt-worker in builds before the ninth session —, the applier,
# the group log, its spare writer, the checkpointer, sled's I/O threads; "exited" is CPU of threads
# gone by the end of the run), in $OUT/threads and after the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
CONNS=${2:-64}
THREADS=${3:-1}
ROUNDS=${4:-1}
EVENTS=50
TARGETS=" ${LOAD_TARGETS:-ceiling healthz json mp} "
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk"; exit 1; }
command -v curl >/dev/null || { echo "curl missing: apt-get install -y curl"; exit 1; }

TARGET=${CARGO_TARGET_DIR:-target}
[ -n "${HUSHTALE_BIN:-}" ] || cargo build --release --quiet --bin hushtale
CEILING=${CEILING_BIN:-$(cargo bench --quiet --no-run --bench ceiling --message-format=json 2>/dev/null |
  grep '"name":"ceiling"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)}
[ -x "$CEILING" ] || { echo "could not build the ceiling bench target"; exit 1; }
HUSHTALE=${HUSHTALE_BIN:-$TARGET/release/hushtale}

ROOT=$(mktemp -d "${LOAD_DATA_ROOT:-$TARGET}/load.XXXXXX")
OUT=${LOAD_OUT:-$ROOT/out}
mkdir -p "$OUT"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$ROOT/data-"* "$ROOT/bodies" "$ROOT/bodies-mp"; }
trap cleanup EXIT
# One IP sends everything: per-IP rate limits off. Everything else is the default config.
printf '[rate_limit]\ncollect_per_second = 0\n' >"$ROOT/hushtale.toml"

# start NAME CMD... : starts a server, waits for "listening on URL", sets PID and URL.
start() {
  local name=$1; shift
  # Created first: the background job opens them itself, possibly after the first read below
  # (which, under set -e and pipefail, ended the run on a busy machine).
  : >"$ROOT/$name.stdout"; : >"$ROOT/$name.stderr"
  "$@" >"$ROOT/$name.stdout" 2>"$ROOT/$name.stderr" &
  PID=$!
  for _ in $(seq 200); do
    URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$ROOT/$name.stdout" | head -1)
    [ -n "$URL" ] && curl -sf -o /dev/null "$URL/healthz" && return 0
    sleep 0.05
  done
  echo "$name did not start:"; cat "$ROOT/$name.stderr"; exit 1
}
start_hushtale() {
  start "$1" env HUSHTALE_ADMIN_TOKEN=bench-operator-token RUST_LOG=warn "$HUSHTALE" serve --listen 127.0.0.1:0 \
    --data "$ROOT/data-$1-$ROUND" --config "$ROOT/hushtale.toml"
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$PID/status"; }
# CPU seconds (user + system) the server has used so far: contention moves it less than req/s.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$PID/stat"; }
# Per-thread CPU ticks so far, "name ticks" per thread (name: comm with a trailing number cut).
thread_ticks() {
  local f line comm rest
  for f in /proc/"$PID"/task/*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    comm=${line#*(}; comm=${comm%)*}; rest=${line##*) }
    set -- $rest
    echo "${comm%%[0-9]*} $((${12} + ${13}))"
  done
}
metric() { curl -s "$URL/metrics" | awk -v m="$1" '$1==m || index($1, m"{")==1 {s+=$2} END {printf "%.0f", s}'; }

# bench NAME URL [wrk args...]: one wrk run; appends "name rps p50 p99 non2xx repeats rss events
# cpu-µs-per-request" to results.
bench() {
  local name=$1 url=$2; shift 2
  local out cpu0 threads0
  cpu0=$(cpu_secs)
  threads0=$(thread_ticks | awk '{t[$1]+=$2} END {for (n in t) print n, t[n]}')
  # fdatasync calls per thread during the run (a tracepoint count; skipped under PERF=1).
  local syncs=$OUT/syncs-$name-$ROUND.txt counter=""
  if [ "${PERF:-0}" != 1 ] && command -v perf >/dev/null; then
    perf stat --per-thread -e syscalls:sys_enter_fdatasync -p "$PID" -o "$syncs" -- sleep "$SECS" >/dev/null 2>&1 &
    counter=$!
  fi
  out=$(LOAD_BODIES="${BODIES:-$ROOT/bodies}" wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --timeout 10s --latency "$@" "$url")
  echo "$out" >"$OUT/wrk-$name-$ROUND.txt"
  local rps p50 p99 bad rep
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  bad=$(echo "$out" | awk '/non-2xx/ {print $2}'); bad=${bad:-0}
  rep=$(echo "$out" | awk '/repeats/ {print $2}'); rep=${rep:-0}
  local events=-
  if [[ $name == collect* ]]; then
    # Events the server says it stored (not merely acknowledged), per second of the run.
    events=$(awk -v n="$(metric hushtale_events_accepted_total)" -v s="$SECS" 'BEGIN {printf "%.0f", n/s}')
  fi
  local cpu
  cpu=$(awk -v a="$cpu0" -v b="$(cpu_secs)" -v r="$rps" -v s="$SECS" 'BEGIN {printf "%.0f", (b - a) * 1e6 / (r * s)}')
  echo "$name $rps $p50 $p99 $bad $rep $(peak_rss_mib) $events $cpu $ROUND" >>"$OUT/results"
  [ -z "$counter" ] || wait "$counter" 2>/dev/null || true
  local logsyncs=-
  [ -s "$syncs" ] && logsyncs=$(awk -v s="$SECS" '$1 ~ /^hushtale-log-/ {n+=$2} END {printf "%.0f", n/s}' "$syncs")
  # CPU µs per request by thread: the delta of each thread group; "exited" is what the process
  # used beyond the threads still alive.
  { echo "$threads0" | sed 's/^/0 /'; thread_ticks | sed 's/^/1 /'; } |
    awk -v hz="$(getconf CLK_TCK)" -v n="$name" -v r="$ROUND" -v rps="$rps" -v s="$SECS" -v a="$cpu0" -v b="$(cpu_secs)" -v syncs="$logsyncs" '
      $1==0 {t0[$2]+=$3; next} {t1[$2]+=$3}
      END {
        k = 1e6 / hz / (rps * s); line = n " " r; sum = 0
        for (t in t1) { d = t1[t] - t0[t]; sum += d; if (d > 0) line = line sprintf(" %s=%.1f", t, d * k) }
        printf "%s exited=%.1f log_syncs/s=%s\n", line, ((b - a) * hz - sum) * k, syncs
      }' >>"$OUT/threads"
}

: >"$OUT/results"; : >"$OUT/ratios"
echo "==> writing request bodies"
"$CEILING" bodies --events $EVENTS --count 1 --out "$ROOT/bodies"
POOL=0
for ROUND in $(seq "$ROUNDS"); do
  if [[ $TARGETS == *" ceiling "* ]]; then
  echo "==> round $ROUND of $ROUNDS: ceiling (bare hyper, same POST)"
  start ceiling "$CEILING" serve --listen 127.0.0.1:0
  bench ceiling "$URL" -s benches/load/collect.lua
  stop
  fi

  if [[ $TARGETS == *" healthz "* ]]; then
  echo "==> hushtale GET /healthz"
  start_hushtale healthz
  bench healthz "$URL/healthz"
  stop
  fi

  if [[ $TARGETS == *" json "* ]]; then
  echo "==> hushtale POST /collect, JSON"
  start_hushtale json
  if [ "${PERF:-0}" = 1 ] && [ "$ROUND" = 1 ] && command -v perf >/dev/null; then
    perf record --no-buildid-cache -F 499 ${PERF_CALLGRAPH:--g} -p "$PID" -o "$OUT/perf-collect.data" -- sleep "$SECS" >/dev/null 2>&1 &
  fi
  bench collect-json "$URL" -s benches/load/collect.lua
  stop
  wait 2>/dev/null || true
  fi

  if [[ $TARGETS == *" mp "* ]]; then

  # Enough distinct MessagePack+gzip bodies that none is sent twice: twice the best JSON rate so
  # far. Each round writes to a fresh data folder, so a pool may be reused across rounds.
  JSON_RPS=$(awk '$1=="collect-json" && $2>m {m=$2} END {printf "%.0f", m}' "$OUT/results")
  NEED=$((JSON_RPS * SECS * 2 + 10000))
  if [ "$NEED" -gt "$POOL" ]; then
    POOL=$NEED
    echo "==> encoding $POOL MessagePack+gzip bodies"
    "$CEILING" bodies --events $EVENTS --count "$POOL" --out "$ROOT/bodies-mp"
  fi

  echo "==> hushtale POST /collect, MessagePack+gzip"
  start_hushtale mp
  BODIES="$ROOT/bodies-mp" LOAD_MODE=msgpack-gzip bench collect-mp "$URL" -s benches/load/collect.lua
  stop
  fi
  rm -rf "$ROOT/data-"*
done

echo
echo "load run: ${SECS}s per target, $CONNS connections, $THREADS wrk thread(s), $EVENTS events per batch, $(nproc) cores, $ROUNDS round(s)"
echo
printf "| %-15s | %9s | %10s | %8s | %8s | %7s | %8s | %11s | %9s |\n" target "req/s" "events/s" p50 p99 non-2xx "peak RSS" "CPU µs/req" "÷ ceiling"
printf "| %-15s | %9s | %10s | %8s | %8s | %7s | %8s | %11s | %9s |\n" --- ---: ---: ---: ---: ---: ---: ---: ---:
# Each row's ratio is against the ceiling of its own round.
awk '$1=="ceiling" {print $10, $2}' "$OUT/results" >"$OUT/ceilings"
while read -r name rps p50 p99 bad rep rss events cpu round; do
  ceil=$(awk -v r="$round" '$1==r {print $2}' "$OUT/ceilings")
  ratio=$(awk -v a="$rps" -v b="$ceil" 'BEGIN {if (b > 0) printf "%.2f", a/b; else printf "-"}')
  echo "$name $round $ratio $cpu $rss" >>"$OUT/ratios"
  label=$name; [ "$ROUNDS" = 1 ] || label="$name #$round"
  printf "| %-15s | %9.0f | %10s | %8s | %8s | %7s | %5s MiB | %11s | %9s |\n" "$label" "$rps" "$events" "$p50" "$p99" "$bad" "$rss" "$cpu" "$ratio"
  [ "$rep" = 0 ] || echo "WARNING: $name sent $rep bodies twice (duplicates are cheaper than writes)"
done <"$OUT/results"
echo
for round in $(seq "$ROUNDS"); do
  awk -v r="$round" '$10==r && $1=="healthz" {h=$2} $10==r && $1=="collect-json" {j=$2} $10==r && $1=="collect-mp" {m=$2}
    END {if (h > 0 && j > 0 && m > 0) printf "round %d: collect-json ÷ healthz = %.2f, collect-mp ÷ healthz = %.2f, collect-mp ÷ collect-json = %.2f\n", r, j/h, m/h, m/j}' "$OUT/results"
done
if [ "$ROUNDS" -gt 1 ]; then
  echo
  echo "median of $ROUNDS rounds (each ratio against its own round's ceiling):"
  for n in collect-json collect-mp; do
    med() { awk -v n=$n -v c="$1" '$1==n {print $c}' "$OUT/ratios" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
    echo "  $n: ÷ ceiling $(med 3) (rounds: $(awk -v n=$n '$1==n {printf "%s ", $3}' "$OUT/ratios")), CPU µs/req $(med 4), peak RSS max $(awk -v n=$n '$1==n && $5>m {m=$5} END {print m}' "$OUT/ratios") MiB"
  done
fi
echo
echo "CPU µs per request by thread (target round thread=µs ...):"
sort -k1,1 -k2,2n "$OUT/threads"
echo "(raw wrk output in $OUT)"
