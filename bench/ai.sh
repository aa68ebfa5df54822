#!/usr/bin/env bash
# AI route benchmark: an OpenAI chat completion through sluice's AI path (body parsed once,
# model routed, provider call planned, usage extracted and accounted, metrics written), against
# nginx proxying the same request to the same upstream without looking at it.
#
#   bench/ai.sh                        # full run (~4 minutes), prints a markdown table
#   DURATION=5s ROUNDS=3 bench/ai.sh
#
# Layout as bench/proxy.sh: the proxy under test on core 0, upstream nginx and wrk on core 1.
# The upstream answers `/json/chat/completions` with a chat completion and
# `/sse/chat/completions` with a complete SSE stream (chunks, usage chunk, [DONE]).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UPSTREAM_PORT=18281
SLUICE_PORT=18280
NGINX_PROXY_PORT=18282
ADMIN=127.0.0.1:18290
work=$(mktemp -d /tmp/sluice-aibench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

install_missing wrk:wrk nginx:nginx-light
cargo build --release -p sluice >&2
bin=target/release/sluice

mkdir -p "$work/up" "$work/px"
json='{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":1,"total_tokens":20}}'
chunk() { printf 'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[%s]%s}\\n\\n' "$1" "${2:-}"; }
sse="$(chunk '{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}')$(chunk '{"index":0,"delta":{"content":"ok"},"finish_reason":null}')$(chunk '{"index":0,"delta":{},"finish_reason":"stop"}')$(chunk '' ',"usage":{"prompt_tokens":19,"completion_tokens":1,"total_tokens":20}')data: [DONE]\\n\\n"
cat > "$work/up/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $work/up/nginx.pid;
error_log $work/up/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_buffer_size 4m;
  client_max_body_size 8m;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT reuseport backlog=4096;
    location /json/ { default_type application/json; return 200 '$json'; }
    location /sse/ { default_type text/event-stream; return 200 '$sse'; }
  }
}
NGX
taskset -c "$LOAD_CPU" nginx -c "$work/up/nginx.conf" -p "$work/up" &
pids+=($!)

cat > "$work/px/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $work/px/nginx.pid;
error_log $work/px/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_buffer_size 4m;
  client_max_body_size 8m;
  upstream up { server 127.0.0.1:$UPSTREAM_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX_PROXY_PORT backlog=4096;
    location /json/ { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /sse/ { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
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
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: json, namespace: default}
spec:
  provider: {type: OpenAI, openai: {pathPrefix: /json}}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: upstream, port: $UPSTREAM_PORT}
  credentials: {env: BENCH_KEY}
---
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: sse, namespace: default}
spec:
  provider: {type: OpenAI, openai: {pathPrefix: /sse}}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: upstream, port: $UPSTREAM_PORT}
  credentials: {env: BENCH_KEY}
---
apiVersion: sluice.dev/v1alpha1
kind: AIPolicy
metadata: {name: ai, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: bench}]
  prices: [{model: gpt-4o-mini, input: 0.15, output: 0.6}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bench, namespace: default}
spec:
  parentRefs: [{name: bench}]
  rules:
  - matches: [{headers: [{name: X-Gateway-Model-Name, value: gpt-4o-mini-stream}]}]
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: sse}]
  - backendRefs: [{group: sluice.dev, kind: AIBackend, name: json}]
YAML
BENCH_KEY=sk-bench taskset -c "$PROXY_CPU" "$bin" serve --config "$work/sluice.yaml" \
  --admin-addr "$ADMIN" --access-log "${ACCESS_LOG:-off}" --log-level warn &
sluice_pid=$!
pids+=($sluice_pid)

body_json='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say ok."}],"max_tokens":16,"temperature":0}'
body_sse='{"model":"gpt-4o-mini-stream","stream":true,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say ok."}],"max_tokens":16,"temperature":0}'
for _ in $(seq 1 100); do
  curl -fsS "http://$ADMIN/readyz" >/dev/null 2>&1 && \
  curl -fsS -o /dev/null "http://127.0.0.1:$NGINX_PROXY_PORT/json/chat/completions" 2>/dev/null && break
  sleep 0.1
done
check=$(curl -fsS "http://127.0.0.1:$SLUICE_PORT/v1/chat/completions" -H 'content-type: application/json' -d "$body_json") \
  || { echo "sluice does not answer the AI route" >&2; exit 1; }
echo "$check" | grep -q '"content":"ok"' || { echo "unexpected answer: $check" >&2; exit 1; }
curl -fsS -N "http://127.0.0.1:$SLUICE_PORT/v1/chat/completions" -d "$body_sse" | grep -q '\[DONE\]' \
  || { echo "sluice does not stream the AI route" >&2; exit 1; }
# A 2 MiB request body is accepted by default.
python3 -c "import json; print(json.dumps({'model':'gpt-4o-mini','messages':[{'role':'user','content':'x'*(2*1024*1024-200)}]}))" > "$work/big.json"
big_status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SLUICE_PORT/v1/chat/completions" --data-binary "@$work/big.json")
big_size=$(stat -c %s "$work/big.json")

cat > "$work/json.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$body_json'
LUA
cat > "$work/sse.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$body_sse'
LUA
run() { # name script url connections
  taskset -c "$LOAD_CPU" wrk -t1 -c"$4" -d"$DURATION" --latency -s "$work/$2.lua" "$3" > "$work/$1.txt"
}

S=http://127.0.0.1:$SLUICE_PORT/v1/chat/completions
run warm json "$S" 32
declare -a RJ RS D50 S50 N50 DS50 SS50 NS50 SJ NJ
for r in $(seq 1 "$ROUNDS"); do
  run d1 json "http://127.0.0.1:$UPSTREAM_PORT/json/chat/completions" 1
  run s1 json "$S" 1
  run n1 json "http://127.0.0.1:$NGINX_PROXY_PORT/json/chat/completions" 1
  run ds1 sse "http://127.0.0.1:$UPSTREAM_PORT/sse/chat/completions" 1
  run ss1 sse "$S" 1
  run ns1 sse "http://127.0.0.1:$NGINX_PROXY_PORT/sse/chat/completions" 1
  run s32 json "$S" 32
  run n32 json "http://127.0.0.1:$NGINX_PROXY_PORT/json/chat/completions" 32
  run ss32 sse "$S" 32
  run ns32 sse "http://127.0.0.1:$NGINX_PROXY_PORT/sse/chat/completions" 32
  SJ+=("$(rps s32)"); NJ+=("$(rps n32)")
  RJ+=("$(awk -v a="$(rps s32)" -v b="$(rps n32)" 'BEGIN { printf "%.3f", a / b }')")
  RS+=("$(awk -v a="$(rps ss32)" -v b="$(rps ns32)" 'BEGIN { printf "%.3f", a / b }')")
  D50+=("$(to_us "$(pct d1 50%)")"); S50+=("$(to_us "$(pct s1 50%)")"); N50+=("$(to_us "$(pct n1 50%)")")
  DS50+=("$(to_us "$(pct ds1 50%)")"); SS50+=("$(to_us "$(pct ss1 50%)")"); NS50+=("$(to_us "$(pct ns1 50%)")")
  echo "round $r: json sluice $(rps s32) nginx $(rps n32) req/s; sse sluice $(rps ss32) nginx $(rps ns32) req/s" >&2
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$sluice_pid/status")
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a - b }'; }
echo "| AI route, chat completion (median of $ROUNDS interleaved rounds) | sluice | nginx (1 worker, no parsing) |"
echo "|---|---|---|"
echo "| requests/s, non-streaming, 32 connections | $(median "${SJ[@]}") | $(median "${NJ[@]}") |"
echo "| sluice / nginx throughput, non-streaming | $(median "${RJ[@]}") | |"
echo "| sluice / nginx throughput, streaming | $(median "${RS[@]}") | |"
echo "| latency added over direct, p50, non-streaming, 1 connection | $(added "$(median "${S50[@]}")" "$(median "${D50[@]}")") µs | $(added "$(median "${N50[@]}")" "$(median "${D50[@]}")") µs |"
echo "| streaming response added over direct (≈ time to first byte), p50, 1 connection | $(added "$(median "${SS50[@]}")" "$(median "${DS50[@]}")") µs | $(added "$(median "${NS50[@]}")" "$(median "${DS50[@]}")") µs |"
echo "| peak RSS after the runs (32 connections) | $((hwm / 1024)) MB | |"
echo "| 2 MiB request body ($big_size bytes) | HTTP $big_status | |"
echo
echo "${DURATION} per run; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
