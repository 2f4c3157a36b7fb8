#!/usr/bin/env bash
# Runs CMD... with a throw-away ClickHouse server on loopback and HUSHTALE_TEST_CLICKHOUSE set
# to its URL, then stops the server and deletes its data, whatever CMD's outcome.
#
#   scripts/with-clickhouse.sh cargo test --locked
#
# Installs Debian's `clickhouse-server` (18.16 on Debian 12) with apt-get when missing. The
# server's config lives in ci/clickhouse/ (loopback only, no password); its data goes to a
# temp folder. CH_PORT picks the HTTP port (default: a free one from 18123 up).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

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
PORT=${CH_PORT:-}
if [ -z "$PORT" ]; then
  PORT=18123
  while ! port_free "$PORT" || ! port_free $((PORT + 1)); do PORT=$((PORT + 2)); done
fi

CH_DATA=$(mktemp -d -t hushtale-clickhouse.XXXXXX)
mkdir -p "$CH_DATA"/{log,data,tmp,user_files,format_schemas,etc}
sed -e "s#@CH_DATA@#$CH_DATA#g" -e "s#@CH_PORT@#$PORT#g" -e "s#@CH_TCP_PORT@#$((PORT + 1))#g" \
  ci/clickhouse/config.xml > "$CH_DATA/etc/config.xml"
cp ci/clickhouse/users.xml "$CH_DATA/etc/users.xml"

echo "==> starting ClickHouse ($("$SERVER" --version 2>/dev/null | head -n1 || echo "$SERVER")) on 127.0.0.1:$PORT, data in $CH_DATA"
"$SERVER" --config-file="$CH_DATA/etc/config.xml" >"$CH_DATA/log/stdout.log" 2>&1 &
CH_PID=$!
stop() {
  kill "$CH_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$CH_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$CH_PID" 2>/dev/null || true
  wait "$CH_PID" 2>/dev/null || true
  rm -rf "$CH_DATA"
}
trap stop EXIT

URL="http://127.0.0.1:$PORT"
for i in $(seq 200); do
  if [ "$(curl -s "$URL/ping" 2>/dev/null)" = "Ok." ]; then break; fi
  if ! kill -0 "$CH_PID" 2>/dev/null; then
    echo "ClickHouse exited during start:" >&2; tail -n 30 "$CH_DATA"/log/*.log >&2; exit 1
  fi
  [ "$i" -lt 200 ] || { echo "ClickHouse did not answer on $URL" >&2; exit 1; }
  sleep 0.1
done

export HUSHTALE_TEST_CLICKHOUSE="$URL"
echo "==> HUSHTALE_TEST_CLICKHOUSE=$URL $*"
set +e
"$@"
status=$?
set -e
echo "==> stopping ClickHouse"
exit $status
