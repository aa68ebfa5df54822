"""End to end: gateway replicas sharing token limits through a real redis-server, and what they do
when Redis goes away (FailOpen and FailClosed) and comes back.
"""

from __future__ import annotations

import re
import threading
import time

import httpx2 as httpx  # the HTTP client the openai SDK is built on
import openai
import pytest

from gateway import GATEWAY, Gateway
from redis_server import RedisServer
from test_ratelimit import MOCK, metric, wait_until

HI = [{"role": "user", "content": "Hi"}]


def shared_policy(limit: int, failure_mode: str, cost: str = "{tokens: Total}", bucket: str = "[]") -> str:
    return f"""
apiVersion: sluice.dev/v1alpha1
kind: TokenRateLimitPolicy
metadata: {{name: shared, namespace: default}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]
  store: Redis
  failureMode: {failure_mode}
  rules:
  - name: global
    bucketBy: {bucket}
    cost: {cost}
    limits: [{{amount: {limit}, period: 1h}}]
    defaultMaxTokens: 16
    injectMaxTokens: true
"""


def replicas(redis: RedisServer, policy: str, n: int, prefix: str) -> list[Gateway]:
    cfg = "\n---\n".join([GATEWAY, MOCK, policy])
    args = ["--redis-url", redis.url, "--redis-prefix", prefix]
    return [Gateway(cfg, args=args) for _ in range(n)]


def post(gw: Gateway, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{gw.openai_base_url}/chat/completions", headers=headers or {}, timeout=10,
                      json={"model": "mock-1", "messages": HI})


def test_three_replicas_enforce_one_global_token_limit_within_5_percent():
    limit = 6000
    with RedisServer() as redis:
        gws = replicas(redis, shared_policy(limit, "FailClosed"), 3, "e2e-global")
        for g in gws:
            g.start()
        try:
            used = [0, 0, 0]
            refused = [0, 0, 0]
            lock = threading.Lock()

            def hammer(i: int, gw: Gateway):
                c = openai.OpenAI(base_url=gw.openai_base_url, api_key="unused", max_retries=0)
                misses = 0
                while misses < 3:  # until this client has been refused three times running
                    try:
                        r = c.chat.completions.create(model="mock-1", messages=HI)
                        misses = 0
                        with lock:
                            used[i] += r.usage.total_tokens
                    except openai.RateLimitError:
                        misses += 1
                        with lock:
                            refused[i] += 1

            threads = [threading.Thread(target=hammer, args=(i % 3, gws[i % 3])) for i in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            total = sum(used)
            print(f"3 replicas: {total} tokens admitted against a limit of {limit} ({used}, refused {refused})")
            # Every replica served a share, and together they stayed within 5% of the one limit.
            assert all(u > 0 for u in used), used
            assert all(r > 0 for r in refused), refused
            assert limit * 0.95 <= total <= limit * 1.05, (total, used)
            # One round trip to reserve and one to settle: one script call each per request (the
            # policy has one rule), settlements skipped when the estimate was exact.
            stats = redis.command("INFO", "commandstats").decode()
            calls = {m.group(1): int(m.group(2)) for m in re.finditer(r"cmdstat_(\w+):calls=(\d+)", stats)}
            requests = sum(
                metric(g, "sluice_ratelimit_decisions_total", rule="global") for g in gws)
            script_calls = calls.get("evalsha", 0) + calls.get("eval", 0)
            assert requests < script_calls <= 2 * requests, (script_calls, requests, calls)
            for g in gws:
                assert metric(g, "sluice_ratelimit_store_errors_total") == 0
                assert metric(g, "sluice_ratelimit_store_duration_seconds_count", op="reserve") > 0
        finally:
            for g in gws:
                g.stop()


def test_redis_outage_follows_each_failure_mode_and_recovery_is_automatic():
    with RedisServer() as redis:
        open_gws = replicas(redis, shared_policy(2, "FailOpen", cost="{requests: {}}",
                                                 bucket="[{header: x-user}]"), 2, "e2e-open")
        closed_gw = replicas(redis, shared_policy(100000, "FailClosed"), 1, "e2e-closed")[0]
        for g in [*open_gws, closed_gw]:
            g.start()
        a, b = open_gws
        try:
            # Shared: what user u1 spends on A counts on B.
            assert post(a, {"x-user": "u1"}).status_code == 200
            assert post(a, {"x-user": "u1"}).status_code == 200
            assert post(b, {"x-user": "u1"}).status_code == 429

            # Load runs throughout the outage; nothing may fail other than by the failure mode.
            stop = threading.Event()
            seen: list[int] = []

            def load():
                i = 0
                while not stop.is_set():
                    i += 1
                    seen.append(post(a, {"x-user": f"load-{i % 50}"}).status_code)

            loader = threading.Thread(target=load)
            loader.start()
            redis.kill()
            try:
                # FailOpen: this process's own limiter decides (a fresh bucket here), counted.
                wait_until(lambda: post(b, {"x-user": "u1"}).status_code == 200, timeout=3)
                assert metric(b, "sluice_ratelimit_store_fallbacks_total", outcome="fail_open") > 0
                # FailClosed: 503 in the client's dialect, quickly (the store rests after a failure).
                started = time.monotonic()
                r = post(closed_gw)
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "rate_limit_store_unavailable"
                assert time.monotonic() - started < 1.5
                assert metric(closed_gw, "sluice_ratelimit_store_fallbacks_total", outcome="fail_closed") > 0
            finally:
                redis.start()
            # Back: shared limits apply again within a second. Each probe spends a fresh user's
            # whole allowance on A; B refusing that user proves both use the shared bucket again
            # (from when that probe started at the latest).
            back = time.monotonic()
            probe = {"n": 0, "started": back}

            def shared_again() -> bool:
                probe["n"] += 1
                probe["started"] = time.monotonic()
                user = {"x-user": f"probe-{probe['n']}"}
                post(a, user)
                post(a, user)
                return post(b, user).status_code == 429

            wait_until(shared_again, timeout=3)
            took = probe["started"] - back
            print(f"shared limits enforced again {took * 1000:.0f} ms after Redis answered ({probe['n']} probes)")
            assert took < 1.0, took
            wait_until(lambda: post(closed_gw).status_code == 200, timeout=1.0)
            stop.set()
            loader.join()
            assert seen and set(seen) <= {200, 429}, set(seen)
            for g in [a, b, closed_gw]:
                assert g.proc.poll() is None  # nobody crashed
                assert g.admin("/readyz").strip() == "ready"
        finally:
            for g in [*open_gws, closed_gw]:
                g.stop()


def test_store_redis_without_a_redis_url_is_refused_at_start():
    cfg = "\n---\n".join([GATEWAY, MOCK, shared_policy(10, "FailOpen")])
    with pytest.raises(RuntimeError) as err:
        Gateway(cfg).start()
    assert "TokenRateLimitPolicy default/shared: spec.store is Redis" in str(err.value)
    assert "--redis-url" in str(err.value)
