#!/usr/bin/env bash
# make bench: the Go micro-benchmarks of the Check paths (-benchmem, several
# counts) summarised by benchstat. golang-jwt's own Parse runs beside our
# verifier in the same run (authz/token: BenchmarkJWTParse next to
# BenchmarkVerifyCacheMiss and BenchmarkVerifyCacheHit).
#
#   BENCH=regexp      benchmarks to run (default: all under ./authz/...)
#   COUNT=6           counts per benchmark (benchstat wants at least 6 for
#                     a confidence interval)
#   BENCHTIME=1s      time per count
#   OUT=file          raw output (default bench/results/micro-<UTC time>.txt)
#   BASE=file         an earlier raw output: benchstat compares the two
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_DIR=${SILENTAUTH_TOOLS_DIR:-$PWD/.tools}
bench/tools.sh benchstat >/dev/null

OUT=${OUT:-bench/results/micro-$(date -u +%Y%m%d-%H%M%S).txt}
mkdir -p "$(dirname "$OUT")"
go test -run '^$' -bench "${BENCH:-.}" -benchmem -count "${COUNT:-6}" -benchtime "${BENCHTIME:-1s}" ./authz/... | tee "$OUT"
echo
if [ -n "${BASE:-}" ]; then
  "$TOOLS_DIR/bin/benchstat" "$BASE" "$OUT"
else
  "$TOOLS_DIR/bin/benchstat" "$OUT"
fi
echo "raw output: $OUT"
