#!/usr/bin/env bash
# Benchmark (not a test) for issue 21 §2 (create in milliseconds) and §3 (density): prints one
# table of figure | anchor measured in the same run | ratio | goal. Anchors:
#   - creates: the same creates on a daemon with templates.warm_pool: 0 (restore on the request
#     path), and GET /health (the HTTP round trip every request pays);
#   - first command: the second command on the same sandbox (a warm command round trip);
#   - density: the create p99 at the first level.
# Memory per idle sandbox is the daemon's PSS delta (smaps_rollup) plus the kernel's share that
# KVM and the vCPU threads take (Slab, KernelStack, PageTables, SecPageTables deltas of
# /proc/meminfo), over the sandboxes added. The machine is shared with other work: figures move
# between runs; compare a figure with its anchor of the same run.
# Usage: bench/perf_bench.sh [N=100] [levels="100 1000"] [lelantosd binary]
#   (5000 idle sandboxes: levels="100 1000 5000"; CONCURRENT=100 in the environment;
#   DENSITY_ONLY=1 skips the §2 create figures and runs the density levels alone)
set -euo pipefail
N=${1:-100}
LEVELS=${2:-"100 1000"}
BIN=${3:-$(dirname "$0")/../build/src/lelantosd}
CONCURRENT=${CONCURRENT:-100}
. "$(dirname "$0")/lib.sh"
trap bench_stop EXIT
now() { echo "${EPOCHREALTIME/,/.}"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b - a) * 1000}'; }
pct() { sort -n | awk -v p="$1" '{v[NR]=$1*1000} END {i=int(NR*p)+1; if (i>NR) i=NR; printf "%.2f", v[i]}'; }
rows=()
row() { rows+=("$(printf '%-46s %12s %12s %7s  %s' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN {if (b + 0 > 0) printf "%.2fx", a / b; else print "-"}')" "$4")"); }
wait_base() {
  for _ in $(seq 1200); do
    curl -s "${H[@]}" "$U/templates/base" | grep -q '"buildStatus":"ready"' && return
    sleep 0.5
  done
}
sid() { sed -n 's/.*"sandboxID":"\([a-z0-9]*\)".*/\1/p' "$1"; }
# N creates, each deleted after: their times (s) in $1; with $2 also create -> first command and
# the second command's time in $2.first / $2.second
creates() {
  : > "$1"
  if [ -n "${2:-}" ]; then : > "$2.first"; : > "$2.second"; fi
  for _ in $(seq "$N"); do
    t0=$(now)
    out=$(curl -s -o "$tmp/b" -w '%{http_code} %{time_total}' "${H[@]}" -d '{"templateID":"base","timeout":600}' "$U/sandboxes")
    [ "${out%% *}" = 201 ] || { echo "create failed: $out $(cat "$tmp/b")" >&2; exit 1; }
    echo "${out#* }" >> "$1"
    id=$(sid "$tmp/b")
    if [ -n "${2:-}" ]; then
      curl -s -o /dev/null "${H[@]}" -d '{"cmd":"true"}' "$U/sandboxes/$id/commands"
      t1=$(now)
      curl -s -o /dev/null -w '%{time_total}\n' "${H[@]}" -d '{"cmd":"true"}' "$U/sandboxes/$id/commands" >> "$2.second"
      awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >> "$2.first"
    fi
    curl -s -o /dev/null -X DELETE "${H[@]}" "$U/sandboxes/$id"
    sleep 0.02 # a user's pace, not a loop's: the pool refills between creates
  done
}
concurrent() { # wall ms of $CONCURRENT creates at once; per-request times in $1
  local t0 t1
  t0=$(now)
  seq "$CONCURRENT" | xargs -r -P "$CONCURRENT" -I{} curl -s -o "$tmp/c{}" -w '%{http_code} %{time_total}\n' "${H[@]}" \
    -d '{"templateID":"base","timeout":600}' "$U/sandboxes" > "$1" || true
  t1=$(now)
  ok=$(awk '$1 == 201' "$1" | wc -l)
  [ "$ok" -eq "$CONCURRENT" ] || echo "concurrent creates: only $ok of $CONCURRENT answered 201" >&2
  for f in "$tmp"/c[0-9]*; do
    id=$(sid "$f")
    [ -z "$id" ] || curl -s -o /dev/null -X DELETE "${H[@]}" "$U/sandboxes/$id"
    rm -f "$f"
  done
  ms "$t0" "$t1"
}

if [ -z "${DENSITY_ONLY:-}" ]; then
# --- anchor daemon: no warm pool (every create restores on its path)
bench_start_vm "$BIN" <<'YAML'
teams:
  max_sandboxes: 100000
templates:
  warm_pool: 0
shutdown_pause_grace_ms: 0
YAML
wait_base
creates "$tmp/a_create"
a50=$(pct 0.5 < "$tmp/a_create") a99=$(pct 0.99 < "$tmp/a_create")
a_conc=$(concurrent "$tmp/a_conc")
bench_stop

# --- the daemon as configured by default (warm pool on)
bench_start_vm "$BIN" <<'YAML'
teams:
  max_sandboxes: 100000
shutdown_pause_grace_ms: 0
YAML
wait_base
sleep 1 # base's pool fills
: > "$tmp/health"
for _ in $(seq "$N"); do curl -s -o /dev/null -w '%{time_total}\n' "$U/health" >> "$tmp/health"; done
h50=$(pct 0.5 < "$tmp/health")
creates "$tmp/create" "$tmp/cmd"
row "POST /sandboxes -> 201, p50 (ms)" "$(pct 0.5 < "$tmp/create")" "$a50" "<= 5 ms (anchor: warm_pool 0)"
row "POST /sandboxes -> 201, p99 (ms)" "$(pct 0.99 < "$tmp/create")" "$a99" "<= 15 ms (anchor: warm_pool 0)"
row "POST /sandboxes -> 201 p50 vs GET /health (ms)" "$(pct 0.5 < "$tmp/create")" "$h50" "(HTTP floor)"
row "create -> first command answered, p50 (ms)" "$(pct 0.5 < "$tmp/cmd.first")" "$(pct 0.5 < "$tmp/cmd.second")" "<= 8 ms (anchor: a second command)"
row "$CONCURRENT concurrent creates, wall (ms)" "$(concurrent "$tmp/conc")" "$a_conc" "<= 300 ms (anchor: warm_pool 0)"
else
bench_start_vm "$BIN" <<'YAML'
teams:
  max_sandboxes: 100000
shutdown_pause_grace_ms: 0
YAML
wait_base
fi

# --- density: idle sandboxes at each level
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup"; }
kern_kib() { awk '/^(Slab|KernelStack|PageTables|SecPageTables):/ {s += $2} END {print s}' /proc/meminfo; }
cpu_ms() { awk '{print ($14 + $15) * 10}' "/proc/$pid/stat"; } # USER_HZ 100
sleep 2
pss0=$(pss_kib) kern0=$(kern_kib) count=0 first_p99=""
for level in $LEVELS; do
  : > "$tmp/lvl"
  while [ "$count" -lt "$level" ]; do
    t0=$(now)
    out=$(curl -s -o "$tmp/b" -w '%{http_code}' "${H[@]}" -d '{"templateID":"base","timeout":86400}' "$U/sandboxes")
    t1=$(now)
    [ "$out" = 201 ] || { echo "create $((count + 1)) failed: $out $(cat "$tmp/b")" >&2; break 2; }
    count=$((count + 1))
    [ $((level - count)) -ge 20 ] || awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >> "$tmp/lvl"
    [ $((level - count)) -ne 20 ] || sleep 1 # the last 20 at a user's pace (the pool refills)
  done
  sleep 5
  c0=$(cpu_ms)
  sleep 10
  c1=$(cpu_ms)
  p50=$(pct 0.5 < "$tmp/lvl") p99=$(pct 0.99 < "$tmp/lvl")
  first_p50=${first_p50:-$p50} first_p99=${first_p99:-$p99}
  row "create p50 at $count idle (ms, last 20)" "$p50" "$first_p50" "(anchor: first level)"
  row "create p99 at $count idle (ms, last 20)" "$p99" "$first_p99" "<= 2x at 5000 (anchor: first level)"
  row "idle CPU at $count, ms/s per 100 sandboxes" "$(awk -v a="$c0" -v b="$c1" -v n="$count" 'BEGIN {printf "%.2f", (b - a) / 10 / n * 100}')" "-" "<= 1"
  # a fresh sandbox's first command among $count idle ones: its copy-on-write faults each call
  # every VM's MMU notifier, so this is where the number of VMs shows (anchor: a second command)
  : > "$tmp/lf.first"; : > "$tmp/lf.second"
  for _ in $(seq 20); do
    t0=$(now)
    curl -s -o "$tmp/b" "${H[@]}" -d '{"templateID":"base","timeout":600}' "$U/sandboxes"
    id=$(sid "$tmp/b")
    curl -s -o /dev/null "${H[@]}" -d '{"cmd":"true"}' "$U/sandboxes/$id/commands"
    t1=$(now)
    curl -s -o /dev/null -w '%{time_total}\n' "${H[@]}" -d '{"cmd":"true"}' "$U/sandboxes/$id/commands" >> "$tmp/lf.second"
    awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >> "$tmp/lf.first"
    curl -s -o /dev/null -X DELETE "${H[@]}" "$U/sandboxes/$id"
    sleep 0.2 # the pool refills
  done
  row "create -> first command at $count idle, p50 (ms)" "$(pct 0.5 < "$tmp/lf.first")" "$(pct 0.5 < "$tmp/lf.second")" "(anchor: a second command)"
  row "memory per idle sandbox at $count (KiB)" "$(( ( $(pss_kib) - pss0 + $(kern_kib) - kern0 ) / count ))" "1024" "<= 1 MiB (PSS + KVM kernel)"
  row "  of which daemon PSS (KiB)" "$(( ( $(pss_kib) - pss0 ) / count ))" "-" ""
  row "  daemon threads / fds / maps at $count" "$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")/$(ls "/proc/$pid/fd" | wc -l)/$(wc -l < "/proc/$pid/maps")" "-" ""
  row "  host load average (1 min) at $count" "$(cut -d' ' -f1 /proc/loadavg)" "-" "(2 cores, shared)"
done
row "idle sandboxes reached" "$count" "5000" ">= 5000"
echo
printf '%-46s %12s %12s %7s  %s\n' figure value anchor ratio goal
for r in "${rows[@]}"; do echo "$r"; done
