#!/usr/bin/env bash
# Benchmark (not a test): cluster mode on loopback. 3 etcd members (Debian's etcd) and 3
# lelantosd nodes (API-only sandboxes, vmm.backend none, so the figures are the request path's,
# not the VMs'). Measures, with wrk (HTTP/1.1, --latency):
#   - POST /sandboxes throughput and p99 through one node (b, placement by free memory: most of
#     its creates are forwarded to another node) vs spread over the three (a and c place their
#     creates locally, so the bench knows sandboxes on each node);
#   - GET /sandboxes/{id} of ids picked at random among all nodes' sandboxes (2 of 3 owned
#     elsewhere, so forwarded) through one node vs spread over the three;
#   - the latency a forwarded request adds: one connection, GET of a sandbox node a owns, sent to
#     a (direct) and to b (forwarded to a), p50 and p99 (goal: +0.3 ms p50 or less);
#   - the time from kill -9 of node c to its sandbox reading "lost" on node a (anchor: the lease
#     TTL, cluster.lease_ttl_s).
# Prints one table: figure, value, anchor, ratio, goal. The machine's other load shows in it.
# Usage: bench/cluster_bench.sh [seconds per run, default 5]
# LEL_BIN: the lelantosd to run (default build/src/lelantosd, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-5}
TTL=3
BIN=${LEL_BIN:-build/src/lelantosd}
ETCD=${LEL_ETCD:-/usr/bin/etcd}
command -v wrk >/dev/null || { echo "cluster_bench: needs wrk (apt-get install wrk)"; exit 1; }
[ -x "$ETCD" ] || { echo "cluster_bench: needs etcd (Debian's etcd-server)"; exit 1; }
if [ ! -x "$BIN" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j2 --target lelantosd >/dev/null
fi

tmp=$(mktemp -d /tmp/lel-cbench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- etcd: 3 members ----
declare -a CP PP
ic=""
for i in 0 1 2; do CP[$i]=$(port); PP[$i]=$(port); ic+="${ic:+,}e$i=http://127.0.0.1:${PP[$i]}"; done
for i in 0 1 2; do
  "$ETCD" --name e$i --data-dir "$tmp/e$i" --listen-client-urls http://127.0.0.1:${CP[$i]} \
    --advertise-client-urls http://127.0.0.1:${CP[$i]} --listen-peer-urls http://127.0.0.1:${PP[$i]} \
    --initial-advertise-peer-urls http://127.0.0.1:${PP[$i]} --initial-cluster-token "$tmp" \
    --initial-cluster "$ic" --initial-cluster-state new --logger=zap --log-outputs=stderr --log-level=warn \
    >"$tmp/e$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 200); do
  curl -sf -X POST -d '{}' http://127.0.0.1:${CP[0]}/v3/maintenance/status 2>/dev/null | grep -q '"leader"' && break
  sleep 0.1
done

# ---- 3 nodes ----
declare -a NP NPID
for i in 0 1 2; do
  NP[$i]=$(port)
  n=$(printf "\\x$(printf %x $((97 + i)))")
  cat > "$tmp/n$i.yaml" <<YAML
http:
  threads: 2
workers: 2
vmm:
  backend: none
rate_limits:
  general_per_s: 100000000
  auth_per_s: 100000000
teams:
  max_sandboxes: 1000000
admin_token: bench-admin-token
cluster:
  etcd: [http://127.0.0.1:${CP[$i]}, http://127.0.0.1:${CP[$(((i + 1) % 3))]}, http://127.0.0.1:${CP[$(((i + 2) % 3))]}]
  node_name: $n
  secret: bench-cluster-secret
  lease_ttl_s: $TTL
  placement: $([ $i = 1 ] && echo most_free_memory || echo local)
YAML
  "$BIN" --config "$tmp/n$i.yaml" --listen 127.0.0.1:${NP[$i]} --data-dir "$tmp/d$i" >"$tmp/n$i.log" 2>&1 &
  NPID[$i]=$!
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:${NP[$i]}/health" >/dev/null && break; sleep 0.1; done
done
KEY=$(cat "$tmp/d0/initial-api-key")
U=(http://127.0.0.1:${NP[0]} http://127.0.0.1:${NP[1]} http://127.0.0.1:${NP[2]})
for _ in $(seq 50); do
  [ "$(curl -sf -H 'X-Admin-Token: bench-admin-token' "${U[2]}/cluster/nodes" | grep -o '"name"' | wc -l)" = 3 ] && break
  sleep 0.2
done
sleep 1 # b and c took the cluster's key by watch

# ---- wrk helpers ----
to_ms() { # "1.23ms" | "456.00us" | "1.2s" -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
# wrk_run OUT URL SCRIPT [conns]: requests/s, p50, p99 (ms) into OUT
wrk_run() {
  wrk -t1 -c"${4:-8}" -d"${DUR}s" --latency -s "$3" "$2" > "$1" 2>&1 || true
}
rps_of() { awk '/^Requests\/sec/ { print $2 }' "$1"; }
pct_of() { to_ms "$(awk -v p="$2%" '$1 == p { print $2 }' "$1")"; }

cat > "$tmp/create.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"templateID":"base","timeout":3600}'
wrk.headers["X-API-Key"] = "$KEY"
wrk.headers["Content-Type"] = "application/json"
LUA

# ---- creates: one node vs three ----
wrk_run "$tmp/c1" "${U[1]}/sandboxes" "$tmp/create.lua"
c1_rps=$(rps_of "$tmp/c1"); c1_p99=$(pct_of "$tmp/c1" 99)
wp=(); for i in 0 1 2; do wrk_run "$tmp/c3.$i" "${U[$i]}/sandboxes" "$tmp/create.lua" & wp+=($!); done; wait "${wp[@]}"
c3_rps=$(cat "$tmp"/c3.* | awk '/^Requests\/sec/ { s += $2 } END { printf "%.1f", s }')
c3_p99=$(for i in 0 1 2; do pct_of "$tmp/c3.$i" 99; echo; done | sort -n | tail -1)

# ---- GETs of sandboxes on every node ----
ids=()
for k in $(seq 30); do
  ids+=("$(curl -sf -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
    -d '{"templateID":"base","timeout":3600,"metadata":{"bench":"get"}}' \
    "${U[$((k % 3))]}/sandboxes" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sandboxID"])')")
done
sleep 1 # the catalog reaches every node by watch
lua_ids=$(printf '"%s",' "${ids[@]}")
cat > "$tmp/get.lua" <<LUA
local ids = {${lua_ids%,}}
wrk.headers["X-API-Key"] = "$KEY"
request = function() return wrk.format("GET", "/sandboxes/" .. ids[math.random(#ids)]) end
LUA
wrk_run "$tmp/g1" "${U[0]}" "$tmp/get.lua"
g1_rps=$(rps_of "$tmp/g1"); g1_p99=$(pct_of "$tmp/g1" 99)
wp=(); for i in 0 1 2; do wrk_run "$tmp/g3.$i" "${U[$i]}" "$tmp/get.lua" & wp+=($!); done; wait "${wp[@]}"
g3_rps=$(cat "$tmp"/g3.* | awk '/^Requests\/sec/ { s += $2 } END { printf "%.1f", s }')
g3_p99=$(for i in 0 1 2; do pct_of "$tmp/g3.$i" 99; echo; done | sort -n | tail -1)

# ---- the added latency of a forwarded request: a sandbox a owns, via a and via b ----
# a node lists its own sandboxes without "node" (the catalog's entries carry the owner's name)
own_of() { # node index -> the id of one of the 30 it owns, or "" (its list names other nodes' owners in "node")
  curl -sf -H "X-API-Key: $KEY" "${U[$1]}/sandboxes?limit=100&metadata=bench%3Dget" | python3 -c '
import json, sys
own = [s["sandboxID"] for s in json.load(sys.stdin) if "node" not in s]
print(own[0] if own else "")'
}
best=$(own_of 0)
cat > "$tmp/one.lua" <<LUA
wrk.headers["X-API-Key"] = "$KEY"
LUA
wrk_run "$tmp/d_a" "${U[0]}/sandboxes/$best" "$tmp/one.lua" 1
wrk_run "$tmp/d_b" "${U[1]}/sandboxes/$best" "$tmp/one.lua" 1
da50=$(pct_of "$tmp/d_a" 50); db50=$(pct_of "$tmp/d_b" 50)
da99=$(pct_of "$tmp/d_a" 99); db99=$(pct_of "$tmp/d_b" 99)
add50=$(awk -v a="$da50" -v b="$db50" 'BEGIN { printf "%.3f", b - a }')
add99=$(awk -v a="$da99" -v b="$db99" 'BEGIN { printf "%.3f", b - a }')

# ---- death to lost: kill -9 of c, poll one of its sandboxes through a ----
on_c=$(own_of 2)
[ -n "$best" ] && [ -n "$on_c" ] || { echo "cluster_bench: no sandbox found on node a or c"; exit 1; }
lost_ms=$(python3 - "${U[0]}" "$KEY" "$on_c" "${NPID[2]}" <<'PY'
import json, os, signal, sys, time, urllib.request
u, key, sid, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def state():
    r = urllib.request.Request(f"{u}/sandboxes/{sid}", headers={"X-API-Key": key})
    try:
        return json.load(urllib.request.urlopen(r, timeout=2)).get("state")
    except Exception:
        return None
os.kill(pid, signal.SIGKILL)
t0 = time.monotonic()
while time.monotonic() - t0 < 30:
    if state() == "lost":
        print(f"{(time.monotonic() - t0) * 1000:.0f}")
        sys.exit(0)
    time.sleep(0.02)
print("-1")
PY
)

# ---- the table ----
row() { printf '%-44s %14s %22s %10s %s\n' "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
echo
echo "cluster_bench: 3 etcd members + 3 nodes on loopback, API-only sandboxes, wrk ${DUR}s per run, $(nproc) cores"
row "figure" "value" "anchor" "ratio" "goal"
row "creates/s, through b (8 conns)" "$c1_rps" "-" "-" "-"
row "creates/s, three nodes (3x8 conns)" "$c3_rps" "through b $c1_rps" "$(ratio "$c3_rps" "$c1_rps")" "> 1 with spare cores"
row "create p99 ms, one node / three" "$c1_p99 / $c3_p99" "-" "$(ratio "$c3_p99" "$c1_p99")" "-"
row "GETs/s, one node (2/3 forwarded)" "$g1_rps" "-" "-" "-"
row "GETs/s, three nodes (2/3 forwarded)" "$g3_rps" "one node $g1_rps" "$(ratio "$g3_rps" "$g1_rps")" "> 1 with spare cores"
row "GET p99 ms, one node / three" "$g1_p99 / $g3_p99" "-" "$(ratio "$g3_p99" "$g1_p99")" "-"
row "GET p50 ms, owner direct / via b" "$da50 / $db50" "direct $da50" "$(ratio "$db50" "$da50")" "-"
row "added p50 ms of a forwarded GET" "$add50" "direct $da50" "-" "<= 0.3 ms"
row "added p99 ms of a forwarded GET" "$add99" "direct $da99" "-" "-"
row "kill -9 to 'lost' ms (via another node)" "$lost_ms" "lease TTL $((TTL * 1000))" "$(ratio "$lost_ms" $((TTL * 1000)))" "<= TTL (ratio <= 1)"
