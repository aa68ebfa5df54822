"""End to end: the official OpenAI SDK through the real gateway to the OpenAI and Azure OpenAI simulators.

One gateway serves the whole module (started once, with the simulators); every test finds its own exchange by
request id (the gateway sends its ``x-request-id`` to the provider, returns it to the client and logs it), so
the tests do not depend on each other or on their order. Expected texts and token counts follow the
simulators' deterministic rules (``e2e/sims/common.py``): prompt tokens = words of every message + 3 per
message, output tokens = words of the answer.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import time
import uuid

import openai
import pytest

from gateway import GATEWAY, Gateway, backend_for
from sims import AzureOpenAISim, OpenAISim
from sims.common import embedding

CLIENT_KEY = "client-key"
OPENAI_KEY = "sk-sim-openai-0123456789"
COMPAT_KEY = "compat-env-key-5f1e2d"
AZURE_KEY = "azure-sim-key-0123456789abcdef"
WRONG_KEY = "sk-wrong-key-configured-0042"
AZURE_DEPLOYMENTS = {"chat-prod": "gpt-4o-2024-11-20", "embed": "text-embedding-3-small"}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "days", "unit"],
        },
    },
}
WEATHER_ARGS = {"location": "Paris", "days": 1, "unit": "celsius"}

# Prices (USD per million tokens) of the models the usage tests use.
PRICE_IN, PRICE_CACHED, PRICE_OUT = 2.0, 0.5, 8.0


def config(osim: OpenAISim, compat: OpenAISim, azure: AzureOpenAISim) -> str:
    return "\n---\n".join(
        [
            GATEWAY,
            backend_for("openai-sim", osim.port),
            backend_for("compat-sim", compat.port),
            backend_for("azure-sim", azure.port),
            f"""
apiVersion: v1
kind: Secret
metadata: {{name: provider-keys, namespace: default}}
stringData: {{openai: {OPENAI_KEY}, azure: {AZURE_KEY}, wrong: {WRONG_KEY}}}
""",
            f"""
apiVersion: sluice.dev/v1alpha1
kind: AIPolicy
metadata: {{name: gateway-ai, namespace: default}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]
  modelAliases: {{smart: gpt-4.1}}
  prices:
  - {{model: gpt-usage-plain, input: {PRICE_IN}, cachedInput: {PRICE_CACHED}, output: {PRICE_OUT}}}
  - {{model: gpt-usage-stream, input: {PRICE_IN}, cachedInput: {PRICE_CACHED}, output: {PRICE_OUT}}}
  - {{model: gpt-usage-cached, input: {PRICE_IN}, cachedInput: {PRICE_CACHED}, output: {PRICE_OUT}}}
""",
            """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: openai, namespace: default}
spec:
  provider: {type: OpenAI}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: openai-sim}
  credentials: {secretRef: {name: provider-keys, key: openai}}
  region: us-east-1
  models: ["gpt-*", "text-embedding-*"]
  modelRewrite: {fast: gpt-4o-mini}
""",
            """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: openai-wrong-key, namespace: default}
spec:
  provider: {type: OpenAI}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: openai-sim}
  credentials: {secretRef: {name: provider-keys, key: wrong}}
  models: [badkey-model]
""",
            """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: compat, namespace: default}
spec:
  provider:
    type: OpenAI
    openai: {pathPrefix: /api/v1}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: compat-sim}
  credentials: {env: E2E_COMPAT_KEY}
  models: [llama-e2e]
""",
            """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: azure, namespace: default}
spec:
  provider:
    type: AzureOpenAI
    azure:
      apiVersion: "2024-10-21"
      deployments: {azure-gpt-4o: chat-prod, azure-embed: embed}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: azure-sim}
  credentials: {secretRef: {name: provider-keys, key: azure}}
  region: westeurope
  models: [azure-gpt-4o, azure-embed]
""",
            """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: models, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - headers: [{name: X-Gateway-Model-Name, type: RegularExpression, value: "gpt-.*|text-embedding-.*|fast"}]
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: openai}]
  - matches:
    - headers: [{name: X-Gateway-Model-Name, value: badkey-model}]
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: openai-wrong-key}]
  - matches:
    - headers: [{name: X-Gateway-Model-Name, value: llama-e2e}]
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: compat}]
  - matches:
    - headers: [{name: X-Gateway-Model-Name, type: RegularExpression, value: "azure-.*"}]
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: azure}]
  - matches:
    - path: {type: Exact, value: /v1/models}
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: openai}]
""",
        ]
    )


@pytest.fixture(scope="module")
def env():
    with (
        OpenAISim(api_key=OPENAI_KEY) as osim,
        OpenAISim(api_key=COMPAT_KEY, prefix="/api/v1", models=("llama-e2e",), provider_name="vllm") as compat,
        AzureOpenAISim(api_key=AZURE_KEY, deployments=AZURE_DEPLOYMENTS) as azure,
    ):
        with Gateway(config(osim, compat, azure), env={"E2E_COMPAT_KEY": COMPAT_KEY}) as gw:
            yield gw, osim, compat, azure


@pytest.fixture(autouse=True)
def _no_leftover_faults(env):
    yield
    for sim in env[1:]:
        sim.faults.clear()


@pytest.fixture
def gw(env):
    return env[0]


@pytest.fixture
def osim(env):
    return env[1]


@pytest.fixture
def compat(env):
    return env[2]


@pytest.fixture
def azure(env):
    return env[3]


@pytest.fixture(scope="module")
def client(env):
    gw = env[0]
    return openai.OpenAI(base_url=gw.openai_base_url, api_key=CLIENT_KEY, max_retries=0)


# ----------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------


def ptoks(*texts: str) -> int:
    """The simulators' prompt-token rule: words of every message plus 3 per message."""
    return sum(len(t.split()) for t in texts) + 3 * len(texts)


def words(text: str) -> int:
    return len(text.split())


def sim_request(sim, request_id: str):
    """The request the simulator received for the gateway exchange ``request_id``."""
    found = [r for r in sim.requests if r.header("x-request-id") == request_id]
    assert len(found) == 1, f"{sim.provider} received {len(found)} requests with id {request_id}"
    return found[0]


def log_record(gw: Gateway, request_id: str, timeout: float = 5.0) -> dict:
    """The access-log record of ``request_id`` (records are written when the body ends: poll for it)."""
    deadline = time.monotonic() + timeout
    while True:
        for rec in gw.access_log():
            if rec["request_id"] == request_id:
                return rec
        assert time.monotonic() < deadline, f"no access-log record for {request_id}"
        time.sleep(0.02)


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the series ``name`` whose labels include ``labels`` (None when absent)."""
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def stream_id(stream) -> str:
    return stream.response.headers["x-request-id"]


def new_id() -> str:
    """A request id for the client to send (``x-request-id``): the gateway keeps it, so errors, which carry no
    id back, can still be found in the access log and at the provider."""
    return uuid.uuid4().hex


# ----------------------------------------------------------------------------------------------------------
# OpenAI SDK → OpenAI simulator
# ----------------------------------------------------------------------------------------------------------


def test_chat_text_usage_and_injected_key(gw, osim, client):
    msgs = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    r = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    text = "Hello from openai! You said: What is the capital of France?"
    assert r.choices[0].message.content == text
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "gpt-4o-mini"
    assert r.usage.prompt_tokens == ptoks("You are terse.", "What is the capital of France?") == 15
    assert r.usage.completion_tokens == words(text) == 11
    assert r.usage.total_tokens == 26

    rec = sim_request(osim, r._request_id)
    assert (rec.method, rec.path) == ("POST", "/v1/chat/completions")
    assert rec.json == {"model": "gpt-4o-mini", "messages": msgs}  # the client's body, untouched
    # The gateway's credential from the Secret, never the client's.
    assert rec.header("authorization") == f"Bearer {OPENAI_KEY}"
    assert not any(CLIENT_KEY in v for v in rec.headers.values())

    log = log_record(gw, r._request_id)
    assert log["status"] == 200 and log["backend"] == "default/openai"
    ai = log["ai"]
    assert ai["operation"] == "chat" and ai["provider"] == "openai" and ai["backend"] == "default/openai"
    assert ai["region"] == "us-east-1" and ai["stream"] is False and ai["attempts"] == 1
    assert (ai["request_model"], ai["response_model"]) == ("gpt-4o-mini", "gpt-4o-mini")
    assert (ai["input_tokens"], ai["output_tokens"], ai["total_tokens"]) == (15, 11, 26)
    assert ai["completed"] is True and ai["cost_usd"] is None


def test_chat_stream_with_usage_requested(gw, osim, client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from openai! You said: stream me please"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == words(text)  # word by word
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (6, 8, 14)

    rid = stream_id(stream)
    assert sim_request(osim, rid).json["stream_options"] == {"include_usage": True}
    ai = log_record(gw, rid)["ai"]
    assert ai["stream"] is True and ai["completed"] is True
    assert (ai["input_tokens"], ai["output_tokens"], ai["total_tokens"]) == (6, 8, 14)


def test_chat_stream_without_usage_gets_no_usage_chunk(gw, osim, client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "no usage please"}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from openai! You said: no usage please"
    )
    # Every chunk the client got has choices and no usage...
    assert all(c.choices and c.usage is None for c in chunks)
    # ...although the gateway asked the provider for the usage chunk, and counted it.
    rid = stream_id(stream)
    sent = sim_request(osim, rid).json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    ai = log_record(gw, rid)["ai"]
    assert (ai["input_tokens"], ai["output_tokens"]) == (ptoks("no usage please"), 8)
    assert ai["completed"] is True


def test_tools_round_trip(osim, client):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    assert r.usage.completion_tokens == words(f"get_weather {json.dumps(WEATHER_ARGS, separators=(',', ':'))}")
    assert sim_request(osim, r._request_id).json["tools"] == [WEATHER]

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny and 21 degrees"},
    ]
    r2 = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
    assert r2.choices[0].finish_reason == "stop"
    assert r2.choices[0].message.content == "Hello from openai! The tool returned: Sunny and 21 degrees"
    # user words + (tool call: name and one-word JSON arguments) + tool result words, 3 per message.
    assert r2.usage.prompt_tokens == 6 + 2 + 4 + 9
    sent = sim_request(osim, r2._request_id).json
    assert sent["messages"][1]["tool_calls"][0]["id"] == call.id
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny and 21 degrees"}


def test_tools_streamed(client):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER],
        tool_choice="required",
        stream=True,
    )
    name, args, finish = "", "", None
    for chunk in stream:
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
            finish = c.finish_reason or finish
    assert (name, json.loads(args), finish) == ("get_weather", WEATHER_ARGS, "tool_calls")


def test_embeddings_base64_default_and_float(gw, osim, client):
    inputs = ["hello world", "a second text here"]
    # The SDK asks for base64 by default and decodes it to floats.
    r = client.embeddings.create(model="text-embedding-3-small", input=inputs)
    assert sim_request(osim, r._request_id).json["encoding_format"] == "base64"
    assert [d.index for d in r.data] == [0, 1]
    for d, text in zip(r.data, inputs):
        assert d.embedding == embedding(text, 1536)
    assert (r.usage.prompt_tokens, r.usage.total_tokens) == (6, 6)
    ai = log_record(gw, r._request_id)["ai"]
    assert ai["operation"] == "embeddings" and (ai["input_tokens"], ai["output_tokens"]) == (6, 0)

    f = client.embeddings.create(model="text-embedding-3-small", input="hello world", encoding_format="float", dimensions=8)
    assert sim_request(osim, f._request_id).json["encoding_format"] == "float"
    assert f.data[0].embedding == embedding("hello world", 8)

    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="hello world", encoding_format="base64", dimensions=4
    )
    b64 = json.loads(raw.text)["data"][0]["embedding"]
    assert list(struct.unpack("<4f", base64.b64decode(b64))) == embedding("hello world", 4)


def test_completions_plain_and_streamed(gw, osim, client):
    r = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=50)
    assert r.choices[0].text == "Hello from openai! You said: Say this is a test"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (8, 10)
    assert log_record(gw, r._request_id)["ai"]["operation"] == "text_completion"

    stream = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Stream it", stream=True)
    chunks = list(stream)
    # max_tokens defaults to 16 (as in the API): the answer fits.
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from openai! You said: Stream it"
    assert all(c.usage is None for c in chunks)
    rid = stream_id(stream)
    assert sim_request(osim, rid).json["stream_options"] == {"include_usage": True}
    ai = log_record(gw, rid)["ai"]
    assert (ai["input_tokens"], ai["output_tokens"], ai["completed"]) == (5, 7, True)


def test_responses_plain_and_streamed(gw, osim, client):
    r = client.responses.create(model="gpt-4.1", input="Tell me a joke", instructions="Be brief")
    assert r.output_text == "Hello from openai! You said: Tell me a joke"
    assert r.status == "completed"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (ptoks("Be brief", "Tell me a joke"), 9)
    assert sim_request(osim, r._request_id).path == "/v1/responses"
    ai = log_record(gw, r._request_id)["ai"]
    assert (ai["operation"], ai["input_tokens"], ai["output_tokens"]) == ("chat", 12, 9)

    stream = client.responses.create(model="gpt-4.1", input="Stream a joke", stream=True)
    events = list(stream)
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Hello from openai! You said: Stream a joke"
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage.input_tokens == ptoks("Stream a joke")
    ai = log_record(gw, stream_id(stream))["ai"]
    assert ai["stream"] is True and ai["completed"] is True
    assert (ai["input_tokens"], ai["output_tokens"]) == (6, 8)

    # The SDK's helper that assembles the streamed response.
    with client.responses.stream(model="gpt-4.1", input="Once more") as s:
        final = s.get_final_response()
    assert final.output_text == "Hello from openai! You said: Once more"


def test_models_lists_configured_models(osim, client):
    before = len(osim.requests)
    models = {m.id: m.owned_by for m in client.models.list()}
    assert models == {
        "azure-embed": "azure.ai.openai",
        "azure-gpt-4o": "azure.ai.openai",
        "badkey-model": "openai",
        "fast": "openai",
        "llama-e2e": "openai",
        "smart": "sluice",
    }
    assert len(osim.requests) == before  # answered from configuration


def test_model_rewrite_and_alias(gw, osim, client):
    r = client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "Hi"}])
    assert sim_request(osim, r._request_id).json["model"] == "gpt-4o-mini"
    assert r.model == "gpt-4o-mini" and r.choices[0].message.content == "Hello from openai! You said: Hi"
    ai = log_record(gw, r._request_id)["ai"]
    assert (ai["request_model"], ai["response_model"]) == ("fast", "gpt-4o-mini")

    r = client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "Hi"}])
    assert sim_request(osim, r._request_id).json["model"] == "gpt-4.1"
    ai = log_record(gw, r._request_id)["ai"]
    assert (ai["request_model"], ai["response_model"]) == ("gpt-4.1", "gpt-4.1")


def test_client_model_header_is_not_trusted(osim, compat, client):
    compat_before = len(compat.requests)
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        extra_headers={"X-Gateway-Model-Name": "llama-e2e"},
    )
    assert r.choices[0].message.content == "Hello from openai! You said: Hi"  # routed by the body's model
    assert "x-gateway-model-name" not in sim_request(osim, r._request_id).headers
    assert len(compat.requests) == compat_before

    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(
            model="no-such-model",
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"X-Gateway-Model-Name": "gpt-4o-mini"},
        )
    assert err.value.code == "model_not_found"


def test_compatible_path_prefix_and_env_credential(gw, compat):
    # Any client-side prefix works too: paths are recognised by their end.
    client = openai.OpenAI(base_url=f"{gw.origin}/team-a/v1", api_key=CLIENT_KEY, max_retries=0)
    r = client.chat.completions.create(model="llama-e2e", messages=[{"role": "user", "content": "Hi vLLM"}])
    assert r.choices[0].message.content == "Hello from vllm! You said: Hi vLLM"
    rec = sim_request(compat, r._request_id)
    assert rec.path == "/api/v1/chat/completions"
    assert rec.header("authorization") == f"Bearer {COMPAT_KEY}"  # from the gateway's environment
    assert log_record(gw, r._request_id)["ai"]["backend"] == "default/compat"


# ----------------------------------------------------------------------------------------------------------
# Azure OpenAI
# ----------------------------------------------------------------------------------------------------------


def test_azure_chat_deployment_and_api_key(gw, azure, client):
    r = client.chat.completions.create(model="azure-gpt-4o", messages=[{"role": "user", "content": "Hi Azure"}])
    assert r.choices[0].message.content == "Hello from azure! You said: Hi Azure"
    assert r.model == "gpt-4o-2024-11-20"  # the deployment's model
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (5, 7)
    rec = sim_request(azure, r._request_id)
    assert rec.path == "/openai/deployments/chat-prod/chat/completions"
    assert rec.query == {"api-version": "2024-10-21"}
    assert rec.header("api-key") == AZURE_KEY and rec.header("authorization") is None
    ai = log_record(gw, r._request_id)["ai"]
    assert (ai["provider"], ai["region"], ai["response_model"]) == ("azure.ai.openai", "westeurope", "gpt-4o-2024-11-20")


def test_azure_stream_and_embeddings(gw, azure, client):
    stream = client.chat.completions.create(
        model="azure-gpt-4o", messages=[{"role": "user", "content": "Stream Azure"}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from azure! You said: Stream Azure"
    )
    assert all(c.usage is None for c in chunks)
    ai = log_record(gw, stream_id(stream))["ai"]
    assert (ai["input_tokens"], ai["output_tokens"], ai["completed"]) == (5, 7, True)

    e = client.embeddings.create(model="azure-embed", input="embed me")
    rec = sim_request(azure, e._request_id)
    assert rec.path == "/openai/deployments/embed/embeddings" and rec.query["api-version"] == "2024-10-21"
    assert e.data[0].embedding == embedding("embed me", 1536)


# ----------------------------------------------------------------------------------------------------------
# Usage exactness: access log, metrics and cost
# ----------------------------------------------------------------------------------------------------------


def cost(input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    return ((input_tokens - cached) * PRICE_IN + cached * PRICE_CACHED + output_tokens * PRICE_OUT) / 1e6


def assert_metrics(gw: Gateway, model: str, input_tokens: int, output_tokens: int, count: int, usd: float):
    text = gw.metrics()
    for kind, n in (("input", input_tokens), ("output", output_tokens)):
        labels = dict(gen_ai_request_model=model, gen_ai_token_type=kind, gen_ai_provider_name="openai")
        assert metric(text, "gen_ai_client_token_usage_sum", **labels) == n
        assert metric(text, "gen_ai_client_token_usage_count", **labels) == count
    assert metric(text, "sluice_ai_cost_usd_total", provider="openai", model=model, region="us-east-1") == pytest.approx(usd)


def test_usage_exact_whole_answer(gw, client):
    r = client.chat.completions.create(
        model="gpt-usage-plain",
        messages=[{"role": "system", "content": "Count my tokens"}, {"role": "user", "content": "one two three"}],
    )
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (12, 8)
    ai = log_record(gw, r._request_id)["ai"]
    assert (ai["input_tokens"], ai["output_tokens"], ai["total_tokens"]) == (12, 8, 20)
    assert (ai["cached_input_tokens"], ai["cache_creation_tokens"], ai["reasoning_tokens"]) == (0, 0, 0)
    assert ai["cost_usd"] == pytest.approx(cost(12, 8))
    assert_metrics(gw, "gpt-usage-plain", 12, 8, 1, cost(12, 8))
    text = gw.metrics()
    assert metric(
        text, "sluice_ai_backend_requests_total", backend="default/openai", region="us-east-1", outcome="success"
    ) >= 1


def test_usage_exact_stream(gw, client):
    stream = client.chat.completions.create(
        model="gpt-usage-stream", messages=[{"role": "user", "content": "count a stream"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
        "Hello from openai! You said: count a stream"
    )
    ai = log_record(gw, stream_id(stream))["ai"]
    assert (ai["input_tokens"], ai["output_tokens"], ai["total_tokens"]) == (6, 8, 14)
    assert ai["cost_usd"] == pytest.approx(cost(6, 8))
    assert ai["time_to_first_token_ms"] > 0
    assert_metrics(gw, "gpt-usage-stream", 6, 8, 1, cost(6, 8))


def test_usage_cached_prompt(gw, client):
    messages = [
        {"role": "system", "content": "A long shared prefix of instructions"},
        {"role": "user", "content": "first question"},
    ]
    first = client.chat.completions.create(model="gpt-usage-cached", messages=messages, prompt_cache_key="e2e")
    second = client.chat.completions.create(model="gpt-usage-cached", messages=messages, prompt_cache_key="e2e")
    prefix = ptoks("A long shared prefix of instructions")
    assert second.usage.prompt_tokens_details.cached_tokens == prefix == 9
    a1 = log_record(gw, first._request_id)["ai"]
    a2 = log_record(gw, second._request_id)["ai"]
    assert (a1["input_tokens"], a1["cached_input_tokens"], a1["output_tokens"]) == (14, 0, 7)
    assert (a2["input_tokens"], a2["cached_input_tokens"], a2["output_tokens"]) == (14, 9, 7)
    assert a2["cost_usd"] == pytest.approx(cost(14, 7, cached=9))
    assert_metrics(gw, "gpt-usage-cached", 28, 14, 2, cost(14, 7) + cost(14, 7, cached=9))


# ----------------------------------------------------------------------------------------------------------
# Errors in the OpenAI dialect
# ----------------------------------------------------------------------------------------------------------


def test_invalid_json_is_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.post(
            "/chat/completions",
            cast_to=object,
            content=b'{"model": "gpt-4o", "messages": [',
            options={"headers": {"Content-Type": "application/json"}},
        )
    assert err.value.status_code == 400 and err.value.type == "invalid_request_error"
    assert "not valid JSON" in err.value.message


def test_missing_model_is_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="", messages=[{"role": "user", "content": "Hi"}])
    assert err.value.code == "invalid_request_error" and "model" in err.value.message


def test_unknown_model_is_404(gw, client):
    rid = new_id()
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(
            model="gpt5x-unknown", messages=[{"role": "user", "content": "Hi"}], extra_headers={"x-request-id": rid}
        )
    # "gpt5x-unknown" matches no header rule ("gpt-" needs the dash).
    assert err.value.code == "model_not_found" and err.value.type == "not_found_error"
    assert "gpt5x-unknown" in err.value.message
    assert log_record(gw, rid)["status"] == 404


def raw_chat_body(size: int) -> bytes:
    """A chat request of exactly ``size`` bytes (its one message padded with a single long word)."""
    head, tail = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"', b'"}]}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_body_limit_default_two_mib(osim, client):
    limit = 2 * 1024 * 1024
    body = raw_chat_body(limit)
    answer = client.post(
        "/chat/completions",
        cast_to=openai.types.chat.ChatCompletion,
        content=body,
        options={"headers": {"Content-Type": "application/json"}},
    )
    assert answer.usage.prompt_tokens == 4  # one (long) word + 3
    assert len(sim_request(osim, answer._request_id).body) == limit

    with pytest.raises(openai.APIStatusError) as err:
        client.post(
            "/chat/completions",
            cast_to=object,
            content=raw_chat_body(limit + 1),
            options={"headers": {"Content-Type": "application/json"}},
        )
    assert err.value.status_code == 413
    assert err.value.code == "request_too_large" and str(limit) in err.value.message


def test_provider_400_passed_with_its_message(gw, osim, client):
    message = "Invalid 'messages[0].content': string too long. Expected a string with maximum length 10."
    osim.fail(400, message=message)
    rid = new_id()
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], extra_headers={"x-request-id": rid}
        )
    assert err.value.body["message"] == message
    assert err.value.code == "provider_error"
    ai = log_record(gw, rid)["ai"]
    assert (ai["attempts"], ai["completed"], ai["backend"]) == (1, False, "default/openai")


def test_provider_rejecting_gateway_key_is_502_without_the_key(gw, osim, client):
    rid = new_id()
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(
            model="badkey-model", messages=[{"role": "user", "content": "Hi"}], extra_headers={"x-request-id": rid}
        )
    assert err.value.status_code == 502 and err.value.code == "provider_auth_error"
    # The simulator's 401 quotes the key (masked); none of it reaches the client.
    body = err.value.response.text
    assert WRONG_KEY not in body and WRONG_KEY[-4:] not in body and "Incorrect API key" not in body
    rec = sim_request(osim, rid)
    assert rec.header("authorization") == f"Bearer {WRONG_KEY}"
    assert WRONG_KEY not in gw.output()
