"""End-to-end tests of the AI gateway in front of the cloud providers: Amazon Bedrock (Converse and
ConverseStream, SigV4), Google Vertex AI (service-account key → OAuth2 access token) and the Gemini API
(API key).

The real ``sluice`` binary runs against the loopback simulators of ``e2e/sims``, and is driven with the
official ``openai`` and ``anthropic`` SDKs (only ``base_url`` pointed at the gateway, no retries). Answers
follow the simulators' deterministic rules (see ``e2e/README.md``), so texts and token counts are exact.
Besides what the client gets, each test checks what the provider received: the translated body, the
gateway's own credentials (a SigV4 signature the simulator verified with botocore, the session token, a
bearer token from the token endpoint, ``x-goog-api-key``) and never the client's key.

Gateways and simulators are module-scoped per provider; each test starts with ``sim.reset()``.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import jwt as pyjwt
import openai
import pytest

from gateway import GATEWAY, Gateway, backend_for
from sims import BedrockSim, GoogleSim, write_service_account
from sims.google import make_service_account

# What clients send as their key: the gateway must never pass it on.
CLIENT_KEY = "sk-client-key-must-not-reach-the-provider"

BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
GEMINI_MODEL = "gemini-2.0-flash"

AWS_ACCESS_KEY = "AKIASIMULATOR0000001"
AWS_SECRET_KEY = "sim/secret/key/0123456789abcdefghijklmn"
AWS_SESSION_TOKEN = "sim-session-token-0001"
GEMINI_API_KEY = "AIzaSySimulator-0123456789abcdefghijk"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}  # the simulators' example values for the schema
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": WEATHER_TOOL["function"]["parameters"],
}


# ----------------------------------------------------------------------------------------------------------
# Deterministic rules of the simulators
# ----------------------------------------------------------------------------------------------------------


def words(text: str) -> int:
    return len(text.split())


def ptoks(*texts: str) -> int:
    """Prompt tokens: words of every message (system included) plus 3 per message."""
    return sum(words(t) for t in texts) + 3 * len(texts)


def said(provider: str, text: str) -> str:
    return f"Hello from {provider}! You said: {text}"


def tool_said(provider: str, result: str) -> str:
    return f"Hello from {provider}! The tool returned: {result}"


def compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


# ----------------------------------------------------------------------------------------------------------
# Clients and configuration helpers
# ----------------------------------------------------------------------------------------------------------


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.openai_base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)


def ant(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.origin, api_key=CLIENT_KEY, max_retries=0, timeout=20)


def config(*docs: str) -> str:
    """One YAML stream of the given documents."""
    return "\n---\n".join(d.strip("\n") for d in docs) + "\n"


def route(name: str, *backends: str) -> str:
    refs = "\n".join(f"    - {{group: sluice.dev, kind: AIBackend, name: {b}}}" for b in backends)
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs:
{refs}
"""


def ai_backend(
    name: str,
    backend: str,
    provider: str,
    credentials: str,
    models: list[str] | None = None,
    rewrite: dict[str, str] | None = None,
) -> str:
    models_line = f"\n  models: {json.dumps(models)}" if models else ""
    if rewrite:
        models_line += f"\n  modelRewrite: {json.dumps(rewrite)}"
    return f"""
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {{name: {name}, namespace: default}}
spec:
  provider: {provider}
  backendRef: {{group: gateway.networking.k8s.io, kind: Backend, name: {backend}}}
  credentials: {credentials}{models_line}
"""


def secret(name: str, data: dict[str, str]) -> str:
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
stringData: {json.dumps(data)}
"""


_request_ids = itertools.count()


def request_id(tag: str) -> str:
    """A request id the client sends (``x-request-id``), to find the request's access-log record."""
    return f"e2e-cloud-{tag}-{next(_request_ids)}"


def access_record(gw: Gateway, rid: str, timeout: float = 5.0) -> dict:
    """The access-log record of request ``rid``; the log is written when a response body ends, off the
    request path, so the file is polled."""
    deadline = time.monotonic() + timeout
    while True:
        for record in gw.access_log():
            if record.get("request_id") == rid:
                return record
        if time.monotonic() > deadline:
            raise AssertionError(f"no access-log record for {rid}")
        time.sleep(0.02)


def assert_no_client_key(rec) -> None:
    for name, value in rec.headers.items():
        assert CLIENT_KEY not in value, f"client key forwarded in {name}"
    assert CLIENT_KEY.encode() not in rec.body


def openai_stream(client: openai.OpenAI, **kwargs) -> tuple[str, list]:
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


# ==========================================================================================================
# Amazon Bedrock
# ==========================================================================================================

BEDROCK_PROVIDER = "{type: Bedrock, bedrock: {region: us-east-1}}"


@pytest.fixture(scope="module")
def bedrock():
    with BedrockSim(access_key=AWS_ACCESS_KEY, secret_key=AWS_SECRET_KEY, session_token=AWS_SESSION_TOKEN) as sim:
        yield sim


# An application inference profile: an ARN, with ':' and '/' that must be escaped in the path and
# escaped again in the SigV4 canonical request.
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"


@pytest.fixture(scope="module")
def bedrock_gw(bedrock):
    """Credentials from a Secret (access key, secret key, session token); ``claude-profile`` is rewritten
    to an inference-profile ARN."""
    yaml = config(
        GATEWAY,
        backend_for("bedrock", bedrock.port),
        secret(
            "aws",
            {"accessKeyId": AWS_ACCESS_KEY, "secretAccessKey": AWS_SECRET_KEY, "sessionToken": AWS_SESSION_TOKEN},
        ),
        ai_backend(
            "bedrock",
            "bedrock",
            BEDROCK_PROVIDER,
            "{secretRef: {name: aws}}",
            ["anthropic.*", "amazon.*"],
            {"claude-profile": PROFILE_ARN},
        ),
        route("bedrock", "bedrock"),
    )
    with Gateway(yaml) as gw:
        yield gw


@pytest.fixture
def br(bedrock, bedrock_gw):
    bedrock.reset()
    return bedrock


def assert_signed_by_gateway(rec, sim: BedrockSim) -> None:
    """The simulator verified the SigV4 signature (with botocore) before answering 200; here the parts a
    test can see: the scope, the signed headers (host included), the session token, the Host."""
    auth = rec.header("authorization")
    m = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=(\S+?)/(\d{8})/us-east-1/bedrock/aws4_request, "
        r"SignedHeaders=(\S+), Signature=[0-9a-f]{64}",
        auth,
    )
    assert m, auth
    assert m[1] == AWS_ACCESS_KEY and m[2] == rec.header("x-amz-date")[:8]
    assert "host" in m[3].split(";") and "x-amz-security-token" in m[3].split(";")
    assert rec.header("x-amz-security-token") == AWS_SESSION_TOKEN
    assert rec.header("host") == f"127.0.0.1:{sim.port}"
    assert_no_client_key(rec)


def test_bedrock_chat(br, bedrock_gw):
    client = oai(bedrock_gw)
    rid = request_id("bedrock-chat")
    r = client.chat.completions.create(
        extra_headers={"x-request-id": rid},
        model=BEDROCK_MODEL,
        messages=[{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hello Bedrock"}],
        max_tokens=100,
        temperature=0.5,
        top_p=0.9,
        stop=["zzz"],
    )
    text = said("bedrock", "Hello Bedrock")
    assert r.choices[0].message.content == text and r.choices[0].finish_reason == "stop"
    assert r.model == BEDROCK_MODEL
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (
        ptoks("Be brief", "Hello Bedrock"),
        words(text),
        ptoks("Be brief", "Hello Bedrock") + words(text),
    )
    (rec,) = br.requests
    assert rec.method == "POST" and rec.path == f"/model/{BEDROCK_MODEL}/converse"
    assert rec.raw_path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert rec.json == {
        "messages": [{"role": "user", "content": [{"text": "Hello Bedrock"}]}],
        "system": [{"text": "Be brief"}],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["zzz"]},
    }
    assert_signed_by_gateway(rec, br)
    assert rec.header("x-request-id") == rid
    record = access_record(bedrock_gw, rid)
    assert record["status"] == 200 and record["path"] == "/v1/chat/completions"
    log = record["ai"]
    assert {k: log[k] for k in ("operation", "provider", "backend", "request_model", "stream", "completed")} == {
        "operation": "chat",
        "provider": "aws.bedrock",
        "backend": "default/bedrock",
        "request_model": BEDROCK_MODEL,
        "stream": False,
        "completed": True,
    }
    assert (log["input_tokens"], log["output_tokens"], log["total_tokens"]) == (
        r.usage.prompt_tokens,
        r.usage.completion_tokens,
        r.usage.total_tokens,
    )


def test_bedrock_chat_stream_with_usage(br, bedrock_gw):
    client = oai(bedrock_gw)
    rid = request_id("bedrock-stream")
    messages = [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "stream this please"}]
    text, chunks = openai_stream(
        client,
        model=BEDROCK_MODEL,
        messages=messages,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": rid},
    )
    expected = said("bedrock", "stream this please")
    assert text == expected
    # Word by word from the event stream, then the finish, then the usage chunk (no choices).
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == words(expected)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        ptoks("Be brief", "stream this please"),
        words(expected),
        ptoks("Be brief", "stream this please") + words(expected),
    )
    assert all(c.usage is None for c in chunks[:-1])
    (rec,) = br.requests
    assert rec.path == f"/model/{BEDROCK_MODEL}/converse-stream"
    assert rec.json == {
        "messages": [{"role": "user", "content": [{"text": "stream this please"}]}],
        "system": [{"text": "Be brief"}],
    }
    assert_signed_by_gateway(rec, br)
    log = access_record(bedrock_gw, rid)["ai"]
    assert log["stream"] and log["completed"] and "error" not in log
    assert (log["input_tokens"], log["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert log["time_to_first_token_ms"] is not None


def test_bedrock_chat_stream_without_usage(br, bedrock_gw):
    text, chunks = openai_stream(
        oai(bedrock_gw), model=BEDROCK_MODEL, messages=[{"role": "user", "content": "no usage please"}]
    )
    assert text == said("bedrock", "no usage please")
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_bedrock_model_rewritten_to_arn(br, bedrock_gw):
    r = oai(bedrock_gw).chat.completions.create(
        model="claude-profile", messages=[{"role": "user", "content": "through a profile"}]
    )
    assert r.choices[0].message.content == said("bedrock", "through a profile")
    (rec,) = br.requests
    assert rec.path == f"/model/{PROFILE_ARN}/converse"
    assert rec.raw_path == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fa1b2c3d4e5f6/converse"
    )
    assert_signed_by_gateway(rec, br)


def test_bedrock_env_credentials_without_session_token():
    """``credentials: {env: SIMAWS_}`` reads ``SIMAWS_ACCESS_KEY_ID`` and ``SIMAWS_SECRET_ACCESS_KEY``; with
    no ``SIMAWS_SESSION_TOKEN`` (long-term keys) no ``X-Amz-Security-Token`` is sent, and none is signed."""
    with BedrockSim(access_key="AKIAENVIRONMENT00001", secret_key="env/secret/key/abcdefghijklmnopqrstuvwx") as sim:
        yaml = config(
            GATEWAY,
            backend_for("bedrock", sim.port),
            ai_backend("bedrock", "bedrock", BEDROCK_PROVIDER, "{env: SIMAWS_}"),
            route("bedrock", "bedrock"),
        )
        env = {"SIMAWS_ACCESS_KEY_ID": sim.access_key, "SIMAWS_SECRET_ACCESS_KEY": sim.secret_key}
        with Gateway(yaml, env=env) as gw:
            r = oai(gw).chat.completions.create(
                model="amazon.nova-lite-v1:0", messages=[{"role": "user", "content": "from the environment"}]
            )
            assert r.choices[0].message.content == said("bedrock", "from the environment")
        (rec,) = sim.requests
        assert rec.header("x-amz-security-token") is None
        assert rec.header("authorization").startswith("AWS4-HMAC-SHA256 Credential=AKIAENVIRONMENT00001/")
        assert "x-amz-security-token" not in rec.header("authorization")
        assert sim.secret_key not in gw.output()


def test_bedrock_anthropic_sdk(br, bedrock_gw):
    client = ant(bedrock_gw)
    m = client.messages.create(
        model=BEDROCK_MODEL,
        max_tokens=200,
        system="You are terse",
        messages=[{"role": "user", "content": "Hi from Claude SDK"}],
        stop_sequences=["qqq"],
    )
    text = said("bedrock", "Hi from Claude SDK")
    assert m.type == "message" and m.role == "assistant" and m.model == BEDROCK_MODEL
    assert [(b.type, b.text) for b in m.content] == [("text", text)]
    assert m.stop_reason == "end_turn"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (ptoks("You are terse", "Hi from Claude SDK"), words(text))
    (rec,) = br.requests
    assert rec.path == f"/model/{BEDROCK_MODEL}/converse"
    assert rec.json == {
        "messages": [{"role": "user", "content": [{"text": "Hi from Claude SDK"}]}],
        "system": [{"text": "You are terse"}],
        "inferenceConfig": {"maxTokens": 200, "stopSequences": ["qqq"]},
    }
    assert_signed_by_gateway(rec, br)


def test_bedrock_anthropic_sdk_stream(br, bedrock_gw):
    client = ant(bedrock_gw)
    rid = request_id("bedrock-messages-stream")
    with client.messages.stream(
        model=BEDROCK_MODEL,
        max_tokens=200,
        messages=[{"role": "user", "content": "stream to Claude SDK"}],
        extra_headers={"x-request-id": rid},
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    text = said("bedrock", "stream to Claude SDK")
    assert "".join(pieces) == text and len(pieces) == words(text)
    assert [(b.type, b.text) for b in final.content] == [("text", text)]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (ptoks("stream to Claude SDK"), words(text))
    (rec,) = br.requests
    assert rec.path == f"/model/{BEDROCK_MODEL}/converse-stream"
    assert rec.json["inferenceConfig"] == {"maxTokens": 200}
    assert_signed_by_gateway(rec, br)
    record = access_record(bedrock_gw, rid)
    assert record["path"] == "/v1/messages" and record["status"] == 200
    log = record["ai"]
    assert log["operation"] == "chat" and log["provider"] == "aws.bedrock" and log["stream"] and log["completed"]
    assert (log["input_tokens"], log["output_tokens"]) == (final.usage.input_tokens, final.usage.output_tokens)


def test_bedrock_tools_round_trip(br, bedrock_gw):
    client = oai(bedrock_gw)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.chat.completions.create(model=BEDROCK_MODEL, messages=messages, tools=[WEATHER_TOOL])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    assert call.id.startswith("tooluse_")
    assert r.usage.completion_tokens == words(f"get_weather {compact(WEATHER_ARGS)}")
    assert br.requests[0].json["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Current weather in a city",
                    "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
                }
            }
        ]
    }
    # The tool's result goes back; the answer uses it.
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp":21}'},
    ]
    r2 = client.chat.completions.create(model=BEDROCK_MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert r2.choices[0].message.content == tool_said("bedrock", '{"temp":21}')
    assert r2.choices[0].finish_reason == "stop"
    sent = br.requests[1].json
    assert sent["messages"] == [
        {"role": "user", "content": [{"text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": call.id, "name": "get_weather", "input": WEATHER_ARGS}}],
        },
        {"role": "user", "content": [{"toolResult": {"toolUseId": call.id, "content": [{"text": '{"temp":21}'}]}}]},
    ]
    assert "toolConfig" in sent
    assert r2.usage.prompt_tokens == ptoks("Weather in Paris?", f"get_weather {compact(WEATHER_ARGS)}", '{"temp":21}')


def test_bedrock_forced_tool_stream(br, bedrock_gw):
    """A named ``tool_choice`` becomes Converse's ``toolChoice.tool``; the call streams as toolUse deltas."""
    lookup = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]},
        },
    }
    _, chunks = openai_stream(
        oai(bedrock_gw),
        model=BEDROCK_MODEL,
        messages=[{"role": "user", "content": "Look it up"}],
        tools=[WEATHER_TOOL, lookup],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "lookup" and calls[0].id.startswith("tooluse_")
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"n": 1}
    assert {tc.index for tc in calls} == {0}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert br.requests[0].json["toolConfig"]["toolChoice"] == {"tool": {"name": "lookup"}}


def test_bedrock_anthropic_sdk_tools_round_trip(br, bedrock_gw):
    client = ant(bedrock_gw)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    m = client.messages.create(model=BEDROCK_MODEL, max_tokens=100, messages=messages, tools=[WEATHER_TOOL_ANTHROPIC])
    assert m.stop_reason == "tool_use"
    (use,) = [b for b in m.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == WEATHER_ARGS
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21C"}]},
    ]
    m2 = client.messages.create(model=BEDROCK_MODEL, max_tokens=100, messages=messages, tools=[WEATHER_TOOL_ANTHROPIC])
    assert [(b.type, b.text) for b in m2.content] == [("text", tool_said("bedrock", "sunny, 21C"))]
    assert m2.stop_reason == "end_turn"
    assert br.requests[1].json["messages"][2] == {
        "role": "user",
        "content": [{"toolResult": {"toolUseId": use.id, "content": [{"text": "sunny, 21C"}]}}],
    }


def test_bedrock_anthropic_sdk_stream_tool_choice(br, bedrock_gw):
    """Anthropic's ``tool_choice`` (``tool``, ``any``) reaches Converse as ``toolChoice``; the streamed
    toolUse becomes a ``tool_use`` block whose input the SDK assembles from the JSON deltas."""
    client = ant(bedrock_gw)
    for choice, converse in [
        ({"type": "tool", "name": "get_weather"}, {"tool": {"name": "get_weather"}}),
        ({"type": "any"}, {"any": {}}),
    ]:
        with client.messages.stream(
            model=BEDROCK_MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": "Weather?"}],
            tools=[WEATHER_TOOL_ANTHROPIC],
            tool_choice=choice,
        ) as stream:
            final = stream.get_final_message()
        assert final.stop_reason == "tool_use"
        assert [(b.type, b.name, b.input) for b in final.content] == [("tool_use", "get_weather", WEATHER_ARGS)]
        assert (final.usage.input_tokens, final.usage.output_tokens) == (
            ptoks("Weather?"),
            words(f"get_weather {compact(WEATHER_ARGS)}"),
        )
        assert br.requests[-1].json["toolConfig"]["toolChoice"] == converse


def test_bedrock_length(br, bedrock_gw):
    r = oai(bedrock_gw).chat.completions.create(
        model=BEDROCK_MODEL, messages=[{"role": "user", "content": "a long answer please"}], max_tokens=3
    )
    assert r.choices[0].message.content == "Hello from bedrock!"
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    assert br.requests[-1].json["inferenceConfig"] == {"maxTokens": 3}
    m = ant(bedrock_gw).messages.create(
        model=BEDROCK_MODEL, max_tokens=2, messages=[{"role": "user", "content": "a long answer please"}]
    )
    assert m.content[0].text == "Hello from" and m.stop_reason == "max_tokens" and m.usage.output_tokens == 2
    _, chunks = openai_stream(
        oai(bedrock_gw), model=BEDROCK_MODEL, messages=[{"role": "user", "content": "long"}], max_tokens=1
    )
    assert chunks[-1].choices[0].finish_reason == "length"


def test_bedrock_throttled(br, bedrock_gw):
    br.fail(429, message="Too many tokens, please wait before trying again.", retry_after=7)
    with pytest.raises(openai.RateLimitError) as err:
        oai(bedrock_gw).chat.completions.create(model=BEDROCK_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 429
    assert err.value.body["message"] == "Too many tokens, please wait before trying again."
    assert err.value.response.headers["retry-after"] == "7"
    assert len(br.requests) == 1  # one backend for this model: no retry
    br.fail(429, message="Rate exceeded for this model")
    with pytest.raises(anthropic.RateLimitError) as aerr:
        ant(bedrock_gw).messages.create(
            model=BEDROCK_MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert aerr.value.body["error"] == {"type": "rate_limit_error", "message": "Rate exceeded for this model"}


def test_bedrock_provider_errors(br, bedrock_gw):
    message = "The model returned the following errors: max_tokens: 999999 > 8192"
    br.fail(400, message=message)
    with pytest.raises(openai.BadRequestError) as err:
        oai(bedrock_gw).chat.completions.create(model=BEDROCK_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["message"] == message
    br.fail(400, error_type="ValidationException", message=message)
    with pytest.raises(anthropic.BadRequestError) as aerr:
        ant(bedrock_gw).messages.create(
            model=BEDROCK_MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert aerr.value.body["error"] == {"type": "invalid_request_error", "message": message}
    br.fail(404, message="Could not resolve the foundation model from the provided model identifier.")
    with pytest.raises(openai.NotFoundError) as nerr:
        oai(bedrock_gw).chat.completions.create(model=BEDROCK_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert nerr.value.body["message"] == "Could not resolve the foundation model from the provided model identifier."
    br.fail(503)
    with pytest.raises(openai.InternalServerError) as serr:
        oai(bedrock_gw).chat.completions.create(model=BEDROCK_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert serr.value.status_code == 503
    assert serr.value.body["message"] == "Bedrock is unable to process your request."


def test_bedrock_stream_exception_event(br, bedrock_gw):
    """ConverseStream's in-stream exception (after a few events) fails the client's stream."""
    rid = request_id("bedrock-stream-exception")
    br.stream_error(after_events=3, error_type="throttlingException", message="slow down")
    seen = []
    with pytest.raises(openai.APIError) as err:
        for chunk in oai(bedrock_gw).chat.completions.create(
            model=BEDROCK_MODEL,
            messages=[{"role": "user", "content": "one two three four"}],
            stream=True,
            extra_headers={"x-request-id": rid},
        ):
            seen.append(chunk)
    assert "slow down" in err.value.message and "throttlingException" in err.value.message
    assert "".join(c.choices[0].delta.content or "" for c in seen) == "Hello from "
    log = access_record(bedrock_gw, rid)["ai"]
    assert log["stream"] and not log["completed"] and log["error"]
    br.stream_error(after_events=2, error_type="modelStreamErrorException", message="model broke")
    with pytest.raises(anthropic.APIStatusError) as aerr:
        with ant(bedrock_gw).messages.stream(
            model=BEDROCK_MODEL, max_tokens=100, messages=[{"role": "user", "content": "go"}]
        ) as stream:
            for _ in stream:
                pass
    assert "model broke" in str(aerr.value)


def test_bedrock_stream_cut(br, bedrock_gw):
    br.cut(after_events=4)
    seen = []
    with pytest.raises(openai.APIError) as err:
        for chunk in oai(bedrock_gw).chat.completions.create(
            model=BEDROCK_MODEL, messages=[{"role": "user", "content": "cut me off"}], stream=True
        ):
            seen.append(chunk)
    assert err.value.message == "the provider's stream was interrupted"
    assert "".join(c.choices[0].delta.content or "" for c in seen) == "Hello from bedrock! "
    br.cut(after_events=3)
    with pytest.raises(anthropic.APIStatusError):
        with ant(bedrock_gw).messages.stream(
            model=BEDROCK_MODEL, max_tokens=100, messages=[{"role": "user", "content": "cut me off"}]
        ) as stream:
            for _ in stream:
                pass
    assert_cut_answers_fail(br, bedrock_gw, BEDROCK_MODEL)


def assert_cut_answers_fail(sim, gw: Gateway, model: str, path: str | None = None) -> None:
    """A connection closed before the answer, or halfway through a whole (non-streamed) answer, is a 502
    for the client; a stream closed before its first event fails the client's stream."""
    for after, message in [
        (0, "the provider closed the connection before responding"),
        (1, "the provider's answer could not be read"),
    ]:
        sim.cut(after_events=after, path=path)
        with pytest.raises(openai.InternalServerError) as err:
            oai(gw).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 502
        assert err.value.body == {"message": message, "type": "server_error", "param": None, "code": "upstream_reset"}
    sim.cut(after_events=0, path=path)
    with pytest.raises(openai.APIError) as serr:
        list(oai(gw).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True))
    assert serr.value.message == "the provider's stream was interrupted"


def test_bedrock_wrong_credentials(bedrock):
    """A secret key the provider refuses is the gateway's problem: 502, and the secret appears nowhere."""
    bedrock.reset()
    wrong = "wrong/secret/key/DO-NOT-LEAK-0123456789"
    yaml = config(
        GATEWAY,
        backend_for("bedrock", bedrock.port),
        secret("aws", {"accessKeyId": AWS_ACCESS_KEY, "secretAccessKey": wrong, "sessionToken": AWS_SESSION_TOKEN}),
        ai_backend("bedrock", "bedrock", BEDROCK_PROVIDER, "{secretRef: {name: aws}}"),
        route("bedrock", "bedrock"),
    )
    with Gateway(yaml) as gw:
        with pytest.raises(openai.APIStatusError) as err:
            oai(gw).chat.completions.create(model=BEDROCK_MODEL, messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 502
        assert err.value.body["code"] == "provider_auth_error"
        with pytest.raises(anthropic.APIStatusError) as aerr:
            ant(gw).messages.create(model=BEDROCK_MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        assert aerr.value.status_code == 502
        rec, _ = bedrock.requests
        assert rec.header("authorization").startswith(f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY}/")
        for text in (err.value.response.text, aerr.value.response.text, gw.output(), gw.access_log_path.read_text()):
            assert wrong not in text and "DO-NOT-LEAK" not in text


# ==========================================================================================================
# Google: Vertex AI and the Gemini API
# ==========================================================================================================

VERTEX_PROVIDER = "{type: VertexAI, vertex: {project: sim-project, location: us-central1}}"
VERTEX_PREFIX = "/v1/projects/sim-project/locations/us-central1/publishers/google/models/"
GEMINI_PREFIX = "/v1beta/models/"


def vertex_config(sim: GoogleSim, key_path: str, extra: str = "") -> str:
    return config(
        GATEWAY,
        backend_for("google", sim.port),
        ai_backend("vertex", "google", VERTEX_PROVIDER, f"{{file: {key_path}}}", ["gemini-*"]),
        *([extra] if extra else []),
        route("vertex", "vertex", *(["vertex-secret"] if extra else [])),
    )


@pytest.fixture(scope="module")
def vertex_sim():
    with GoogleSim(api_key=GEMINI_API_KEY) as sim:
        yield sim


@pytest.fixture(scope="module")
def vertex_account(vertex_sim, tmp_path_factory):
    info = new_account(vertex_sim, "vertex-file")
    return info, write_service_account(info, tmp_path_factory.mktemp("vertex-key"))


@pytest.fixture(scope="module")
def vertex_gw(vertex_sim, vertex_account):
    """Vertex AI with the service-account key from a file (``gemini-*`` models) and another account's key
    from a Secret (``secret-*`` models)."""
    other = new_account(vertex_sim, "vertex-secret")
    extra = config(
        secret("vertex-sa", {"key.json": json.dumps(other)}),
        ai_backend(
            "vertex-secret", "google", VERTEX_PROVIDER, "{secretRef: {name: vertex-sa, key: key.json}}", ["secret-*"]
        ),
    )
    with Gateway(vertex_config(vertex_sim, vertex_account[1], extra)) as gw:
        gw.other_account = other
        yield gw


@pytest.fixture
def vx(vertex_sim, vertex_gw):
    vertex_sim.reset()
    return vertex_sim


@pytest.fixture(scope="module")
def gemini_sim():
    with GoogleSim(api_key=GEMINI_API_KEY) as sim:
        yield sim


@pytest.fixture(scope="module")
def gemini_gw(gemini_sim):
    yaml = config(
        GATEWAY,
        backend_for("google", gemini_sim.port),
        secret("gemini", {"apiKey": GEMINI_API_KEY}),
        ai_backend("gemini", "google", "{type: Gemini}", "{secretRef: {name: gemini}}"),
        route("gemini", "gemini"),
    )
    with Gateway(yaml) as gw:
        yield gw


@pytest.fixture
def gm(gemini_sim, gemini_gw):
    gemini_sim.reset()
    return gemini_sim


def new_account(sim: GoogleSim, name: str) -> dict:
    """A service account registered with ``sim``, with its own e-mail (which the simulator records as the
    owner of the tokens it issues)."""
    info = make_service_account(sim.token_url, name=name)
    sim.add_service_account(info)
    return info


def issued_tokens(sim: GoogleSim, account: dict) -> list[str]:
    return [t for t, meta in sim.tokens.items() if meta["account"] == account["client_email"]]


def assert_vertex_auth(rec, sim: GoogleSim, account: dict) -> None:
    """The call carries a bearer token the simulator's token endpoint issued to ``account``."""
    auth = rec.header("authorization")
    assert auth and auth.startswith("Bearer ya29.sim-")
    assert auth[7:] in issued_tokens(sim, account)
    assert rec.header("x-goog-api-key") is None
    assert_no_client_key(rec)


def assert_gemini_auth(rec) -> None:
    assert rec.header("x-goog-api-key") == GEMINI_API_KEY
    assert "key" not in rec.query  # the key travels in the header, never in the URL
    assert rec.header("authorization") is None
    assert_no_client_key(rec)


@pytest.fixture(params=["vertex", "gemini"])
def google(request, vertex_account):
    """Both Google flavours, for tests whose expectations are the same: ``(sim, gateway, path prefix,
    auth check)``."""
    if request.param == "vertex":
        sim, gw = request.getfixturevalue("vx"), request.getfixturevalue("vertex_gw")
        return sim, gw, VERTEX_PREFIX, lambda rec: assert_vertex_auth(rec, sim, vertex_account[0])
    sim, gw = request.getfixturevalue("gm"), request.getfixturevalue("gemini_gw")
    return sim, gw, GEMINI_PREFIX, assert_gemini_auth


def test_google_chat(google):
    sim, gw, prefix, check_auth = google
    rid = request_id("google-chat")
    r = oai(gw).chat.completions.create(
        extra_headers={"x-request-id": rid},
        model=GEMINI_MODEL,
        messages=[{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hello Gemini"}],
        max_tokens=100,
        temperature=0.5,
        top_p=0.9,
        stop=["zzz"],
        seed=7,
    )
    text = said("google", "Hello Gemini")
    assert r.choices[0].message.content == text and r.choices[0].finish_reason == "stop"
    assert r.model == GEMINI_MODEL
    prompt = ptoks("Be brief", "Hello Gemini")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (
        prompt,
        words(text),
        prompt + words(text),
    )
    calls = [q for q in sim.requests if q.path != "/token"]
    (rec,) = calls
    assert rec.path == f"{prefix}{GEMINI_MODEL}:generateContent" and rec.query == {}
    assert rec.json == {
        "contents": [{"role": "user", "parts": [{"text": "Hello Gemini"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief"}]},
        "generationConfig": {
            "maxOutputTokens": 100,
            "temperature": 0.5,
            "topP": 0.9,
            "seed": 7,
            "stopSequences": ["zzz"],
        },
    }
    check_auth(rec)
    assert rec.header("x-request-id") == rid
    log = access_record(gw, rid)["ai"]
    assert log["completed"] and not log["stream"] and log["request_model"] == GEMINI_MODEL
    assert (log["input_tokens"], log["output_tokens"], log["total_tokens"]) == (
        prompt,
        words(text),
        prompt + words(text),
    )


def test_google_chat_stream(google):
    sim, gw, prefix, check_auth = google
    rid = request_id("google-stream")
    messages = [{"role": "user", "content": "stream this please"}]
    text, chunks = openai_stream(
        oai(gw),
        model=GEMINI_MODEL,
        messages=messages,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": rid},
    )
    expected = said("google", "stream this please")
    assert text == expected
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == words(expected)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        ptoks("stream this please"),
        words(expected),
        ptoks("stream this please") + words(expected),
    )
    (rec,) = [q for q in sim.requests if q.path != "/token"]
    assert rec.path == f"{prefix}{GEMINI_MODEL}:streamGenerateContent" and rec.query == {"alt": "sse"}
    assert rec.json == {"contents": [{"role": "user", "parts": [{"text": "stream this please"}]}]}
    check_auth(rec)
    log = access_record(gw, rid)["ai"]
    assert log["stream"] and log["completed"]
    assert (log["input_tokens"], log["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    # Without include_usage: no usage chunk.
    text, chunks = openai_stream(oai(gw), model=GEMINI_MODEL, messages=messages)
    assert text == expected and all(c.choices and c.usage is None for c in chunks)


def test_google_anthropic_sdk(google):
    sim, gw, prefix, check_auth = google
    client = ant(gw)
    m = client.messages.create(
        model=GEMINI_MODEL,
        max_tokens=200,
        system="You are terse",
        messages=[{"role": "user", "content": "Hi from Claude SDK"}],
    )
    text = said("google", "Hi from Claude SDK")
    assert [(b.type, b.text) for b in m.content] == [("text", text)] and m.stop_reason == "end_turn"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (ptoks("You are terse", "Hi from Claude SDK"), words(text))
    with client.messages.stream(
        model=GEMINI_MODEL, max_tokens=200, messages=[{"role": "user", "content": "stream to Claude SDK"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    text = said("google", "stream to Claude SDK")
    assert "".join(pieces) == text and len(pieces) == words(text)
    assert final.stop_reason == "end_turn" and final.content[0].text == text
    assert (final.usage.input_tokens, final.usage.output_tokens) == (ptoks("stream to Claude SDK"), words(text))
    whole, streamed = [q for q in sim.requests if q.path != "/token"]
    assert whole.path == f"{prefix}{GEMINI_MODEL}:generateContent"
    assert whole.json == {
        "contents": [{"role": "user", "parts": [{"text": "Hi from Claude SDK"}]}],
        "systemInstruction": {"parts": [{"text": "You are terse"}]},
        "generationConfig": {"maxOutputTokens": 200},
    }
    assert streamed.path == f"{prefix}{GEMINI_MODEL}:streamGenerateContent" and streamed.query == {"alt": "sse"}
    check_auth(whole)
    check_auth(streamed)


def test_google_tools_round_trip(google):
    sim, gw, prefix, _ = google
    client = oai(gw)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.chat.completions.create(model=GEMINI_MODEL, messages=messages, tools=[WEATHER_TOOL])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id == "call_0" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    assert r.usage.completion_tokens == words(f"get_weather {compact(WEATHER_ARGS)}")
    calls = [q for q in sim.requests if q.path != "/token"]
    assert calls[0].json["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather in a city",
                    "parameters": WEATHER_TOOL["function"]["parameters"],
                }
            ]
        }
    ]
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp":21}'},
    ]
    r2 = client.chat.completions.create(model=GEMINI_MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert r2.choices[0].message.content == tool_said("google", '{"temp":21}')
    assert r2.choices[0].finish_reason == "stop"
    calls = [q for q in sim.requests if q.path != "/token"]
    assert calls[1].json["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": WEATHER_ARGS}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}]},
    ]
    # A forced tool, streamed: Gemini's mode ANY with the one allowed name.
    _, chunks = openai_stream(
        client,
        model=GEMINI_MODEL,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    streamed = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in streamed if tc.function.name] == ["get_weather"]
    assert json.loads("".join(tc.function.arguments or "" for tc in streamed)) == WEATHER_ARGS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    calls = [q for q in sim.requests if q.path != "/token"]
    assert calls[2].json["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


def test_google_anthropic_sdk_tools_round_trip(google):
    sim, gw, _, _ = google
    client = ant(gw)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    m = client.messages.create(model=GEMINI_MODEL, max_tokens=100, messages=messages, tools=[WEATHER_TOOL_ANTHROPIC])
    assert m.stop_reason == "tool_use"
    (use,) = [b for b in m.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == WEATHER_ARGS
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21C"}]},
    ]
    m2 = client.messages.create(model=GEMINI_MODEL, max_tokens=100, messages=messages, tools=[WEATHER_TOOL_ANTHROPIC])
    # A tool result that is not a JSON object goes to Gemini wrapped as {"content": ...}.
    assert [(b.type, b.text) for b in m2.content] == [("text", tool_said("google", '{"content":"sunny, 21C"}'))]
    calls = [q for q in sim.requests if q.path != "/token"]
    assert calls[1].json["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "sunny, 21C"}}}],
    }


def test_google_anthropic_sdk_stream_tool_choice(google):
    sim, gw, _, _ = google
    with ant(gw).messages.stream(
        model=GEMINI_MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER_TOOL_ANTHROPIC],
        tool_choice={"type": "any"},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.type, b.name, b.input) for b in final.content] == [("tool_use", "get_weather", WEATHER_ARGS)]
    (rec,) = [q for q in sim.requests if q.path != "/token"]
    assert rec.json["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_google_length(google):
    sim, gw, _, _ = google
    r = oai(gw).chat.completions.create(
        model=GEMINI_MODEL, messages=[{"role": "user", "content": "a long answer please"}], max_tokens=3
    )
    assert r.choices[0].message.content == "Hello from google!"
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    m = ant(gw).messages.create(
        model=GEMINI_MODEL, max_tokens=2, messages=[{"role": "user", "content": "a long answer please"}]
    )
    assert m.content[0].text == "Hello from" and m.stop_reason == "max_tokens"
    _, chunks = openai_stream(oai(gw), model=GEMINI_MODEL, messages=[{"role": "user", "content": "long"}], max_tokens=1)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_google_provider_errors(google):
    sim, gw, _, _ = google
    message = "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
    sim.fail(400, message=message, path=":generate")
    with pytest.raises(openai.BadRequestError) as err:
        oai(gw).chat.completions.create(model=GEMINI_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["message"] == message
    sim.fail(400, message=message, path=":generate")
    with pytest.raises(anthropic.BadRequestError) as aerr:
        ant(gw).messages.create(model=GEMINI_MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert aerr.value.body["error"] == {"type": "invalid_request_error", "message": message}
    sim.fail(429, message="Resource has been exhausted (e.g. check quota).", path=":generate")
    with pytest.raises(openai.RateLimitError) as rerr:
        oai(gw).chat.completions.create(model=GEMINI_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert rerr.value.body["message"] == "Resource has been exhausted (e.g. check quota)."
    sim.fail(503, path=":generate")
    with pytest.raises(openai.InternalServerError) as serr:
        oai(gw).chat.completions.create(model=GEMINI_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert (
        serr.value.status_code == 503
        and serr.value.body["message"] == "The model is overloaded. Please try again later."
    )


def test_google_stream_error_event(google):
    sim, gw, _, _ = google
    rid = request_id("google-stream-error")
    sim.stream_error(after_events=2, message="Internal error encountered.", path=":stream")
    seen = []
    with pytest.raises(openai.APIError) as err:
        for chunk in oai(gw).chat.completions.create(
            model=GEMINI_MODEL,
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
            extra_headers={"x-request-id": rid},
        ):
            seen.append(chunk)
    assert err.value.message.endswith("Internal error encountered.")
    assert "".join(c.choices[0].delta.content or "" for c in seen) == "Hello from "
    log = access_record(gw, rid)["ai"]
    assert log["stream"] and not log["completed"] and log["error"]
    sim.stream_error(after_events=1, message="Internal error encountered.", path=":stream")
    with pytest.raises(anthropic.APIStatusError) as aerr:
        with ant(gw).messages.stream(
            model=GEMINI_MODEL, max_tokens=100, messages=[{"role": "user", "content": "go"}]
        ) as stream:
            for _ in stream:
                pass
    assert "Internal error encountered." in str(aerr.value)


def test_google_stream_cut(google):
    sim, gw, _, _ = google
    sim.cut(after_events=3, path=":stream")
    seen = []
    with pytest.raises(openai.APIError) as err:
        for chunk in oai(gw).chat.completions.create(
            model=GEMINI_MODEL, messages=[{"role": "user", "content": "cut me off now"}], stream=True
        ):
            seen.append(chunk)
    assert err.value.message == "the provider's stream was interrupted"
    assert "".join(c.choices[0].delta.content or "" for c in seen) == "Hello from google! "
    sim.cut(after_events=2, path=":stream")
    with pytest.raises(anthropic.APIStatusError):
        with ant(gw).messages.stream(
            model=GEMINI_MODEL, max_tokens=100, messages=[{"role": "user", "content": "cut me off"}]
        ) as stream:
            for _ in stream:
                pass
    assert_cut_answers_fail(sim, gw, GEMINI_MODEL, path=":")


def test_vertex_key_from_secret(vx, vertex_gw):
    """The second AIBackend's key comes from a Secret: its calls carry a token issued to that account."""
    r = oai(vertex_gw).chat.completions.create(model="secret-flash", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == said("google", "hi")
    (rec,) = [q for q in vx.requests if q.path != "/token"]
    assert rec.path == f"{VERTEX_PREFIX}secret-flash:generateContent"
    assert_vertex_auth(rec, vx, vertex_gw.other_account)


def test_vertex_token_fetched_once_and_reused(vertex_sim, tmp_path):
    """One token for many requests, concurrent ones included; the grant is the RFC 7523 JWT bearer
    grant, signed with the account's key (the simulator verified it) and scoped to cloud-platform."""
    vertex_sim.reset()
    account = new_account(vertex_sim, "vertex-reuse")
    with Gateway(vertex_config(vertex_sim, write_service_account(account, tmp_path))) as gw:
        client, aclient = oai(gw), ant(gw)

        def one(i: int) -> str:
            if i % 3 == 0:
                return (
                    client.chat.completions.create(
                        model=GEMINI_MODEL, messages=[{"role": "user", "content": f"request {i}"}]
                    )
                    .choices[0]
                    .message.content
                )
            if i % 3 == 1:
                return openai_stream(
                    client, model=GEMINI_MODEL, messages=[{"role": "user", "content": f"request {i}"}]
                )[0]
            return (
                aclient.messages.create(
                    model=GEMINI_MODEL, max_tokens=50, messages=[{"role": "user", "content": f"request {i}"}]
                )
                .content[0]
                .text
            )

        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(one, range(6)))
        answers += [one(6), one(7)]
        assert answers == [said("google", f"request {i}") for i in range(8)]
    (grant,) = [q for q in vertex_sim.requests if q.path == "/token"]
    assert grant.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = pyjwt.decode(grant.form["assertion"], options={"verify_signature": False})
    assert claims["iss"] == account["client_email"] and claims["aud"] == vertex_sim.token_url
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert 0 < claims["exp"] - claims["iat"] <= 3600
    (token,) = issued_tokens(vertex_sim, account)
    calls = [q for q in vertex_sim.requests if q.path != "/token"]
    assert len(calls) == 8 and {q.header("authorization") for q in calls} == {f"Bearer {token}"}


def test_vertex_token_refreshed_before_expiry(tmp_path):
    """A token is refreshed 5 minutes before it expires: one issued for 300 s is stale at once, so each
    request fetches a new one and uses it."""
    with GoogleSim(token_lifetime=300) as sim:
        account = sim.new_service_account()
        with Gateway(vertex_config(sim, write_service_account(account, tmp_path))) as gw:
            for i in range(3):
                r = oai(gw).chat.completions.create(model=GEMINI_MODEL, messages=[{"role": "user", "content": "hi"}])
                assert r.choices[0].message.content == said("google", "hi")
        assert sim.tokens_issued == 3
        assert [q.path for q in sim.requests] == ["/token", VERTEX_PREFIX + GEMINI_MODEL + ":generateContent"] * 3
        tokens = list(sim.tokens)
        used = [q.header("authorization")[7:] for q in sim.requests if q.path != "/token"]
        assert used == tokens  # each request with the token fetched just before it


def test_vertex_token_endpoint_failure(vertex_sim, tmp_path):
    """The token endpoint failing is the gateway's problem (502); the next request fetches again."""
    vertex_sim.reset()
    account = new_account(vertex_sim, "vertex-token-failure")
    with Gateway(vertex_config(vertex_sim, write_service_account(account, tmp_path))) as gw:
        vertex_sim.fail(503, path="/token")
        with pytest.raises(openai.APIStatusError) as err:
            oai(gw).chat.completions.create(model=GEMINI_MODEL, messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 502 and err.value.body["code"] == "provider_auth_error"
        assert [q.path for q in vertex_sim.requests] == ["/token"]
        r = oai(gw).chat.completions.create(model=GEMINI_MODEL, messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == said("google", "hi")
        assert len(issued_tokens(vertex_sim, account)) == 1
        assert account["private_key"].split("\n")[1] not in gw.output()


def test_gemini_wrong_api_key(gemini_sim):
    """Google answers a wrong API key with 400 API_KEY_INVALID; for the client that is the gateway's
    credential problem (502), not a bad request of its own — and the key appears nowhere."""
    gemini_sim.reset()
    wrong = "AIzaSyWRONG-DO-NOT-LEAK-0123456789abcd"
    yaml = config(
        GATEWAY,
        backend_for("google", gemini_sim.port),
        secret("gemini", {"apiKey": wrong}),
        ai_backend("gemini", "google", "{type: Gemini}", "{secretRef: {name: gemini}}"),
        route("gemini", "gemini"),
    )
    with Gateway(yaml) as gw:
        with pytest.raises(openai.APIStatusError) as err:
            oai(gw).chat.completions.create(model=GEMINI_MODEL, messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 502 and err.value.body["code"] == "provider_auth_error"
        with pytest.raises(anthropic.APIStatusError) as aerr:
            ant(gw).messages.create(model=GEMINI_MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        assert aerr.value.status_code == 502
        assert [q.header("x-goog-api-key") for q in gemini_sim.requests] == [wrong, wrong]
        for text in (err.value.response.text, aerr.value.response.text, gw.output(), gw.access_log_path.read_text()):
            assert "DO-NOT-LEAK" not in text
