#!/usr/bin/env bash
# Runs CMD... with throw-away ClickHouse servers on loopback and HUSHTALE_TEST_CLICKHOUSE set
# to the first one's URL, then stops them and deletes their data, whatever CMD's outcome.
#
#   scripts/with-clickhouse.sh cargo test --locked
#   CH_SHARDS=2 scripts/with-clickhouse.sh cargo test --test backends
#
# CH_SHARDS=N (default 1) starts N servers that form the cluster `hushtale_test`, one shard
# each (no replicas, so no ZooKeeper), and sets HUSHTALE_TEST_CLICKHOUSE_SHARDS to their
# HOST:PORT list. Installs Debian's `clickhouse-server` (18.16 on Debian 12) with apt-get when
# missing. The servers' config lives in ci/clickhouse/ (loopback only, no password); their data
# goes to a temp folder. Ports are free ones found from 18123 up (CH_PORT picks the first).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
SHARDS=${CH_SHARDS:-1}

SERVER=$(command -v clickhouse-server || true)
[ -n "$SERVER" ] || [ ! -x /usr/sbin/clickhouse-server ] || SERVER=/usr/sbin/clickhouse-server
if [ -z "$SERVER" ]; then
  echo "==> installing clickhouse-server (Debian package)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clickhouse-server >/dev/null
  SERVER=$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Each server takes an HTTP port P and a native port P+1.
PORTS=()
next=${CH_PORT:-18123}
while [ ${#PORTS[@]} -lt "$SHARDS" ]; do
  if port_free "$next" && port_free $((next + 1)); then PORTS+=("$next"); fi
  next=$((next + 2))
done

CH_ROOT=$(mktemp -d -t hushtale-clickhouse.XXXXXX)
SHARD_XML=""
for p in "${PORTS[@]}"; do
  SHARD_XML+="            <shard><replica><host>127.0.0.1</host><port>$((p + 1))</port></replica></shard>\n"
done
PIDS=()
stop() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$CH_ROOT"
}
trap stop EXIT

for p in "${PORTS[@]}"; do
  CH_DATA="$CH_ROOT/$p"
  mkdir -p "$CH_DATA"/{log,data,tmp,user_files,format_schemas,etc}
  sed -e "s#@CH_DATA@#$CH_DATA#g" -e "s#@CH_PORT@#$p#g" -e "s#@CH_TCP_PORT@#$((p + 1))#g" \
    -e "s#@CH_SHARDS@#${SHARD_XML%\\n}#" ci/clickhouse/config.xml > "$CH_DATA/etc/config.xml"
  cp ci/clickhouse/users.xml "$CH_DATA/etc/users.xml"
  echo "==> starting ClickHouse ($("$SERVER" --version 2>/dev/null | head -n1 || echo "$SERVER")) on 127.0.0.1:$p, data in $CH_DATA"
  "$SERVER" --config-file="$CH_DATA/etc/config.xml" >"$CH_DATA/log/stdout.log" 2>&1 &
  PIDS+=($!)
done

for i in "${!PORTS[@]}"; do
  url="http://127.0.0.1:${PORTS[$i]}"
  for n in $(seq 200); do
    if [ "$(curl -s "$url/ping" 2>/dev/null)" = "Ok." ]; then break; fi
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      echo "ClickHouse exited during start:" >&2; tail -n 30 "$CH_ROOT/${PORTS[$i]}"/log/*.log >&2; exit 1
    fi
    [ "$n" -lt 200 ] || { echo "ClickHouse did not answer on $url" >&2; exit 1; }
    sleep 0.1
  done
done

export HUSHTALE_TEST_CLICKHOUSE="http://127.0.0.1:${PORTS[0]}"
if [ "$SHARDS" -gt 1 ]; then
  HUSHTALE_TEST_CLICKHOUSE_SHARDS=$(printf "127.0.0.1:%s," "${PORTS[@]}")
  export HUSHTALE_TEST_CLICKHOUSE_SHARDS=${HUSHTALE_TEST_CLICKHOUSE_SHARDS%,}
  echo "==> HUSHTALE_TEST_CLICKHOUSE_SHARDS=$HUSHTALE_TEST_CLICKHOUSE_SHARDS (cluster hushtale_test)"
fi
echo "==> HUSHTALE_TEST_CLICKHOUSE=$HUSHTALE_TEST_CLICKHOUSE $*"
set +e
"$@"
status=$?
set -e
echo "==> stopping ClickHouse"
exit $status
