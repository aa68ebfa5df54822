"""Google generative AI simulator: Vertex AI, the Gemini API, and an OAuth2 token endpoint, on one server.

Follows the published references:

* Vertex AI ``generateContent`` / ``streamGenerateContent`` / ``countTokens``
  (https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest/v1/projects.locations.publishers.models):
  ``POST /{v1|v1beta1}/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:generateContent``
  (and ``:streamGenerateContent``, ``:countTokens``), authenticated by ``Authorization: Bearer <access token>``
  issued by this simulator's token endpoint (or listed in ``static_tokens``).
* Gemini API (https://ai.google.dev/api/generate-content): ``POST /{v1beta|v1}/models/{model}:generateContent``
  (and ``:streamGenerateContent``, ``:countTokens``) with the ``x-goog-api-key`` header (or ``?key=``).
* ``:streamGenerateContent?alt=sse``: server-sent events, one ``GenerateContentResponse`` JSON per ``data:`` line
  (events separated by CRLF CRLF as Google does); without ``alt=sse`` the chunks are one streamed JSON array.
  The last chunk carries ``finishReason`` and the full ``usageMetadata`` (the Gemini API also reports the
  prompt count on earlier chunks). A scripted in-stream error is ``data: {"error": {...}}``.
* Responses: ``candidates[].content`` (``role: "model"``, ``parts`` of ``text`` or ``functionCall``),
  ``finishReason`` ``STOP`` / ``MAX_TOKENS``, ``usageMetadata`` (``promptTokenCount``, ``candidatesTokenCount``,
  ``totalTokenCount``, ``promptTokensDetails``, ``candidatesTokensDetails``; ``cachedContentTokenCount`` and
  ``cacheTokensDetails`` when the request names ``cachedContent``, whose size is ``cached_content_tokens``;
  ``trafficType`` on Vertex), ``modelVersion``, ``responseId`` (and ``createTime`` on Vertex).
  Tools: ``tools[].functionDeclarations[]`` (``parameters`` or ``parametersJsonSchema``) and
  ``toolConfig.functionCallingConfig`` (``mode`` ``NONE``, ``allowedFunctionNames``); a tool result is a
  ``functionResponse`` part. Both camelCase and snake_case request fields are read (proto JSON mapping).
* Errors: ``{"error": {"code", "message", "status", "details"?}}`` (``INVALID_ARGUMENT``, ``UNAUTHENTICATED``,
  ``PERMISSION_DENIED``, ``NOT_FOUND``, ``RESOURCE_EXHAUSTED``, ``INTERNAL``, ``UNAVAILABLE``,
  ``DEADLINE_EXCEEDED``). A wrong Gemini API key is 400 ``API_KEY_INVALID``, a missing one 403, as the API does.
* OAuth2 JWT bearer grant (RFC 7523, https://developers.google.com/identity/protocols/oauth2/service-account):
  ``POST /token`` with form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>``. The
  RS256 assertion is verified with the registered service account's public key (by ``kid``, else by ``iss``):
  signature, ``iss`` = the account's ``client_email``, ``aud`` = the token URL (the simulator's ``token_url``, or
  Google's ``https://oauth2.googleapis.com/token`` which google-auth always sends), ``iat``/``exp`` (at most one
  hour apart, not expired), ``scope`` present. Answers ``{"access_token", "expires_in", "token_type": "Bearer"}``
  with ``token_lifetime`` seconds, or Google's ``{"error", "error_description"}`` (400). Vertex calls need a
  token whose scopes include ``cloud-platform`` (else 403 ``ACCESS_TOKEN_SCOPE_INSUFFICIENT``); expired tokens
  get 401 ``ACCESS_TOKEN_EXPIRED``. ``tokens_issued`` counts grants; ``expire_tokens()`` expires all.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import threading
import time
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .common import (
    BODY,
    RECORD,
    EventSender,
    Fault,
    Plan,
    Sim,
    compact_json,
    deterministic_id,
    plan_answer,
    prompt_tokens,
    word_chunks,
)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# Google's own token URLs, which Google accepts as ``aud`` whatever URL the assertion is posted to (google-auth
# always uses the first one); the simulator accepts them besides its own ``token_url``.
GOOGLE_TOKEN_AUDIENCES = ("https://oauth2.googleapis.com/token", "https://www.googleapis.com/oauth2/v4/token")

_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    429: ("RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later."),
    499: ("CANCELLED", "The operation was cancelled."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    501: ("UNIMPLEMENTED", "Operation is not implemented, or supported, or enabled."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}


# ----------------------------------------------------------------------------------------------------------
# Service accounts
# ----------------------------------------------------------------------------------------------------------


def make_service_account(token_uri: str, project_id: str = "sim-project", name: str = "sluice-sim") -> dict:
    """A throwaway service-account key (the JSON Google Cloud hands out), with a fresh RSA-2048 key pair."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    email = f"{name}@{project_id}.iam.gserviceaccount.com"
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(100000000000000000000 + secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email.replace('@', '%40')}",
        "universe_domain": "googleapis.com",
    }


def write_service_account(info: dict, directory: str | os.PathLike) -> str:
    """Writes ``info`` as ``<directory>/service-account.json`` (mode 0600) and returns the path."""
    path = os.path.join(os.fspath(directory), "service-account.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=2)
    return path


@functools.lru_cache(maxsize=64)
def _private_key(pem: str):
    # Loading a PEM RSA key checks it, which is slow: load each key once.
    return serialization.load_pem_private_key(pem.encode(), None)


def sign_assertion(
    info: dict, scope: str = CLOUD_PLATFORM, audience: str | None = None, lifetime: int = 3600, now: int | None = None
) -> str:
    """The RS256 JWT a client sends in the JWT bearer grant for service account ``info``."""
    now = int(time.time()) if now is None else now
    claims = {
        "iss": info["client_email"],
        "scope": scope,
        "aud": audience or info["token_uri"],
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(
        claims, _private_key(info["private_key"]), algorithm="RS256", headers={"kid": info["private_key_id"]}
    )


# ----------------------------------------------------------------------------------------------------------
# Request helpers
# ----------------------------------------------------------------------------------------------------------


def _get(d: dict, camel: str, snake: str, default: Any = None) -> Any:
    if camel in d:
        return d[camel]
    return d.get(snake, default)


def _parts_text(parts: list | None) -> str:
    texts: list[str] = []
    for part in parts or []:
        if not isinstance(part, dict):
            continue
        if "text" in part and not part.get("thought"):
            texts.append(part["text"])
        call = _get(part, "functionCall", "function_call")
        if call:
            texts.append(f"{call.get('name', '')} {compact_json(call.get('args', {}))}")
        response = _get(part, "functionResponse", "function_response")
        if response:
            texts.append(compact_json(response.get("response", {})))
    return " ".join(texts)


class GoogleSim(Sim):
    """Simulates Vertex AI, the Gemini API and Google's OAuth2 token endpoint on one loopback server.

    ``base_url`` (the origin) is the ``base_url`` of ``genai.Client(http_options=...)``; ``token_url`` is the
    ``token_uri`` of service accounts (see :meth:`new_service_account`)."""

    provider = "google"

    def __init__(
        self,
        api_key: str = "AIzaSySimulator-0123456789abcdefghijk",
        token_lifetime: int = 3600,
        static_tokens: tuple[str, ...] | list[str] = (),
        cached_content_tokens: int = 100,
        provider_name: str = "google",
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.token_lifetime = token_lifetime
        self.cached_content_tokens = cached_content_tokens
        self.provider = provider_name
        self.accounts: dict[str, dict] = {}  # private_key_id -> service account info
        self.tokens: dict[str, dict] = {
            t: {"expires_at": float("inf"), "scopes": [CLOUD_PLATFORM], "account": None} for t in static_tokens
        }
        self.tokens_issued = 0
        self.extra_audiences: list[str] = []
        self._lock = threading.Lock()

    @property
    def token_url(self) -> str:
        return f"{self.origin}/token"

    # -- service accounts and tokens -----------------------------------------------------------------------

    def add_service_account(self, info: dict) -> None:
        """Registers a service account whose assertions the token endpoint accepts."""
        self.accounts[info["private_key_id"]] = info

    def new_service_account(self, project_id: str = "sim-project") -> dict:
        """Makes and registers a throwaway service account whose ``token_uri`` is this simulator's
        ``token_url``; write it with :func:`write_service_account` for clients that read a key file."""
        info = make_service_account(self.token_url, project_id)
        self.add_service_account(info)
        return info

    def expire_tokens(self) -> None:
        """Makes every issued access token expired (the next Vertex call with one gets 401)."""
        with self._lock:
            for meta in self.tokens.values():
                meta["expires_at"] = 0.0

    # -- routes --------------------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self.token)
        app.router.add_post(
            "/{version:v1|v1beta1}/projects/{project}/locations/{location}/publishers/{publisher}/models/{model_action}",
            self.vertex,
        )
        app.router.add_post(
            "/{version:v1|v1beta1}/projects/{project}/locations/{location}/endpoints/{model_action}", self.vertex
        )
        app.router.add_post("/{version:v1beta|v1|v1alpha}/models/{model_action}", self.gemini)
        app.router.add_post("/{version:v1beta|v1|v1alpha}/tunedModels/{model_action}", self.gemini)

    # -- errors --------------------------------------------------------------------------------------------

    def error_body(self, status: int, message: str | None, error_type: str | None) -> tuple[bytes, str, dict]:
        return compact_json(self._error_obj(status, message, error_type)).encode(), "application/json", {}

    @staticmethod
    def _error_obj(status: int, message: str | None, error_type: str | None, details: list | None = None) -> dict:
        name, default = _STATUS.get(status, ("UNKNOWN", "Unknown error."))
        err: dict[str, Any] = {"code": status, "message": message or default, "status": error_type or name}
        if details:
            err["details"] = details
        return {"error": err}

    def google_error(self, status: int, message: str | None = None, details: list | None = None) -> web.Response:
        return web.json_response(self._error_obj(status, message, None, details), status=status)

    def stream_error_events(self, fault: Fault, sender: EventSender) -> list[bytes]:
        obj = self._error_obj(500, fault.message, fault.error_type)
        if sender.kind == "sse":
            return [f"data: {compact_json(obj)}\r\n\r\n".encode()]
        return [f",\r\n{compact_json(obj)}]".encode()]

    # -- token endpoint ------------------------------------------------------------------------------------

    def _oauth_error(self, error: str, description: str, status: int = 400) -> web.Response:
        return web.json_response({"error": error, "error_description": description}, status=status)

    async def token(self, request: web.Request) -> web.StreamResponse:
        form = request[RECORD].form or {}
        grant = form.get("grant_type")
        if not grant:
            return self._oauth_error("invalid_request", "Missing required parameter: grant_type")
        if grant != JWT_BEARER:
            return self._oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant}")
        assertion = form.get("assertion")
        if not assertion:
            return self._oauth_error("invalid_request", "Missing required parameter: assertion")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return self._oauth_error("invalid_grant", "Invalid JWT: Bad format.")
        if header.get("alg") != "RS256":
            return self._oauth_error("invalid_grant", "Invalid JWT Signature.")
        account = self.accounts.get(header.get("kid", ""))
        if account is None:
            account = next((a for a in self.accounts.values() if a["client_email"] == unverified.get("iss")), None)
        if account is None:
            return self._oauth_error("invalid_grant", "Invalid grant: account not found")
        public_key = _private_key(account["private_key"]).public_key()
        audiences = [
            self.token_url,
            self.token_url.replace("127.0.0.1", "localhost"),
            *GOOGLE_TOKEN_AUDIENCES,
            *self.extra_audiences,
        ]
        try:
            claims = jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["iss", "aud", "iat", "exp"]},
                leeway=0,
            )
        except jwt.InvalidSignatureError:
            return self._oauth_error("invalid_grant", "Invalid JWT Signature.")
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            return self._invalid_timeframe()
        except jwt.InvalidAudienceError:
            return self._oauth_error(
                "invalid_grant", f"Invalid JWT: Failed audience check. The right audience is {self.token_url}"
            )
        except jwt.MissingRequiredClaimError as err:
            return self._oauth_error("invalid_grant", f"Invalid JWT: Missing required claim: {err.claim}")
        except jwt.PyJWTError:
            return self._oauth_error("invalid_grant", "Invalid JWT Signature.")
        if claims["iss"] != account["client_email"]:
            return self._oauth_error("invalid_grant", "Invalid grant: account not found")
        now = time.time()
        iat, exp = int(claims["iat"]), int(claims["exp"])
        if exp - iat > 3600 or exp <= iat or iat > now + 300:
            return self._invalid_timeframe()
        scopes = str(claims.get("scope") or "").split()
        if not scopes:
            return self._oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        with self._lock:
            self.tokens_issued += 1
            access_token = f"ya29.sim-{self.tokens_issued}-{secrets.token_urlsafe(24)}"
            self.tokens[access_token] = {
                "expires_at": now + self.token_lifetime,
                "scopes": scopes,
                "account": account["client_email"],
            }
        return await self.json_response(
            request, {"access_token": access_token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def _invalid_timeframe(self) -> web.Response:
        return self._oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your "
            "iat and exp values in the JWT claim.",
        )

    # -- authentication ------------------------------------------------------------------------------------

    def _vertex_auth(self, request: web.Request, method: str) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        info = {
            "service": "aiplatform.googleapis.com",
            "method": f"google.cloud.aiplatform.v1.PredictionService.{method}",
        }
        if not auth.startswith("Bearer "):
            return self.google_error(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "CREDENTIALS_MISSING",
                        "domain": "googleapis.com",
                        "metadata": info,
                    }
                ],
            )
        with self._lock:
            meta = self.tokens.get(auth[7:].strip())
        invalid = (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
            "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
        )
        if meta is None:
            return self.google_error(
                401,
                invalid,
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                        "domain": "googleapis.com",
                        "metadata": info,
                    }
                ],
            )
        if meta["expires_at"] <= time.time():
            return self.google_error(
                401,
                invalid,
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "ACCESS_TOKEN_EXPIRED",
                        "domain": "googleapis.com",
                        "metadata": info,
                    }
                ],
            )
        if CLOUD_PLATFORM not in meta["scopes"]:
            return self.google_error(
                403,
                "Request had insufficient authentication scopes.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                        "domain": "googleapis.com",
                        "metadata": info,
                    }
                ],
            )
        return None

    def _gemini_auth(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return self.google_error(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key "
                "or other form of API consumer identity to call this API.",
            )
        if key != self.api_key:
            return self.google_error(
                400,
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            )
        return None

    # -- handlers ------------------------------------------------------------------------------------------

    async def vertex(self, request: web.Request) -> web.StreamResponse:
        model, _, action = request.match_info["model_action"].rpartition(":")
        denied = self._vertex_auth(request, action[:1].upper() + action[1:])
        if denied is not None:
            return denied
        return await self._dispatch(request, model, action, vertex=True)

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        model, _, action = request.match_info["model_action"].rpartition(":")
        denied = self._gemini_auth(request)
        if denied is not None:
            return denied
        return await self._dispatch(request, model, action, vertex=False)

    async def _dispatch(self, request: web.Request, model: str, action: str, vertex: bool) -> web.StreamResponse:
        body = request[BODY]
        if not isinstance(body, dict):
            return self.google_error(400, "Invalid JSON payload received.")
        if not model:
            return self.google_error(404, "Method not found.")
        if action == "countTokens":
            return await self._count_tokens(request, body, vertex)
        if action not in ("generateContent", "streamGenerateContent"):
            return self.google_error(404, "Method not found.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return self.google_error(400, "* GenerateContentRequest.contents: contents is not specified\n")
        plan = self._plan(body)
        if action == "generateContent":
            return await self.json_response(
                request, self._response(request, body, model, plan, vertex, final=True, parts=None)
            )
        return await self._stream(request, body, model, plan, vertex)

    # -- planning and shapes -------------------------------------------------------------------------------

    @staticmethod
    def _texts(body: dict) -> list[str]:
        texts = []
        system = _get(body, "systemInstruction", "system_instruction")
        if system:
            texts.append(_parts_text(system.get("parts")) if isinstance(system, dict) else str(system))
        texts += [_parts_text(c.get("parts")) for c in body.get("contents") or []]
        return texts

    def _plan(self, body: dict) -> Plan:
        contents = body["contents"]
        texts = self._texts(body)
        last = contents[-1]
        responses = [
            _get(p, "functionResponse", "function_response") for p in last.get("parts") or [] if isinstance(p, dict)
        ]
        responses = [r for r in responses if r]
        if responses:
            last_role, last_text = "tool", compact_json(responses[-1].get("response", {}))
        else:
            last_role = "user"
            last_user = next((c for c in reversed(contents) if c.get("role", "user") == "user"), {})
            last_text = " ".join(p["text"] for p in last_user.get("parts") or [] if isinstance(p, dict) and "text" in p)
        tools: list[tuple[str, Any]] = []
        for tool in body.get("tools") or []:
            for decl in _get(tool, "functionDeclarations", "function_declarations", []) or []:
                schema = decl.get("parameters") or _get(decl, "parametersJsonSchema", "parameters_json_schema") or {}
                tools.append((decl["name"], schema))
        config = (
            _get(
                _get(body, "toolConfig", "tool_config", {}) or {},
                "functionCallingConfig",
                "function_calling_config",
                {},
            )
            or {}
        )
        mode = str(config.get("mode", "AUTO")).upper()
        allowed = _get(config, "allowedFunctionNames", "allowed_function_names") or []
        gen = _get(body, "generationConfig", "generation_config", {}) or {}
        plan = plan_answer(
            self.provider,
            message_texts=texts,
            last_role=last_role,
            last_text=last_text,
            tools=tools,
            forced_tool=allowed[0] if allowed else None,
            tools_disabled=mode == "NONE",
            max_tokens=_get(gen, "maxOutputTokens", "max_output_tokens"),
            stop=_get(gen, "stopSequences", "stop_sequences"),
        )
        return plan

    def _usage(self, body: dict, plan: Plan, vertex: bool, with_candidates: bool = True) -> dict:
        cached = self.cached_content_tokens if _get(body, "cachedContent", "cached_content") else 0
        prompt = plan.prompt_tokens + cached
        usage: dict[str, Any] = {"promptTokenCount": prompt}
        if with_candidates:
            usage["candidatesTokenCount"] = plan.output_tokens
        usage["totalTokenCount"] = prompt + (plan.output_tokens if with_candidates else 0)
        if cached:
            usage["cachedContentTokenCount"] = cached
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        if cached:
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
        if with_candidates:
            usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.output_tokens}]
        if vertex:
            usage["trafficType"] = "ON_DEMAND"
        return usage

    def _response(
        self, request: web.Request, body: dict, model: str, plan: Plan, vertex: bool, *, final: bool, parts: list | None
    ) -> dict:
        n = len(self.requests)
        if parts is None:
            if plan.kind == "tool":
                parts = [{"functionCall": {"name": plan.tool_name, "args": plan.tool_args}}]
            else:
                parts = [{"text": plan.text}]
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
        if final:
            candidate["finishReason"] = "MAX_TOKENS" if plan.finish == "length" else "STOP"
        if not vertex:
            candidate["index"] = 0
        obj: dict[str, Any] = {"candidates": [candidate]}
        if final:
            obj["usageMetadata"] = self._usage(body, plan, vertex)
        elif not vertex:
            obj["usageMetadata"] = self._usage(body, plan, vertex, with_candidates=False)
        obj["modelVersion"] = model.rsplit("/", 1)[-1]
        if vertex:
            obj["createTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        obj["responseId"] = deterministic_id("", self.provider, n, body, length=22)
        return obj

    async def _stream(
        self, request: web.Request, body: dict, model: str, plan: Plan, vertex: bool
    ) -> web.StreamResponse:
        use_sse = request.query.get("alt") == "sse"
        if plan.kind == "tool":
            pieces: list[list | None] = [None]  # the function call comes whole, in the final chunk
        else:
            words = word_chunks(plan.text) or [""]
            pieces = [[{"text": w}] for w in words]
        kind = "sse" if use_sse else "json-array"
        sender = self.event_sender(
            request, content_type="text/event-stream" if use_sse else "application/json", kind=kind
        )
        for i, parts in enumerate(pieces):
            final = i == len(pieces) - 1
            chunk = compact_json(self._response(request, body, model, plan, vertex, final=final, parts=parts))
            if use_sse:
                await sender.send(f"data: {chunk}\r\n\r\n".encode())
            else:
                await sender.send((("[" if i == 0 else ",\r\n") + chunk + ("]" if final else "")).encode())
        return await sender.finish()

    async def _count_tokens(self, request: web.Request, body: dict, vertex: bool) -> web.StreamResponse:
        inner = _get(body, "generateContentRequest", "generate_content_request") or body
        texts = self._texts(inner)
        total = prompt_tokens(texts)
        obj: dict[str, Any] = {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
        if vertex:
            obj["totalBillableCharacters"] = sum(len("".join(t.split())) for t in texts)
        return await self.json_response(request, obj)
