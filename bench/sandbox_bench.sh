#!/usr/bin/env bash
# Benchmark (not a test): POST /sandboxes (HTTP request -> guest ready -> 201) latency over N
# creates on this machine's /dev/kvm, each followed by a DELETE. Prints p50/p99.
# Usage: bench/sandbox_bench.sh [N=100] [lelantosd binary]
set -euo pipefail
N=${1:-100}
BIN=${2:-$(dirname "$0")/../build/src/lelantosd}
tmp=$(mktemp -d /tmp/lel-sbxbench-XXXXXX)
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
PORT=$(( 20000 + RANDOM % 20000 ))
printf 'vmm:\n  backend: auto\nrate_limits:\n  general_per_s: 100000\nstore:\n  sync: true\n' > "$tmp/c.yaml"
"$BIN" --config "$tmp/c.yaml" --listen 127.0.0.1:$PORT --data-dir "$tmp/data" >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
KEY=$(cat "$tmp/data/initial-api-key")
: > "$tmp/times"
for i in $(seq "$N"); do
  out=$(curl -s -o "$tmp/body" -w '%{http_code} %{time_total}' -H "X-API-Key: $KEY" -d '{}' "http://127.0.0.1:$PORT/sandboxes")
  code=${out%% *}
  [ "$code" = 201 ] || { echo "create failed: $out $(cat "$tmp/body")"; exit 1; }
  echo "${out#* }" >> "$tmp/times"
  id=$(sed -n 's/.*"sandboxID":"\([a-z0-9]*\)".*/\1/p' "$tmp/body")
  curl -s -o /dev/null -X DELETE -H "X-API-Key: $KEY" "http://127.0.0.1:$PORT/sandboxes/$id"
done
sort -n "$tmp/times" | awk -v n="$N" '{v[NR]=$1*1000} END {
  i50 = int(n * 0.5) + 1; i99 = int(n * 0.99) + 1; if (i99 > n) i99 = n
  printf "sandbox create (HTTP request -> guest ready -> 201), %d runs: p50 %.2f ms, p99 %.2f ms\n", n, v[i50], v[i99]}'
