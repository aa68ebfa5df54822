"""Faithfulness of the provider simulators: each one is driven by the provider's official client library.

The SDKs parse leniently, so non-streamed bodies and stream events are also validated strictly against the
SDKs' own pydantic models (``model_validate``), which fails on a missing required field or a wrong type.
"""

from __future__ import annotations

import base64
import datetime
import json
import struct
import time

import anthropic
import boto3
import botocore
import httpx2
import jwt
import openai
import pydantic
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

from sims import BedrockSim, OpenAISim, sign_assertion, write_service_account
from sims.bedrock import SigV4Error, verify_sigv4
from sims.common import embedding

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "location": {"type": "string"},
        "days": {"type": "integer"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "verbose": {"type": "boolean"},
    },
    "required": ["location", "days", "unit"],
}
WEATHER_ARGS = {"location": "Paris", "days": 1, "unit": "celsius"}


def ptoks(*texts: str) -> int:
    """The simulators' prompt-token rule: words of every message plus 3 per message."""
    return sum(len(t.split()) for t in texts) + 3 * len(texts)


def words(text: str) -> int:
    return len(text.split())


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) of each server-sent event of a raw body."""
    out = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        out.append((name, "\n".join(data)))
    return out


# ==========================================================================================================
# OpenAI
# ==========================================================================================================


def oai(sim: OpenAISim, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=kw.pop("max_retries", 0), **kw)


def test_openai_chat_plain(openai_sim):
    client = oai(openai_sim)
    msgs = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    r = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    text = "Hello from openai! You said: What is the capital of France?"
    assert r.choices[0].message.content == text
    assert r.choices[0].finish_reason == "stop"
    assert r.object == "chat.completion" and r.model == "gpt-4o-mini"
    assert r.usage.prompt_tokens == ptoks("You are terse.", "What is the capital of France?")
    assert r.usage.completion_tokens == words(text)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    # Strictly valid against the SDK's model, and recorded as sent.
    raw = requests.post(
        f"{openai_sim.base_url}/chat/completions",
        json={"model": "m", "messages": msgs},
        headers={"Authorization": f"Bearer {openai_sim.api_key}"},
    )
    openai.types.chat.ChatCompletion.model_validate(raw.json())
    rec = openai_sim.requests[0]
    assert (rec.method, rec.path) == ("POST", "/v1/chat/completions")
    assert rec.headers["authorization"] == f"Bearer {openai_sim.api_key}"
    assert rec.json["messages"] == msgs and rec.json["model"] == "gpt-4o-mini"
    assert raw.headers["x-request-id"].startswith("req_")


def test_openai_chat_stream_with_usage(openai_sim):
    client = oai(openai_sim)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from openai! You said: stream me please"
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) == words(text)  # word by word
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert (
        last.choices == []
        and last.usage.prompt_tokens == ptoks("stream me please")
        and last.usage.completion_tokens == words(text)
    )
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_chat_stream_without_usage_has_no_usage_chunk(openai_sim):
    raw = requests.post(
        f"{openai_sim.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"Authorization": f"Bearer {openai_sim.api_key}"},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = sse_events(raw.content)
    assert events[-1] == (None, "[DONE]")
    for _, data in events[:-1]:
        chunk = json.loads(data)
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
        assert "usage" not in chunk and chunk["choices"]


def test_openai_chat_tools_round_trip(openai_sim):
    client = oai(openai_sim)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.chat.completions.create(model="gpt-4o", messages=msgs, tools=tools)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls" and r.choices[0].message.content is None
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == WEATHER_ARGS
    # Streamed, the arguments arrive in fragments that the SDK's helper reassembles.
    with client.chat.completions.stream(model="gpt-4o", messages=msgs, tools=tools) as s:
        final = s.get_final_completion()
    assert json.loads(final.choices[0].message.tool_calls[0].function.arguments) == WEATHER_ARGS
    # The tool result turn gets a text answer quoting it.
    msgs += [
        r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "22 degrees and sunny"},
    ]
    r2 = client.chat.completions.create(model="gpt-4o", messages=msgs, tools=tools)
    assert r2.choices[0].message.content == "Hello from openai! The tool returned: 22 degrees and sunny"
    assert r2.choices[0].finish_reason == "stop"
    # tool_choice "none" answers with text.
    r3 = client.chat.completions.create(model="gpt-4o", messages=msgs[:1], tools=tools, tool_choice="none")
    assert r3.choices[0].message.content.startswith("Hello from openai!")


def test_openai_chat_max_tokens_and_prompt_cache(openai_sim):
    client = oai(openai_sim)
    r = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "one two three"}], max_completion_tokens=3
    )
    assert r.choices[0].message.content == "Hello from openai!" and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3
    convo = [{"role": "system", "content": "long shared system prompt"}, {"role": "user", "content": "first question"}]
    first = client.chat.completions.create(model="gpt-4o", messages=convo, prompt_cache_key="k1")
    second = client.chat.completions.create(model="gpt-4o", messages=convo, prompt_cache_key="k1")
    prefix = ptoks("long shared system prompt")
    assert (first.usage.prompt_tokens_details.cached_tokens, first.usage.prompt_tokens_details.cache_write_tokens) == (
        0,
        prefix,
    )
    assert (
        second.usage.prompt_tokens_details.cached_tokens,
        second.usage.prompt_tokens_details.cache_write_tokens,
    ) == (prefix, 0)


def test_openai_legacy_completions(openai_sim):
    client = oai(openai_sim)
    r = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello")
    assert r.choices[0].text == "Hello from openai! You said: Say hello" and r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == ptoks("Say hello")
    long = " ".join(f"w{i}" for i in range(20))
    r = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=long)  # max_tokens defaults to 16
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 16
    text = "".join(
        c.choices[0].text for c in client.completions.create(model="x", prompt="hi", stream=True) if c.choices
    )
    assert text == "Hello from openai! You said: hi"


def test_openai_embeddings_float_and_base64(openai_sim):
    client = oai(openai_sim)
    # The SDK asks for base64 by default and decodes it.
    r = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "bye"])
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 1536
    assert openai_sim.requests[-1].json["encoding_format"] == "base64"
    f = client.embeddings.create(
        model="text-embedding-3-small", input=["hello world", "bye"], encoding_format="float", dimensions=8
    )
    assert len(f.data[0].embedding) == 8 and f.data[0].embedding == embedding("hello world", 8)
    assert r.data[0].embedding[:8] != f.data[0].embedding  # dimensions change the vector
    assert r.data[1].embedding == embedding("bye", 1536)
    assert r.usage.prompt_tokens == 3 and r.usage.total_tokens == 3
    raw = requests.post(
        f"{openai_sim.base_url}/embeddings",
        json={"model": "text-embedding-3-small", "input": "hello world", "encoding_format": "base64", "dimensions": 4},
        headers={"Authorization": f"Bearer {openai_sim.api_key}"},
    ).json()
    assert list(struct.unpack("<4f", base64.b64decode(raw["data"][0]["embedding"]))) == embedding("hello world", 4)
    openai.types.CreateEmbeddingResponse.model_validate(
        requests.post(
            f"{openai_sim.base_url}/embeddings",
            json={"model": "m", "input": "a"},
            headers={"Authorization": f"Bearer {openai_sim.api_key}"},
        ).json()
    )


def test_openai_responses_plain_tools_and_stream(openai_sim):
    client = oai(openai_sim)
    r = client.responses.create(model="gpt-4.1", input="Tell me a joke", instructions="Be funny")
    assert r.output_text == "Hello from openai! You said: Tell me a joke" and r.status == "completed"
    assert r.usage.input_tokens == ptoks("Be funny", "Tell me a joke") and r.usage.output_tokens == words(r.output_text)
    assert r.usage.input_tokens_details.cached_tokens == 0 and r.usage.output_tokens_details.reasoning_tokens == 0
    # Tools.
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA, "strict": False}]
    t = client.responses.create(model="gpt-4.1", input="Weather?", tools=tools)
    call = t.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == WEATHER_ARGS
    t2 = client.responses.create(
        model="gpt-4.1",
        input=[
            {"role": "user", "content": "Weather?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "rainy"},
        ],
        tools=tools,
    )
    assert t2.output_text == "Hello from openai! The tool returned: rainy"
    # Truncation.
    inc = client.responses.create(model="gpt-4.1", input="Tell me a joke", max_output_tokens=2)
    assert (
        inc.status == "incomplete"
        and inc.incomplete_details.reason == "max_output_tokens"
        and inc.output_text == "Hello from"
    )
    # Streaming through the SDK helper, which checks the event sequence's consistency.
    with client.responses.stream(model="gpt-4.1", input="stream it") as s:
        types_seen = [e.type for e in s]
        final = s.get_final_response()
    assert (
        final.output_text == "Hello from openai! You said: stream it"
        and final.usage.total_tokens == ptoks("stream it") + 7
    )
    assert types_seen[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types_seen.count("response.output_text.delta") == 7
    assert types_seen[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    with client.responses.stream(model="gpt-4.1", input="Weather?", tools=tools) as s:
        final = s.get_final_response()
    assert json.loads(final.output[0].arguments) == WEATHER_ARGS
    # Every raw event is strictly valid and numbered.
    raw = requests.post(
        f"{openai_sim.base_url}/responses",
        json={"model": "m", "input": "x y", "stream": True},
        headers={"Authorization": f"Bearer {openai_sim.api_key}"},
    )
    adapter = pydantic.TypeAdapter(openai.types.responses.ResponseStreamEvent)
    events = sse_events(raw.content)
    for i, (name, data) in enumerate(events):
        ev = adapter.validate_python(json.loads(data))
        assert ev.type == name and ev.sequence_number == i


def test_openai_models_and_compatible_prefix():
    with OpenAISim(prefix="/api/openai/v1", api_key="compat-key", models=["llama-3-8b"], provider_name="compat") as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key="compat-key", max_retries=0)
        assert [m.id for m in client.models.list()] == ["llama-3-8b"]
        assert client.models.retrieve("llama-3-8b").owned_by == "system"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("nope")
        r = client.chat.completions.create(model="llama-3-8b", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content == "Hello from compat! You said: hi"
        assert sim.requests[-1].path == "/api/openai/v1/chat/completions"


def test_openai_auth_errors(openai_sim):
    with pytest.raises(openai.AuthenticationError) as err:
        openai.OpenAI(base_url=openai_sim.base_url, api_key="sk-wrong-key-123456", max_retries=0).models.list()
    assert err.value.code == "invalid_api_key" and err.value.type == "invalid_request_error"
    assert "Incorrect API key provided" in err.value.message
    raw = requests.get(f"{openai_sim.base_url}/models")
    assert raw.status_code == 401 and raw.json()["error"]["message"].startswith("You didn't provide an API key")


def test_openai_faults(openai_sim):
    client = oai(openai_sim)
    msgs = [{"role": "user", "content": "hi"}]
    # 429 with Retry-After, in OpenAI's error shape.
    openai_sim.fail(429, retry_after=7)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="m", messages=msgs)
    assert err.value.response.headers["retry-after"] == "7" and err.value.code == "rate_limit_exceeded"
    # A 503 then success: the SDK retries (retry-after-ms keeps it fast) and the sim saw both attempts.
    openai_sim.reset()
    openai_sim.fail(503, retry_after_ms=5)
    r = oai(openai_sim, max_retries=1).chat.completions.create(model="m", messages=msgs)
    assert r.choices[0].message.content.endswith("hi")
    assert [q.header("x-stainless-retry-count") for q in openai_sim.requests] == ["0", "1"]
    # A stream cut midway raises in the SDK.
    openai_sim.cut(after_events=3)
    with pytest.raises(openai.APIConnectionError):
        for _ in client.chat.completions.create(model="m", messages=msgs, stream=True):
            pass
    # A connection dropped before any answer.
    openai_sim.cut(after_events=0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=msgs)
    # An in-stream error event.
    openai_sim.stream_error(after_events=2, message="boom")
    with pytest.raises(openai.APIError, match="boom"):
        for _ in client.chat.completions.create(model="m", messages=msgs, stream=True):
            pass
    # Responses streams report errors as an `error` event, which the SDK hands over as such.
    openai_sim.stream_error(after_events=3, error_type="server_error", message="overloaded")
    with client.responses.stream(model="m", input="x") as s:
        kinds = [e.type for e in s]
    assert kinds[-1] == "error" and "response.completed" not in kinds
    # A delay longer than the client's timeout.
    openai_sim.delay(0.5)
    with pytest.raises(openai.APITimeoutError):
        oai(openai_sim, timeout=0.1).chat.completions.create(model="m", messages=msgs)
    # Faults are consumed: the next request is fine.
    assert client.chat.completions.create(model="m", messages=msgs).choices[0].finish_reason == "stop"


# ==========================================================================================================
# Azure OpenAI
# ==========================================================================================================


def test_azure_openai(azure_sim):
    client = openai.AzureOpenAI(
        azure_endpoint=azure_sim.base_url, api_version="2024-10-21", api_key=azure_sim.api_key, max_retries=0
    )
    r = client.chat.completions.create(model="chat-prod", messages=[{"role": "user", "content": "hello azure"}])
    assert r.choices[0].message.content == "Hello from azure! You said: hello azure"
    assert r.model == "gpt-4o-2024-11-20"  # the deployment's model
    assert r.prompt_filter_results[0]["content_filter_results"]["hate"]["filtered"] is False
    rec = azure_sim.requests[-1]
    assert rec.path == "/openai/deployments/chat-prod/chat/completions" and rec.query == {"api-version": "2024-10-21"}
    assert rec.headers["api-key"] == azure_sim.api_key and "authorization" not in rec.headers
    chunks = list(
        client.chat.completions.create(
            model="chat-prod",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices == [] and chunks[0].model == ""  # Azure's prompt-filter chunk
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from azure! You said: hi"
    assert chunks[-1].usage.prompt_tokens == ptoks("hi")
    e = client.embeddings.create(model="embed", input="vector me", encoding_format="float", dimensions=4)
    assert e.data[0].embedding == embedding("vector me", 4) and e.model == "text-embedding-3-small"
    assert client.responses.create(model="chat-prod", input="resp").output_text == "Hello from azure! You said: resp"


def test_azure_errors(azure_sim):
    url = f"{azure_sim.base_url}/openai/deployments/chat-prod/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}]}
    missing = requests.post(url, json=body, headers={"api-key": azure_sim.api_key})
    assert missing.status_code == 404 and missing.json() == {"error": {"code": "404", "message": "Resource not found"}}
    bad_version = requests.post(url, params={"api-version": "1999"}, json=body, headers={"api-key": azure_sim.api_key})
    assert bad_version.status_code == 400 and bad_version.json()["error"]["message"] == "API version not supported"
    with pytest.raises(openai.AuthenticationError) as err:
        openai.AzureOpenAI(
            azure_endpoint=azure_sim.base_url, api_version="2024-10-21", api_key="wrong", max_retries=0
        ).chat.completions.create(model="chat-prod", **body)
    assert err.value.code == "401" and "Access denied" in err.value.message
    client = openai.AzureOpenAI(
        azure_endpoint=azure_sim.base_url, api_version="2024-10-21", api_key=azure_sim.api_key, max_retries=0
    )
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-deployment", **body)
    assert err.value.code == "DeploymentNotFound"
    azure_sim.fail(429, retry_after=3, retry_after_ms=3000)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="chat-prod", **body)
    assert err.value.code == "429" and err.value.response.headers["retry-after-ms"] == "3000"


# ==========================================================================================================
# Anthropic
# ==========================================================================================================

CLAUDE = "claude-sim-1"


def claude(sim, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.base_url, api_key=sim.api_key, max_retries=kw.pop("max_retries", 0), **kw)


def test_anthropic_messages_plain(anthropic_sim):
    client = claude(anthropic_sim)
    r = client.messages.create(
        model=CLAUDE, max_tokens=100, system="Be kind.", messages=[{"role": "user", "content": "Hello Claude"}]
    )
    assert r.content[0].text == "Hello from anthropic! You said: Hello Claude"
    assert r.stop_reason == "end_turn" and r.stop_sequence is None and r.type == "message" and r.role == "assistant"
    assert r.usage.input_tokens == ptoks("Be kind.", "Hello Claude") and r.usage.output_tokens == words(
        r.content[0].text
    )
    assert r.usage.cache_creation_input_tokens == 0 and r.usage.cache_read_input_tokens == 0
    # The documented x-api-key + anthropic-version form works too (the SDK itself sends a Bearer key).
    raw = requests.post(
        f"{anthropic_sim.base_url}/v1/messages",
        json={
            "model": CLAUDE,
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "one two"}],
            "stop_sequences": ["You"],
        },
        headers={"x-api-key": anthropic_sim.api_key, "anthropic-version": "2023-06-01"},
    )
    msg = anthropic.types.Message.model_validate(raw.json())
    assert (
        msg.stop_reason == "stop_sequence"
        and msg.stop_sequence == "You"
        and msg.content[0].text == "Hello from anthropic! "
    )
    assert raw.headers["request-id"].startswith("req_")
    assert anthropic_sim.requests[0].headers["anthropic-version"]


def test_anthropic_stream(anthropic_sim):
    client = claude(anthropic_sim)
    with client.messages.stream(
        model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "stream please"}]
    ) as s:
        pieces = list(s.text_stream)
        final = s.get_final_message()
    assert "".join(pieces) == "Hello from anthropic! You said: stream please" and len(pieces) == 7
    assert (
        final.usage.output_tokens == 7
        and final.usage.input_tokens == ptoks("stream please")
        and final.stop_reason == "end_turn"
    )
    raw = requests.post(
        f"{anthropic_sim.base_url}/v1/messages",
        json={"model": CLAUDE, "max_tokens": 2, "messages": [{"role": "user", "content": "x"}], "stream": True},
        headers={"x-api-key": anthropic_sim.api_key, "anthropic-version": "2023-06-01"},
    )
    events = sse_events(raw.content)
    assert [n for n, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    adapter = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
    for name, data in events:
        if name != "ping":
            assert adapter.validate_python(json.loads(data)).type == name
    delta = json.loads(events[-2][1])
    assert delta["delta"]["stop_reason"] == "max_tokens" and delta["usage"]["output_tokens"] == 2


def test_anthropic_tools(anthropic_sim):
    client = claude(anthropic_sim)
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}]
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.messages.create(model=CLAUDE, max_tokens=100, messages=msgs, tools=tools)
    block = r.content[0]
    assert (
        r.stop_reason == "tool_use"
        and block.type == "tool_use"
        and block.name == "get_weather"
        and block.input == WEATHER_ARGS
    )
    with client.messages.stream(model=CLAUDE, max_tokens=100, messages=msgs, tools=tools) as s:
        kinds = [e.type for e in s]
        streamed = s.get_final_message()
    assert streamed.content[0].input == WEATHER_ARGS and "input_json" in kinds
    msgs += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "It is 18 degrees"}]},
    ]
    r2 = client.messages.create(model=CLAUDE, max_tokens=100, messages=msgs, tools=tools)
    assert (
        r2.content[0].text == "Hello from anthropic! The tool returned: It is 18 degrees"
        and r2.stop_reason == "end_turn"
    )
    forced = client.messages.create(
        model=CLAUDE,
        max_tokens=100,
        messages=msgs[:1],
        tools=tools
        + [
            {
                "name": "other",
                "input_schema": {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]},
            }
        ],
        tool_choice={"type": "tool", "name": "other"},
    )
    assert forced.content[0].name == "other" and forced.content[0].input == {"n": 1}


def test_anthropic_count_tokens_and_cache(anthropic_sim):
    client = claude(anthropic_sim)
    msgs = [{"role": "user", "content": "count these four words"}]
    assert client.messages.count_tokens(model=CLAUDE, messages=msgs, system="sys").input_tokens == ptoks(
        "sys", "count these four words"
    )
    system = [{"type": "text", "text": "A long cached system prompt", "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(model=CLAUDE, max_tokens=100, system=system, messages=msgs)
    second = client.messages.create(model=CLAUDE, max_tokens=100, system=system, messages=msgs)
    cached = ptoks("A long cached system prompt")
    assert (first.usage.cache_creation_input_tokens, first.usage.cache_read_input_tokens) == (cached, 0)
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == cached
    assert (second.usage.cache_creation_input_tokens, second.usage.cache_read_input_tokens) == (0, cached)
    assert second.usage.input_tokens == ptoks("count these four words")


def test_anthropic_errors_and_faults(anthropic_sim):
    client = claude(anthropic_sim)
    msgs = [{"role": "user", "content": "hi"}]
    anthropic_sim.fail(429, retry_after=9)
    with pytest.raises(anthropic.RateLimitError) as err:
        client.messages.create(model=CLAUDE, max_tokens=10, messages=msgs)
    assert err.value.response.headers["retry-after"] == "9"
    assert err.value.body["type"] == "error" and err.value.body["error"]["type"] == "rate_limit_error"
    anthropic_sim.fail(529)
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model=CLAUDE, max_tokens=10, messages=msgs)
    with pytest.raises(anthropic.AuthenticationError) as err:
        anthropic.Anthropic(base_url=anthropic_sim.base_url, api_key="sk-ant-wrong", max_retries=0).messages.create(
            model=CLAUDE, max_tokens=10, messages=msgs
        )
    assert err.value.body["error"]["type"] == "authentication_error"
    no_version = requests.post(
        f"{anthropic_sim.base_url}/v1/messages", json={}, headers={"x-api-key": anthropic_sim.api_key}
    )
    assert no_version.status_code == 400 and no_version.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }
    no_key = requests.post(
        f"{anthropic_sim.base_url}/v1/messages", json={}, headers={"anthropic-version": "2023-06-01"}
    )
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"
    no_max = requests.post(
        f"{anthropic_sim.base_url}/v1/messages",
        json={"model": CLAUDE, "messages": msgs},
        headers={"x-api-key": anthropic_sim.api_key, "anthropic-version": "2023-06-01"},
    )
    assert no_max.status_code == 400 and no_max.json()["error"]["message"] == "max_tokens: Field required"
    # In-stream error event, and a cut stream.
    anthropic_sim.stream_error(after_events=3, error_type="overloaded_error", message="Overloaded")
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        with client.messages.stream(model=CLAUDE, max_tokens=10, messages=msgs) as s:
            for _ in s:
                pass
    anthropic_sim.cut(after_events=4)  # the SDK lets the HTTP client's error through while iterating
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        with client.messages.stream(model=CLAUDE, max_tokens=10, messages=msgs) as s:
            for _ in s:
                pass


# ==========================================================================================================
# Bedrock
# ==========================================================================================================

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def bedrock(sim: BedrockSim, secret: str | None = None, token: str | None = ..., access_key: str | None = None):
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=sim.base_url,
        region_name=sim.region,
        aws_access_key_id=access_key or sim.access_key,
        aws_secret_access_key=secret or sim.secret_key,
        aws_session_token=sim.session_token if token is ... else token,
        config=Config(retries={"total_max_attempts": 1}),
    )


def user(text: str) -> dict:
    return {"role": "user", "content": [{"text": text}]}


def test_bedrock_converse(bedrock_sim):
    client = bedrock(bedrock_sim)
    r = client.converse(
        modelId=MODEL_ID,
        system=[{"text": "Be brief"}],
        messages=[user("Hello Bedrock")],
        inferenceConfig={"maxTokens": 100},
    )
    text = "Hello from bedrock! You said: Hello Bedrock"
    assert r["output"]["message"] == {"role": "assistant", "content": [{"text": text}]}
    assert r["stopReason"] == "end_turn" and r["metrics"]["latencyMs"] == 42
    assert r["usage"] == {
        "inputTokens": ptoks("Be brief", "Hello Bedrock"),
        "outputTokens": words(text),
        "totalTokens": ptoks("Be brief", "Hello Bedrock") + words(text),
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 0,
    }
    rec = bedrock_sim.requests[-1]
    assert (
        rec.raw_path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        and rec.path == f"/model/{MODEL_ID}/converse"
    )
    assert rec.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIASIMULATOR0000001/")
    assert rec.headers["x-amz-security-token"] == bedrock_sim.session_token
    r = client.converse(
        modelId=MODEL_ID, messages=[user("Hello Bedrock")], inferenceConfig={"maxTokens": 2, "stopSequences": ["zzz"]}
    )
    assert r["stopReason"] == "max_tokens" and r["output"]["message"]["content"][0]["text"] == "Hello from"


def test_bedrock_converse_stream_and_tools(bedrock_sim):
    client = bedrock(bedrock_sim)
    events = list(client.converse_stream(modelId=MODEL_ID, messages=[user("stream this")])["stream"])
    names = [next(iter(e)) for e in events]
    assert names == ["messageStart"] + ["contentBlockDelta"] * 7 + ["contentBlockStop", "messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Hello from bedrock! You said: stream this"
    assert (
        events[-1]["metadata"]["usage"]["outputTokens"] == 7 and events[-2]["messageStop"]["stopReason"] == "end_turn"
    )
    tool_config = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER_SCHEMA}}}]}
    events = list(
        client.converse_stream(modelId=MODEL_ID, messages=[user("weather?")], toolConfig=tool_config)["stream"]
    )
    start = events[1]["contentBlockStart"]
    assert start["start"]["toolUse"]["name"] == "get_weather"
    args = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e)
    assert json.loads(args) == WEATHER_ARGS and events[-2]["messageStop"]["stopReason"] == "tool_use"
    r = client.converse(modelId=MODEL_ID, messages=[user("weather?")], toolConfig=tool_config)
    use = r["output"]["message"]["content"][0]["toolUse"]
    assert use["input"] == WEATHER_ARGS and r["stopReason"] == "tool_use"
    follow = [
        user("weather?"),
        r["output"]["message"],
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"temp": 21}}]}}],
        },
    ]
    r2 = client.converse(modelId=MODEL_ID, messages=follow, toolConfig=tool_config)
    assert r2["output"]["message"]["content"][0]["text"] == 'Hello from bedrock! The tool returned: {"temp":21}'


def test_bedrock_cache_points(bedrock_sim):
    client = bedrock(bedrock_sim)
    system = [{"text": "Shared cached context here"}, {"cachePoint": {"type": "default"}}]
    first = client.converse(modelId=MODEL_ID, system=system, messages=[user("q one")])["usage"]
    second = client.converse(modelId=MODEL_ID, system=system, messages=[user("q one")])["usage"]
    cached = ptoks("Shared cached context here")
    assert (first["cacheWriteInputTokens"], first["cacheReadInputTokens"]) == (cached, 0)
    assert (second["cacheWriteInputTokens"], second["cacheReadInputTokens"]) == (0, cached)
    assert (
        second["inputTokens"] == ptoks("q one")
        and second["totalTokens"] == ptoks("q one") + cached + second["outputTokens"]
    )


def test_bedrock_sigv4_rejections(bedrock_sim):
    msgs = [user("hi")]
    cases = [
        (bedrock(bedrock_sim, secret="not-the-secret"), "InvalidSignatureException"),
        (bedrock(bedrock_sim, access_key="AKIAUNKNOWN000000000"), "UnrecognizedClientException"),
        (bedrock(bedrock_sim, token=None), "UnrecognizedClientException"),
        (bedrock(bedrock_sim, token="other-token"), "UnrecognizedClientException"),
    ]
    for client, code in cases:
        with pytest.raises(botocore.exceptions.ClientError) as err:
            client.converse(modelId=MODEL_ID, messages=msgs)
        assert err.value.response["Error"]["Code"] == code
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # Wrong region in the credential scope.
    other_region = boto3.client(
        "bedrock-runtime",
        endpoint_url=bedrock_sim.base_url,
        region_name="eu-west-1",
        aws_access_key_id=bedrock_sim.access_key,
        aws_secret_access_key=bedrock_sim.secret_key,
        aws_session_token=bedrock_sim.session_token,
        config=Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidSignatureException"):
        other_region.converse(modelId=MODEL_ID, messages=msgs)
    # A correctly signed request whose body is then altered.
    url = f"{bedrock_sim.base_url}/model/m/converse"
    body = json.dumps({"messages": msgs}).encode()
    req = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(
        Credentials(bedrock_sim.access_key, bedrock_sim.secret_key, bedrock_sim.session_token),
        "bedrock",
        bedrock_sim.region,
    ).add_auth(req)
    ok = requests.post(url, data=body, headers=dict(req.headers))
    assert ok.status_code == 200
    tampered = requests.post(url, data=body.replace(b"hi", b"ho"), headers=dict(req.headers))
    assert tampered.status_code == 403 and tampered.headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")
    assert "signature we calculated does not match" in tampered.json()["message"]
    unsigned = requests.post(url, data=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 403 and unsigned.json() == {"message": "Missing Authentication Token"}
    # Clock skew: the same signature, checked ten minutes later.
    with pytest.raises(SigV4Error, match="Signature expired"):
        verify_sigv4(
            method="POST",
            raw_path="/model/m/converse",
            headers=dict(req.headers),
            body=body,
            access_key=bedrock_sim.access_key,
            secret_key=bedrock_sim.secret_key,
            session_token=bedrock_sim.session_token,
            region=bedrock_sim.region,
            now=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10),
        )


def test_bedrock_api_key(monkeypatch):
    with BedrockSim(api_key="ABSKsimulatorkey") as sim:
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKsimulatorkey")
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=sim.base_url,
            region_name=sim.region,
            config=Config(retries={"total_max_attempts": 1}),
        )
        r = client.converse(modelId=MODEL_ID, messages=[user("key auth")])
        assert r["output"]["message"]["content"][0]["text"].endswith("key auth")
        assert sim.requests[-1].headers["authorization"] == "Bearer ABSKsimulatorkey"


def test_bedrock_faults(bedrock_sim):
    client = bedrock(bedrock_sim)
    msgs = [user("hi there")]
    bedrock_sim.fail(429)
    with pytest.raises(client.exceptions.ThrottlingException):
        client.converse(modelId=MODEL_ID, messages=msgs)
    bedrock_sim.fail(503, message="down for a bit")
    with pytest.raises(client.exceptions.ServiceUnavailableException, match="down for a bit"):
        client.converse(modelId=MODEL_ID, messages=msgs)
    bedrock_sim.stream_error(after_events=2, error_type="throttlingException", message="slow down")
    with pytest.raises(botocore.exceptions.EventStreamError, match="slow down") as err:
        for _ in client.converse_stream(modelId=MODEL_ID, messages=msgs)["stream"]:
            pass
    assert err.value.response["Error"]["Code"] == "throttlingException"
    bedrock_sim.cut(after_events=3)
    seen = []
    with pytest.raises(Exception) as err:
        for e in client.converse_stream(modelId=MODEL_ID, messages=msgs)["stream"]:
            seen.append(e)
    assert len(seen) == 3 and not isinstance(err.value, AssertionError)


# ==========================================================================================================
# Google: token endpoint, Vertex AI, Gemini API
# ==========================================================================================================


def vertex_url(sim, model="gemini-2.0-flash", action="generateContent", version="v1") -> str:
    return (
        f"{sim.base_url}/{version}/projects/sim-project/locations/us-central1/publishers/google/models/{model}:{action}"
    )


def fetch_token(sim, assertion: str) -> requests.Response:
    return requests.post(
        sim.token_url, data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    )


def test_google_token_endpoint_and_vertex_raw(google_sim):
    info = google_sim.new_service_account()
    assertion = jwt.encode(
        {
            "iss": info["client_email"],
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": google_sim.token_url,
            "iat": int(time.time()),
            "exp": int(time.time()) + 3600,
        },
        info["private_key"],
        algorithm="RS256",
        headers={"kid": info["private_key_id"]},
    )
    tok = fetch_token(google_sim, assertion)
    assert tok.status_code == 200
    body = tok.json()
    assert (
        set(body) == {"access_token", "expires_in", "token_type"}
        and body["token_type"] == "Bearer"
        and body["expires_in"] == 3600
    )
    assert google_sim.tokens_issued == 1 and google_sim.requests[0].form["grant_type"].endswith("jwt-bearer")
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    req = {
        "systemInstruction": {"parts": [{"text": "Be nice"}]},
        "contents": [{"role": "user", "parts": [{"text": "Hi Gemini"}]}],
    }
    r = requests.post(vertex_url(google_sim), json=req, headers=headers).json()
    text = "Hello from google! You said: Hi Gemini"
    assert (
        r["candidates"][0]["content"] == {"role": "model", "parts": [{"text": text}]}
        and r["candidates"][0]["finishReason"] == "STOP"
    )
    usage = r["usageMetadata"]
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"], usage["totalTokenCount"]) == (
        ptoks("Be nice", "Hi Gemini"),
        words(text),
        ptoks("Be nice", "Hi Gemini") + words(text),
    )
    gtypes.GenerateContentResponse.model_validate(r)
    stream = requests.post(
        vertex_url(google_sim, action="streamGenerateContent"), params={"alt": "sse"}, json=req, headers=headers
    )
    chunks = [json.loads(d) for _, d in sse_events(stream.content)]
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == text
    assert "usageMetadata" in chunks[-1] and all("usageMetadata" not in c for c in chunks[:-1])
    array = requests.post(vertex_url(google_sim, action="streamGenerateContent"), json=req, headers=headers).json()
    assert len(array) == len(chunks)
    # Token problems.
    google_sim.expire_tokens()
    expired = requests.post(vertex_url(google_sim), json=req, headers=headers)
    assert expired.status_code == 401 and expired.json()["error"]["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED"
    assert requests.post(vertex_url(google_sim), json=req).json()["error"]["status"] == "UNAUTHENTICATED"
    narrow = fetch_token(
        google_sim, sign_assertion(info, scope="https://www.googleapis.com/auth/userinfo.email")
    ).json()
    denied = requests.post(
        vertex_url(google_sim), json=req, headers={"Authorization": f"Bearer {narrow['access_token']}"}
    )
    assert denied.status_code == 403 and denied.json()["error"]["status"] == "PERMISSION_DENIED"


def test_google_token_endpoint_rejections(google_sim):
    info = google_sim.new_service_account()
    stranger = google_sim.new_service_account()
    forged = {**info, "private_key": stranger["private_key"]}  # right kid and iss, wrong key
    now = int(time.time())
    cases = [
        (sign_assertion(forged), "invalid_grant", "Invalid JWT Signature."),
        (
            sign_assertion(info, audience="https://example.invalid/token"),
            "invalid_grant",
            "Invalid JWT: Failed audience check",
        ),
        (sign_assertion(info, now=now - 7200), "invalid_grant", "Invalid JWT: Token must be a short-lived token"),
        (sign_assertion(info, lifetime=7200), "invalid_grant", "Invalid JWT: Token must be a short-lived token"),
        (sign_assertion(info, scope=""), "invalid_scope", "Invalid OAuth scope"),
        ("not-a-jwt", "invalid_grant", "Invalid JWT"),
    ]
    for assertion, error, description in cases:
        r = fetch_token(google_sim, assertion)
        assert (
            r.status_code == 400
            and r.json()["error"] == error
            and r.json()["error_description"].startswith(description)
        ), r.text
    r = requests.post(google_sim.token_url, data={"grant_type": "password", "assertion": "x"})
    assert r.json()["error"] == "unsupported_grant_type"
    assert google_sim.tokens_issued == 0
    google_sim.token_lifetime = 60
    assert fetch_token(google_sim, sign_assertion(info)).json()["expires_in"] == 60
    google_sim.fail(503, path="/token")
    assert fetch_token(google_sim, sign_assertion(info)).status_code == 503


def test_vertex_with_google_auth_and_genai(google_sim, tmp_path):
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    path = write_service_account(google_sim.new_service_account(), tmp_path)
    creds = service_account.Credentials.from_service_account_file(
        path, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    creds.refresh(Request())  # google-auth's own JWT bearer grant against the simulator
    assert creds.valid and creds.token.startswith("ya29.") and google_sim.tokens_issued == 1
    client = genai.Client(
        vertexai=True,
        project="sim-project",
        location="us-central1",
        credentials=creds,
        http_options={"base_url": google_sim.base_url},
    )
    r = client.models.generate_content(model="gemini-2.0-flash", contents="Hello Vertex")
    assert r.text == "Hello from google! You said: Hello Vertex" and r.usage_metadata.prompt_token_count == ptoks(
        "Hello Vertex"
    )
    assert (
        google_sim.requests[-1].path
        == "/v1beta1/projects/sim-project/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
    )
    chunks = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="Hello Vertex"))
    assert (
        "".join(c.text for c in chunks) == r.text
        and chunks[-1].usage_metadata.total_token_count == r.usage_metadata.total_token_count
    )
    assert google_sim.requests[-1].query == {"alt": "sse"}
    assert google_sim.tokens_issued == 1  # the token was reused


def test_gemini_api_with_genai(google_sim):
    client = genai.Client(api_key=google_sim.api_key, http_options={"base_url": google_sim.base_url})
    r = client.models.generate_content(model="gemini-2.5-flash", contents="Hi there")
    assert r.text == "Hello from google! You said: Hi there"
    rec = google_sim.requests[-1]
    assert rec.headers["x-goog-api-key"] == google_sim.api_key and rec.path.endswith(
        "/models/gemini-2.5-flash:generateContent"
    )
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi there"))
    assert "".join(c.text for c in chunks) == r.text and chunks[0].usage_metadata.prompt_token_count == ptoks(
        "Hi there"
    )
    short = client.models.generate_content(
        model="gemini-2.5-flash", contents="Hi there", config=gtypes.GenerateContentConfig(max_output_tokens=2)
    )
    assert short.text == "Hello from" and short.candidates[0].finish_reason == gtypes.FinishReason.MAX_TOKENS
    tool = gtypes.Tool(
        function_declarations=[gtypes.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER_SCHEMA)]
    )
    config = gtypes.GenerateContentConfig(
        tools=[tool], automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True)
    )
    call = client.models.generate_content(model="gemini-2.5-flash", contents="Weather?", config=config)
    assert call.function_calls[0].name == "get_weather" and call.function_calls[0].args == WEATHER_ARGS
    history = [
        gtypes.Content(role="user", parts=[gtypes.Part(text="Weather?")]),
        call.candidates[0].content,
        gtypes.Content(
            role="user", parts=[gtypes.Part.from_function_response(name="get_weather", response={"result": "sunny"})]
        ),
    ]
    answer = client.models.generate_content(model="gemini-2.5-flash", contents=history, config=config)
    assert answer.text == 'Hello from google! The tool returned: {"result":"sunny"}'
    assert client.models.count_tokens(model="gemini-2.5-flash", contents="a b c").total_tokens == ptoks("a b c")
    cached = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="Hi",
        config=gtypes.GenerateContentConfig(cached_content="cachedContents/abc"),
    )
    assert cached.usage_metadata.cached_content_token_count == google_sim.cached_content_tokens


def test_gemini_errors_and_faults(google_sim):
    wrong = genai.Client(api_key="AIza-wrong", http_options={"base_url": google_sim.base_url})
    with pytest.raises(genai_errors.ClientError) as err:
        wrong.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert err.value.code == 400 and err.value.status == "INVALID_ARGUMENT" and "API key not valid" in err.value.message
    missing = requests.post(
        f"{google_sim.base_url}/v1beta/models/gemini-2.5-flash:generateContent", json={"contents": []}
    )
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    client = genai.Client(
        api_key=google_sim.api_key, http_options={"base_url": google_sim.base_url, "retry_options": {"attempts": 1}}
    )
    google_sim.fail(429, retry_after=4)
    with pytest.raises(genai_errors.ClientError) as err:
        client.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert err.value.code == 429 and err.value.status == "RESOURCE_EXHAUSTED"
    google_sim.stream_error(after_events=2, message="stream broke")
    with pytest.raises(genai_errors.ServerError, match="stream broke"):
        for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents="one two three"):
            pass
    google_sim.cut(after_events=2)
    with pytest.raises(Exception) as err:
        for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents="one two three"):
            pass
    assert not isinstance(err.value, AssertionError)
    # With ?key= instead of the header.
    ok = requests.post(
        f"{google_sim.base_url}/v1beta/models/gemini-2.5-flash:generateContent",
        params={"key": google_sim.api_key},
        json={"contents": [{"role": "user", "parts": [{"text": "query key"}]}]},
    )
    assert ok.status_code == 200 and ok.json()["candidates"][0]["content"]["parts"][0]["text"].endswith("query key")


# ==========================================================================================================
# Shared machinery
# ==========================================================================================================


def test_server_thread_lifecycle():
    from aiohttp import web

    from sims import ServerThread

    async def ping(request):
        return web.Response(text="pong")

    app = web.Application()
    app.router.add_get("/ping", ping)
    server = ServerThread(app)
    port = server.start()  # returns with the socket bound: no waiting needed
    assert requests.get(f"http://127.0.0.1:{port}/ping").text == "pong"
    thread = server._thread
    server.stop()
    assert not thread.is_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/ping", timeout=2)
    # Each simulator is such a server; a fault queue entry with a path filter waits for its path.
    with OpenAISim() as sim:
        sim.fail(500, path="/embeddings")
        client = oai(sim)
        assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices
        with pytest.raises(openai.InternalServerError):
            client.embeddings.create(model="m", input="x")
        assert len(sim.faults) == 0 and [r.path for r in sim.requests] == ["/v1/chat/completions", "/v1/embeddings"]
