#!/usr/bin/env bash
# Runs CPython's regression tests (Debian's libpython3.11-testsuite) in a sandbox, one module
# per command, and writes what each gave: a line "<module> <pass|fail|skip|timeout|crash>
# <tests run> <failures+errors> <skipped> <seconds>", then a summary. Not part of the ctest
# suite (the whole suite takes longer than CI has): test_e2e_vm_suites runs the modules that
# must pass; this is for the rest, and for the list in src/guest/README.md.
#
#   tools/cpython-suite.sh [-o OUT] [-t SECONDS] [-b LELANTOSD] [module ...]
#     -o  the results file (default cpython-suite.txt); each module's output goes beside it,
#         in OUT.d/<module>.log
#     -t  the limit for one module (default 300 s; regrtest's own --timeout is 20 s less)
#     -b  the lelantosd binary (default build/src/lelantosd)
#   With no modules, every module `python3 -m test --list-tests` names.
# The image is tools/build-image.sh's with the test suite, npm and netbase added (the variant
# test_e2e_vm_suites uses, cached); run as root on a machine with /dev/kvm.
set -euo pipefail
cd "$(dirname "$0")/.."
out=cpython-suite.txt
limit=300
bin=build/src/lelantosd
while getopts "o:t:b:h" opt; do
    case $opt in
    o) out=$OPTARG ;;
    t) limit=$OPTARG ;;
    b) bin=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
command -v jq >/dev/null || { echo "cpython-suite: jq is missing" >&2; exit 1; }
TAR=$(bash tools/build-image.sh -a "libpython3.11-testsuite npm netbase" | tail -1)
[ -f "$TAR" ] || { echo "cpython-suite: no image (tools/build-image.sh failed)" >&2; exit 1; }
. bench/lib.sh
trap bench_stop EXIT
bench_start_vm "$bin" <<'YAML'
templates:
  build_timeout_s: 900
YAML
curl -sf -o /dev/null "${H[@]}" -T "$TAR" "$U/images/debian-test:12"
curl -sf -o /dev/null "${H[@]}" -d '{"name":"pytest","memoryMB":2048,"fromImage":"debian-test:12"}' "$U/templates"
for _ in $(seq 3000); do
    st=$(curl -s "${H[@]}" "$U/templates/pytest" | jq -r .buildStatus)
    [ "$st" = ready ] || [ "$st" = error ] && break
    sleep 0.2
done
[ "$st" = ready ] || { echo "cpython-suite: template build: $st" >&2; exit 1; }

sandbox() { curl -s "${H[@]}" -d '{"templateID":"pytest","timeout":7200}' "$U/sandboxes" | jq -r .sandboxID; }
run() { # sandbox, command, limit (ms): the JSON result
    jq -n --arg c "$2" --argjson t "$3" '{cmd:$c, timeoutMs:$t}' |
        curl -s -m $(( $3 / 1000 + 30 )) "${H[@]}" -d @- "$U/sandboxes/$1/commands" || echo '{}'
}
sid=$(sandbox)
if [ $# -eq 0 ]; then
    set -- $(run "$sid" "python3 -m test --list-tests" 120000 | jq -r '.stdout // ""' | grep '^test_')
fi
mkdir -p "$out.d"
: > "$out"
inner=$(( limit > 40 ? limit - 20 : limit ))
for m in "$@"; do
    t0=$(date +%s)
    res=$(run "$sid" "cd /tmp && python3 -m test -u none --timeout $inner -v $m > /tmp/rt.log 2>&1; rc=\$?; tail -c 400000 /tmp/rt.log; exit \$rc" $(( limit * 1000 )))
    secs=$(( $(date +%s) - t0 ))
    log=$(jq -r '.stdout // ""' <<<"$res")
    printf '%s\n%s\n' "$log" "$(jq -r '.stderr // .message // ""' <<<"$res")" > "$out.d/$m.log"
    code=$(jq -r '.exitCode // "none"' <<<"$res")
    ran=$(grep -oE '^Ran [0-9]+' <<<"$log" | tail -1 | cut -d' ' -f2 || true); ran=${ran:-0}
    bad=$(grep -cE '^(FAIL|ERROR): ' <<<"$log" || true)
    skipped=$(grep -oE 'skipped=[0-9]+' <<<"$log" | tail -1 | cut -d= -f2 || true); skipped=${skipped:-0}
    if grep -q "$m skipped" <<<"$log"; then verdict=skip
    elif [ "$code" = 0 ]; then verdict=pass
    elif [ "$(jq -r '.timedOut // false' <<<"$res")" = true ] || grep -q 'Timeout (' <<<"$log"; then verdict=timeout
    elif [ "$code" = 2 ] || [ "$code" = 1 ]; then verdict=fail
    else verdict=crash
    fi
    echo "$m $verdict $ran $bad $skipped $secs" | tee -a "$out"
    # a module that ended the sandbox (or left it wedged) gets the next one a fresh sandbox
    if [ "$code" = none ] || [ "$verdict" = timeout ] || [ "$verdict" = crash ]; then
        curl -s -o /dev/null -X DELETE "${H[@]}" "$U/sandboxes/$sid"
        sid=$(sandbox)
    fi
done
echo "cpython-suite: $(grep -c ' pass ' "$out") pass, $(grep -c ' fail ' "$out") fail, $(grep -c ' skip ' "$out") skipped whole, $(grep -cE ' (timeout|crash) ' "$out") timed out or crashed, of $(wc -l < "$out") modules"
