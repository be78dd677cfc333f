#!/usr/bin/env bash
# Checks that calls flow one way between the source folders: lists the `#include "../x/..."`
# edges between the service's component folders (src/<folder>) and fails on any cycle; and
# between the guest kernel's folders (src/guest/<folder>) fails on an include that goes up the
# guest's layers (sys, agent -> proc, fs, net -> mm -> arch) unless it is one of the exceptions
# named below (each is explained in src/guest/README.md). Run by tools/test.sh (and so by CI).
#   tools/check-layers.sh [-v]     -v: print the edges
set -euo pipefail
cd "$(dirname "$0")/.."
verbose=${1:-}

# Prints "from to" for each include of another folder below $1 (folders one level under it).
edges() {
    local root=$1
    find "$root" -mindepth 2 -type f \( -name '*.c' -o -name '*.h' -o -name '*.S' \) | while read -r f; do
        local rel=${f#"$root"/}
        local from=${rel%%/*}
        grep -oE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"\.\./[a-z_]+/' "$f" 2>/dev/null |
            sed -E 's|.*"\.\./([a-z_]+)/|\1|' | while read -r to; do
            [ "$to" != "$from" ] && echo "$from $to"
        done
    done | sort -u
}

status=0
service=$(edges src | grep -v '^guest ' || true)
[ -n "$verbose" ] && { echo "service folders:"; echo "$service" | sed 's/ / -> /; s/^/  /'; }
# a cycle: some folder reaches itself (depth-first search in awk)
cycle=$(echo "$service" | awk '
    NF == 2 { adj[$1] = adj[$1] " " $2; nodes[$1]; nodes[$2] }
    function visit(n, path,    i, k, parts) {
        if (state[n] == 1) { found = path " -> " n; return 1 }
        if (state[n] == 2) return 0
        state[n] = 1
        k = split(adj[n], parts, " ")
        for (i = 1; i <= k; i++)
            if (visit(parts[i], path " -> " n)) return 1
        state[n] = 2
        return 0
    }
    END { for (n in nodes) if (visit(n, "")) { print substr(found, 5); exit } }')
if [ -n "$cycle" ]; then
    echo "check-layers: include cycle between service folders: $cycle"
    status=1
fi

# The guest's layers; an include may go down or sideways within a layer, never up.
rank() {
    case $1 in
    lib | arch) echo 0 ;; mm) echo 1 ;; proc | fs | net) echo 2 ;; sys | agent) echo 3 ;; *) echo -1 ;;
    esac
}
# from->to pairs allowed against the order (see src/guest/README.md, "Layers")
exceptions=" "
if [ -d src/guest ]; then
    guest=$(edges src/guest || true)
    [ -n "$verbose" ] && { echo "guest folders:"; echo "$guest" | sed 's/ / -> /; s/^/  /'; }
    while read -r from to; do
        [ -z "$from" ] && continue
        rf=$(rank "$from") rt=$(rank "$to")
        if [ "$rf" -ge 0 ] && [ "$rt" -gt "$rf" ] && [[ $exceptions != *" $from->$to "* ]]; then
            echo "check-layers: the guest's $from/ includes $to/, a layer above it"
            status=1
        fi
    done <<<"$guest"
fi
[ "$status" -eq 0 ] && echo "check-layers: ok (no cycle between service folders; guest layers in order)"
exit "$status"
