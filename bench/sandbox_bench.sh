#!/usr/bin/env bash
# Benchmark (not a test): POST /sandboxes (HTTP request -> guest ready -> 201) latency over N
# creates on this machine's /dev/kvm, each followed by a DELETE. Prints p50/p99.
# Usage: bench/sandbox_bench.sh [N=100] [lelantosd binary]
set -euo pipefail
N=${1:-100}
BIN=${2:-$(dirname "$0")/../build/src/lelantosd}
. "$(dirname "$0")/lib.sh"
trap bench_stop EXIT
bench_start_vm "$BIN" <<'YAML'
store:
  sync: true
YAML
: > "$tmp/times"
for i in $(seq "$N"); do
  out=$(curl -s -o "$tmp/body" -w '%{http_code} %{time_total}' -H "X-API-Key: $KEY" -d '{}' "$U/sandboxes")
  code=${out%% *}
  [ "$code" = 201 ] || { echo "create failed: $out $(cat "$tmp/body")"; exit 1; }
  echo "${out#* }" >> "$tmp/times"
  id=$(sed -n 's/.*"sandboxID":"\([a-z0-9]*\)".*/\1/p' "$tmp/body")
  curl -s -o /dev/null -X DELETE -H "X-API-Key: $KEY" "$U/sandboxes/$id"
done
echo "sandbox create (HTTP request -> guest ready -> 201), $N runs: $(bench_stats < "$tmp/times")"
