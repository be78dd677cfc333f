#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install what is missing, build, and run the whole
# test suite with ctest three times over: a normal build, an ASan+UBSan build, and a TSan build
# of the actor runtime's stress test, then each libFuzzer target for LEL_FUZZ_SECONDS (20). Exits
# non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/check-layers.sh
jobs=$(nproc)
status=0
run() { # name, cmake args...
  local dir=build-$1; shift
  echo "=== $dir: configure and build"
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "=== $dir: ctest"
  (cd "$dir" && ctest --output-on-failure --timeout 600) || status=1
}
run test -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp" \
  run asan -DCMAKE_BUILD_TYPE=Debug -DLEL_SANITIZE=address
TSAN_OPTIONS=halt_on_error=1 run tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEL_SANITIZE=thread
# the libFuzzer targets (tests/fuzz, clang, ASan+UBSan), each for a bounded time from its corpus
echo "=== build-fuzz: fuzz targets, ${LEL_FUZZ_SECONDS:-20} s each"
CC=clang cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DLEL_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
LEL_JOBS=$jobs tests/fuzz/run.sh -b build-fuzz "${LEL_FUZZ_SECONDS:-20}" || status=1
if [ "$status" -ne 0 ]; then echo "=== some tests FAILED"; else echo "=== all test builds passed"; fi
exit "$status"
