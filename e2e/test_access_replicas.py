"""End to end: two gateway replicas sharing managed API keys through a real redis-server.

A key created on replica A works on replica B. While clients hammer B with that key, the key is revoked
on A; B must refuse it within one second, and never accept it again. Then Redis goes away: both replicas
keep serving with the keys they hold, and pick up changes again once Redis is back.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import httpx2 as httpx  # the HTTP client the openai SDK is built on
import openai
import pytest

from gateway import GATEWAY, Gateway
from redis_server import RedisServer

ADMIN_TOKEN = "admin-LEAKCHECK-replicas-2b7e01c9"
HI = [{"role": "user", "content": "Hi"}]

CONFIG = "\n---\n".join([
    GATEWAY,
    """
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
---
apiVersion: sluice.dev/v1alpha1
kind: AccessPolicy
metadata: {name: keys, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  apiKeys: {managed: true}
""",
])


@pytest.fixture(scope="module")
def redis():
    with RedisServer() as r:
        yield r


@pytest.fixture(scope="module")
def replicas(redis):
    args = ["--redis-url", redis.url, "--redis-prefix", "e2e-replicas"]
    env = {"SLUICE_ADMIN_TOKEN": ADMIN_TOKEN}
    with Gateway(CONFIG, env=env, args=args) as a, Gateway(CONFIG, env=env, args=args) as b:
        yield a, b


def status_of(gw: Gateway, key: str) -> int:
    r = httpx.post(f"{gw.openai_base_url}/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"model": "mock-1", "messages": HI}, timeout=10)
    return r.status_code


def wait_until(predicate, timeout: float) -> float:
    """Seconds until ``predicate()`` held (polling), or raises."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def test_a_key_created_on_one_replica_works_on_the_other(replicas):
    a, b = replicas
    status, created = a.admin_call("POST", "/keys", ADMIN_TOKEN, {"id": "shared", "tenant": "t"})
    assert status == 201, created
    key = created["key"]
    assert status_of(a, key) == 200
    # B learns about it from Redis on its next poll (250 ms by default).
    wait_until(lambda: status_of(b, key) == 200, timeout=2)
    c = openai.OpenAI(base_url=b.openai_base_url, api_key=key, max_retries=0)
    assert c.chat.completions.create(model="mock-1", messages=HI).choices


def test_revocation_under_load_takes_effect_on_every_replica_within_a_second(replicas):
    a, b = replicas
    status, created = a.admin_call("POST", "/keys", ADMIN_TOKEN, {"id": "revoke-me"})
    assert status == 201
    key = created["key"]
    wait_until(lambda: status_of(b, key) == 200, timeout=2)

    results: list[tuple[float, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def hammer():
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                r = http.post(f"{b.openai_base_url}/chat/completions", headers={"Authorization": f"Bearer {key}"},
                              json={"model": "mock-1", "messages": HI})
                with lock:
                    results.append((time.monotonic(), r.status_code))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: len(results) > 50, timeout=10)  # load is running
    revoked_at = time.monotonic()
    status, _ = a.admin_call("DELETE", "/keys/revoke-me", ADMIN_TOKEN)
    assert status == 200
    wait_until(lambda: any(t > revoked_at and s == 401 for t, s in results), timeout=2)
    after = time.monotonic()
    wait_until(lambda: len([1 for t, _ in results if t > after]) > 50, timeout=10)
    stop.set()
    for t in threads:
        t.join()

    first_refusal = min(t for t, s in results if t > revoked_at and s == 401)
    assert first_refusal - revoked_at < 1.0
    # Once refused, refused for good: no request that started after the first refusal succeeded.
    late = [s for t, s in results if t > first_refusal + 0.05]
    assert late and all(s == 401 for s in late), sorted(set(late))
    assert {s for _, s in results} <= {200, 401}


def test_replicas_keep_their_keys_while_redis_is_down_and_resync_after(replicas, redis):
    a, b = replicas
    status, created = a.admin_call("POST", "/keys", ADMIN_TOKEN, {"id": "survivor"})
    assert status == 201
    key = created["key"]
    wait_until(lambda: status_of(b, key) == 200, timeout=2)

    port = redis.port
    redis.proc.terminate()
    redis.proc.wait(timeout=10)
    # Serving goes on with the keys in hand; management reports the outage.
    assert status_of(b, key) == 200
    status, body = a.admin_call("POST", "/keys", ADMIN_TOKEN, {"id": "during-outage"})
    assert status == 503 and "unavailable" in body["error"]

    # Redis back on the same port (empty: no persistence); replicas reconnect on their own.
    redis.proc = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", redis.dir.name],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(redis.ping, timeout=10)
    wait_until(lambda: a.admin_call("GET", "/keys", ADMIN_TOKEN)[0] == 200, timeout=5)
    status, created = a.admin_call("POST", "/keys", ADMIN_TOKEN, {"id": "after-outage"})
    assert status == 201, created
    wait_until(lambda: status_of(b, created["key"]) == 200, timeout=3)
    # The restarted Redis lost the old keys: replicas follow the store, so the old key is gone too.
    wait_until(lambda: status_of(b, key) == 401, timeout=3)


def test_no_key_or_token_in_replica_output(replicas):
    a, b = replicas
    for gw in (a, b):
        text = gw.output() + gw.access_log_path.read_text() + gw.metrics()
        assert ADMIN_TOKEN not in text
        assert "sk-sluice-" not in text
