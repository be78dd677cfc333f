#!/usr/bin/env bash
# tools/install.sh staged into a temp root (--root: no user, no systemctl): the files land with
# their modes, the installed daemon starts on the installed config and data dir and lelctl
# talks to it, and a second install (an upgrade) keeps the operator's config.
#   tests/e2e/test_install.sh BUILD_DIR
set -uo pipefail
build=$(realpath "$1")
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/lel-install-XXXXXX)
pid=
fail=0
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
check() { if eval "$1"; then :; else echo "FAILED: $1"; fail=1; fi; }
mode() { stat -c %a "$1"; }

bash "$src/tools/install.sh" --root "$tmp" --build-dir "$build" || { echo "FAILED: install.sh"; exit 1; }
check '[ -x "$tmp/usr/local/bin/lelantosd" ] && [ -x "$tmp/usr/local/bin/lelctl" ]'
check '[ "$(mode "$tmp/var/lib/lelantos")" = 700 ]'
check '[ "$(mode "$tmp/etc/lelantos/lelantosd.yaml")" = 640 ]'
check 'grep -q "^data_dir: /var/lib/lelantos" "$tmp/etc/lelantos/lelantosd.yaml"'
check 'grep -q "complete -F _lelctl lelctl" "$tmp/usr/share/bash-completion/completions/lelctl"'
if [ -f "$src/configs/lelantosd.service" ]; then
    check '[ -f "$tmp/etc/systemd/system/lelantosd.service" ]'
fi

# the installed daemon on the installed config (its data dir moved into the staging root)
for try in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    "$tmp/usr/local/bin/lelantosd" --config "$tmp/etc/lelantos/lelantosd.yaml" --data-dir "$tmp/var/lib/lelantos" \
        --listen "127.0.0.1:$port" > "$tmp/log" 2>&1 &
    pid=$!
    # ours once it says it listens there (another process on a port taken at random may answer /health too)
    for i in $(seq 200); do
        grep -q "listening on 127.0.0.1:$port" "$tmp/log" && curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && break
    pid=
done
check '[ -n "$pid" ]'
check 'grep -q "^lelantos-data-format 1" "$tmp/var/lib/lelantos/FORMAT"'
key=$(cat "$tmp/var/lib/lelantos/initial-api-key" 2>/dev/null)
check '"$tmp/usr/local/bin/lelctl" --url "http://127.0.0.1:$port" --api-key "$key" template list -q | grep -qx base'

# an upgrade: binaries replaced, the operator's config kept, the new defaults beside it
echo "# the operator's own line" >> "$tmp/etc/lelantos/lelantosd.yaml"
bash "$src/tools/install.sh" --root "$tmp" --build-dir "$build" > "$tmp/second" || { echo "FAILED: second install.sh"; fail=1; }
check 'grep -q "the operator.s own line" "$tmp/etc/lelantos/lelantosd.yaml"'
check 'grep -q "kept .*lelantosd.yaml" "$tmp/second"'
check '! grep -q "the operator.s own line" "$tmp/etc/lelantos/lelantosd.yaml.dist"'
check 'curl -sf "http://127.0.0.1:$port/health" >/dev/null' # the running daemon kept its binary

# bad use: not built
check '! bash "$src/tools/install.sh" --root "$tmp/x" --build-dir /nonexistent 2>/dev/null'
[ $fail -eq 0 ] && echo "test_install: all passed"
[ $fail -eq 0 ] || { echo "daemon log:"; tail -20 "$tmp/log"; }
exit $fail
