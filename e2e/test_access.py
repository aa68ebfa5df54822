"""End to end: access control with the official SDKs.

One gateway guards a mock backend and an OpenAI simulator with an ``AccessPolicy``: API keys from a
Secret (per-model limits, an expired one), keys managed at run time through the admin API, JWTs verified
against a JWKS served over HTTP (with key rotation), allow/deny rules over tenant, model, operation, group
and a CEL condition, and identity headers for the upstream. Every credential is a distinctive string; the
last test looks for all of them in everything the gateway wrote.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anthropic
import httpx2 as httpx  # the HTTP client the openai SDK is built on
import jwt as pyjwt
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway import GATEWAY, Gateway, backend_for
from sims import OpenAISim

ADMIN_TOKEN = "admin-LEAKCHECK-token-6f2a9c31d7"
PROVIDER_KEY = "sk-LEAKCHECK-provider-key-19ce"
ALICE = "sk-alice-LEAKCHECK-0a4d1e7f9b23c5"
BOB = "sk-bob-LEAKCHECK-77e1c0d94a5b2f"
OLD = "sk-old-LEAKCHECK-5d5e3a1b0c9f88"
ISSUER = "https://idp.e2e.test"
HI = [{"role": "user", "content": "Hi"}]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Idp:
    """An identity provider's signing keys and a JWKS endpoint that counts its fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, object] = {}
        self.published: list[str] = []
        self.fetches = 0
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                idp.fetches += 1
                body = json.dumps({"keys": [idp.jwk(k) for k in idp.published]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def add_rsa(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.append(kid)

    def add_ec(self, kid: str) -> None:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        self.published.append(kid)

    def jwk(self, kid: str) -> dict:
        key = self.keys[kid].public_key()
        if isinstance(key, rsa.RSAPublicKey):
            n = key.public_numbers()
            return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": int_b64(n.n), "e": int_b64(n.e)}
        n = key.public_numbers()
        return {"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256",
                "x": b64url(n.x.to_bytes(32, "big")), "y": b64url(n.y.to_bytes(32, "big"))}

    def token(self, kid: str, **claims) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": "sluice", "sub": "user-1", "iat": now, "exp": now + 300, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        alg = "RS256" if isinstance(self.keys[kid], rsa.RSAPrivateKey) else "ES256"
        return pyjwt.encode(body, self.keys[kid], algorithm=alg, headers={"kid": kid})

    def public_pem(self, kid: str) -> bytes:
        return self.keys[kid].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def unsigned(header: dict, claims: dict) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def config(sim: OpenAISim, idp: Idp) -> str:
    return "\n---\n".join([
        GATEWAY,
        backend_for("openai-sim", sim.port),
        f"""
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: default}}
stringData: {{provider: {PROVIDER_KEY}, alice: {ALICE}, bob: {BOB}, old: {OLD}}}
""",
        """
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: mock, namespace: default}
spec:
  provider: {type: Mock}
  models: ["mock-*"]
---
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {name: openai, namespace: default}
spec:
  provider: {type: OpenAI}
  backendRef: {group: gateway.networking.k8s.io, kind: Backend, name: openai-sim}
  credentials: {secretRef: {name: keys, key: provider}}
  models: ["gpt-*", "text-embedding-*"]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: llm, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs:
    - {group: sluice.dev, kind: AIBackend, name: mock}
    - {group: sluice.dev, kind: AIBackend, name: openai}
""",
        f"""
apiVersion: sluice.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: inference, namespace: default}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]
  apiKeys:
    managed: true
    keys:
    - {{id: alice, tenant: team-a, user: alice, labels: {{env: prod}}, secretRef: {{name: keys, key: alice}}}}
    - {{id: bob, tenant: team-b, secretRef: {{name: keys, key: bob}}, models: ["mock-*", "gpt-4o-mini", "text-embedding-*"]}}
    - {{id: old, tenant: team-a, secretRef: {{name: keys, key: old}}, expiresAt: "2024-01-01T00:00:00Z"}}
  jwt:
    providers:
    - name: idp
      issuer: {ISSUER}
      audiences: [sluice]
      algorithms: [RS256, ES256]
      jwks: {{url: "{idp.url}"}}
      claims: {{tenant: org, groups: groups}}
  rules:
  - {{name: no-embeddings-for-team-b, action: Deny, tenants: [team-b], operations: [embeddings]}}
  - {{name: team-a, action: Allow, tenants: [team-a]}}
  - {{name: team-b, action: Allow, tenants: [team-b]}}
  - {{name: admins, action: Allow, methods: [JWT], groups: [ai-admins]}}
  - name: evaluators
    action: Allow
    when: "identity.tenant == 'team-c' && request.headers['x-purpose'] == 'eval' && model.startsWith('mock-')"
  identityHeaders: {{tenant: x-tenant-id, user: x-user-id}}
""",
    ])


@pytest.fixture(scope="module")
def idp():
    server = Idp()
    server.add_rsa("rsa-1")
    server.add_ec("ec-1")
    yield server
    server.close()


@pytest.fixture(scope="module")
def sim():
    with OpenAISim(api_key=PROVIDER_KEY) as s:
        yield s


@pytest.fixture(scope="module")
def gw(sim, idp, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    token_file = state / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    with Gateway(config(sim, idp), args=["--admin-token-file", str(token_file), "--state-dir", str(state)]) as g:
        yield g


# Every credential a test used, for the leak scan at the end.
USED: set[str] = {ADMIN_TOKEN, PROVIDER_KEY, ALICE, BOB, OLD}


def client(gw: Gateway, key: str, **kw) -> openai.OpenAI:
    USED.add(key)
    return openai.OpenAI(base_url=gw.openai_base_url, api_key=key, max_retries=0, **kw)


def claude(gw: Gateway, key: str) -> anthropic.Anthropic:
    USED.add(key)
    return anthropic.Anthropic(base_url=gw.origin, api_key=key, max_retries=0)


def raw(gw: Gateway, headers: dict, body: dict | None = None) -> httpx.Response:
    for v in headers.values():
        USED.add(v)
    return httpx.post(f"{gw.openai_base_url}/chat/completions", headers=headers,
                      json=body or {"model": "mock-1", "messages": HI}, timeout=10)


def test_config_keys_work_with_both_sdks(gw):
    r = client(gw, ALICE).chat.completions.create(model="mock-1", messages=HI)
    assert r.choices[0].message.content
    m = claude(gw, ALICE).messages.create(model="mock-1", max_tokens=20, messages=HI)
    assert m.content[0].text


def test_missing_malformed_and_invalid_credentials_are_401_in_the_clients_dialect(gw):
    r = raw(gw, {})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["type"] == "authentication_error"
    assert r.json()["error"]["code"] == "missing_api_key"
    assert raw(gw, {"Authorization": "Basic YWxpY2U6cHc="}).status_code == 401
    assert raw(gw, {"Authorization": f"Bearer {ALICE}", "x-api-key": BOB}).status_code == 401
    with pytest.raises(openai.AuthenticationError) as e:
        client(gw, "sk-unknown-LEAKCHECK-123456789").chat.completions.create(model="mock-1", messages=HI)
    assert e.value.status_code == 401 and e.value.body["code"] == "invalid_api_key"
    with pytest.raises(anthropic.AuthenticationError) as e:
        claude(gw, "sk-unknown-LEAKCHECK-anthropic-9876").messages.create(model="mock-1", max_tokens=5, messages=HI)
    assert e.value.body["error"]["type"] == "authentication_error"


def test_a_key_in_the_query_string_is_never_accepted(gw):
    r = httpx.post(f"{gw.openai_base_url}/chat/completions?api_key={ALICE}", json={"model": "mock-1", "messages": HI})
    assert r.status_code == 401


def test_an_expired_key_is_refused(gw):
    with pytest.raises(openai.AuthenticationError) as e:
        client(gw, OLD).chat.completions.create(model="mock-1", messages=HI)
    assert "expired" in e.value.message


def test_per_model_and_per_operation_rules(gw):
    bob = client(gw, BOB)
    assert bob.chat.completions.create(model="mock-1", messages=HI).choices
    assert bob.chat.completions.create(model="gpt-4o-mini", messages=HI).choices
    with pytest.raises(openai.PermissionDeniedError) as e:
        bob.chat.completions.create(model="gpt-4o", messages=HI)
    assert e.value.status_code == 403 and e.value.body["type"] == "permission_error"
    with pytest.raises(openai.PermissionDeniedError) as e:
        bob.embeddings.create(model="text-embedding-3-small", input="x")
    assert "no-embeddings-for-team-b" in e.value.message
    assert client(gw, ALICE).embeddings.create(model="text-embedding-3-small", input="x").data
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        claude(gw, BOB).messages.create(model="gpt-4o", max_tokens=5, messages=HI)
    assert e.value.body["error"]["type"] == "permission_error"


def test_the_provider_sees_the_gateways_credential_and_identity_headers_only(gw, sim):
    sim.reset()
    c = client(gw, ALICE, default_headers={"x-tenant-id": "forged", "x-user-id": "forged"})
    c.chat.completions.create(model="gpt-4o-mini", messages=HI)
    (req,) = [r for r in sim.requests if r.path.endswith("/chat/completions")]
    assert req.header("authorization") == f"Bearer {PROVIDER_KEY}"
    assert req.header("x-api-key") is None
    assert req.header("x-tenant-id") == "team-a"
    assert req.header("x-user-id") == "alice"


def test_jwt_rs256_and_es256_with_groups(gw, idp):
    for kid in ("rsa-1", "ec-1"):
        token = idp.token(kid, groups=["ai-admins"])
        assert client(gw, token).chat.completions.create(model="mock-1", messages=HI).choices
    # Authenticated but no rule allows it: 403, not 401.
    with pytest.raises(openai.PermissionDeniedError):
        client(gw, idp.token("rsa-1", groups=["staff"])).chat.completions.create(model="mock-1", messages=HI)


@pytest.mark.parametrize(
    "case",
    ["expired", "not_yet_valid", "wrong_audience", "wrong_issuer", "tampered", "alg_none", "hs256_with_public_key",
     "no_expiry"],
)
def test_bad_tokens_are_401(gw, idp, case):
    now = int(time.time())
    good = dict(groups=["ai-admins"])
    if case == "expired":
        token = idp.token("rsa-1", exp=now - 600, **good)
    elif case == "not_yet_valid":
        token = idp.token("rsa-1", nbf=now + 600, **good)
    elif case == "wrong_audience":
        token = idp.token("rsa-1", aud="someone-else", **good)
    elif case == "wrong_issuer":
        token = idp.token("rsa-1", iss="https://evil.test", **good)
    elif case == "no_expiry":
        token = idp.token("rsa-1", exp=None, **good)
    elif case == "tampered":
        h, p, s = idp.token("rsa-1", groups=["staff"]).split(".")
        claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        claims["groups"] = ["ai-admins"]
        token = f"{h}.{b64url(json.dumps(claims).encode())}.{s}"
    elif case == "alg_none":
        token = unsigned({"alg": "none", "kid": "rsa-1"},
                         {"iss": ISSUER, "aud": "sluice", "exp": now + 300, "groups": ["ai-admins"]}) + "."
    else:  # the RSA public key used as an HMAC secret (the classic key-confusion attack)
        signing_input = unsigned({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"},
                                 {"iss": ISSUER, "aud": "sluice", "exp": now + 300, "groups": ["ai-admins"]})
        sig = hmac.new(idp.public_pem("rsa-1"), signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{b64url(sig)}"
    with pytest.raises(openai.AuthenticationError) as e:
        client(gw, token).chat.completions.create(model="mock-1", messages=HI)
    assert e.value.status_code == 401


def test_jwks_rotation_is_picked_up_on_the_first_token_with_the_new_key(gw, idp):
    before = idp.fetches
    idp.add_rsa("rsa-2")  # the provider rotates: the new key is published, tokens use it
    token = idp.token("rsa-2", groups=["ai-admins"])
    assert client(gw, token).chat.completions.create(model="mock-1", messages=HI).choices
    assert idp.fetches == before + 1
    # Unknown kids do not make the gateway hammer the provider: refetches are rate limited.
    for i in range(5):
        bogus = idp.token("rsa-2", groups=["ai-admins"])
        h, p, s = bogus.split(".")
        header = json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))
        header["kid"] = f"unknown-{i}"
        with pytest.raises(openai.AuthenticationError):
            client(gw, f"{b64url(json.dumps(header).encode())}.{p}.{s}").chat.completions.create(
                model="mock-1", messages=HI)
    assert idp.fetches <= before + 2


def test_cel_rule_over_identity_request_and_model(gw, idp):
    token = idp.token("ec-1", org="team-c")
    c = client(gw, token, default_headers={"x-purpose": "eval"})
    assert c.chat.completions.create(model="mock-1", messages=HI).choices
    with pytest.raises(openai.PermissionDeniedError):
        client(gw, token).chat.completions.create(model="mock-1", messages=HI)
    with pytest.raises(openai.PermissionDeniedError):
        c.chat.completions.create(model="gpt-4o-mini", messages=HI)


def test_managed_keys_create_rotate_revoke(gw):
    status, _ = gw.admin_call("GET", "/keys", None)
    assert status == 401
    status, _ = gw.admin_call("GET", "/keys", "not-the-admin-token-at-all")
    assert status == 401
    status, created = gw.admin_call("POST", "/keys", ADMIN_TOKEN,
                                    {"id": "ci", "tenant": "team-a", "labels": {"env": "ci"}})
    assert status == 201, created
    key = created["key"]
    assert key.startswith("sk-sluice-") and created["status"] == "active"
    assert client(gw, key).chat.completions.create(model="mock-1", messages=HI).choices
    status, listed = gw.admin_call("GET", "/keys", ADMIN_TOKEN)
    assert status == 200 and [k["id"] for k in listed] == ["ci"]
    assert "key" not in listed[0] and "digest" not in json.dumps(listed)
    status, _ = gw.admin_call("POST", "/keys", ADMIN_TOKEN, {"id": "ci"})
    assert status == 409

    status, rotated = gw.admin_call("POST", "/keys/ci/rotate", ADMIN_TOKEN)
    assert status == 200 and rotated["key"] != key
    with pytest.raises(openai.AuthenticationError):
        client(gw, key).chat.completions.create(model="mock-1", messages=HI)
    new_key = rotated["key"]
    assert client(gw, new_key).chat.completions.create(model="mock-1", messages=HI).choices

    status, revoked = gw.admin_call("DELETE", "/keys/ci", ADMIN_TOKEN)
    assert status == 200 and revoked["status"] == "revoked"
    with pytest.raises(openai.AuthenticationError):
        client(gw, new_key).chat.completions.create(model="mock-1", messages=HI)
    assert gw.admin_call("DELETE", "/keys/nope", ADMIN_TOKEN)[0] == 404
    USED.update({key, new_key})


def test_decisions_are_counted_and_logged_with_identity(gw):
    client(gw, ALICE).chat.completions.create(model="mock-1", messages=HI)
    metrics = gw.metrics()
    assert 'sluice_auth_decisions_total{policy="default/inference",outcome="allowed",reason="",method="APIKey"}' in metrics
    assert 'outcome="unauthenticated",reason="invalid_api_key"' in metrics
    assert 'outcome="forbidden",reason="forbidden"' in metrics
    records = gw.access_log(wait_for=1)
    mine = [r for r in records if r.get("identity", {}).get("key_id") == "alice"]
    assert mine and mine[-1]["identity"]["tenant"] == "team-a"
    refused = [r for r in records if r.get("reason") == "expired_api_key"]
    assert refused and refused[-1]["status"] == 401 and "identity" not in refused[-1]


def test_zz_no_credential_anywhere_the_gateway_writes(gw):
    """Runs last in this module: every key and token used above, searched for in every output."""
    places = {
        "output": gw.output(),
        "access log": gw.access_log_path.read_text(),
        "metrics": gw.metrics(),
        "config": gw.admin("/config"),
    }
    assert len(USED) > 20
    for secret in USED:
        for where, text in places.items():
            assert secret not in text, f"a credential leaked into the {where}"
            # Not even its signature or key part on its own.
            for part in secret.split(".")[1:]:
                if len(part) >= 16:
                    assert part not in text, f"part of a token leaked into the {where}"
