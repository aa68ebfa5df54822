"""End to end: credentials never leak.

The module drives one gateway once with a representative mix of traffic (answers, streams, a provider that
refuses the gateway's key, 429s, broken streams, bad requests, pass-through of the client's own key), every
provider credential and client key a distinctive string. The tests then look for those strings everywhere
the gateway writes or answers: its own output (every log line, at debug level), the access log, the admin
server's ``/metrics``, ``/config`` and ``/config/status``, and every response the clients received; and at
what the providers received: the client's key only where ``passthroughClientAuth: true`` says so.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import anthropic
import openai
import pytest

from gateway import GATEWAY, Gateway, backend_for
from sims import AnthropicSim, OpenAISim

# Provider credentials the gateway holds.
OPENAI_KEY = "sk-LEAKCHECK-openai-secret-5c1b7e"
ANTHROPIC_KEY = "sk-ant-LEAKCHECK-anthropic-secret-93d2"
ENV_KEY = "LEAKCHECK-env-secret-compat-aa41"
WRONG_KEY = "sk-LEAKCHECK-wrong-secret-0f6d"
# Keys the clients send.
OPENAI_CLIENT_KEY = "client-LEAKCHECK-openai-sdk-71e0"
ANTHROPIC_CLIENT_KEY = "client-LEAKCHECK-anthropic-sdk-3b9f"
EXTRA_CLIENT_KEY = "client-LEAKCHECK-extra-header-c4d8"
# Client keys forwarded by passthroughClientAuth backends (the simulators expect them).
PASS_OPENAI_KEY = "client-LEAKCHECK-passthrough-openai-8e27"
PASS_ANTHROPIC_KEY = "client-LEAKCHECK-passthrough-anthropic-d153"

GATEWAY_SECRETS = [OPENAI_KEY, ANTHROPIC_KEY, ENV_KEY, WRONG_KEY]
CLIENT_SECRETS = [OPENAI_CLIENT_KEY, ANTHROPIC_CLIENT_KEY, EXTRA_CLIENT_KEY, PASS_OPENAI_KEY, PASS_ANTHROPIC_KEY]
ALL_SECRETS = GATEWAY_SECRETS + CLIENT_SECRETS
HI = [{"role": "user", "content": "Hi"}]


def config(osim, asim, compat, pass_openai, pass_anthropic) -> str:
    def backend(name, sim_backend, kind, cred, extra=""):
        return f"""
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {{name: {name}, namespace: default}}
spec:
  provider: {{type: {kind}}}
  backendRef: {{group: gateway.networking.k8s.io, kind: Backend, name: {sim_backend}}}
  credentials: {cred}{extra}
"""

    def rule(model_regex, name):
        return f"""
  - matches:
    - headers: [{{name: X-Gateway-Model-Name, type: RegularExpression, value: "{model_regex}"}}]
    backendRefs: [{{group: sluice.dev, kind: AIBackend, name: {name}}}]"""

    return "\n---\n".join(
        [
            GATEWAY,
            backend_for("openai-sim", osim.port),
            backend_for("anthropic-sim", asim.port),
            backend_for("compat-sim", compat.port),
            backend_for("pass-openai-sim", pass_openai.port),
            backend_for("pass-anthropic-sim", pass_anthropic.port),
            f"""
apiVersion: v1
kind: Secret
metadata: {{name: provider-keys, namespace: default}}
stringData: {{openai: {OPENAI_KEY}, anthropic: {ANTHROPIC_KEY}, wrong: {WRONG_KEY}}}
""",
            """
apiVersion: sluice.dev/v1alpha1
kind: AIPolicy
metadata: {name: gateway-ai, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  maxRequestBytes: 4096
""",
            backend("openai", "openai-sim", "OpenAI", "{secretRef: {name: provider-keys, key: openai}}"),
            backend("wrong", "openai-sim", "OpenAI", "{secretRef: {name: provider-keys, key: wrong}}"),
            backend("anthropic", "anthropic-sim", "Anthropic", "{secretRef: {name: provider-keys, key: anthropic}}"),
            backend("compat", "compat-sim", "OpenAI", "{env: E2E_LEAK_ENV_KEY}"),
            backend(
                "pass-openai",
                "pass-openai-sim",
                "OpenAI",
                "{secretRef: {name: provider-keys, key: openai}}",
                "\n  passthroughClientAuth: true",
            ),
            backend(
                "pass-anthropic",
                "pass-anthropic-sim",
                "Anthropic",
                "{secretRef: {name: provider-keys, key: anthropic}}",
                "\n  passthroughClientAuth: true",
            ),
            """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: models, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:"""
            + rule("gpt-.*", "openai")
            + rule("wrong-key-model", "wrong")
            + rule("claude-.*", "anthropic")
            + rule("compat-model", "compat")
            + rule("pass-gpt", "pass-openai")
            + rule("pass-claude", "pass-anthropic"),
        ]
    )


def raised(kind, fn, *args, **kw):
    """Calls ``fn`` expecting a ``kind`` exception; returns it."""
    with pytest.raises(kind) as err:
        fn(*args, **kw)
    return err.value


@pytest.fixture(scope="module")
def run():
    """Starts everything, sends the traffic, and returns what there is to inspect."""
    with (
        OpenAISim(api_key=OPENAI_KEY) as osim,
        AnthropicSim(api_key=ANTHROPIC_KEY) as asim,
        OpenAISim(api_key=ENV_KEY, provider_name="compat") as compat,
        OpenAISim(api_key=PASS_OPENAI_KEY, provider_name="pass") as pass_openai,
        AnthropicSim(api_key=PASS_ANTHROPIC_KEY, provider_name="pass") as pass_anthropic,
    ):
        sims = dict(osim=osim, asim=asim, compat=compat, pass_openai=pass_openai, pass_anthropic=pass_anthropic)
        cfg = config(osim, asim, compat, pass_openai, pass_anthropic)
        with Gateway(cfg, env={"E2E_LEAK_ENV_KEY": ENV_KEY}) as gw:
            oai = openai.OpenAI(base_url=gw.openai_base_url, api_key=OPENAI_CLIENT_KEY, max_retries=0)
            claude = anthropic.Anthropic(base_url=gw.origin, api_key=ANTHROPIC_CLIENT_KEY, max_retries=0)
            extra = {"api-key": EXTRA_CLIENT_KEY, "x-goog-api-key": EXTRA_CLIENT_KEY, "x-api-key": EXTRA_CLIENT_KEY}
            responses = []  # (status, headers, body) of the answers the clients received

            def keep(resp, body=None):
                responses.append((resp.status_code, dict(resp.headers), resp.text if body is None else body))

            errors = []  # the SDK exceptions raised

            # Answers, whole and streamed, same API and translated.
            r = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI, extra_headers=extra)
            keep(r.http_response)
            stream = oai.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
            keep(stream.response, "".join(c.model_dump_json() for c in stream))
            r = claude.messages.with_raw_response.create(model="claude-e2e", max_tokens=50, messages=HI)
            keep(r.http_response)
            with claude.messages.stream(model="claude-e2e", max_tokens=50, messages=HI) as s:
                keep(s.response, "".join(e.model_dump_json() for e in s))
            r = claude.messages.with_raw_response.create(model="gpt-4o-mini", max_tokens=50, messages=HI)
            keep(r.http_response)
            r = oai.chat.completions.with_raw_response.create(model="claude-e2e", messages=HI)
            keep(r.http_response)
            r = oai.chat.completions.with_raw_response.create(model="compat-model", messages=HI)
            keep(r.http_response)

            # The provider refuses the gateway's key (its 401 message quotes the key, masked).
            errors.append(raised(openai.InternalServerError, oai.chat.completions.create, model="wrong-key-model", messages=HI))
            # 429s, whole and before a stream.
            osim.fail(429, retry_after=3)
            errors.append(raised(openai.RateLimitError, oai.chat.completions.create, model="gpt-4o-mini", messages=HI))
            asim.fail(429, retry_after=3)
            errors.append(
                raised(anthropic.RateLimitError, claude.messages.create, model="claude-e2e", max_tokens=50, messages=HI)
            )
            # Streams broken midway.
            osim.cut(after_events=3)
            err = raised(openai.APIError, lambda: list(oai.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)))
            errors.append(err)
            asim.stream_error(after_events=3)

            def broken_claude_stream():
                with claude.messages.stream(model="claude-e2e", max_tokens=50, messages=HI) as s:
                    s.get_final_message()

            errors.append(raised(anthropic.APIStatusError, broken_claude_stream))
            # Bad requests: invalid JSON, no model, unknown model, too large, provider 400.
            errors.append(
                raised(
                    openai.BadRequestError,
                    oai.post,
                    "/chat/completions",
                    cast_to=object,
                    content=b"{oops",
                    options={"headers": {"Content-Type": "application/json"}},
                )
            )
            errors.append(raised(openai.BadRequestError, oai.chat.completions.create, model="", messages=HI))
            errors.append(raised(openai.NotFoundError, oai.chat.completions.create, model="nope", messages=HI))
            errors.append(
                raised(
                    anthropic.ContentTooLargeError,
                    claude.messages.create,
                    model="claude-e2e",
                    max_tokens=5,
                    messages=[{"role": "user", "content": "x" * 5000}],
                )
            )
            osim.fail(400, message="Invalid value for 'temperature'.")
            errors.append(raised(openai.BadRequestError, oai.chat.completions.create, model="gpt-4o-mini", messages=HI))

            # Pass-through of the client's own key: right key answers, wrong key is the client's 401.
            pass_oai = openai.OpenAI(base_url=gw.openai_base_url, api_key=PASS_OPENAI_KEY, max_retries=0)
            pass_claude = anthropic.Anthropic(base_url=gw.origin, api_key=PASS_ANTHROPIC_KEY, max_retries=0)
            r = pass_oai.chat.completions.with_raw_response.create(model="pass-gpt", messages=HI)
            keep(r.http_response)
            r = pass_claude.messages.with_raw_response.create(model="pass-claude", max_tokens=50, messages=HI)
            keep(r.http_response)
            with pass_claude.messages.stream(model="pass-claude", max_tokens=50, messages=HI) as s:
                keep(s.response, "".join(e.model_dump_json() for e in s))
            passthrough_401 = raised(openai.AuthenticationError, oai.chat.completions.create, model="pass-gpt", messages=HI)
            errors.append(passthrough_401)

            n_requests = 21
            gw.access_log(wait_for=n_requests)
            admin = {path: gw.admin(path) for path in ("/metrics", "/config", "/config/status")}
            yield dict(
                gw=gw,
                sims=sims,
                responses=responses,
                errors=errors,
                admin=admin,
                passthrough_401=passthrough_401,
                n_requests=n_requests,
            )


def leaked(text: str, secrets=ALL_SECRETS) -> list[str]:
    return [s for s in secrets if s in text]


def test_traffic_ran(run):
    """The mix really happened: every exchange is in the access log with the status expected."""
    records = run["gw"].access_log(wait_for=run["n_requests"])
    assert len(records) == run["n_requests"]
    statuses = [r["status"] for r in records]
    by_status = {s: statuses.count(s) for s in set(statuses)}
    assert by_status == {200: 12, 400: 3, 401: 1, 404: 1, 413: 1, 429: 2, 502: 1}
    assert run["passthrough_401"].status_code == 401


def test_no_secret_in_gateway_output(run):
    output = run["gw"].output()
    assert '"level":"DEBUG"' in output  # debug lines were captured
    assert leaked(output) == []


def test_no_secret_in_access_log(run):
    text = run["gw"].access_log_path.read_text()
    assert text.count("\n") >= run["n_requests"]
    assert leaked(text) == []


@pytest.mark.parametrize("path", ["/metrics", "/config", "/config/status"])
def test_no_secret_on_admin_server(run, path):
    text = run["admin"][path]
    assert text.strip()
    assert leaked(text) == []


def test_config_lists_secret_key_names_only(run):
    objects = json.loads(run["admin"]["/config"])["objects"]
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "provider-keys"
    assert secret["keys"] == ["anthropic", "openai", "wrong"]
    assert "stringData" not in secret and "data" not in secret


def test_no_secret_in_anything_clients_received(run):
    assert len(run["responses"]) == 10
    for status, headers, body in run["responses"]:
        assert status == 200 and body
        assert leaked(body) == [] and leaked(json.dumps(headers)) == []
    assert len(run["errors"]) == 11
    for err in run["errors"]:
        # Whole error answers carry their body; errors raised from inside a stream carry the event.
        response = getattr(err, "response", None)
        headers = json.dumps(dict(response.headers)) if response is not None else ""
        if response is not None and response.status_code != 200:
            body = response.text  # a whole error answer
        else:
            body = ""  # raised from an error event inside a stream: that event is err.body
            assert err.body
        assert leaked(f"{err} {err.body} {body} {headers}") == [], err


def test_client_keys_reach_providers_only_with_passthrough(run):
    sims = run["sims"]
    for name in ("osim", "asim", "compat"):
        for rec in sims[name].requests:
            seen = json.dumps(rec.headers) + rec.body.decode(errors="replace") + rec.raw_path
            assert leaked(seen, CLIENT_SECRETS) == [], (name, rec.path)
    # The gateway's own keys went where they belong, and nowhere else.
    assert {r.header("authorization") for r in sims["osim"].requests} == {f"Bearer {OPENAI_KEY}", f"Bearer {WRONG_KEY}"}
    assert {r.header("x-api-key") for r in sims["asim"].requests} == {ANTHROPIC_KEY}
    assert {r.header("authorization") for r in sims["compat"].requests} == {f"Bearer {ENV_KEY}"}

    # passthroughClientAuth: the client's own key, and not the gateway's.
    pass_openai = sims["pass_openai"].requests
    assert {r.header("authorization") for r in pass_openai} == {f"Bearer {PASS_OPENAI_KEY}", f"Bearer {OPENAI_CLIENT_KEY}"}
    pass_anthropic = sims["pass_anthropic"].requests
    assert pass_anthropic and all(
        PASS_ANTHROPIC_KEY in (r.header("x-api-key") or "") + (r.header("authorization") or "") for r in pass_anthropic
    )
    for rec in pass_openai + pass_anthropic:
        assert leaked(json.dumps(rec.headers), GATEWAY_SECRETS) == []


def test_passthrough_refusal_is_the_clients_401(run):
    err = run["passthrough_401"]
    assert err.status_code == 401 and err.code == "provider_error"
    # The provider's message (which masks the key itself) is passed on; the key is not in it.
    assert err.body["message"].startswith("Incorrect API key provided")
    assert OPENAI_CLIENT_KEY not in err.body["message"]
