#!/usr/bin/env bash
# Benchmark (not a test): sandboxes of a template built from a Debian image (python3, node,
# bash, git: tools/build-image.sh, cached) against `base`, on this machine's /dev/kvm, with the
# anchor measured in the same run.
#   - import of the image's rootfs tar -> ready template: seconds (the rofs build included)
#   - create from the template -> first command (`true`) answered: p50/p99 over N, base and image
#   - `python3 -c pass` and `node -e 0` in a sandbox (p50 over 20) and on this host
#   - a CPU-bound python loop in a sandbox and on this host (its own time, best of 5)
#   - M idle sandboxes of each: lelantosd's proportional resident memory (PSS: a page that
#     100 sandboxes map counts a hundredth in each; RSS would count it 100 times), anonymous and
#     file-backed, per sandbox, and the host's memory in use (the kernel's: KVM's page tables)
#     per sandbox; then the same after each ran `python3 -c pass` once, and how much of the
#     image file is in the page cache (resident once, however many sandboxes map it)
# Usage: bench/image_bench.sh [N=50] [M=100] [lelantosd binary]; MEM=256: the template's memoryMB
set -euo pipefail
N=${1:-50}
M=${2:-100}
BIN=${3:-$(dirname "$0")/../build/src/lelantosd}
TAR=$(bash "$(dirname "$0")/../tools/build-image.sh" | tail -1)
[ -f "$TAR" ] || { echo "no image (tools/build-image.sh failed)"; exit 1; }
. "$(dirname "$0")/lib.sh"
trap bench_stop EXIT
bench_start_vm "$BIN" <<'YAML'
teams:
  max_sandboxes: 1000
YAML
now() { echo "${EPOCHREALTIME/,/.}"; }
pss() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/smaps_rollup"; } # Pss_Anon, Pss_File (KiB)
sys_used() { awk '/^MemTotal/ {t = $2} /^MemAvailable/ {a = $2} END {print t - a}' /proc/meminfo; } # page cache excluded
for _ in $(seq 600); do curl -s "${H[@]}" "$U/templates/base" | grep -q '"buildStatus":"ready"' && break; sleep 0.5; done

t0=$(now)
curl -s -o /dev/null -f "${H[@]}" -T "$TAR" "$U/images/debian:12"
curl -s -o /dev/null -f "${H[@]}" -d "{\"name\":\"py\",\"memoryMB\":${MEM:-256},\"fromImage\":\"debian:12\"}" "$U/templates"
for _ in $(seq 1200); do
  st=$(curl -s "${H[@]}" "$U/templates/py" | sed -n 's/.*"buildStatus":"\([a-z]*\)".*/\1/p')
  [ "$st" = ready ] || [ "$st" = error ] && break
  sleep 0.1
done
t1=$(now)
[ "$st" = ready ] || { echo "template build failed: $(curl -s "${H[@]}" "$U/templates/py")"; exit 1; }
echo "import of a $(( $(stat -c %s "$TAR") >> 20 )) MB rootfs tar -> ready template: $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s"
img=$(ls "$tmp"/data/images/*/rootfs-*.lrofs | head -1)
echo "root filesystem image: $(( $(stat -c %s "$img") >> 20 )) MiB"

create() { curl -s "${H[@]}" -d "{\"templateID\":\"$1\",\"timeout\":3600}" "$U/sandboxes" | sed -n 's/.*"sandboxID":"\([a-z0-9]*\)".*/\1/p'; }
cmd() { curl -s "${H[@]}" -d "{\"cmd\":\"$2\"}" "$U/sandboxes/$1/commands"; }
for tpl in base py; do
  : > "$tmp/t"
  for i in $(seq "$N"); do
    t0=$(now)
    id=$(create "$tpl")
    [ -n "$id" ] || { echo "create failed: $(tail -3 "$tmp/log")"; exit 1; }
    cmd "$id" true > /dev/null
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >> "$tmp/t"
    curl -s -o /dev/null -X DELETE "${H[@]}" "$U/sandboxes/$id"
  done
  echo "create from $tpl -> first command answered, $N runs: $(bench_stats < "$tmp/t")"
done

# start-up inside a sandbox (the guest's own measure, in its command's durationMs) and here
id=$(create py)
for prog in "python3 -c pass" "node -e 0"; do
  cmd "$id" "$prog" > /dev/null # the first run faults the image's pages in
  : > "$tmp/g"
  for i in $(seq 20); do cmd "$id" "$prog" | sed -n 's/.*"durationMs":\([0-9]*\).*/\1/p' >> "$tmp/g"; echo >> "$tmp/g"; done
  : > "$tmp/h"
  for i in $(seq 20); do t0=$(now); /usr/bin/$prog; t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%d\n", (b - a) * 1000}' >> "$tmp/h"; done
  sed -i '/^$/d' "$tmp/g"
  echo "$prog: sandbox p50 (the command's durationMs, sh -c included) $(sort -n "$tmp/g" | awk '{v[NR]=$1} END {print v[int(NR/2)+1]}') ms, host p50 $(sort -n "$tmp/h" | awk '{v[NR]=$1} END {print v[int(NR/2)+1]}') ms"
done
# a CPU-bound python loop: its own time (perf_counter around the loop), best of 5 each side
loop='import time
t = time.perf_counter()
s = 0
for i in range(3000000): s += i * i % 7
print(int((time.perf_counter() - t) * 1000))'
: > "$tmp/g"; : > "$tmp/h"
for i in $(seq 5); do
  jq -n --arg c "python3 -c '$loop'" '{cmd: $c}' | curl -s "${H[@]}" -d @- "$U/sandboxes/$id/commands" | jq -r .stdout >> "$tmp/g"
  /usr/bin/python3 -c "$loop" >> "$tmp/h" # (Debian's, as in the image: not a PATH one of another build)
done
g=$(grep . "$tmp/g" | sort -n | head -1) h=$(grep . "$tmp/h" | sort -n | head -1) # (jq's stdout ends in an empty line)
echo "a CPU-bound python loop: sandbox $g ms, host $h ms (best of 5): $(awk -v g="$g" -v h="$h" 'BEGIN {printf "%.2f", h / g}')x the host's speed"
curl -s -o /dev/null -X DELETE "${H[@]}" "$U/sandboxes/$id"

# idle sandboxes: memory per sandbox, base against the image's
for tpl in base py; do
  sleep 2
  a0=$(pss Pss_Anon) f0=$(pss Pss_File) s0=$(sys_used)
  ids=()
  for i in $(seq "$M"); do
    id=$(create "$tpl")
    [ -n "$id" ] || { echo "create $i failed: $(tail -3 "$tmp/log")"; break; }
    ids+=("$id")
  done
  sleep 7 # the metrics sampler has them hand back what they freed
  a1=$(pss Pss_Anon) f1=$(pss Pss_File) s1=$(sys_used)
  n=${#ids[@]}
  echo "$n idle sandboxes of $tpl: PSS $(( (a1 - a0) / n )) KiB anonymous + $(( (f1 - f0) / n )) KiB file-backed per sandbox; host memory in use $(( (s1 - s0) / n )) KiB per sandbox"
  if [ "$tpl" = py ]; then
    for id in "${ids[@]}"; do cmd "$id" "python3 -c pass" > /dev/null; done
    sleep 7
    a2=$(pss Pss_Anon) f2=$(pss Pss_File) s2=$(sys_used)
    echo "  after each ran python3 -c pass: PSS $(( (a2 - a0) / n )) KiB anonymous + $(( (f2 - f0) / n )) KiB file-backed per sandbox; host memory in use $(( (s2 - s0) / n )) KiB per sandbox"
    echo "  the image in the page cache: $(fincore -b -n -o RES "$img" | awk '{printf "%d", $1 / 1048576}') MiB of $(( $(stat -c %s "$img") >> 20 )) MiB, once for all $n"
  fi
  for id in "${ids[@]}"; do curl -s -o /dev/null -X DELETE "${H[@]}" "$U/sandboxes/$id"; done
done
