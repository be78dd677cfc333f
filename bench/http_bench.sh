#!/usr/bin/env bash
# Benchmark (not a test): GET /sandboxes/{id} on lelantosd against h2o's own server serving a
# small static file, on this machine in the same run, with wrk (HTTP/1.1) and h2load (HTTP/2).
# Prints requests/s and latency for both, and the ratio lelantosd / h2o.
# NOTE: this run raises lelantosd's rate limits (general_per_s) so the limiter does not cap the
# measurement; everything else is the default config.
# Usage: bench/http_bench.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
bash tools/setup.sh >/dev/null
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j"$(nproc)" --target lelantosd >/dev/null

tmp=$(mktemp -d /tmp/lel-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

LP=$(port); HP=$(port)
# sandboxes are microVMs where /dev/kvm exists; elsewhere the API-only mode serves the same path
BACKEND=${LEL_BENCH_BACKEND:-$([ -c /dev/kvm ] && echo auto || echo none)}
cat > "$tmp/lel.yaml" <<YAML
rate_limits:
  general_per_s: 100000000
http:
  threads: 2
workers: 2
vmm:
  backend: $BACKEND
YAML
./build-release/src/lelantosd --config "$tmp/lel.yaml" --listen 127.0.0.1:$LP --data-dir "$tmp/data" >"$tmp/lel.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$LP/health" >/dev/null && break; sleep 0.1; done
KEY=$(cat "$tmp/data/initial-api-key")
SID=$(curl -sf -H "X-API-Key: $KEY" -d '{"timeout":3600}' "http://127.0.0.1:$LP/sandboxes" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sandboxID"])')
BODY_LEN=$(curl -sf -H "X-API-Key: $KEY" "http://127.0.0.1:$LP/sandboxes/$SID" | wc -c)

mkdir -p "$tmp/www"
head -c "$BODY_LEN" /dev/zero | tr '\0' 'x' > "$tmp/www/sandbox.json"
cat > "$tmp/h2o.conf" <<CONF
listen:
  host: 127.0.0.1
  port: $HP
num-threads: 2
access-log: /dev/null
error-log: $tmp/h2o-error.log
user: root
hosts:
  default:
    paths:
      /:
        file.dir: $tmp/www
CONF
h2o -c "$tmp/h2o.conf" >"$tmp/h2o.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HP/sandbox.json" >/dev/null && break; sleep 0.1; done

wrk_run() { # url, extra header
  wrk -t2 -c64 -d"${DUR}s" --latency -H "$2" "$1" | awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {printf "%s %s %s\n", rps, p50, p99}'
}
h2load_run() { # url, extra header
  h2load -t2 -c16 -m32 -D "$DUR" -H "$2" "$1" 2>/dev/null | awk '/^finished in/ {for (i=1;i<=NF;i++) if ($i ~ /req\/s/) rps=$(i-1)} /^time for request:/ {mean=$6} /^status codes:/ {codes=$0} END {printf "%s %s\n", rps, mean}'
}

echo "lelantosd $(./build-release/src/lelantosd --version | awk '{print $2}') vs h2o $(h2o --version | head -1 | awk '{print $3}') on $(nproc) cores, ${DUR}s per run, body ${BODY_LEN} bytes"
echo "(lelantosd rate limit raised to 1e8/s for this run; 2 loop threads + 2 workers; vmm.backend $BACKEND; h2o 2 threads)"
read -r l1 l1p50 l1p99 <<<"$(wrk_run "http://127.0.0.1:$LP/sandboxes/$SID" "X-API-Key: $KEY")"
read -r h1 h1p50 h1p99 <<<"$(wrk_run "http://127.0.0.1:$HP/sandbox.json" "X-API-Key: $KEY")"
read -r l2 l2mean <<<"$(h2load_run "http://127.0.0.1:$LP/sandboxes/$SID" "x-api-key: $KEY")"
read -r h2 h2mean <<<"$(h2load_run "http://127.0.0.1:$HP/sandbox.json" "x-api-key: $KEY")"
printf "%-34s %12s %10s %10s\n" "HTTP/1.1 (wrk -t2 -c64)" "req/s" "p50" "p99"
printf "%-34s %12s %10s %10s\n" "  lelantosd GET /sandboxes/{id}" "$l1" "$l1p50" "$l1p99"
printf "%-34s %12s %10s %10s\n" "  h2o static file" "$h1" "$h1p50" "$h1p99"
printf "%-34s %12s\n" "  ratio lelantosd/h2o" "$(python3 -c "print(f'{float(\"$l1\")/float(\"$h1\"):.2f}')")"
printf "%-34s %12s %10s\n" "HTTP/2 (h2load -c16 -m32)" "req/s" "mean"
printf "%-34s %12s %10s\n" "  lelantosd GET /sandboxes/{id}" "$l2" "$l2mean"
printf "%-34s %12s %10s\n" "  h2o static file" "$h2" "$h2mean"
printf "%-34s %12s\n" "  ratio lelantosd/h2o" "$(python3 -c "print(f'{float(\"$l2\")/float(\"$h2\"):.2f}')")"
