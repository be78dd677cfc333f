#!/usr/bin/env bash
# Benchmark (not a test): commands and files inside sandboxes on this machine's /dev/kvm.
#   - command round trip (`true`) p50/p99 over N runs
#   - small commands per second in one sandbox, and across 10 sandboxes in parallel
#   - file write/read MB/s for 1 MiB and 64 MiB files
#   - sha256sum over 64 MiB inside the guest vs on the host
# Usage: bench/cmd_bench.sh [N=200] [lelantosd binary]
set -euo pipefail
N=${1:-200}
BIN=${2:-$(dirname "$0")/../build/src/lelantosd}
. "$(dirname "$0")/lib.sh"
trap bench_stop EXIT
bench_start_vm "$BIN" <<'YAML'
teams:
  max_sandboxes: 50
YAML
new_sbx() { curl -sf "${H[@]}" -d '{"timeout":3600}' "$U/sandboxes" | sed -n 's/.*"sandboxID":"\([a-z0-9]*\)".*/\1/p'; }

S=$(new_sbx)
[ -n "$S" ] || { echo "cannot create a sandbox: $(tail -3 "$tmp/log")"; exit 1; }
for i in $(seq "$N"); do
  curl -s -o /dev/null -w '%{time_total}\n' "${H[@]}" -d '{"cmd":"true"}' "$U/sandboxes/$S/commands"
done > "$tmp/rt"
echo "command round trip (true): $(bench_stats < "$tmp/rt")"

t0=$(date +%s.%N)
for i in $(seq "$N"); do curl -s -o /dev/null "${H[@]}" -d '{"cmd":"echo hi"}' "$U/sandboxes/$S/commands"; done
t1=$(date +%s.%N)
echo "small commands, one sandbox, sequential: $(python3 -c "print(f'{$N/($t1-$t0):.0f}')")/s"

ids=(); for i in $(seq 10); do ids+=("$(new_sbx)"); done
t0=$(date +%s.%N)
for id in "${ids[@]}"; do
  ( for i in $(seq $((N / 10))); do curl -s -o /dev/null "${H[@]}" -d '{"cmd":"echo hi"}' "$U/sandboxes/$id/commands"; done ) &
done
wait
t1=$(date +%s.%N)
echo "small commands, 10 sandboxes in parallel: $(python3 -c "print(f'{$N/($t1-$t0):.0f}')")/s"

for mib in 1 64; do
  head -c $((mib << 20)) /dev/urandom > "$tmp/f$mib"
  w=$(curl -s -o /dev/null -w '%{time_total}' "${H[@]}" -X PUT --data-binary @"$tmp/f$mib" "$U/sandboxes/$S/files?path=/tmp/f$mib")
  r=$(curl -s -o "$tmp/g$mib" -w '%{time_total}' "${H[@]}" "$U/sandboxes/$S/files?path=/tmp/f$mib")
  cmp -s "$tmp/f$mib" "$tmp/g$mib" || echo "  (read-back of $mib MiB differs!)"
  echo "file $mib MiB: write $(python3 -c "print(f'{$mib/$w:.1f}')") MB/s, read $(python3 -c "print(f'{$mib/$r:.1f}')") MB/s"
done

g=$(curl -s "${H[@]}" -d '{"cmd":"sha256sum /tmp/f64","timeoutMs":600000}' "$U/sandboxes/$S/commands")
gms=$(echo "$g" | sed -n 's/.*"durationMs":\([0-9]*\).*/\1/p')
t0=$(date +%s.%N); hsum=$(sha256sum "$tmp/f64" | cut -c1-64); t1=$(date +%s.%N)
echo "$g" | grep -q "$hsum" && same=equal || same=DIFFER
echo "sha256sum 64 MiB: guest ${gms} ms (command round trip), host $(python3 -c "print(f'{($t1-$t0)*1000:.0f}')") ms (digests $same)"
