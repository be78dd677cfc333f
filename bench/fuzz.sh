#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz) for as long as asked and prints runs, execs/s, coverage and
# findings per target. Usage: bench/fuzz.sh [SECONDS_PER_TARGET (default 300)] [TARGET...]
# Findings (crashing inputs) land in build-fuzz/findings/<target>/; fix them and add each one to
# tests/fuzz/corpus/<target>/ as a regression input.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
shift || true
exec tests/fuzz/run.sh "$secs" "$@"
