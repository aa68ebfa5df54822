"""End to end: the official Anthropic SDK through the real gateway (passthrough to the Anthropic simulator,
translated to the OpenAI simulator and to the built-in mock), and the OpenAI SDK translated to Anthropic.

One gateway serves the module. Each exchange is found by its request id: the gateway returns
``x-request-id`` on answers and sends it to the provider; for errors (which carry none back) the client sends
its own ``x-request-id``, which the gateway keeps. Expected numbers follow the simulators' rules
(``e2e/sims/common.py``) and the mock's (``crates/llm/src/mock.rs``).
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid

import anthropic
import openai
import pytest

from gateway import GATEWAY, Gateway, backend_for
from sims import AnthropicSim, OpenAISim

CLIENT_KEY = "client-key"
ANTHROPIC_KEY = "sk-ant-sim-0123456789"
OPENAI_KEY = "sk-sim-openai-0123456789"
WRONG_KEY = "sk-ant-wrong-configured-7781"
MAX_BYTES = 65536

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "location": {"type": "string"},
        "days": {"type": "integer"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["location", "days", "unit"],
}
WEATHER_ARGS = {"location": "Paris", "days": 1, "unit": "celsius"}
ANTHROPIC_TOOL = {"name": "get_weather", "description": "Weather of a city", "input_schema": WEATHER_SCHEMA}
OPENAI_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather of a city", "parameters": WEATHER_SCHEMA},
}
# (input, cached input, cache creation, output) USD per million tokens.
PRICES = (3.0, 0.3, 3.75, 15.0)


def config(asim: AnthropicSim, osim: OpenAISim) -> str:
    i, c, w, o = PRICES
    return "\n---\n".join(
        [
            GATEWAY,
            backend_for("anthropic-sim", asim.port),
            backend_for("openai-sim", osim.port),
            f"""
apiVersion: v1
kind: Secret
metadata: {{name: provider-keys, namespace: default}}
stringData: {{anthropic: {ANTHROPIC_KEY}, openai: {OPENAI_KEY}, wrong: {WRONG_KEY}}}
""",
            f"""
apiVersion: sluice.dev/v1alpha1
kind: AIPolicy
metadata: {{name: gateway-ai, namespace: default}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]
  maxRequestBytes: {MAX_BYTES}
  prices:
  - {{model: claude-e2e-cache, input: {i}, cachedInput: {c}, cacheCreation: {w}, output: {o}}}
  - {{model: claude-e2e-cache-stream, input: {i}, cachedInput: {c}, cacheCreation: {w}, output: {o}}}
""",
            """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: anthropic, namespace: default}
spec:
  provider: {type: Anthropic}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: anthropic-sim}
  credentials: {secretRef: {name: provider-keys, key: anthropic}}
  region: eu-central-1
  models: ["claude-*"]
""",
            """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: anthropic-wrong-key, namespace: default}
spec:
  provider: {type: Anthropic}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: anthropic-sim}
  credentials: {secretRef: {name: provider-keys, key: wrong}}
  models: [badkey-claude]
""",
            """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: openai, namespace: default}
spec:
  provider: {type: OpenAI}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: openai-sim}
  credentials: {secretRef: {name: provider-keys, key: openai}}
  models: ["gpt-*"]
""",
            """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: mock, namespace: default}
spec:
  provider: {type: Mock}
""",
            """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: models, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - headers: [{name: X-Gateway-Model-Name, type: RegularExpression, value: "claude-.*"}]
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: anthropic}]
  - matches:
    - headers: [{name: X-Gateway-Model-Name, value: badkey-claude}]
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: anthropic-wrong-key}]
  - matches:
    - headers: [{name: X-Gateway-Model-Name, type: RegularExpression, value: "gpt-.*"}]
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: openai}]
  - matches:
    - headers: [{name: X-Gateway-Model-Name, type: RegularExpression, value: "mock-.*"}]
    backendRefs: [{group: sluice.dev, kind: AIBackend, name: mock}]
""",
        ]
    )


@pytest.fixture(scope="module")
def env():
    with AnthropicSim(api_key=ANTHROPIC_KEY) as asim, OpenAISim(api_key=OPENAI_KEY) as osim:
        with Gateway(config(asim, osim)) as gw:
            yield gw, asim, osim


@pytest.fixture(autouse=True)
def _no_leftover_faults(env):
    yield
    for sim in env[1:]:
        sim.faults.clear()


@pytest.fixture
def gw(env):
    return env[0]


@pytest.fixture
def asim(env):
    return env[1]


@pytest.fixture
def osim(env):
    return env[2]


@pytest.fixture(scope="module")
def claude(env):
    gw = env[0]
    return anthropic.Anthropic(base_url=gw.origin, api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture(scope="module")
def oai(env):
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


def mock_prompt(*contents: str) -> int:
    """The mock's prompt tokens: 3, plus 4 and a token per 4 characters for each message."""
    return 3 + sum(4 + math.ceil(len(c) / 4) for c in contents)


def new_id() -> str:
    return uuid.uuid4().hex


def sim_request(sim, request_id: str):
    found = [r for r in sim.requests if r.header("x-request-id") == request_id]
    assert len(found) == 1, f"{sim.provider} received {len(found)} requests with id {request_id}"
    return found[0]


def log_record(gw: Gateway, request_id: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        for rec in gw.access_log():
            if rec["request_id"] == request_id:
                return rec
        assert time.monotonic() < deadline, f"no access-log record for {request_id}"
        time.sleep(0.02)


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def create(claude: anthropic.Anthropic, **kw):
    """``messages.create`` keeping the HTTP response: (message, request id)."""
    raw = claude.messages.with_raw_response.create(**kw)
    return raw.parse(), raw.headers["x-request-id"]


def assert_no_client_key(rec) -> None:
    assert not any(CLIENT_KEY in v for v in rec.headers.values()), rec.headers


# ----------------------------------------------------------------------------------------------------------
# Anthropic SDK → Anthropic simulator (passthrough)
# ----------------------------------------------------------------------------------------------------------


def test_messages_passthrough(gw, asim, claude):
    kw = dict(
        model="claude-e2e",
        max_tokens=256,
        system="Be terse.",
        messages=[{"role": "user", "content": "Hello there"}],
        metadata={"user_id": "u-1"},
    )
    msg, rid = create(claude, **kw)
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello from anthropic! You said: Hello there"
    assert (msg.stop_reason, msg.model, msg.role) == ("end_turn", "claude-e2e", "assistant")
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (ptoks("Be terse.", "Hello there"), 7) == (10, 7)

    rec = sim_request(asim, rid)
    assert rec.path == "/v1/messages"
    assert rec.json == kw  # the client's body as it came
    assert rec.header("x-api-key") == ANTHROPIC_KEY  # the gateway's key, injected
    assert rec.header("anthropic-version") == "2023-06-01"
    assert rec.header("authorization") is None
    assert_no_client_key(rec)

    ai = log_record(gw, rid)["ai"]
    assert (ai["provider"], ai["backend"], ai["region"]) == ("anthropic", "default/anthropic", "eu-central-1")
    assert (ai["input_tokens"], ai["output_tokens"], ai["total_tokens"], ai["completed"]) == (10, 7, 17, True)


def test_messages_stream_passthrough(gw, asim, claude):
    with claude.messages.stream(
        model="claude-e2e", max_tokens=256, messages=[{"role": "user", "content": "Stream this back"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        rid = stream.response.headers["x-request-id"]
    assert text == "Hello from anthropic! You said: Stream this back"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (6, 8)
    rec = sim_request(asim, rid)
    assert rec.json["stream"] is True and rec.header("accept") == "text/event-stream"
    ai = log_record(gw, rid)["ai"]
    assert (ai["stream"], ai["completed"], ai["input_tokens"], ai["output_tokens"]) == (True, True, 6, 8)


def test_tools_passthrough(asim, claude):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    msg, rid = create(claude, model="claude-e2e", max_tokens=256, messages=messages, tools=[ANTHROPIC_TOOL])
    assert msg.stop_reason == "tool_use"
    (block,) = msg.content
    assert (block.type, block.name, block.input) == ("tool_use", "get_weather", WEATHER_ARGS)
    assert sim_request(asim, rid).json["tools"] == [ANTHROPIC_TOOL]

    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "Rainy, 12 degrees"}]},
    ]
    msg2, _ = create(claude, model="claude-e2e", max_tokens=256, messages=messages, tools=[ANTHROPIC_TOOL])
    assert msg2.content[0].text == "Hello from anthropic! The tool returned: Rainy, 12 degrees"
    assert msg2.stop_reason == "end_turn"

    # Streamed tool use: the SDK assembles the input JSON.
    with claude.messages.stream(
        model="claude-e2e", max_tokens=256, messages=messages[:1], tools=[ANTHROPIC_TOOL]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == WEATHER_ARGS and final.stop_reason == "tool_use"


def test_count_tokens_passthrough(gw, asim, claude):
    raw = claude.messages.with_raw_response.count_tokens(
        model="claude-e2e", system="Count these", messages=[{"role": "user", "content": "How many tokens is this?"}]
    )
    assert raw.parse().input_tokens == ptoks("Count these", "How many tokens is this?") == 13
    rid = raw.headers["x-request-id"]
    rec = sim_request(asim, rid)
    assert rec.path == "/v1/messages/count_tokens" and rec.header("x-api-key") == ANTHROPIC_KEY
    ai = log_record(gw, rid)["ai"]
    assert ai["operation"] == "count_tokens" and ai["input_tokens"] == 0  # counting is not usage


def test_passthrough_cache_usage_and_cost(gw, claude):
    system = [{"type": "text", "text": "A long cached system prompt", "cache_control": {"type": "ephemeral"}}]
    kw = dict(model="claude-e2e-cache", max_tokens=256, system=system, messages=[{"role": "user", "content": "Hi"}])
    first, rid1 = create(claude, **kw)
    second, rid2 = create(claude, **kw)
    prefix = ptoks("A long cached system prompt")  # 8
    assert (first.usage.cache_creation_input_tokens, first.usage.cache_read_input_tokens) == (prefix, 0)
    assert (second.usage.cache_creation_input_tokens, second.usage.cache_read_input_tokens) == (0, prefix)
    assert first.usage.input_tokens == second.usage.input_tokens == ptoks("Hi") == 4
    out = words("Hello from anthropic! You said: Hi")  # 6
    i, c, w, o = PRICES
    a1, a2 = log_record(gw, rid1)["ai"], log_record(gw, rid2)["ai"]
    # The gateway's input counts every prompt token: uncached + read + written.
    assert (a1["input_tokens"], a1["cached_input_tokens"], a1["cache_creation_tokens"]) == (12, 0, 8)
    assert (a2["input_tokens"], a2["cached_input_tokens"], a2["cache_creation_tokens"]) == (12, 8, 0)
    assert a1["output_tokens"] == a2["output_tokens"] == out
    cost1, cost2 = (4 * i + 8 * w + out * o) / 1e6, (4 * i + 8 * c + out * o) / 1e6
    assert a1["cost_usd"] == pytest.approx(cost1) and a2["cost_usd"] == pytest.approx(cost2)
    text = gw.metrics()
    for kind, n in (("input", 24), ("output", 2 * out)):
        labels = dict(gen_ai_request_model="claude-e2e-cache", gen_ai_token_type=kind, gen_ai_provider_name="anthropic")
        assert metric(text, "gen_ai_client_token_usage_sum", **labels) == n
        assert metric(text, "gen_ai_client_token_usage_count", **labels) == 2
    assert metric(
        text, "sluice_ai_cost_usd_total", provider="anthropic", model="claude-e2e-cache", region="eu-central-1"
    ) == pytest.approx(cost1 + cost2)


def test_passthrough_stream_cache_usage(gw, claude):
    system = [{"type": "text", "text": "Another cached prompt", "cache_control": {"type": "ephemeral"}}]
    kw = dict(model="claude-e2e-cache-stream", max_tokens=256, system=system, messages=[{"role": "user", "content": "Yo"}])
    rids = []
    for _ in range(2):
        with claude.messages.stream(**kw) as stream:
            final = stream.get_final_message()
            rids.append(stream.response.headers["x-request-id"])
    assert final.usage.cache_read_input_tokens == ptoks("Another cached prompt") == 6
    a1, a2 = (log_record(gw, r)["ai"] for r in rids)
    assert (a1["input_tokens"], a1["cached_input_tokens"], a1["cache_creation_tokens"], a1["output_tokens"]) == (10, 0, 6, 6)
    assert (a2["input_tokens"], a2["cached_input_tokens"], a2["cache_creation_tokens"], a2["output_tokens"]) == (10, 6, 0, 6)
    i, c, w, o = PRICES
    assert a2["cost_usd"] == pytest.approx((4 * i + 6 * c + 6 * o) / 1e6)
    text = gw.metrics()
    labels = dict(gen_ai_request_model="claude-e2e-cache-stream", gen_ai_token_type="input")
    assert metric(text, "gen_ai_client_token_usage_sum", **labels) == 20


# ----------------------------------------------------------------------------------------------------------
# OpenAI SDK → Anthropic simulator (translation)
# ----------------------------------------------------------------------------------------------------------


def test_openai_sdk_to_anthropic_system_and_turns(gw, asim, oai):
    messages = [
        {"role": "system", "content": "You answer in French."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "Second question here"},
    ]
    r = oai.chat.completions.create(model="claude-e2e", messages=messages, user="user-42")
    assert r.choices[0].message.content == "Hello from anthropic! You said: Second question here"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "claude-e2e" and r.object == "chat.completion"
    expected_in = ptoks("You answer in French.", "First question", "First answer", "Second question here")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (expected_in, 8)
    assert r.usage.total_tokens == expected_in + 8

    sent = sim_request(asim, r._request_id)
    assert sent.path == "/v1/messages" and sent.header("x-api-key") == ANTHROPIC_KEY
    assert_no_client_key(sent)
    assert sent.json["system"] == "You answer in French."
    assert [m["role"] for m in sent.json["messages"]] == ["user", "assistant", "user"]
    assert sent.json["max_tokens"] == 4096 and sent.json["metadata"] == {"user_id": "user-42"}
    ai = log_record(gw, r._request_id)["ai"]
    assert (ai["provider"], ai["input_tokens"], ai["output_tokens"]) == ("anthropic", expected_in, 8)


def test_openai_sdk_to_anthropic_stop_reasons(asim, oai):
    r = oai.chat.completions.create(
        model="claude-e2e", messages=[{"role": "user", "content": "Cut me short"}], max_completion_tokens=3
    )
    assert r.choices[0].message.content == "Hello from anthropic!"
    assert r.choices[0].finish_reason == "length"
    assert sim_request(asim, r._request_id).json["max_tokens"] == 3

    r = oai.chat.completions.create(
        model="claude-e2e", messages=[{"role": "user", "content": "Stop early"}], stop=["You said"]
    )
    assert r.choices[0].message.content.strip() == "Hello from anthropic!"
    assert r.choices[0].finish_reason == "stop"
    assert sim_request(asim, r._request_id).json["stop_sequences"] == ["You said"]


def test_openai_sdk_to_anthropic_tools(asim, oai):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    r = oai.chat.completions.create(model="claude-e2e", messages=messages, tools=[OPENAI_TOOL], tool_choice="required")
    sent = sim_request(asim, r._request_id).json
    assert sent["tools"] == [ANTHROPIC_TOOL] and sent["tool_choice"]["type"] == "any"
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == WEATHER_ARGS

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Cloudy"},
    ]
    r2 = oai.chat.completions.create(model="claude-e2e", messages=messages, tools=[OPENAI_TOOL])
    assert r2.choices[0].message.content == "Hello from anthropic! The tool returned: Cloudy"
    sent = sim_request(asim, r2._request_id).json
    assert sent["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": call.id,
        "name": "get_weather",
        "input": WEATHER_ARGS,
    }
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"
    assert sent["messages"][2]["content"][0]["tool_use_id"] == call.id


def test_openai_sdk_to_anthropic_cache_usage(gw, oai):
    messages = [
        {
            "role": "system",
            "content": [{"type": "text", "text": "Translated cached prefix", "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "user", "content": "Hello"},
    ]
    oai.chat.completions.create(model="claude-e2e-translated-cache", messages=messages)
    r = oai.chat.completions.create(model="claude-e2e-translated-cache", messages=messages)
    prefix = ptoks("Translated cached prefix")  # 6
    assert r.usage.prompt_tokens == prefix + ptoks("Hello") == 10
    assert r.usage.prompt_tokens_details.cached_tokens == prefix
    ai = log_record(gw, r._request_id)["ai"]
    assert (ai["input_tokens"], ai["cached_input_tokens"], ai["cache_creation_tokens"]) == (10, 6, 0)


def test_openai_sdk_to_anthropic_stream(gw, asim, oai):
    stream = oai.chat.completions.create(
        model="claude-e2e",
        messages=[{"role": "system", "content": "Sys"}, {"role": "user", "content": "Stream translated"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from anthropic! You said: Stream translated"
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and (usage.prompt_tokens, usage.completion_tokens) == (ptoks("Sys", "Stream translated"), 7)
    rid = stream.response.headers["x-request-id"]
    assert sim_request(asim, rid).json["stream"] is True
    ai = log_record(gw, rid)["ai"]
    assert (ai["stream"], ai["completed"], ai["input_tokens"], ai["output_tokens"]) == (True, True, 9, 7)

    # Without include_usage, no usage chunk reaches the client.
    stream = oai.chat.completions.create(model="claude-e2e", messages=[{"role": "user", "content": "No usage"}], stream=True)
    chunks = list(stream)
    assert all(c.choices and c.usage is None for c in chunks)
    assert log_record(gw, stream.response.headers["x-request-id"])["ai"]["output_tokens"] == 7


def test_openai_sdk_to_anthropic_streamed_tool_call(oai):
    stream = oai.chat.completions.create(
        model="claude-e2e", messages=[{"role": "user", "content": "Weather?"}], tools=[OPENAI_TOOL], stream=True
    )
    name, args, finish = "", "", None
    for chunk in stream:
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
            finish = c.finish_reason or finish
    assert (name, json.loads(args), finish) == ("get_weather", WEATHER_ARGS, "tool_calls")


# ----------------------------------------------------------------------------------------------------------
# Anthropic SDK → OpenAI simulator (translation)
# ----------------------------------------------------------------------------------------------------------


def test_anthropic_sdk_to_openai(gw, osim, claude):
    msg, rid = create(
        claude,
        model="gpt-4o-mini",
        max_tokens=100,
        system="Be kind.",
        messages=[
            {"role": "user", "content": "One"},
            {"role": "assistant", "content": "Two"},
            {"role": "user", "content": [{"type": "text", "text": "Three four"}]},
        ],
        stop_sequences=["never-matches"],
    )
    assert msg.type == "message" and msg.id.startswith("msg_")
    assert msg.content[0].text == "Hello from openai! You said: Three four"
    assert (msg.stop_reason, msg.model) == ("end_turn", "gpt-4o-mini")
    expected_in = ptoks("Be kind.", "One", "Two", "Three four")
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (expected_in, 7)
    rec = sim_request(osim, rid)
    assert rec.path == "/v1/chat/completions" and rec.header("authorization") == f"Bearer {OPENAI_KEY}"
    assert_no_client_key(rec)
    sent = rec.json
    assert sent["messages"][0] == {"role": "system", "content": "Be kind."}
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["max_tokens"] == 100 and sent["stop"] == ["never-matches"]
    ai = log_record(gw, rid)["ai"]
    assert (ai["provider"], ai["input_tokens"], ai["output_tokens"]) == ("openai", expected_in, 7)

    msg, _ = create(claude, model="gpt-4o-mini", max_tokens=2, messages=[{"role": "user", "content": "Long"}])
    assert (msg.content[0].text, msg.stop_reason) == ("Hello from", "max_tokens")


def test_anthropic_sdk_to_openai_stream(gw, osim, claude):
    with claude.messages.stream(
        model="gpt-4o-mini", max_tokens=100, messages=[{"role": "user", "content": "Stream via OpenAI"}]
    ) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
        rid = stream.response.headers["x-request-id"]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert final.content[0].text == "Hello from openai! You said: Stream via OpenAI"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (6, 8)
    sent = sim_request(osim, rid).json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    ai = log_record(gw, rid)["ai"]
    assert (ai["completed"], ai["input_tokens"], ai["output_tokens"]) == (True, 6, 8)


def test_anthropic_sdk_to_openai_tools(osim, claude):
    messages = [{"role": "user", "content": "Weather in Paris please"}]
    msg, rid = create(claude, model="gpt-4o", max_tokens=100, messages=messages, tools=[ANTHROPIC_TOOL])
    assert sim_request(osim, rid).json["tools"] == [OPENAI_TOOL]
    assert msg.stop_reason == "tool_use"
    (block,) = msg.content
    assert (block.type, block.name, block.input) == ("tool_use", "get_weather", WEATHER_ARGS)

    messages += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "Hot"}]},
    ]
    msg2, rid2 = create(claude, model="gpt-4o", max_tokens=100, messages=messages, tools=[ANTHROPIC_TOOL])
    assert msg2.content[0].text == "Hello from openai! The tool returned: Hot"
    sent = sim_request(osim, rid2).json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == block.id
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == WEATHER_ARGS
    assert sent[2] == {"role": "tool", "tool_call_id": block.id, "content": "Hot"}

    with claude.messages.stream(model="gpt-4o", max_tokens=100, messages=messages[:1], tools=[ANTHROPIC_TOOL]) as s:
        final = s.get_final_message()
    assert (final.content[0].name, final.content[0].input, final.stop_reason) == ("get_weather", WEATHER_ARGS, "tool_use")


# ----------------------------------------------------------------------------------------------------------
# The built-in mock provider
# ----------------------------------------------------------------------------------------------------------


def test_anthropic_sdk_to_mock(gw, claude):
    msg, rid = create(claude, model="mock-e2e", max_tokens=64, messages=[{"role": "user", "content": "Hello mock"}])
    text = "This is a mock response from Sluice. You said: Hello mock"
    assert msg.content[0].text == text and msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (mock_prompt("Hello mock"), words(text))
    ai = log_record(gw, rid)["ai"]
    assert (ai["provider"], ai["backend"], ai["input_tokens"], ai["output_tokens"]) == (
        "mock",
        "default/mock",
        mock_prompt("Hello mock"),
        words(text),
    )

    with claude.messages.stream(
        model="mock-e2e", max_tokens=64, messages=[{"role": "user", "content": "Stream mock"}]
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == "This is a mock response from Sluice. You said: Stream mock"
    assert final.usage.output_tokens == words(streamed)

    msg, _ = create(claude, model="mock-e2e", max_tokens=3, messages=[{"role": "user", "content": "Cut"}])
    assert (msg.content[0].text, msg.stop_reason) == ("This is a ", "max_tokens")


def test_openai_sdk_to_mock(gw, oai):
    r = oai.chat.completions.create(model="mock-e2e", messages=[{"role": "user", "content": "Hi mock"}])
    assert r.choices[0].message.content == "This is a mock response from Sluice. You said: Hi mock"
    assert r.usage.prompt_tokens == mock_prompt("Hi mock")
    stream = oai.chat.completions.create(
        model="mock-e2e",
        messages=[{"role": "user", "content": "Stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "This is a mock response from Sluice. You said: Stream"
    )
    assert chunks[-1].usage.completion_tokens == 10
    ai = log_record(gw, stream.response.headers["x-request-id"])["ai"]
    assert (ai["provider"], ai["stream"], ai["output_tokens"], ai["completed"]) == ("mock", True, 10, True)


# ----------------------------------------------------------------------------------------------------------
# Errors in the Anthropic dialect
# ----------------------------------------------------------------------------------------------------------


def test_invalid_json_is_400(claude):
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.post(
            "/v1/messages",
            cast_to=object,
            content=b'{"model": "claude-e2e", "max_tokens": ',
            options={"headers": {"Content-Type": "application/json"}},
        )
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in err.value.body["error"]["message"]


def test_missing_model_is_400(claude):
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.messages.create(model="", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert err.value.body["type"] == "error" and "model" in err.value.body["error"]["message"]


def test_unknown_model_is_404(claude):
    with pytest.raises(anthropic.NotFoundError) as err:
        claude.messages.create(model="gemini-nope", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert err.value.body["error"] == {
        "type": "not_found_error",
        "message": "The model `gemini-nope` does not exist or is not served by this gateway",
    }


def test_body_over_limit_is_413(gw, asim, claude):
    before = len(asim.requests)
    rid = new_id()
    with pytest.raises(anthropic.ContentTooLargeError) as err:
        claude.messages.create(
            model="claude-e2e",
            max_tokens=10,
            messages=[{"role": "user", "content": "x" * MAX_BYTES}],
            extra_headers={"x-request-id": rid},
        )
    assert err.value.body["error"]["type"] == "request_too_large"
    assert str(MAX_BYTES) in err.value.body["error"]["message"]
    assert len(asim.requests) == before
    rec = log_record(gw, rid)
    assert rec["status"] == 413 and rec["reason"] == "request_too_large" and rec.get("ai") is None


def test_missing_max_tokens_for_translation_is_400(osim, claude):
    before = len(osim.requests)
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.post(
            "/v1/messages",
            cast_to=object,
            body={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
        )
    assert "max_tokens" in err.value.body["error"]["message"]
    assert len(osim.requests) == before


def test_provider_400_passed_with_its_message(asim, claude):
    asim.fail(400, message="messages.0.content: text content blocks must be non-empty")
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.messages.create(model="claude-e2e", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert err.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "messages.0.content: text content blocks must be non-empty",
    }


def test_provider_rejecting_gateway_key_is_502(gw, asim, claude):
    rid = new_id()
    with pytest.raises(anthropic.InternalServerError) as err:
        claude.messages.create(
            model="badkey-claude",
            max_tokens=10,
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"x-request-id": rid},
        )
    assert err.value.status_code == 502 and err.value.body["error"]["type"] == "api_error"
    assert WRONG_KEY not in err.value.response.text and "x-api-key" not in err.value.response.text
    assert sim_request(asim, rid).header("x-api-key") == WRONG_KEY
    rec = log_record(gw, rid)
    assert rec["reason"] == "provider_auth_error" and rec["ai"]["backend"] == "default/anthropic-wrong-key"
