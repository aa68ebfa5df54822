#!/usr/bin/env bash
# Payload-processing benchmark: what a pipeline of one InProcess processor (the model header from
# the body, PreRouting) and one Guardrail (PII, secrets and prompt injection on the request; a
# Window output guardrail on streamed answers) adds to a typical ~2 KB chat request, against the
# same AI route with no processors. One sluice process serves all the Gateways.
#
# Time to first byte is measured directly by `ttfb-bench` (crates/testkit/src/bin/ttfb-bench):
# its upstream streams an OpenAI chat answer slowly (the role chunk at once, then TTFB_CHUNKS text
# chunks TTFB_GAP_MS apart), and its client sends TTFB_REQUESTS requests one after another over one
# connection, timing the first byte of the body, the first event with text and the end of the
# stream. It runs against three Gateways: `plain` (no processors), `window` (only a Window output
# guardrail: what the floor names) and `pipeline` (everything above).
#
#   bench/payload.sh                   # full run, prints a markdown table; the wrk part takes
#                                      # 6 x ROUNDS x DURATION (3 min by default), the TTFB part
#                                      # ~3 x ROUNDS x (TTFB_REQUESTS + TTFB_WARMUP) x TTFB_CHUNKS x
#                                      # (TTFB_GAP_MS + 1) (the timer rounds each gap up to the next
#                                      # millisecond): ~4 min by default, plus the release build
#   DURATION=5s ROUNDS=3 bench/payload.sh
#   DURATION=1s ROUNDS=1 TTFB_REQUESTS=200 TTFB_WARMUP=20 bench/payload.sh   # functional check
#   PORT_BASE=18580 bench/payload.sh   # ports PORT_BASE..PORT_BASE+4 and +10 (default 18480)
#   TTFB_SAMPLES_DIR=/tmp/ttfb bench/payload.sh   # keep every request's times (tp/tw/tq-roundR-S.csv)
#
# Layout as bench/ai.sh: sluice on core 0; upstream nginx, the ttfb-bench upstream, wrk and the
# ttfb-bench client on core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
TTFB_REQUESTS=${TTFB_REQUESTS:-2000}
TTFB_WARMUP=${TTFB_WARMUP:-200}
# 2 ms between events is far above what processing adds (tens of µs), so the first byte is
# always timed before the next event arrives, and a run stays short.
TTFB_GAP_MS=${TTFB_GAP_MS:-2}
TTFB_CHUNKS=${TTFB_CHUNKS:-4}
# Each round measures the three Gateways in TTFB_SLICES interleaved slices (plain, window, pipeline,
# plain, ...) and compares each slice with the plain run just before it: this VM's speed drifts
# within seconds, and the differences are tens of µs on a base of hundreds.
TTFB_SLICES=${TTFB_SLICES:-5}
SLICE_REQUESTS=$(( (TTFB_REQUESTS + TTFB_SLICES - 1) / TTFB_SLICES ))
SLICE_WARMUP=$(( (TTFB_WARMUP + TTFB_SLICES - 1) / TTFB_SLICES ))
TTFB_SAMPLES_DIR=${TTFB_SAMPLES_DIR:-} # when set, every request's times go there as CSV
[ -z "$TTFB_SAMPLES_DIR" ] || mkdir -p "$TTFB_SAMPLES_DIR"
PORT_BASE=${PORT_BASE:-18480}
PLAIN_PORT=$PORT_BASE
UPSTREAM_PORT=$((PORT_BASE + 1))
PIPELINE_PORT=$((PORT_BASE + 2))
SLOW_PORT=$((PORT_BASE + 3))
WINDOW_PORT=$((PORT_BASE + 4))
ADMIN=127.0.0.1:$((PORT_BASE + 10))
for port in "$PLAIN_PORT" "$UPSTREAM_PORT" "$PIPELINE_PORT" "$SLOW_PORT" "$WINDOW_PORT" "${ADMIN#*:}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (another benchmark?); stop it or set PORT_BASE" >&2
    exit 1
  fi
done
work=$(mktemp -d /tmp/sluice-ppbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

install_missing wrk:wrk nginx:nginx-light
cargo build --release -p sluice >&2
cargo build --release -p sluice-testkit --bin ttfb-bench >&2
bin=target/release/sluice
tb=target/release/ttfb-bench

mkdir -p "$work/up"
json='{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Sure. Here is a short, plain answer with nothing sensitive in it."},"finish_reason":"stop"}],"usage":{"prompt_tokens":420,"completion_tokens":14,"total_tokens":434}}'
chunk() { printf 'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[%s]%s}\\n\\n' "$1" "${2:-}"; }
sse="$(chunk '{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}')"
for w in "Sure. " "Here " "is " "a " "short, " "plain " "answer " "with " "nothing " "sensitive " "in " "it."; do
  sse+="$(chunk "{\"index\":0,\"delta\":{\"content\":\"$w\"},\"finish_reason\":null}")"
done
sse+="$(chunk '{"index":0,"delta":{},"finish_reason":"stop"}')$(chunk '' ',"usage":{"prompt_tokens":420,"completion_tokens":14,"total_tokens":434}')data: [DONE]\\n\\n"
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
  server {
    listen 127.0.0.1:$UPSTREAM_PORT reuseport backlog=4096;
    location /json/ { default_type application/json; return 200 '$json'; }
    location /sse/ { default_type text/event-stream; return 200 '$sse'; }
  }
}
NGX
taskset -c "$LOAD_CPU" nginx -c "$work/up/nginx.conf" -p "$work/up" &
pids+=($!)
taskset -c "$LOAD_CPU" "$tb" upstream --listen "127.0.0.1:$SLOW_PORT" \
  --gap-ms "$TTFB_GAP_MS" --chunks "$TTFB_CHUNKS" >&2 &
pids+=($!)

gateway() { # NAME PORT
  cat <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: $1, namespace: default}
spec:
  gatewayClassName: sluice
  addresses: [{value: 127.0.0.1}]
  listeners: [{name: http, port: $2, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: $1, namespace: default}
spec:
  parentRefs: [{name: $1}]
  rules:
  - matches: [{headers: [{name: X-Gateway-Model-Name, value: gpt-4o-mini-stream}]}]
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: sse}]
  - matches: [{headers: [{name: X-Gateway-Model-Name, value: gpt-4o-mini-slow}]}]
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: slow}]
  - backendRefs: [{group: sluice.dev, kind: AIBackend, name: json}]
---
YAML
}
{
  gateway plain "$PLAIN_PORT"
  gateway pipeline "$PIPELINE_PORT"
  gateway window "$WINDOW_PORT"
  cat <<YAML
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: Backend
metadata: {name: upstream, namespace: default}
spec:
  destination:
    type: IP
    ip: {address: 127.0.0.1}
    ports: [{number: $UPSTREAM_PORT, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: Backend
metadata: {name: slow-upstream, namespace: default}
spec:
  destination:
    type: IP
    ip: {address: 127.0.0.1}
    ports: [{number: $SLOW_PORT, protocol: HTTP}]
---
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: slow, namespace: default}
spec:
  provider: {type: OpenAI, openai: {pathPrefix: /v1}}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: slow-upstream}
  credentials: {env: BENCH_KEY}
---
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: json, namespace: default}
spec:
  provider: {type: OpenAI, openai: {pathPrefix: /json}}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: upstream}
  credentials: {env: BENCH_KEY}
---
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: sse, namespace: default}
spec:
  provider: {type: OpenAI, openai: {pathPrefix: /sse}}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: upstream}
  credentials: {env: BENCH_KEY}
---
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: PayloadProcessor
metadata: {name: model, namespace: default}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: pipeline}
  phase: PreRouting
  processors:
  - name: model-header
    type: InProcess
    inProcess:
      request:
        setHeaders: [{name: X-Gateway-Model-Name, value: json(request.body).model}]
---
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: PayloadProcessor
metadata: {name: guard, namespace: default}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: pipeline}
  phase: PostRouting
  processors:
  - name: pii-and-injection
    type: Guardrail
    guardrail:
      applyTo: [Request, Response]
      pii: [All]
      secrets: [All]
      promptInjection: {threshold: 0.5}
      streaming: {mode: Window}
---
# What the time-to-first-byte floor names, and nothing else: a Window output guardrail.
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: PayloadProcessor
metadata: {name: window, namespace: default}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: window}
  phase: PostRouting
  processors:
  - name: output-window
    type: Guardrail
    guardrail:
      applyTo: [Response]
      pii: [All]
      secrets: [All]
      promptInjection: {threshold: 0.5}
      streaming: {mode: Window}
YAML
} > "$work/sluice.yaml"
BENCH_KEY=sk-bench taskset -c "$PROXY_CPU" "$bin" serve --config "$work/sluice.yaml" \
  --admin-addr "$ADMIN" --access-log off --log-level warn &
pids+=($!)

# A typical chat request: a system prompt and a few turns, ~2 KB of prose, nothing to find.
body_json=$(python3 - <<'PY'
import json
turns = [
    {"role": "system", "content": "You are a careful assistant for a logistics company. Answer briefly, cite the policy section you rely on, and ask a clarifying question when the request is ambiguous. Never invent shipment data; say what you would need to look it up."},
    {"role": "user", "content": "We have a pallet that left the Rotterdam depot on Tuesday and the carrier says it is delayed at the border. What are our options for rerouting it, and who needs to approve the extra cost?"},
    {"role": "assistant", "content": "Rerouting after departure needs the consent of the carrier and a change order. Under section 4.2 of the transport policy, changes that add more than ten percent to the freight cost need approval from the regional operations lead. Do you know the current estimated delay?"},
    {"role": "user", "content": "The carrier estimates two days. The customer is waiting for the goods for a product launch, so the delay matters. Can you draft a short message to the operations lead that explains the situation, the options you mentioned, and asks for a decision by the end of the day?"},
    {"role": "assistant", "content": "Here is a draft. Subject: decision needed today on the delayed Rotterdam pallet. The pallet that left the Rotterdam depot on Tuesday is held at the border, and the carrier expects a two-day delay. The customer needs the goods for a product launch. We can wait for the carrier, reroute through another crossing with the consent of the carrier, or send a replacement pallet by express. Rerouting and express both add more than ten percent to the freight cost, so section 4.2 needs your approval. Could you decide by the end of the day?"},
    {"role": "user", "content": "That works. Please make it a little more formal, add the shipment reference as a placeholder, and mention that the express option also needs a check of the stock at the depot before we can promise a date to the customer."},
]
body = {"model": "gpt-4o-mini", "messages": turns, "max_tokens": 256, "temperature": 0.2}
print(json.dumps(body, separators=(",", ":")))
PY
)
body_sse=${body_json/\"gpt-4o-mini\"/\"gpt-4o-mini-stream\"}
body_sse=${body_sse/\"temperature\"/\"stream\":true,\"temperature\"}
body_slow=${body_sse/\"gpt-4o-mini-stream\"/\"gpt-4o-mini-slow\"}
printf '%s' "$body_slow" > "$work/slow.json"
bytes=${#body_json}
for _ in $(seq 1 100); do curl -fsS "http://$ADMIN/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
for port in "$PLAIN_PORT" "$PIPELINE_PORT"; do
  curl -fsS "http://127.0.0.1:$port/v1/chat/completions" -d "$body_json" | grep -q 'plain answer' \
    || { echo "gateway on $port does not answer" >&2; exit 1; }
  curl -fsS -N "http://127.0.0.1:$port/v1/chat/completions" -d "$body_sse" | grep -q '\[DONE\]' \
    || { echo "gateway on $port does not stream" >&2; exit 1; }
done
# The guardrail is really on: a prompt with a card number is refused on the pipeline Gateway only.
pii=${body_json/a short message/a short message to card 4111 1111 1111 1111}
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PIPELINE_PORT/v1/chat/completions" -d "$pii")" = 400 ] \
  || { echo "the guardrail did not block" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PLAIN_PORT/v1/chat/completions" -d "$pii")" = 200 ] \
  || { echo "the plain Gateway refused" >&2; exit 1; }
# Every Gateway reaches the slow upstream; the Window guardrail really watches the answer: the
# ttfb-bench upstream puts a card number in the stream when the request says ttfb-bench-leak.
for port in "$PLAIN_PORT" "$WINDOW_PORT" "$PIPELINE_PORT"; do
  curl -fsS -N "http://127.0.0.1:$port/v1/chat/completions" -d "$body_slow" | grep -q '\[DONE\]' \
    || { echo "gateway on $port does not stream from the slow upstream" >&2; exit 1; }
done
leak=${body_slow/a short message/a short message (ttfb-bench-leak)}
leaked=$(curl -fsS -N "http://127.0.0.1:$PLAIN_PORT/v1/chat/completions" -d "$leak")
[[ $leaked == *'4111 1111'*'[DONE]'* ]] \
  || { echo "the slow upstream did not send the test card number: $leaked" >&2; exit 1; }
blocked=$(curl -fsS -N "http://127.0.0.1:$WINDOW_PORT/v1/chat/completions" -d "$leak")
[[ $blocked == *'"error"'* && $blocked != *'4111 1111'* && $blocked != *'[DONE]'* ]] \
  || { echo "the Window guardrail did not end the stream before the card number: $blocked" >&2; exit 1; }

for kind in json sse; do
  body_var="body_$kind"
  cat > "$work/$kind.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '${!body_var}'
LUA
done
run() { # name script port connections
  taskset -c "$LOAD_CPU" wrk -t1 -c"$4" -d"$DURATION" --latency -s "$work/$2.lua" "http://127.0.0.1:$3/v1/chat/completions" > "$work/$1.txt" 2>&1
  grep -q 'Requests/sec' "$work/$1.txt" || { echo "wrk failed: $(cat "$work/$1.txt")" >&2; exit 1; }
  ! grep -q 'Non-2xx' "$work/$1.txt" || { echo "non-2xx answers in run $1: $(cat "$work/$1.txt")" >&2; exit 1; }
}
ttfb() { # name port round
  local samples=()
  [ -z "$TTFB_SAMPLES_DIR" ] || samples=(--samples "$TTFB_SAMPLES_DIR/$1-round$3.csv")
  taskset -c "$LOAD_CPU" "$tb" measure --url "http://127.0.0.1:$2/v1/chat/completions" \
    --body-file "$work/slow.json" --requests "$SLICE_REQUESTS" --warmup "$SLICE_WARMUP" "${samples[@]}" \
    > "$work/$1.ttfb" 2>&1 || { echo "ttfb-bench failed on $2: $(cat "$work/$1.ttfb")" >&2; exit 1; }
}
# A value from ttfb-bench's machine-readable line: tv NAME KEY.
tv() { awk -v k="$2" '/^ttfb_p50_us=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$work/$1.ttfb"; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
echo "time to first byte: 3 Gateways x $ROUNDS rounds x $((TTFB_REQUESTS + TTFB_WARMUP)) requests of ~$((TTFB_CHUNKS * TTFB_GAP_MS)) ms:" \
  "about $(( 3 * ROUNDS * (TTFB_REQUESTS + TTFB_WARMUP) * (TTFB_CHUNKS * (TTFB_GAP_MS + 1) + 1) / 60000 + 1 )) min" >&2
run warm json "$PIPELINE_PORT" 8
declare -a AJ AS RT TW TP FW FP
for r in $(seq 1 "$ROUNDS"); do
  run pj json "$PLAIN_PORT" 1
  run qj json "$PIPELINE_PORT" 1
  run ps sse "$PLAIN_PORT" 1
  run qs sse "$PIPELINE_PORT" 1
  run p32 json "$PLAIN_PORT" 32
  run q32 json "$PIPELINE_PORT" 32
  AJ+=("$(awk -v a="$(to_us "$(pct qj 50%)")" -v b="$(to_us "$(pct pj 50%)")" 'BEGIN { printf "%.1f", a - b }')")
  AS+=("$(awk -v a="$(to_us "$(pct qs 50%)")" -v b="$(to_us "$(pct ps 50%)")" 'BEGIN { printf "%.1f", a - b }')")
  RT+=("$(awk -v a="$(rps q32)" -v b="$(rps p32)" 'BEGIN { printf "%.3f", a / b }')")
  echo "round $r: p50 json plain $(pct pj 50%) pipeline $(pct qj 50%); sse plain $(pct ps 50%) pipeline $(pct qs 50%); 32 conns $(rps p32) vs $(rps q32) req/s" >&2
  slices=()
  for sl in $(seq 1 "$TTFB_SLICES"); do
    ttfb tp "$PLAIN_PORT" "$r-$sl"
    ttfb tw "$WINDOW_PORT" "$r-$sl"
    ttfb tq "$PIPELINE_PORT" "$r-$sl"
    TW+=("$(minus "$(tv tw ttfb_p50_us)" "$(tv tp ttfb_p50_us)")")
    TP+=("$(minus "$(tv tq ttfb_p50_us)" "$(tv tp ttfb_p50_us)")")
    FW+=("$(minus "$(tv tw first_text_p50_us)" "$(tv tp first_text_p50_us)")")
    FP+=("$(minus "$(tv tq first_text_p50_us)" "$(tv tp first_text_p50_us)")")
    slices+=("$(tv tp ttfb_p50_us)/$(tv tw ttfb_p50_us)/$(tv tq ttfb_p50_us)")
  done
  echo "round $r: time to first byte p50 (µs) plain/window/pipeline per slice: ${slices[*]}" >&2
done
echo "| Payload pipeline on a $bytes-byte chat request (median of $ROUNDS interleaved rounds) | added |"
echo "|---|---|"
echo "| p50 latency added, non-streaming, 1 connection (InProcess + request Guardrail + response Guardrail) | $(median "${AJ[@]}") µs |"
echo "| p50 latency added, streaming, 1 connection (+ Window output guardrail over the whole short stream) | $(median "${AS[@]}") µs |"
echo "| throughput with the pipeline / without, 32 connections | $(median "${RT[@]}") |"
echo "| time to first byte added by a Window output guardrail (p50), 1 connection, median of $(( ROUNDS * TTFB_SLICES )) slices | $(median "${TW[@]}") µs |"
echo "| time to first byte added by the full pipeline (p50), 1 connection, median of $(( ROUNDS * TTFB_SLICES )) slices | $(median "${TP[@]}") µs |"
echo "| first text added by a Window output guardrail (p50) | $(median "${FW[@]}") µs |"
echo
echo "Per round (µs, non-streaming): ${AJ[*]}; streaming: ${AS[*]}"
echo "Per slice (µs): first byte added, window: ${TW[*]}; pipeline: ${TP[*]}"
echo "Per slice (µs): first text added, window: ${FW[*]}; pipeline: ${FP[*]}"
echo "Time to first byte: ttfb-bench, $TTFB_SLICES slices of $SLICE_REQUESTS requests (+$SLICE_WARMUP warm-up) per Gateway and round, $TTFB_CHUNKS text chunks $TTFB_GAP_MS ms apart"
echo "${DURATION} per run; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
