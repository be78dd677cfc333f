#!/usr/bin/env bash
# Benchmark (not a test): sandbox networking, each figure next to an anchor measured in the
# same run on this machine, and the ratio (issue 20's goals in brackets).
#  - inbound small GETs (wrk, HTTP/1.1) through lelantosd (Host <port>-<id>.<domain>) to busybox
#    httpd in a sandbox, vs the same httpd run on the host and reached directly: req/s, p99
#    [>= 0.5x]; a 128 MiB download (the base sandbox has 256 MiB of memory, its disk included) the same two ways: MB/s [>= 1 GB/s]
#  - outbound: connect + first byte from the sandbox through the host gateway to an echo server
#    on 127.0.0.1, vs the same program on the host [<= 2x + 100 us]; 256 MiB guest -> host
#    server: MB/s [>= 1 GB/s]
#  - what explains them: the cost of one syscall round trip in the sandbox vs on the host (each
#    connect, poll, write, read, close and each fork of a forking server pays it)
# Loopback only: the sandbox reaches the host through network.host_gateway (10.0.2.2).
# Usage: bench/net_bench.sh [seconds per wrk run, default 5] [lelantosd binary, default build-release's]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-5}
BIN=${2:-./build-release/src/lelantosd}
[ -c /dev/kvm ] || { echo "net_bench: needs /dev/kvm (sandboxes are microVMs)"; exit 0; }
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j"$(nproc)" --target lelantosd test_vsock >/dev/null
GN=build-release/tests/guest_net.elf

tmp=$(mktemp -d /tmp/lel-netbench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
LP=$(port) HP=$(port) EP=$(port) SP=$(port) SP2=$(port)
cat > "$tmp/lel.yaml" <<YAML
rate_limits:
  general_per_s: 100000000
network:
  host_gateway: 10.0.2.2
  dns_upstream: false
YAML
"$BIN" --config "$tmp/lel.yaml" --listen 127.0.0.1:$LP --data-dir "$tmp/data" >"$tmp/lel.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$LP/health" >/dev/null && break; sleep 0.1; done
KEY=$(cat "$tmp/data/initial-api-key")
API="http://127.0.0.1:$LP"
SID=$(curl -sf -H "X-API-Key: $KEY" -d '{"timeout":3600,"templateID":"base"}' "$API/sandboxes" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["sandboxID"])')
cmd() { # runs a shell line in the sandbox, prints its stdout
    python3 -c 'import json,sys; print(json.dumps({"cmd": sys.argv[1], "timeoutMs": 600000}))' "$1" |
        curl -s -H "X-API-Key: $KEY" --data-binary @- "$API/sandboxes/$SID/commands" | tee -a "$tmp/cmd.log" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); sys.stdout.write(d.get("stdout") or ("command failed: %s\n" % d))'
}
curl -sf -X PUT -H "X-API-Key: $KEY" --data-binary @"$GN" "$API/sandboxes/$SID/files?path=/bin/guest_net"
cmd "chmod +x /bin/guest_net; mkdir -p /www && echo hello > /www/index.html && httpd -p 8080 -h /www" >/dev/null
mkdir -p "$tmp/www" && echo hello > "$tmp/www/index.html"
busybox httpd -f -p 127.0.0.1:$HP -h "$tmp/www" &
pids+=($!)
HOST="Host: 8080-$SID.lelantos.localhost"
sleep 0.3

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b if b else 0))" "$1" "$2"; }
wrk_run() { # url [header]: "req/s p99_ms"
    local out
    if [ -n "${2:-}" ]; then out=$(wrk -t2 -c8 -d"${DUR}s" --latency -H "$2" "$1"); else out=$(wrk -t2 -c8 -d"${DUR}s" --latency "$1"); fi
    local rps p99
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v=v/1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v=v*1000}; print v}')
    echo "$rps $p99"
}

echo "== inbound: small GETs, wrk -t2 -c8 ${DUR}s (busybox httpd: a connection per request)"
read -r s_rps s_p99 <<<"$(wrk_run "$API/index.html" "$HOST")"
read -r h_rps h_p99 <<<"$(wrk_run "http://127.0.0.1:$HP/index.html")"
printf '  sandbox via lelantosd: %8.0f req/s  p99 %6.2f ms\n  host httpd directly:   %8.0f req/s  p99 %6.2f ms\n' "$s_rps" "$s_p99" "$h_rps" "$h_p99"
echo "  ratio (sandbox / host): $(ratio "$s_rps" "$h_rps")x   [goal >= 0.5x]"

echo "== inbound: 128 MiB download (the base sandbox has 256 MiB of memory, its disk included)"
cmd "dd if=/dev/zero of=/www/big.bin bs=1M count=128 2>/dev/null" >/dev/null
dd if=/dev/zero of="$tmp/www/big.bin" bs=1M count=128 2>/dev/null
s_bps=$(curl -s -o /dev/null -w '%{speed_download}' -H "$HOST" "$API/big.bin")
h_bps=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$HP/big.bin")
cmd "rm /www/big.bin" >/dev/null
printf '  sandbox via lelantosd: %6.0f MB/s\n  host httpd directly:   %6.0f MB/s\n' "$(ratio "$s_bps" 1000000)" "$(ratio "$h_bps" 1000000)"
echo "  ratio: $(ratio "$s_bps" "$h_bps")x   [goal >= 1000 MB/s]"

echo "== outbound: connect + first byte (500 connects to an echo server on 127.0.0.1)"
"$GN" serve "$EP" 1000000 >/dev/null &
pids+=($!)
sleep 0.2
g_lat=$(cmd "guest_net latency 10.0.2.2 $EP 500")
h_lat=$("$GN" latency 127.0.0.1 "$EP" 500)
echo "  sandbox: $g_lat"
echo "  host:    $h_lat"
g50=$(echo "$g_lat" | awk '{print $3}') h50=$(echo "$h_lat" | awk '{print $3}')
echo "  p50 ratio: $(ratio "$g50" "$h50")x; goal: <= 2 x $h50 + 100 = $(python3 -c "print(2*$h50+100)") us"

echo "== outbound: 256 MiB guest -> host server"
"$GN" sink "$SP" >/dev/null &
pids+=($!)
sleep 0.2
g_send=$(cmd "guest_net send 10.0.2.2 $SP 268435456")
"$GN" sink "$SP2" >/dev/null &
pids+=($!)
sleep 0.2
h_send=$("$GN" send 127.0.0.1 "$SP2" 268435456)
echo "  sandbox: $g_send"
echo "  host:    $h_send"
g_mb=$(echo "$g_send" | awk '{print $(NF-1)}') h_mb=$(echo "$h_send" | awk '{print $(NF-1)}')
echo "  ratio: $(ratio "$g_mb" "$h_mb")x   [goal >= 1000 MB/s]"

echo "== the floor under all of it: one syscall round trip (getppid)"
g_sc=$(cmd "guest_net syscalls 20000")
h_sc=$("$GN" syscalls 2000000)
echo "  sandbox: $g_sc"
echo "  host:    $h_sc"
echo "  ratio: $(ratio "$(echo "$g_sc" | awk '{print $2}')" "$(echo "$h_sc" | awk '{print $2}')")x"
