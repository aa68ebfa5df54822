"""End to end: failover across AI backends, Retry-After, streams that fail before and after they start,
outlier ejection and region locks, through the real gateway with the official SDKs.

Every test starts its own gateway (about 50 ms) and simulators, so failover state (consecutive failures,
ejections) never leaks from one test to another. Simulators are told apart by their provider name, which
the deterministic answer carries (``"Hello from <name>! ..."``).
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid

import anthropic
import openai
import pytest

from gateway import GATEWAY, Gateway, backend_for, free_port
from sims import AnthropicSim, OpenAISim

CLIENT_KEY = "client-key"
OPENAI_KEY = "sk-sim-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-sim-0123456789"
HI = [{"role": "user", "content": "Hi"}]


# ----------------------------------------------------------------------------------------------------------
# Configuration and helpers
# ----------------------------------------------------------------------------------------------------------


def secret() -> str:
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: default}}
stringData: {{openai: {OPENAI_KEY}, anthropic: {ANTHROPIC_KEY}}}
"""


def ai_backend(name: str, port: int, *, priority: int = 0, region: str | None = None, kind: str = "OpenAI") -> str:
    """A Backend on loopback ``port`` and the AIBackend ``name`` in front of it."""
    key = "anthropic" if kind == "Anthropic" else "openai"
    region_line = f"\n  region: {region}" if region else ""
    return backend_for(f"{name}-sim", port) + f"""
---
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {{name: {name}, namespace: default}}
spec:
  provider: {{type: {kind}}}
  backendRef: {{group: gateway.networking.k8s.io, kind: Backend, name: {name}-sim}}
  credentials: {{secretRef: {{name: keys, key: {key}}}}}
  priority: {priority}{region_line}
"""


def route(*backends: str, name: str = "models", model: str | None = None) -> str:
    match = f"\n  - matches:\n    - headers: [{{name: X-Gateway-Model-Name, value: {model}}}]" if model else "\n  -"
    refs = ", ".join(f"{{group: sluice.dev, kind: AIBackend, name: {b}}}" for b in backends)
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:{match}
    backendRefs: [{refs}]
"""


def gateway_policy(body: str) -> str:
    return f"""
apiVersion: sluice.dev/v1alpha1
kind: AIPolicy
metadata: {{name: gateway-ai, namespace: default}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]
  {body}
"""


def config(*docs: str) -> str:
    return "\n---\n".join([GATEWAY, secret(), *docs])


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.openai_base_url, api_key=CLIENT_KEY, max_retries=0)


def claude(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.origin, api_key=CLIENT_KEY, max_retries=0)


def new_id() -> str:
    return uuid.uuid4().hex


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


def chat(gw: Gateway, model: str = "gpt-4o-mini", **kw):
    """A chat completion with the client's own request id; returns (completion, request id)."""
    rid = new_id()
    r = oai(gw).chat.completions.create(model=model, messages=HI, extra_headers={"x-request-id": rid}, **kw)
    return r, rid


@contextlib.contextmanager
def openai_sims(*names: str):
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(OpenAISim(api_key=OPENAI_KEY, provider_name=n)) for n in names]


# ----------------------------------------------------------------------------------------------------------
# Priority groups and connection failures
# ----------------------------------------------------------------------------------------------------------


def test_priority_group_fails_over_on_500():
    with openai_sims("primary", "secondary") as (primary, secondary):
        cfg = config(
            ai_backend("primary", primary.port, priority=0),
            ai_backend("secondary", secondary.port, priority=1),
            route("primary", "secondary"),
        )
        with Gateway(cfg) as gw:
            r, rid = chat(gw)  # no fault: priority 0 answers
            assert r.choices[0].message.content == "Hello from primary! You said: Hi"
            assert log_record(gw, rid)["ai"]["attempts"] == 1

            primary.fail(500)
            r, rid = chat(gw)
            assert r.choices[0].message.content == "Hello from secondary! You said: Hi"
            assert [len(primary.requests), len(secondary.requests)] == [2, 1]
            rec = log_record(gw, rid)
            assert rec["status"] == 200 and rec["backend"] == "default/secondary"
            ai = rec["ai"]
            assert (ai["attempts"], ai["backend"], ai["completed"]) == (2, "default/secondary", True)
            assert (ai["input_tokens"], ai["output_tokens"]) == (4, 6)  # the answer that was served
            # A request counts once, for the backend that served it.
            text = gw.metrics()
            assert metric(text, "sluice_ai_backend_requests_total", backend="default/secondary", outcome="success") == 1
            assert metric(text, "sluice_ai_backend_requests_total", backend="default/primary", outcome="failure") is None


def test_dead_upstream_fails_over():
    dead_port = free_port()  # bound then closed: connections are refused
    with openai_sims("alive") as (alive,):
        cfg = config(
            ai_backend("dead", dead_port, priority=0),
            ai_backend("alive", alive.port, priority=1),
            route("dead", "alive"),
            ai_backend("only-dead", dead_port),
            route("only-dead", name="dead-only", model="dead-model"),
        )
        with Gateway(cfg) as gw:
            r, rid = chat(gw)
            assert r.choices[0].message.content == "Hello from alive! You said: Hi"
            ai = log_record(gw, rid)["ai"]
            assert (ai["attempts"], ai["backend"]) == (2, "default/alive")

            # Nothing to fail over to: the connection error in the client's dialect.
            rid = new_id()
            with pytest.raises(openai.InternalServerError) as err:
                oai(gw).chat.completions.create(model="dead-model", messages=HI, extra_headers={"x-request-id": rid})
            assert err.value.status_code == 503 and err.value.code == "upstream_connect_error"
            assert log_record(gw, rid)["reason"] == "upstream_connect_error"


# ----------------------------------------------------------------------------------------------------------
# 429 and Retry-After
# ----------------------------------------------------------------------------------------------------------


def test_retry_after_waited_out_on_the_only_backend():
    with openai_sims("limited") as (sim,):
        cfg = config(ai_backend("limited", sim.port), route("limited"), gateway_policy("failover: {maxRetryAfter: 2s}"))
        with Gateway(cfg) as gw:
            sim.fail(429, retry_after=1)
            r, rid = chat(gw)
            assert r.choices[0].message.content == "Hello from limited! You said: Hi"
            assert len(sim.requests) == 2
            assert sim.requests[1].received_at - sim.requests[0].received_at >= 0.95  # Retry-After: 1 waited out
            assert log_record(gw, rid)["ai"]["attempts"] == 2

            # A Retry-After longer than maxRetryAfter is not waited for: the client gets the 429.
            sim.fail(429, retry_after=30)
            with pytest.raises(openai.RateLimitError) as err:
                chat(gw)
            assert err.value.response.headers["retry-after"] == "30"
            assert len(sim.requests) == 3


def test_429_returned_with_retry_after_by_default():
    with openai_sims("limited") as (sim,):
        with Gateway(config(ai_backend("limited", sim.port), route("limited"))) as gw:
            sim.fail(429, retry_after=1, message="Rate limit reached for gpt-4o-mini on requests per min (RPM).")
            started = time.monotonic()
            with pytest.raises(openai.RateLimitError) as err:
                chat(gw)
            assert time.monotonic() - started < 0.9  # not waited for
            assert err.value.status_code == 429 and err.value.response.headers["retry-after"] == "1"
            assert err.value.code == "rate_limit_exceeded"
            assert err.value.body["message"] == "Rate limit reached for gpt-4o-mini on requests per min (RPM)."
            assert len(sim.requests) == 1

            # Anthropic clients get the same in their dialect.
            sim.fail(429, retry_after=5)
            with pytest.raises(anthropic.RateLimitError) as aerr:
                claude(gw).messages.create(model="gpt-4o-mini", max_tokens=10, messages=HI)
            assert aerr.value.response.headers["retry-after"] == "5"
            assert aerr.value.body["error"]["type"] == "rate_limit_error"


# ----------------------------------------------------------------------------------------------------------
# Streams
# ----------------------------------------------------------------------------------------------------------


def test_stream_fails_over_before_it_starts():
    with openai_sims("first", "second") as (first, second):
        cfg = config(
            ai_backend("first", first.port, priority=0),
            ai_backend("second", second.port, priority=1),
            route("first", "second"),
        )
        with Gateway(cfg) as gw:
            first.fail(503)
            stream = oai(gw).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Stream it"}], stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert text == "Hello from second! You said: Stream it"
            assert first.requests[0].json["stream"] is True and len(second.requests) == 1
            ai = log_record(gw, stream.response.headers["x-request-id"])["ai"]
            assert (ai["attempts"], ai["backend"], ai["stream"], ai["completed"]) == (2, "default/second", True, True)
            assert (ai["input_tokens"], ai["output_tokens"]) == (5, 7)


def test_stream_cut_midway_ends_with_an_error_openai():
    with openai_sims("cutter", "standby") as (cutter, standby):
        cfg = config(
            ai_backend("cutter", cutter.port, priority=0),
            ai_backend("standby", standby.port, priority=1),
            route("cutter", "standby"),
        )
        with Gateway(cfg) as gw:
            cutter.cut(after_events=4)  # role chunk + 3 words, then the connection closes
            stream = oai(gw).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Tell me more"}], stream=True
            )
            received = []
            with pytest.raises(openai.APIError) as err:
                for chunk in stream:
                    received.append(chunk.choices[0].delta.content or "")
            assert "".join(received) == "Hello from cutter! "  # the beginning reached the client
            assert err.value.message == "the provider's stream was interrupted"
            assert err.value.code == "upstream_stream_error"
            assert standby.requests == []  # a started stream is never retried elsewhere
            ai = log_record(gw, stream.response.headers["x-request-id"])["ai"]
            assert (ai["completed"], ai["error"], ai["attempts"]) == (False, "stream failed", 1)

            # The provider's own in-stream error event reaches the client as an error too.
            cutter.stream_error(after_events=2, message="The server had an error mid-stream")
            stream = oai(gw).chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
            with pytest.raises(openai.APIError) as err:
                list(stream)
            assert err.value.message == "The server had an error mid-stream"
            ai = log_record(gw, stream.response.headers["x-request-id"])["ai"]
            assert ai["completed"] is False
            text = gw.metrics()
            assert metric(text, "sluice_ai_backend_requests_total", backend="default/cutter", outcome="failure") == 2


def test_stream_cut_midway_ends_with_an_error_anthropic():
    with AnthropicSim(api_key=ANTHROPIC_KEY) as asim, OpenAISim(api_key=OPENAI_KEY) as osim:
        cfg = config(
            ai_backend("claude", asim.port, kind="Anthropic"),
            route("claude", name="claude", model="claude-e2e"),
            ai_backend("gpt", osim.port),
            route("gpt", name="gpt", model="gpt-4o-mini"),
        )
        with Gateway(cfg) as gw:
            # Passthrough: message_start, content_block_start, ping, one delta, then the connection closes.
            asim.cut(after_events=4)
            received = []
            with pytest.raises(anthropic.APIStatusError) as err:
                with claude(gw).messages.stream(
                    model="claude-e2e", max_tokens=100, messages=[{"role": "user", "content": "Go on"}]
                ) as stream:
                    rid = stream.response.headers["x-request-id"]
                    for text in stream.text_stream:
                        received.append(text)
            assert received == ["Hello "]
            assert err.value.body["error"]["type"] == "api_error"
            assert "interrupted" in err.value.body["error"]["message"]
            ai = log_record(gw, rid)["ai"]
            assert (ai["completed"], ai["error"]) == (False, "stream failed")

            # Translated (Anthropic client, OpenAI provider): the same error event.
            osim.cut(after_events=3)
            with pytest.raises(anthropic.APIStatusError) as err:
                with claude(gw).messages.stream(model="gpt-4o-mini", max_tokens=100, messages=HI) as stream:
                    rid = stream.response.headers["x-request-id"]
                    for _ in stream:
                        pass
            assert err.value.body["error"]["type"] == "api_error"
            assert log_record(gw, rid)["ai"]["completed"] is False

            # OpenAI client, Anthropic provider: the OpenAI SDK raises on the terminal error chunk.
            asim.cut(after_events=5)
            stream = oai(gw).chat.completions.create(model="claude-e2e", messages=HI, stream=True)
            with pytest.raises(openai.APIError) as oerr:
                list(stream)
            assert oerr.value.code == "upstream_stream_error"


# ----------------------------------------------------------------------------------------------------------
# Outlier ejection
# ----------------------------------------------------------------------------------------------------------


def test_outlier_ejection_and_probe():
    with openai_sims("flaky", "steady") as (flaky, steady):
        cfg = config(
            ai_backend("flaky", flaky.port, priority=0),
            ai_backend("steady", steady.port, priority=1),
            route("flaky", "steady"),
            gateway_policy("failover: {consecutiveFailures: 2, ejectionTime: 1s}"),
        )
        with Gateway(cfg) as gw:
            flaky.fail(500, times=2)
            for _ in range(2):
                r, rid = chat(gw)
                assert r.choices[0].message.content == "Hello from steady! You said: Hi"
                assert log_record(gw, rid)["ai"]["attempts"] == 2
            ejected_at = flaky.requests[-1].received_at
            assert "AI backend ejected after consecutive failures" in gw.output()

            # Ejected: it goes last, so the healthy backend answers at once and the flaky one hears nothing.
            for _ in range(3):
                r, rid = chat(gw)
                assert r.choices[0].message.content == "Hello from steady! You said: Hi"
                assert log_record(gw, rid)["ai"]["attempts"] == 1
            assert len(flaky.requests) == 2

            # After ejectionTime one request probes it (it has recovered: the probe succeeds).
            deadline = time.monotonic() + 5
            while len(flaky.requests) == 2:
                assert time.monotonic() < deadline, "the ejected backend was never probed"
                r, rid = chat(gw)
                time.sleep(0.05)
            assert flaky.requests[2].received_at - ejected_at >= 0.95
            assert r.choices[0].message.content == "Hello from flaky! You said: Hi"
            assert log_record(gw, rid)["ai"]["backend"] == "default/flaky"
            # Closed again: it serves the next requests first.
            r, _ = chat(gw)
            assert r.choices[0].message.content == "Hello from flaky! You said: Hi"


def test_failed_probe_ejects_again():
    with openai_sims("flaky", "steady") as (flaky, steady):
        cfg = config(
            ai_backend("flaky", flaky.port, priority=0),
            ai_backend("steady", steady.port, priority=1),
            route("flaky", "steady"),
            gateway_policy("failover: {consecutiveFailures: 1, ejectionTime: 1s}"),
        )
        with Gateway(cfg) as gw:
            flaky.fail(503, times=2)
            chat(gw)  # ejected after one failure
            deadline = time.monotonic() + 5
            while len(flaky.requests) == 1:
                assert time.monotonic() < deadline, "the ejected backend was never probed"
                r, _ = chat(gw)
                time.sleep(0.05)
            assert r.choices[0].message.content == "Hello from steady! You said: Hi"  # probe failed, failed over
            # The failed probe ejected it again at once (without counting up to consecutiveFailures anew).
            assert gw.output().count("AI backend ejected after consecutive failures") == 2


# ----------------------------------------------------------------------------------------------------------
# Regions
# ----------------------------------------------------------------------------------------------------------


def region_config(us: OpenAISim, eu: OpenAISim) -> str:
    return config(
        ai_backend("us", us.port, priority=0, region="us-east-1"),
        ai_backend("eu", eu.port, priority=1, region="eu-west-1"),
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: eu-only, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - headers: [{name: X-Gateway-Model-Name, value: gpt-4o-mini}]
    backendRefs:
    - {group: sluice.dev, kind: AIBackend, name: us}
    - {group: sluice.dev, kind: AIBackend, name: eu}
  - matches:
    - headers: [{name: X-Gateway-Model-Name, value: us-only-model}]
    backendRefs:
    - {group: sluice.dev, kind: AIBackend, name: us}
""",
        """
apiVersion: sluice.dev/v1alpha1
kind: AIPolicy
metadata: {name: eu-only, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: eu-only}]
  allowedRegions: [eu-west-1]
""",
        route("us", "eu", name="anywhere", model="gpt-4.1"),
    )


def test_region_lock_only_tries_allowed_regions():
    with openai_sims("us", "eu") as (us, eu):
        with Gateway(region_config(us, eu)) as gw:
            # Priority 0 is in the US, but the route is locked to the EU.
            r, rid = chat(gw)
            assert r.choices[0].message.content == "Hello from eu! You said: Hi"
            ai = log_record(gw, rid)["ai"]
            assert (ai["region"], ai["backend"], ai["attempts"]) == ("eu-west-1", "default/eu", 1)

            # The EU backend fails: the client gets the EU failure, never a US answer.
            eu.fail(500, message="EU region is down")
            rid = new_id()
            with pytest.raises(openai.InternalServerError) as err:
                oai(gw).chat.completions.create(model="gpt-4o-mini", messages=HI, extra_headers={"x-request-id": rid})
            assert err.value.status_code == 500 and err.value.body["message"] == "EU region is down"
            ai = log_record(gw, rid)["ai"]
            assert (ai["region"], ai["attempts"]) == ("eu-west-1", 1)
            assert us.requests == []

            # A model served only outside the allowed regions: 503 with the reason.
            with pytest.raises(openai.InternalServerError) as err:
                oai(gw).chat.completions.create(model="us-only-model", messages=HI)
            assert err.value.status_code == 503 and err.value.code == "region_unavailable"
            assert err.value.body["message"] == (
                "no backend for model `us-only-model` is available in the allowed regions (eu-west-1)"
            )
            assert us.requests == []

            # Routes without the policy use the US backend first.
            r, rid = chat(gw, model="gpt-4.1")
            assert r.choices[0].message.content == "Hello from us! You said: Hi"
            assert log_record(gw, rid)["ai"]["region"] == "us-east-1"

            text = gw.metrics()
            assert metric(text, "sluice_ai_backend_requests_total", backend="default/eu", region="eu-west-1", outcome="success") == 1
            assert metric(text, "sluice_ai_backend_requests_total", backend="default/eu", region="eu-west-1", outcome="failure") == 1
            assert metric(text, "sluice_ai_backend_requests_total", backend="default/us", region="us-east-1", outcome="success") == 1
