#!/usr/bin/env bash
# API fuzzing: schemathesis against /api/openapi.json of a running release server (operator
# token set): every operation with generated inputs, no 5xx, every response matching the schema.
# Bounded: MAX examples per operation (default 25). API_FUZZ_CHECKS picks schemathesis checks
# (default: the issue's two, no 5xx and schema-conforming responses; `all` adds e.g.
# "schema-valid request rejected" and "wrong answer to an undeclared method"). Skips (exit 0) with a message when the server
# has no /api/openapi.json yet. Usage: scripts/api-fuzz.sh [max-examples]
set -euo pipefail
cd "$(dirname "$0")/.."
MAX=${1:-25}
TARGET=${CARGO_TARGET_DIR:-target}
VENV=${API_FUZZ_VENV:-$TARGET/api-fuzz-venv}
if ! [ -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q schemathesis
fi
cargo build --release --quiet --bin hushtale
DATA=$(mktemp -d)
TOKEN=api-fuzz-operator-token
printf '[rate_limit]\ncollect_per_second = 0\nvisitor_per_minute = 0\n' >"$DATA/hushtale.toml"
HUSHTALE_ADMIN_TOKEN=$TOKEN RUST_LOG=error "$TARGET/release/hushtale" serve --listen 127.0.0.1:0 \
  --data "$DATA/data" --config "$DATA/hushtale.toml" >"$DATA/stdout" 2>"$DATA/stderr" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
URL=""
for _ in $(seq 200); do
  URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$DATA/stdout" | head -1)
  [ -n "$URL" ] && curl -sf -o /dev/null "$URL/healthz" && break
  sleep 0.05
done
[ -n "$URL" ] || { echo "api-fuzz: server did not start"; cat "$DATA/stderr"; exit 1; }
CODE=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/openapi.json")
if [ "$CODE" = 404 ]; then
  echo "api-fuzz: SKIPPED: $URL/api/openapi.json answers 404 (no OpenAPI description in this version)"
  exit 0
fi
[ "$CODE" = 200 ] || { echo "api-fuzz: /api/openapi.json answered $CODE"; exit 1; }
# schemathesis 4 spells the bound --max-examples; 3.x spelled it --hypothesis-max-examples.
if "$VENV/bin/schemathesis" run --help | grep -q -- '--max-examples'; then BOUND=(--max-examples "$MAX"); else BOUND=(--hypothesis-max-examples "$MAX"); fi
"$VENV/bin/schemathesis" run "$URL/api/openapi.json" --url "$URL" -H "Authorization: Bearer $TOKEN" \
  --checks "${API_FUZZ_CHECKS:-not_a_server_error,response_schema_conformance}" "${BOUND[@]}" --seed 1
