#!/usr/bin/env bash
# Benchmark (not a test): commands and files inside sandboxes on this machine's /dev/kvm.
#   - command round trip (`true`) p50/p99 over N runs
#   - small commands per second in one sandbox, and across 10 sandboxes in parallel
#   - file write/read MB/s for 1 MiB and 64 MiB files
#   - sha256sum over 64 MiB inside the guest vs on the host
# Usage: bench/cmd_bench.sh [N=200] [lelantosd binary]
# Needs bash, curl, awk, cmp, head and sha256sum only, so it also runs inside tools/qemu-vm.sh.
set -euo pipefail
N=${1:-200}
BIN=${2:-$(dirname "$0")/../build/src/lelantosd}
. "$(dirname "$0")/lib.sh"
trap bench_stop EXIT
now() { echo "${EPOCHREALTIME/,/.}"; }
calc() { awk "BEGIN {printf \"%.${2:-0}f\", $1}"; } # expression, decimals
bench_start_vm "$BIN" <<'YAML'
teams:
  max_sandboxes: 50
YAML
new_sbx() { curl -sf "${H[@]}" -d '{"timeout":3600}' "$U/sandboxes" | sed -n 's/.*"sandboxID":"\([a-z0-9]*\)".*/\1/p'; }

S=$(new_sbx)
[ -n "$S" ] || { echo "cannot create a sandbox: $(tail -3 "$tmp/log")"; exit 1; }
# n requests, one after another on one keep-alive connection of one curl (so neither process
# starts nor connects are measured): prints each request's time in seconds
burst() { # n body url
  local args=()
  for _ in $(seq "$1"); do args+=(-o /dev/null "$3"); done
  curl -s -w '%{time_total}\n' "${H[@]}" -d "$2" "${args[@]}"
}
burst "$N" '{"cmd":"true"}' "$U/sandboxes/$S/commands" > "$tmp/rt"
echo "command round trip (true): $(bench_stats < "$tmp/rt")"

t0=$(now)
burst "$N" '{"cmd":"echo hi"}' "$U/sandboxes/$S/commands" > /dev/null
t1=$(now)
echo "small commands, one sandbox, sequential: $(calc "$N/($t1-$t0)")/s"

ids=(); for i in $(seq 10); do ids+=("$(new_sbx)"); done
t0=$(now)
pids=()
for id in "${ids[@]}"; do
  burst $((N / 10)) '{"cmd":"echo hi"}' "$U/sandboxes/$id/commands" > /dev/null &
  pids+=($!)
done
wait "${pids[@]}" # not a bare wait: lelantosd is a child of this shell too
t1=$(now)
echo "small commands, 10 sandboxes in parallel: $(calc "$N/($t1-$t0)")/s"

for mib in 1 64; do
  head -c $((mib << 20)) /dev/urandom > "$tmp/f$mib"
  w=$(curl -s -o /dev/null -w '%{time_total}' "${H[@]}" -X PUT --data-binary @"$tmp/f$mib" "$U/sandboxes/$S/files?path=/tmp/f$mib")
  r=$(curl -s -o "$tmp/g$mib" -w '%{time_total}' "${H[@]}" "$U/sandboxes/$S/files?path=/tmp/f$mib")
  cmp -s "$tmp/f$mib" "$tmp/g$mib" || echo "  (read-back of $mib MiB differs!)"
  echo "file $mib MiB: write $(calc "$mib/$w" 1) MB/s, read $(calc "$mib/$r" 1) MB/s"
done

g=$(curl -s "${H[@]}" -d '{"cmd":"sha256sum /tmp/f64","timeoutMs":600000}' "$U/sandboxes/$S/commands")
gms=$(echo "$g" | sed -n 's/.*"durationMs":\([0-9]*\).*/\1/p')
t0=$(now); hsum=$(sha256sum "$tmp/f64" | cut -c1-64); t1=$(now)
echo "$g" | grep -q "$hsum" && same=equal || same=DIFFER
echo "sha256sum 64 MiB: guest ${gms} ms (command round trip), host $(calc "($t1-$t0)*1000") ms (digests $same)"
