#!/usr/bin/env bash
# The full crash loop of issue 22 §3: lelantosd killed with SIGKILL at random moments of a mixed
# load and restarted, 20 times (or $1), every acknowledged change checked after each restart
# (tests/e2e/test_e2e_crashloop.c; ctest runs it with 5). LEL_CRASH_SEED=N repeats a run's
# random choices. Needs /dev/kvm and a build (BUILD, default build/).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
[ -x "$BUILD/tests/test_e2e_crashloop" ] || { echo "build first: cmake -B $BUILD && make -C $BUILD -j2" >&2; exit 2; }
LEL_CRASH_KILLS=${1:-20} exec "$BUILD/tests/test_e2e_crashloop"
