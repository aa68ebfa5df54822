"""End to end: token rate limits and budgets, through the official `openai` and `anthropic` SDKs.

The gateway runs the in-process mock provider (deterministic answers with real usage numbers and an
output cap it honours), so every number here comes from the gateway's own accounting: the 429s and
their headers, the refunds after settlement, the budgets on the admin server, 64 streaming clients
against one limit.
"""

from __future__ import annotations

import re
import threading
import time

import anthropic
import httpx2 as httpx  # the HTTP client the openai SDK is built on
import openai
import pytest

from gateway import GATEWAY, Gateway

HI = [{"role": "user", "content": "Hi"}]

MOCK = """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: mock, namespace: default}
spec:
  provider: {type: Mock}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: llm, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{group: sluice.dev, kind: AIBackend, name: mock}]
"""


def config(policy: str, extra: str = "") -> str:
    parts = [GATEWAY, MOCK, policy]
    if extra:
        parts.append(extra)
    return "\n---\n".join(parts)


def policy(spec: str, target: str = "{group: gateway.networking.k8s.io, kind: Gateway, name: gw}") -> str:
    return f"""
apiVersion: sluice.dev/v1alpha1
kind: TokenRateLimitPolicy
metadata: {{name: limits, namespace: default}}
spec:
  targetRefs: [{target}]
{spec}"""


def metric(gw: Gateway, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in gw.metrics().splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(predicate, timeout: float = 5.0) -> float:
    """Seconds until ``predicate()`` held (polling), or raises."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def client(gw: Gateway, **kw) -> openai.OpenAI:
    # No automatic retries: the test sees every 429 itself.
    return openai.OpenAI(base_url=gw.openai_base_url, api_key="unused", max_retries=0, **kw)


# --- 429s in each dialect ------------------------------------------------------------------------

TOKENS_300 = policy("""
  rules:
  - name: per-user
    bucketBy: [{header: x-user}]
    cost: {tokens: Total}
    limits: [{amount: 300, period: 1m}, {amount: 100000, period: 24h}]
    defaultMaxTokens: 100
""")


@pytest.fixture(scope="module")
def limited():
    with Gateway(config(TOKENS_300)) as gw:
        yield gw


def test_openai_sdk_gets_headers_then_a_429_with_retry_after(limited):
    c = client(limited, default_headers={"x-user": "alice"})
    raw = c.chat.completions.with_raw_response.create(model="mock-1", messages=HI, max_tokens=50)
    done = raw.parse()
    assert done.choices[0].message.content
    h = raw.headers
    # The tightest token limit is the per-minute one; what was reserved is already taken off.
    assert h["x-ratelimit-limit-tokens"] == "300"
    remaining = int(h["x-ratelimit-remaining-tokens"])
    assert 0 < remaining <= 300 - 50
    assert re.fullmatch(r"\d+(ms|s)", h["x-ratelimit-reset-tokens"]), h["x-ratelimit-reset-tokens"]
    assert "x-ratelimit-limit-requests" not in h  # no rule counts requests

    # A reservation larger than what is left is refused before it reaches the provider.
    with pytest.raises(openai.RateLimitError) as err:
        c.chat.completions.create(model="mock-1", messages=HI, max_tokens=290)
    e = err.value
    assert e.status_code == 429
    assert e.code == "rate_limit_exceeded"
    assert "per-user" in e.message and "try again" in e.message
    retry_after = int(e.response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert int(e.response.headers["retry-after-ms"]) <= retry_after * 1000
    assert e.response.headers["x-ratelimit-limit-tokens"] == "300"
    assert e.response.headers["x-request-id"]

    # Another bucket (another x-user) is not affected.
    other = client(limited, default_headers={"x-user": "bob"})
    assert other.chat.completions.create(model="mock-1", messages=HI, max_tokens=290).choices


def test_anthropic_sdk_gets_a_429_in_its_own_dialect(limited):
    c = anthropic.Anthropic(base_url=limited.origin, api_key="unused", max_retries=0,
                            default_headers={"x-user": "carol"})
    raw = c.messages.with_raw_response.create(model="mock-1", max_tokens=40, messages=HI)
    assert raw.parse().content[0].text
    assert raw.headers["x-ratelimit-limit-tokens"] == "300"
    with pytest.raises(anthropic.RateLimitError) as err:
        c.messages.create(model="mock-1", max_tokens=280, messages=HI)
    e = err.value
    assert e.status_code == 429
    assert e.body["type"] == "error" and e.body["error"]["type"] == "rate_limit_error"
    assert "per-user" in e.body["error"]["message"]
    assert int(e.response.headers["retry-after"]) >= 1


def test_a_request_larger_than_the_limit_is_final(limited):
    c = client(limited, default_headers={"x-user": "dave"})
    with pytest.raises(openai.RateLimitError) as err:
        c.chat.completions.create(model="mock-1", messages=HI, max_tokens=5000)
    h = err.value.response.headers
    assert "can never fit" in err.value.message
    # The SDKs must not retry what no wait can fix.
    assert h["x-should-retry"] == "false"
    assert "retry-after" not in h
    # Nothing was reserved by the refusal: the whole minute's allowance is still there.
    raw = c.chat.completions.with_raw_response.create(model="mock-1", messages=HI, max_tokens=250)
    assert raw.parse().choices


def test_unused_tokens_are_refunded_when_the_answer_ends(limited):
    c = client(limited, default_headers={"x-user": "erin"})
    refunded = metric(limited, "sluice_ratelimit_tokens_total", rule="per-user", outcome="refunded")
    # Reserves input + 200, uses a few dozen tokens.
    first = c.chat.completions.create(model="mock-1", messages=HI, max_tokens=200)
    used = first.usage.total_tokens
    assert used < 100
    wait_until(lambda: metric(limited, "sluice_ratelimit_tokens_total", rule="per-user",
                              outcome="refunded") > refunded)
    # Without the refund 300 - (input + 200) would be left, too little for another 200.
    raw = c.chat.completions.with_raw_response.create(model="mock-1", messages=HI, max_tokens=200)
    assert raw.parse().choices
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 300 - used - 200


# --- output caps ---------------------------------------------------------------------------------

def test_the_default_cap_is_injected_so_the_provider_honours_it():
    spec = policy("""
  rules:
  - name: all
    cost: {weighted: {input: 1, output: 4}}
    limits: [{amount: 100000, period: 1m}]
    defaultMaxTokens: 3
    injectMaxTokens: true
""")
    with Gateway(config(spec)) as gw:
        c = client(gw)
        capped = c.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "Tell me a long story"}])
        assert capped.usage.completion_tokens <= 3
        assert capped.choices[0].finish_reason == "length"
        # A client's own cap is left alone.
        own = c.chat.completions.create(model="mock-1", max_completion_tokens=50,
                                        messages=[{"role": "user", "content": "Tell me a long story"}])
        assert own.usage.completion_tokens > 3
        # Output weighs 4: the reservation is input + 4 x 3, settled with the real usage.
        wait_until(lambda: metric(gw, "sluice_ratelimit_tokens_total", outcome="settled") > 0)


# --- shadow mode ---------------------------------------------------------------------------------

def test_shadow_rules_decide_and_count_but_never_refuse():
    spec = policy("""
  rules:
  - name: tiny
    cost: {requests: {}}
    limits: [{amount: 2, period: 1h}]
    mode: Shadow
""")
    with Gateway(config(spec)) as gw:
        c = client(gw)
        for _ in range(5):
            raw = c.chat.completions.with_raw_response.create(model="mock-1", messages=HI)
            assert raw.parse().choices
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == "0"
        assert metric(gw, "sluice_ratelimit_decisions_total", rule="tiny", outcome="admitted") == 2
        assert metric(gw, "sluice_ratelimit_decisions_total", rule="tiny", outcome="shadow_limited") == 3


# --- budgets -------------------------------------------------------------------------------------

BUDGETS = policy("""
  rules:
  - name: generous
    bucketBy: [{header: x-tenant}]
    cost: {tokens: Total}
    limits: [{amount: 1000000, period: 1m}]
    defaultMaxTokens: 50
  budgets:
  - {name: daily-tokens, bucketBy: [{header: x-tenant}], tokens: 400, period: Day}
  - {name: monthly-usd, bucketBy: [{header: x-tenant}], usd: 0.001, period: Month}
""")

PRICES = """
apiVersion: sluice.dev/v1alpha1
kind: AIPolicy
metadata: {name: prices, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  prices:
  - {model: mock-1, input: 1, output: 2}
  - {model: mock-pricey, input: 2, output: 4}
"""


def budgets(gw: Gateway, tenant: str) -> dict:
    status, body = gw.admin_call("GET", f"/budgets?header.x-tenant={tenant}", None)
    assert status == 200
    return {b["budget"]: b for b in body["budgets"]}


def test_budgets_refuse_when_spent_and_show_on_the_admin_server():
    with Gateway(config(BUDGETS, PRICES)) as gw:
        c = client(gw, default_headers={"x-tenant": "acme"})
        spent = 0
        refused = None
        for _ in range(40):
            try:
                r = c.chat.completions.create(model="mock-1", messages=HI, max_tokens=20)
                spent += r.usage.total_tokens
                wait_until(lambda: budgets(gw, "acme")["daily-tokens"]["spent"] == spent)
            except openai.RateLimitError as e:
                refused = e
                break
        assert refused is not None, "the daily token budget never ran out"
        assert refused.code == "insufficient_quota"
        assert "daily-tokens" in refused.message and "resets at" in refused.message
        assert refused.response.headers["x-should-retry"] == "false"
        assert int(refused.response.headers["retry-after"]) <= 86400
        # Spend is exact (settled from usage), never above the budget, and shown per tenant.
        b = budgets(gw, "acme")
        assert b["daily-tokens"]["spent"] == spent <= 400
        assert b["daily-tokens"]["remaining"] == 400 - spent
        assert b["daily-tokens"]["unit"] == "tokens" and b["daily-tokens"]["period"] == "day"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", b["daily-tokens"]["window"])
        assert budgets(gw, "other")["daily-tokens"]["spent"] == 0
        # Money: priced at $1/M input and $2/M output.
        usd = b["monthly-usd"]
        assert usd["unit"] == "usd" and usd["limit"] == 0.001
        assert 0 < usd["spent"] <= 0.001
        assert metric(gw, "sluice_ratelimit_decisions_total", rule="daily-tokens", outcome="limited") == 1


def test_a_money_budget_refuses_in_the_anthropic_dialect():
    with Gateway(config(BUDGETS, PRICES)) as gw:
        c = anthropic.Anthropic(base_url=gw.origin, api_key="unused", max_retries=0,
                                default_headers={"x-tenant": "rich"})
        # $0.001 at $4/M output: 250 output tokens; one request capped at 300 can never fit.
        with pytest.raises(anthropic.RateLimitError) as err:
            c.messages.create(model="mock-pricey", max_tokens=300, messages=HI)
        assert err.value.body["error"]["type"] == "rate_limit_error"
        assert "monthly-usd" in err.value.body["error"]["message"]
        assert budgets(gw, "rich")["monthly-usd"]["spent"] == 0


# --- streams -------------------------------------------------------------------------------------

def test_64_streaming_clients_never_exceed_the_limit_plus_one_cap():
    limit, cap = 3000, 40
    spec = policy(f"""
  rules:
  - name: shared
    cost: {{tokens: Total}}
    limits: [{{amount: {limit}, period: 1m}}]
""")
    with Gateway(config(spec)) as gw:
        c = client(gw, timeout=30)
        used: list[int] = []
        statuses: list[int] = []
        lock = threading.Lock()
        start = time.monotonic()

        def run():
            for _ in range(6):
                try:
                    stream = c.chat.completions.create(
                        model="mock-1", messages=[{"role": "user", "content": "Count to twenty please"}],
                        max_tokens=cap, stream=True, stream_options={"include_usage": True})
                    total = None
                    for chunk in stream:
                        if chunk.usage is not None:
                            total = chunk.usage.total_tokens
                    assert total is not None
                    with lock:
                        used.append(total)
                        statuses.append(200)
                except openai.RateLimitError:
                    with lock:
                        statuses.append(429)

        threads = [threading.Thread(target=run) for _ in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        assert len(statuses) == 64 * 6
        assert statuses.count(429) > 0, "the limit never engaged"
        # The bucket holds `limit` and refills limit/60 per second; reservations settle to usage.
        bound = limit + limit * elapsed / 60 + cap
        print(f"64 streaming clients: {sum(used)} tokens in {elapsed:.2f}s, bound {bound:.0f}, "
              f"{statuses.count(200)} streams, {statuses.count(429)} refused")
        assert sum(used) <= bound, (sum(used), bound)
        assert sum(used) >= limit * 0.5


def test_a_stream_cut_by_the_client_settles_and_keeps_its_reservation():
    spec = policy("""
  rules:
  - name: cut
    cost: {tokens: Output}
    limits: [{amount: 10000, period: 1h}]
""")
    slow = """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: mock, namespace: default}
spec:
  provider:
    type: Mock
    mock: {chunkInterval: 200ms}
"""
    cfg = "\n---\n".join([GATEWAY, slow, MOCK.split("---", 1)[1], spec])
    with Gateway(cfg) as gw:
        with httpx.stream("POST", f"{gw.openai_base_url}/chat/completions", timeout=10,
                          json={"model": "mock-1", "messages": HI, "max_tokens": 500, "stream": True}) as r:
            assert r.status_code == 200
            assert r.headers["x-ratelimit-remaining-tokens"] == str(10000 - 500)
            for line in r.iter_lines():
                if line.startswith("data: "):
                    break  # the client leaves after the first event
        # Settled (not leaked), and the whole cap stays charged: the provider may have generated it.
        wait_until(lambda: metric(gw, "sluice_ratelimit_tokens_total", outcome="settled") == 500)
        assert metric(gw, "sluice_ratelimit_tokens_total", outcome="refunded") == 0
        r = httpx.post(f"{gw.openai_base_url}/chat/completions", timeout=10,
                       json={"model": "mock-1", "messages": HI, "max_tokens": 1})
        assert int(r.headers["x-ratelimit-remaining-tokens"]) <= 10000 - 500 - 1


# --- AI backends with their own quota ------------------------------------------------------------

def test_a_backend_out_of_quota_is_passed_over_for_the_next():
    backends = """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: primary, namespace: default}
spec:
  provider: {type: Mock}
  priority: 0
---
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: overflow, namespace: default}
spec:
  provider: {type: Mock}
  priority: 1
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: llm, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs:
    - {group: sluice.dev, kind: AIBackend, name: primary}
    - {group: sluice.dev, kind: AIBackend, name: overflow}
"""
    quota = policy("""
  rules:
  - name: provider-rpm
    cost: {requests: {}}
    limits: [{amount: 3, period: 1h}]
""", target="{group: sluice.dev, kind: AIBackend, name: primary}")
    with Gateway("\n---\n".join([GATEWAY, backends, quota])) as gw:
        c = client(gw)
        for _ in range(6):
            assert c.chat.completions.create(model="mock-1", messages=HI).choices
        served = [r["ai"]["backend"] for r in gw.access_log(wait_for=6)]
        assert served == ["default/primary"] * 3 + ["default/overflow"] * 3
