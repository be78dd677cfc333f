#!/usr/bin/env bash
# Benchmark (not a test): sandboxes created from a ready template (the built-in `base`) on this
# machine's /dev/kvm.
#   - HTTP create from the template -> first command (`true`) answered: p50/p99 over N
#   - 100 creates at once: wall time and per-request p50/p99
#   - creates from a snapshot: the first one, then p50/p99 of the rest
#   - resident memory per idle sandbox (lelantosd RSS delta / count, and the host's memory in use,
#     KVM's included, / count) at each density level,
#     the service's CPU while they idle, the create latency p50/p99 of the last 20 creates at that
#     level, and the memory mappings and threads each sandbox adds to lelantosd
#   - resident memory per sandbox after a 32 MB workload, right after and once handed back
# Usage: bench/template_bench.sh [N=200] [levels="100 500"] [lelantosd binary]
# (N=0 skips the first part; CONCURRENT=0, SNAPSHOTS=0, WORKLOAD=0 in the environment skip
# the others.)
# Needs bash, curl and awk only, so it also runs inside tools/qemu-vm.sh.
set -euo pipefail
N=${1:-200}
LEVELS=${2:-"100 500"}
BIN=${3:-$(dirname "$0")/../build/src/lelantosd}
. "$(dirname "$0")/lib.sh"
trap bench_stop EXIT
bench_start_vm "$BIN" <<'YAML'
teams:
  max_sandboxes: 2000
YAML
now() { echo "${EPOCHREALTIME/,/.}"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
sys_used_kib() { awk '/^MemTotal/ {t = $2} /^MemAvailable/ {a = $2} END {print t - a}' /proc/meminfo; } # the kernel's share (KVM) too
meminfo() { awk '/^(Slab|KernelStack|PageTables|SecPageTables|AnonPages|Shmem|Cached):/ {sub(":", "", $1); print $1, $2}' /proc/meminfo; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # user + system, in USER_HZ (100/s on x86)
for _ in $(seq 1200); do
  curl -s "${H[@]}" "$U/templates/base" | grep -q '"buildStatus":"ready"' && break
  sleep 0.5
done
create() { curl -s "${H[@]}" -d '{"templateID":"base","timeout":3600}' "$U/sandboxes" | sed -n 's/.*"sandboxID":"\([a-z0-9]*\)".*/\1/p'; }

: > "$tmp/t1"
for i in $(seq "$N"); do
  t0=$(now)
  id=$(create)
  [ -n "$id" ] || { echo "create failed: $(tail -3 "$tmp/log")"; exit 1; }
  curl -s -o /dev/null "${H[@]}" -d '{"cmd":"true"}' "$U/sandboxes/$id/commands"
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >> "$tmp/t1"
  curl -s -o /dev/null -X DELETE "${H[@]}" "$U/sandboxes/$id"
done
[ "$N" -eq 0 ] || echo "create from template -> first command answered, $N runs: $(bench_stats < "$tmp/t1")"

CONCURRENT=${CONCURRENT:-100}
[ "$N" -gt 0 ] || : > "$tmp/t1"
t0=$(now)
seq "$CONCURRENT" | xargs -r -P 100 -I{} curl -s -o "$tmp/c{}" -w '%{http_code} %{time_total}\n' "${H[@]}" \
  -d '{"templateID":"base","timeout":3600}' "$U/sandboxes" > "$tmp/t2" || true
t1=$(now)
ok=$(awk '$1 == 201' "$tmp/t2" | wc -l)
[ "$CONCURRENT" -eq 0 ] || echo "$CONCURRENT concurrent creates: $ok created, wall $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", (b - a) * 1000}') ms, per request $(awk '{print $2}' "$tmp/t2" | bench_stats)"
if [ "$ok" -ne "$CONCURRENT" ]; then
  echo "answers (HTTP status: count):" $(awk '{print $1}' "$tmp/t2" | sort | uniq -c | awk '{printf "%s: %s, ", $2, $1}')
  grep -hv '"sandboxID"' /dev/null "$tmp"/c[0-9]* | sort | uniq -c | head -5 || true
  tail -5 "$tmp/log"
fi
for f in "$tmp"/c[0-9]*; do
  [ -e "$f" ] || continue
  id=$(sed -n 's/.*"sandboxID":"\([a-z0-9]*\)".*/\1/p' "$f")
  [ -z "$id" ] || curl -s -o /dev/null -X DELETE "${H[@]}" "$U/sandboxes/$id"
  rm -f "$f"
done

# Creates from a snapshot (SNAPSHOTS=0 skips): the first unpacks its memory, the rest map it.
SNAPSHOTS=${SNAPSHOTS:-20}
if [ "$SNAPSHOTS" -gt 0 ]; then
  src=$(create)
  curl -s -o /dev/null "${H[@]}" -d '{"cmd":"head -c 8000000 /dev/urandom > /tmp/state"}' "$U/sandboxes/$src/commands"
  snap=$(curl -s "${H[@]}" -d '{}' "$U/sandboxes/$src/snapshot" | sed -n 's/.*"snapshotID":"\([a-z0-9]*\)".*/\1/p')
  : > "$tmp/t4"
  ids4=()
  for i in $(seq "$SNAPSHOTS"); do
    t0=$(now)
    id=$(curl -s "${H[@]}" -d "{\"snapshotID\":\"$snap\",\"timeout\":3600}" "$U/sandboxes" | sed -n 's/.*"sandboxID":"\([a-z0-9]*\)".*/\1/p')
    curl -s -o /dev/null "${H[@]}" -d '{"cmd":"true"}' "$U/sandboxes/$id/commands"
    t1=$(now)
    [ -n "$id" ] || { echo "create from snapshot failed: $(tail -3 "$tmp/log")"; break; }
    if [ "$i" -eq 1 ]; then first=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) * 1000}')
    else awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >> "$tmp/t4"; fi
    ids4+=("$id")
  done
  echo "create from a snapshot (8 MB written after boot) -> first command: first ${first:-?} ms, then $(bench_stats < "$tmp/t4")"
  for id in "$src" "${ids4[@]}"; do curl -s -o /dev/null -X DELETE "${H[@]}" "$U/sandboxes/$id"; done
  curl -s -o /dev/null -X DELETE "${H[@]}" "$U/snapshots/$snap"
fi

# Sandboxes that ran a workload (WORKLOAD=0 skips): W sandboxes each write and remove a 32 MB
# file; RSS per sandbox right after, and once the metrics sampler (every 5 s) had them hand the
# freed memory back (free-page reporting).
WORKLOAD=${WORKLOAD:-10}
if [ "$WORKLOAD" -gt 0 ]; then
  sleep 1
  w0=$(rss_kib)
  idsw=()
  for i in $(seq "$WORKLOAD"); do
    id=$(create)
    [ -n "$id" ] || { echo "create for the workload failed: $(tail -3 "$tmp/log")"; break; }
    idsw+=("$id")
    curl -s -o /dev/null "${H[@]}" -d '{"cmd":"head -c 32000000 /dev/zero > /tmp/w && rm /tmp/w"}' "$U/sandboxes/$id/commands"
  done
  w1=$(rss_kib)
  sleep 12
  w2=$(rss_kib)
  n=${#idsw[@]}
  [ "$n" -eq 0 ] || echo "after a 32 MB workload, $n sandboxes: $(( (w1 - w0) / n )) KiB per sandbox right after, $(( (w2 - w0) / n )) KiB 12 s later (freed memory handed back)"
  for id in "${idsw[@]}"; do curl -s -o /dev/null -X DELETE "${H[@]}" "$U/sandboxes/$id"; done
fi

sleep 1
rss0=$(rss_kib)
sys0=$(sys_used_kib)
maps0=$(wc -l < "/proc/$pid/maps") threads0=$(ls "/proc/$pid/task" | wc -l)
meminfo > "$tmp/mi0"
count=0
for level in $LEVELS; do
  : > "$tmp/t3"
  while [ "$count" -lt "$level" ]; do
    t0=$(now)
    id=$(create)
    t1=$(now)
    [ -n "$id" ] || { echo "create $((count + 1)) failed: $(tail -3 "$tmp/log")"; break 2; }
    count=$((count + 1))
    [ $((level - count)) -ge 20 ] || awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >> "$tmp/t3"
  done
  sleep 2
  rss=$(rss_kib)
  sys=$(sys_used_kib)
  meminfo > "$tmp/mi1"
  c0=$(cpu_ticks)
  sleep 10
  c1=$(cpu_ticks)
  echo "$count idle sandboxes: lelantosd RSS $((rss0 / 1024)) -> $((rss / 1024)) MiB, $(( (rss - rss0) / count )) KiB per sandbox (host memory in use, kernel included: $(( (sys - sys0) / count )) KiB per sandbox); CPU while idle $((c1 - c0)) ms/s; last 20 creates $(bench_stats < "$tmp/t3")"
  echo "  of which (KiB per sandbox, /proc/meminfo):" $(awk -v n="$count" 'NR == FNR {a[$1] = $2; next} {printf "%s %+d, ", $1, ($2 - a[$1]) / n}' "$tmp/mi0" "$tmp/mi1")
  # the kernel limits that count per sandbox (vm.max_map_count, pid_max/threads-max): see lelantosd's start-up warning
  echo "  per sandbox: $(awk -v a="$maps0" -v b="$(wc -l < "/proc/$pid/maps")" -v n="$count" 'BEGIN {printf "%.1f", (b - a) / n}') memory mappings, $(awk -v a="$threads0" -v b="$(ls "/proc/$pid/task" | wc -l)" -v n="$count" 'BEGIN {printf "%.2f", (b - a) / n}') threads"
done
