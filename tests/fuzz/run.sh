#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz for a bounded time each and reports, per target, the
# runs, execs/s and findings. Usage: tests/fuzz/run.sh [-b BUILD_DIR] SECONDS [TARGET...]
# (default: every target; BUILD_DIR default build-fuzz, configured with clang and LEL_FUZZ=ON
# when missing). Each run starts from the corpus in the tree (tests/fuzz/corpus/<target>) in a
# scratch copy, so the tree is not changed; a finding is kept in FINDINGS_DIR (default
# build-fuzz/findings/<target>/) and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=build-fuzz
if [ "${1:-}" = "-b" ]; then build=$2; shift 2; fi
secs=${1:?usage: run.sh [-b BUILD_DIR] SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for d in tests/fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DLEL_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"${LEL_JOBS:-2}" --target "${targets[@]}" >/dev/null
findings_root=${FINDINGS_DIR:-$build/findings}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
printf '%-16s %10s %10s %8s  %s\n' target runs execs/s cov findings
for t in "${targets[@]}"; do
  out=$findings_root/$t
  rm -rf "$out" # each run's findings replace the last run's (fixed ones live on in the corpus)
  mkdir -p "$out" "$scratch/$t"
  log=$scratch/$t.log
  # leaks are findings too; -rss_limit_mb bounds a target that would eat the CI machine
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    timeout $((secs + 120)) "$build/tests/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$out/" -print_final_stats=1 "$scratch/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 || true
  runs=$(awk '/stat::number_of_executed_units:/{print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec:/{print $2}' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  found=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  printf '%-16s %10s %10s %8s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$found"
  if [ "$found" -ne 0 ] || [ -z "$runs" ]; then
    status=1
    grep -m1 -E 'ERROR|runtime error|deadly signal' "$log" || tail -5 "$log"
    echo "  findings in $out/"
  fi
done
exit $status
