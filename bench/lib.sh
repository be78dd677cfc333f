# Shared by the bench scripts: starts lelantosd on a free loopback port with a temp data dir
# and the YAML given on stdin; sets tmp, pid, U (base URL), KEY and H (curl header args).
# The caller's EXIT trap should run bench_stop.
bench_start() { # binary
  tmp=$(mktemp -d /tmp/lel-bench-XXXXXX)
  local port=$(( 20000 + RANDOM % 20000 ))
  cat > "$tmp/c.yaml"
  "$1" --config "$tmp/c.yaml" --listen 127.0.0.1:$port --data-dir "$tmp/data" >"$tmp/log" 2>&1 &
  pid=$!
  U="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -sf "$U/health" >/dev/null && break; sleep 0.1; done
  KEY=$(cat "$tmp/data/initial-api-key")
  H=(-H "X-API-Key: $KEY")
}

# bench_start with microVMs on /dev/kvm and the rate limit out of the way; extra YAML lines on stdin.
bench_start_vm() { # binary
  bench_start "$1" < <(printf 'vmm:\n  backend: auto\nrate_limits:\n  general_per_s: 100000\n'; cat)
}

bench_stop() {
  kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}

# p50/p99 of seconds on stdin, printed in ms
bench_stats() {
  sort -n | awk '{v[NR]=$1*1000} END {i50=int(NR*0.5)+1; i99=int(NR*0.99)+1; if (i99>NR) i99=NR; printf "p50 %.2f ms, p99 %.2f ms (n=%d)", v[i50], v[i99], NR}'
}
