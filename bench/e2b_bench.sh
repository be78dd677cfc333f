#!/usr/bin/env bash
# Benchmark (not a test): the E2B SDK against lelantosd on this machine's /dev/kvm (tests/e2b/bench.mjs):
#   - commands.run('true') through the SDK vs POST /sandboxes/{id}/commands (goal: within 1.3x)
#   - 1 MB of a command's stdout through the SDK; 64 MiB of stdout streamed over the Connect wire,
#     through the SDK and as our REST API's "stream": true events (goal: >= 200 MB/s)
#   - files.write / files.read of 64 MiB
# Usage: bench/e2b_bench.sh [N=200] [lelantosd binary]. Needs node and `npm ci` in tests/e2b.
set -euo pipefail
N=${1:-200}
BIN=${2:-$(dirname "$0")/../build/src/lelantosd}
. "$(dirname "$0")/lib.sh"
trap bench_stop EXIT
bench_start_vm "$BIN" </dev/null
U=$U K=$KEY N=$N node "$(dirname "$0")/../tests/e2b/bench.mjs"
