#!/usr/bin/env bash
# Runs one fuzz target (or all, one after another) with cargo-fuzz on nightly.
# Usage: fuzz/run.sh [target|all] [seconds per target=600]
# Needs: rustup toolchain nightly, cargo install cargo-fuzz. New crashes land in
# fuzz/artifacts/TARGET/; turn each into a case of tests/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")"
TARGETS=(batch_json batch_msgpack gzip scrub url)
WHICH=${1:-all}
SECS=${2:-600}
[ "$WHICH" = all ] || TARGETS=("$WHICH")
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  echo "==> fuzz $t for ${SECS}s"
  cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
