#!/usr/bin/env bash
# Benchmark (not a test): commands and files inside sandboxes on this machine's /dev/kvm, each
# against an anchor measured in the same run (issue 21 §4), ending in a table: figure, anchor,
# ratio, goal.
#   - command round trip (`true`) p50/p99 over N runs | anchor: the host's `sh -c true` (fork+exec+wait from bash)
#   - small commands per second in one sandbox, one at a time and 8 at once, and across 10 sandboxes
#     | anchor: the host's `sh -c true` one at a time
#   - file write/read MB/s for 1 MiB and 64 MiB files (REST files API) | anchor: h2o serving the same
#     64 MiB file over HTTP/1.1 (where h2o is installed)
#   - sha256sum over 64 MiB inside the guest vs on the host
# The machine is shared: compare the ratios, run it more than once.
# Usage: bench/cmd_bench.sh [N=200] [lelantosd binary]
# Needs bash, curl, awk, cmp, head and sha256sum only (h2o optional), so it also runs inside tools/qemu-vm.sh.
set -euo pipefail
N=${1:-200}
BIN=${2:-$(dirname "$0")/../build/src/lelantosd}
. "$(dirname "$0")/lib.sh"
h2o_pid=
stop_all() { [ -n "$h2o_pid" ] && kill "$h2o_pid" 2>/dev/null; bench_stop; }
trap stop_all EXIT
now() { echo "${EPOCHREALTIME/,/.}"; }
calc() { awk "BEGIN {printf \"%.${2:-0}f\", $1}"; } # expression, decimals
p50() { sort -n | awk '{v[NR]=$1} END {print v[int(NR*0.5)+1]}'; }
rows=()
row() { rows+=("$(printf '%-40s %12s %12s %7s %12s' "$@")"); } # what, figure, anchor, ratio, goal
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
burst 20 '{"cmd":"true"}' "$U/sandboxes/$S/commands" > /dev/null # warm
burst "$N" '{"cmd":"true"}' "$U/sandboxes/$S/commands" > "$tmp/rt"
for _ in $(seq "$N"); do t0=$EPOCHREALTIME; sh -c true; t1=$EPOCHREALTIME; echo "${t0/,/.} ${t1/,/.}"; done |
  awk '{print $2 - $1}' > "$tmp/host" # no command substitution in the timed part: it would fork too
echo "command round trip (true): $(bench_stats < "$tmp/rt"); host sh -c true: $(bench_stats < "$tmp/host")"
rt=$(calc "$(p50 < "$tmp/rt") * 1000" 2); hrt=$(calc "$(p50 < "$tmp/host") * 1000" 2)
row "command round trip p50 (ms)" "$rt" "$hrt" "$(calc "$rt / $hrt" 2)x" "<= 2x"

t0=$(now)
burst "$N" '{"cmd":"echo hi"}' "$U/sandboxes/$S/commands" > /dev/null
t1=$(now)
seq1=$(calc "$N/($t1-$t0)")
hps=$(calc "1000 / $hrt")
echo "small commands, one sandbox, sequential: $seq1/s"
row "commands/s, one sandbox, sequential" "$seq1" "$hps" "$(calc "$seq1 / $hps" 2)x" ">= 1000/s"

t0=$(now)
pids=()
for _ in $(seq 8); do
  burst $((N / 8)) '{"cmd":"echo hi"}' "$U/sandboxes/$S/commands" > /dev/null &
  pids+=($!)
done
wait "${pids[@]}"
t1=$(now)
par1=$(calc "$((N / 8 * 8))/($t1-$t0)")
echo "small commands, one sandbox, 8 at once: $par1/s"
row "commands/s, one sandbox, 8 at once" "$par1" "$hps" "$(calc "$par1 / $hps" 2)x" ">= 1000/s"

ids=(); for i in $(seq 10); do ids+=("$(new_sbx)"); done
t0=$(now)
pids=()
for id in "${ids[@]}"; do
  burst $((N / 10)) '{"cmd":"echo hi"}' "$U/sandboxes/$id/commands" > /dev/null &
  pids+=($!)
done
wait "${pids[@]}" # not a bare wait: lelantosd is a child of this shell too
t1=$(now)
echo "small commands, 10 sandboxes in parallel: $(calc "$((N / 10 * 10))/($t1-$t0)")/s"

anchor=-
if command -v h2o >/dev/null; then # the same bytes from h2o's static file handler
  mkdir -p "$tmp/www"
  hp=$(( 20000 + RANDOM % 20000 ))
  printf 'listen:\n  host: 127.0.0.1\n  port: %s\nnum-threads: 2\naccess-log: /dev/null\nerror-log: %s\nuser: root\nhosts:\n  default:\n    paths:\n      /:\n        file.dir: %s\n' \
    "$hp" "$tmp/h2o-error.log" "$tmp/www" > "$tmp/h2o.conf"
  h2o -c "$tmp/h2o.conf" > "$tmp/h2o.log" 2>&1 &
  h2o_pid=$!
fi
for mib in 1 64; do
  head -c $((mib << 20)) /dev/urandom > "$tmp/f$mib"
  w=$(curl -s -o /dev/null -w '%{time_total}' "${H[@]}" -X PUT --data-binary @"$tmp/f$mib" "$U/sandboxes/$S/files?path=/tmp/f$mib")
  r=$(curl -s -o "$tmp/g$mib" -w '%{time_total}' "${H[@]}" "$U/sandboxes/$S/files?path=/tmp/f$mib")
  cmp -s "$tmp/f$mib" "$tmp/g$mib" || echo "  (read-back of $mib MiB differs!)"
  echo "file $mib MiB: write $(calc "$mib/$w" 1) MB/s, read $(calc "$mib/$r" 1) MB/s"
done
if [ -n "$h2o_pid" ]; then
  cp "$tmp/f64" "$tmp/www/f64"
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$hp/f64" && break; sleep 0.1; done
  a=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$hp/f64")
  anchor=$(calc "64/$a" 1)
  echo "h2o static file 64 MiB: $anchor MB/s"
fi
wmb=$(calc "64/$w" 1); rmb=$(calc "64/$r" 1)
ratio() { [ "$anchor" = - ] && echo - || echo "$(calc "$1 / $anchor" 2)x"; }
row "file write 64 MiB (MB/s)" "$wmb" "$anchor" "$(ratio "$wmb")" ">= 1000"
row "file read 64 MiB (MB/s)" "$rmb" "$anchor" "$(ratio "$rmb")" ">= 1000"

g=$(curl -s "${H[@]}" -d '{"cmd":"sha256sum /tmp/f64","timeoutMs":600000}' "$U/sandboxes/$S/commands")
gms=$(echo "$g" | sed -n 's/.*"durationMs":\([0-9]*\).*/\1/p')
t0=$(now); hsum=$(sha256sum "$tmp/f64" | cut -c1-64); t1=$(now)
echo "$g" | grep -q "$hsum" && same=equal || same=DIFFER
echo "sha256sum 64 MiB: guest ${gms} ms (command round trip), host $(calc "($t1-$t0)*1000") ms (digests $same)"

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (a shared machine: compare ratios)"
printf '%-40s %12s %12s %7s %12s\n' "figure" "value" "anchor" "ratio" "goal"
printf '%s\n' "${rows[@]}"
