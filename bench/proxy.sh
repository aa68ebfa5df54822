#!/usr/bin/env bash
# Core proxy benchmark: a small JSON POST through the gateway to a local upstream.
#
#   bench/proxy.sh                     # full run (~3 minutes), prints a markdown table
#   DURATION=5s ROUNDS=5 bench/proxy.sh
#
# Layout on a 2-core machine: the proxy under test (sluice, or nginx with one worker as the
# reference) is pinned to core 0; the upstream (nginx, answering a fixed JSON body) and the load
# generator (wrk) share core 1. Measures requests/s at 32 connections and the latency the proxy
# adds over a direct call at 1 connection (p50/p99), plus sluice's idle and loaded RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${DURATION:-10s}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UPSTREAM_PORT=18181
SLUICE_PORT=18180
NGINX_PROXY_PORT=18182
ADMIN=127.0.0.1:18190
work=$(mktemp -d /tmp/sluice-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

install_missing wrk:wrk nginx:nginx-light

cargo build --release -p sluice >&2
bin=target/release/sluice

# Upstream: nginx answering every POST with a small JSON document.
mkdir -p "$work/up" "$work/px"
cat > "$work/up/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $work/up/nginx.pid;
error_log $work/up/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT reuseport backlog=4096;
    location / {
      default_type application/json;
      client_body_buffer_size 64k;
      return 200 '{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}';
    }
  }
}
NGX
taskset -c "$LOAD_CPU" nginx -c "$work/up/nginx.conf" -p "$work/up" &
pids+=($!)

# The reference: nginx with one worker proxying to the same upstream.
cat > "$work/px/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $work/px/nginx.pid;
error_log $work/px/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UPSTREAM_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX_PROXY_PORT backlog=4096;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGX
taskset -c "$PROXY_CPU" nginx -c "$work/px/nginx.conf" -p "$work/px" &
pids+=($!)

cat > "$work/sluice.yaml" <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench, namespace: default}
spec:
  gatewayClassName: sluice
  addresses: [{value: 127.0.0.1}]
  listeners: [{name: http, port: $SLUICE_PORT, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: Backend
metadata: {name: upstream, namespace: default}
spec:
  destination:
    type: IP
    ip: {address: 127.0.0.1}
    ports: [{number: $UPSTREAM_PORT, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bench, namespace: default}
spec:
  parentRefs: [{name: bench}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [{group: gateway.networking.k8s.io, kind: Backend, name: upstream, port: $UPSTREAM_PORT}]
YAML
taskset -c "$PROXY_CPU" "$bin" serve --config "$work/sluice.yaml" --admin-addr "$ADMIN" \
  --access-log "${ACCESS_LOG:-off}" --log-level warn &
sluice_pid=$!
pids+=($sluice_pid)

for _ in $(seq 1 100); do
  curl -fsS "http://$ADMIN/readyz" >/dev/null 2>&1 && \
  curl -fsS -o /dev/null "http://127.0.0.1:$UPSTREAM_PORT/" 2>/dev/null && \
  curl -fsS -o /dev/null "http://127.0.0.1:$NGINX_PROXY_PORT/" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$SLUICE_PORT/v1/chat/completions" -d '{}' \
  || { echo "sluice does not answer" >&2; exit 1; }

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
idle_rss=$(rss_kb "$sluice_pid")

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say ok."}],"max_tokens":16,"temperature":0}'
LUA

# wrk prints "Requests/sec:" and, with --latency, a percentile table.
run() { # name url connections
  taskset -c "$LOAD_CPU" wrk -t1 -c"$3" -d"$DURATION" --latency -s "$work/post.lua" "$2" > "$work/$1.txt"
}

# Warm-up, then ROUNDS interleaved rounds (the machines this runs on are shared VMs whose speed
# drifts; interleaving and taking medians compares sluice and nginx under the same conditions).
ROUNDS=${ROUNDS:-3}
run warm "http://127.0.0.1:$SLUICE_PORT/v1/chat/completions" 32
declare -a S_RPS N_RPS RATIO D50 D99 S50 S99 N50 N99
for r in $(seq 1 "$ROUNDS"); do
  run direct_c1 "http://127.0.0.1:$UPSTREAM_PORT/v1/chat/completions" 1
  run sluice_c1 "http://127.0.0.1:$SLUICE_PORT/v1/chat/completions" 1
  run nginx_c1 "http://127.0.0.1:$NGINX_PROXY_PORT/v1/chat/completions" 1
  run sluice_c32 "http://127.0.0.1:$SLUICE_PORT/v1/chat/completions" 32
  run nginx_c32 "http://127.0.0.1:$NGINX_PROXY_PORT/v1/chat/completions" 32
  S_RPS+=("$(rps sluice_c32)"); N_RPS+=("$(rps nginx_c32)")
  RATIO+=("$(awk -v a="${S_RPS[-1]}" -v b="${N_RPS[-1]}" 'BEGIN { printf "%.3f", a / b }')")
  D50+=("$(to_us "$(pct direct_c1 50%)")"); D99+=("$(to_us "$(pct direct_c1 99%)")")
  S50+=("$(to_us "$(pct sluice_c1 50%)")"); S99+=("$(to_us "$(pct sluice_c1 99%)")")
  N50+=("$(to_us "$(pct nginx_c1 50%)")"); N99+=("$(to_us "$(pct nginx_c1 99%)")")
  echo "round $r: sluice ${S_RPS[-1]} req/s, nginx ${N_RPS[-1]} req/s; p50 direct ${D50[-1]} sluice ${S50[-1]} nginx ${N50[-1]} µs" >&2
done
loaded_hwm=$(hwm_kb "$sluice_pid")
s_rps=$(median "${S_RPS[@]}"); n_rps=$(median "${N_RPS[@]}")
d50=$(median "${D50[@]}"); d99=$(median "${D99[@]}")
s50=$(median "${S50[@]}"); s99=$(median "${S99[@]}")
n50=$(median "${N50[@]}"); n99=$(median "${N99[@]}")
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a - b }'; }
# The ratio within a round is steadier than a ratio of medians: both ran under the same conditions.
ratio=$(awk -v r="$(median "${RATIO[@]}")" 'BEGIN { printf "%.2f", r }')

echo "| measure (median of $ROUNDS interleaved rounds) | sluice | nginx (1 worker) |"
echo "|---|---|---|"
echo "| requests/s, 32 connections, proxy on 1 core | $s_rps | $n_rps |"
echo "| sluice / nginx throughput (median of per-round ratios) | $ratio | |"
echo "| latency added over direct, p50, 1 connection | $(added "$s50" "$d50") µs | $(added "$n50" "$d50") µs |"
echo "| latency added over direct, p99, 1 connection | $(added "$s99" "$d99") µs | $(added "$n99" "$d99") µs |"
echo "| idle RSS | $((idle_rss / 1024)) MB | |"
echo "| peak RSS after the runs | $((loaded_hwm / 1024)) MB | |"
echo
echo "direct upstream at 1 connection: p50 ${d50} µs, p99 ${d99} µs; ${DURATION} per run; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
