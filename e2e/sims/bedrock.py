"""Amazon Bedrock Runtime simulator (Converse API), with independent SigV4 verification.

Follows the Bedrock Runtime API reference (https://docs.aws.amazon.com/bedrock/latest/APIReference/
API_runtime_Converse.html and API_runtime_ConverseStream.html), the AWS event-stream encoding
(https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html#streaming-event-stream — the
``vnd.amazon.eventstream`` framing) and Signature Version 4
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html):

* ``POST /model/{modelId}/converse`` — ``{"output": {"message": {...}}, "stopReason", "usage": {"inputTokens",
  "outputTokens", "totalTokens", "cacheReadInputTokens", "cacheWriteInputTokens"}, "metrics": {"latencyMs"}}``.
* ``POST /model/{modelId}/converse-stream`` — ``application/vnd.amazon.eventstream``: binary messages (prelude
  with total and headers length, prelude CRC32, string headers ``:event-type``, ``:content-type``,
  ``:message-type``, JSON payload, message CRC32). Events: ``messageStart``, ``contentBlockStart`` (tool use
  only, as Bedrock does), ``contentBlockDelta`` (``text`` or ``toolUse.input`` fragments),
  ``contentBlockStop``, ``messageStop``, ``metadata`` (usage and metrics). Payloads carry Bedrock's ``"p"``
  padding field. A scripted in-stream error is a ``:message-type: exception`` message whose
  ``:exception-type`` is a ConverseStream exception member (default ``modelStreamErrorException``).
* Errors: JSON ``{"message": "..."}`` with the ``x-amzn-ErrorType`` header (``ThrottlingException`` 429,
  ``ValidationException`` 400, ``AccessDeniedException`` 403, ``ResourceNotFoundException`` 404,
  ``ModelTimeoutException`` 408, ``ModelErrorException`` 424, ``InternalServerException`` 500,
  ``ServiceUnavailableException`` 503).

Authentication: every request's SigV4 signature is recomputed with botocore's ``SigV4Auth`` from the received
method, raw path, query, the headers listed in ``SignedHeaders`` and the body, at the request's ``X-Amz-Date``,
with the simulator's secret key, its region and service ``bedrock``, and compared with the one sent. Bad or
missing signatures get 403 (``InvalidSignatureException``, ``UnrecognizedClientException`` for an unknown
access key or session token, ``IncompleteSignatureException``, ``MissingAuthenticationTokenException``);
a request more than 5 minutes off the clock is ``Signature expired``. With ``session_token`` set, the request
must carry the same ``X-Amz-Security-Token``. With ``api_key`` set, a Bedrock API key
(``Authorization: Bearer <key>``) is accepted too.

Prompt caching: ``cachePoint`` blocks in ``system``/``messages`` (or ``toolConfig.tools``) mark the cached
prefix as for Anthropic: written (``cacheWriteInputTokens``) the first time, read (``cacheReadInputTokens``) the
next; ``totalTokens`` includes them.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import struct
import zlib
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from .common import (
    BODY,
    RECORD,
    EventSender,
    Fault,
    Plan,
    PromptCache,
    Sim,
    compact_json,
    deterministic_id,
    fragments,
    plan_answer,
    prompt_tokens,
    word_chunks,
)

EVENTSTREAM = "application/vnd.amazon.eventstream"

_ERRORS = {
    400: ("ValidationException", "The provided request is not valid"),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request. Try your request again."),
    424: ("ModelErrorException", "The model encountered an error processing the request."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error while processing the request."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]+)\s*$"
)


# ----------------------------------------------------------------------------------------------------------
# Event-stream framing
# ----------------------------------------------------------------------------------------------------------


def encode_event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length), prelude CRC32, headers (all of type
    7 = string: 1-byte name length, name, type byte, 2-byte value length, value), payload, message CRC32."""
    encoded = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        encoded += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message) & 0xFFFFFFFF)


def event(event_type: str, payload: dict) -> bytes:
    return encode_event_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        compact_json(payload).encode(),
    )


def exception_event(exception_type: str, message: str) -> bytes:
    return encode_event_message(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        compact_json({"message": message}).encode(),
    )


def _padding(n: int) -> str:
    """Bedrock pads event payloads with a ``p`` field of varying length; here a deterministic one."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return alphabet[: 1 + (n * 7) % len(alphabet)]


# ----------------------------------------------------------------------------------------------------------
# SigV4 verification
# ----------------------------------------------------------------------------------------------------------


class _SignedHeadersOnly(SigV4Auth):
    """botocore's SigV4 signer, restricted to the headers the client said it signed."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed: list[str]):
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name in self._signed:
            value = request.headers.get(name)
            if value is not None:
                headers[name] = value
        return headers


class SigV4Error(Exception):
    def __init__(self, error_type: str, message: str, status: int = 403):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status


def verify_sigv4(
    *,
    method: str,
    raw_path: str,
    headers: dict[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    session_token: str | None,
    region: str,
    service: str = "bedrock",
    now: datetime.datetime | None = None,
    max_skew: datetime.timedelta = datetime.timedelta(minutes=5),
) -> None:
    """Checks an ``Authorization: AWS4-HMAC-SHA256 ...`` request; raises :class:`SigV4Error` like AWS answers."""
    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower.get("authorization")
    if not auth:
        raise SigV4Error("MissingAuthenticationTokenException", "Missing Authentication Token")
    m = _AUTH_RE.match(auth)
    if not m:
        raise SigV4Error(
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization={auth}",
        )
    cred = m["cred"].split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise SigV4Error(
            "IncompleteSignatureException", f"Credential should have 5 parts separated by '/': {m['cred']}"
        )
    akid, scope_date, scope_region, scope_service, _ = cred
    if akid != access_key:
        raise SigV4Error("UnrecognizedClientException", "The security token included in the request is invalid.")
    token = lower.get("x-amz-security-token")
    if token != session_token:
        raise SigV4Error("UnrecognizedClientException", "The security token included in the request is invalid.")
    amz_date = lower.get("x-amz-date")
    if not amz_date:
        raise SigV4Error(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise SigV4Error(
            "IncompleteSignatureException", f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        ) from None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if when < now - max_skew:
        early = (now - max_skew).strftime("%Y%m%dT%H%M%SZ")
        raise SigV4Error(
            "InvalidSignatureException", f"Signature expired: {amz_date} is now earlier than {early} ({stamp} - 5 min.)"
        )
    if when > now + max_skew:
        late = (now + max_skew).strftime("%Y%m%dT%H%M%SZ")
        raise SigV4Error(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than {late} ({stamp} + 5 min.)",
        )
    if scope_date != amz_date[:8]:
        raise SigV4Error(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    if scope_region != region:
        raise SigV4Error("InvalidSignatureException", "Credential should be scoped to a valid region. ")
    if scope_service != service:
        raise SigV4Error("InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'. ")
    signed = m["signed"].split(";")
    if "host" not in signed:
        raise SigV4Error(
            "InvalidSignatureException", "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    content_sha = lower.get("x-amz-content-sha256")
    if content_sha and content_sha != "UNSIGNED-PAYLOAD" and content_sha != hashlib.sha256(body).hexdigest():
        raise SigV4Error(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            400,
        )

    request = AWSRequest(
        method=method, url=f"http://{lower.get('host', 'localhost')}{raw_path}", headers=headers, data=body
    )
    request.context["timestamp"] = amz_date
    signer = _SignedHeadersOnly(Credentials(akid, secret_key, session_token), scope_service, scope_region, signed)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, m["sig"]):
        raise SigV4Error(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.",
        )


# ----------------------------------------------------------------------------------------------------------
# Simulator
# ----------------------------------------------------------------------------------------------------------


def _content_texts(content: list | None) -> str:
    texts: list[str] = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            texts.append(f"{use.get('name', '')} {compact_json(use.get('input', {}))}")
        elif "toolResult" in block:
            texts.append(_tool_result_text(block["toolResult"]))
    return " ".join(texts)


def _tool_result_text(result: dict) -> str:
    parts = []
    for item in result.get("content") or []:
        if "text" in item:
            parts.append(item["text"])
        elif "json" in item:
            parts.append(compact_json(item["json"]))
    return " ".join(parts)


class BedrockSim(Sim):
    """Simulates ``bedrock-runtime.<region>.amazonaws.com``; pass ``base_url`` (the origin) as boto3's
    ``endpoint_url`` together with ``region``, ``access_key`` and ``secret_key``."""

    provider = "bedrock"

    def __init__(
        self,
        access_key: str = "AKIASIMULATOR0000001",
        secret_key: str = "sim/secret/key/0123456789abcdefghijklmn",
        session_token: str | None = None,
        region: str = "us-east-1",
        api_key: str | None = None,
        latency_ms: int = 42,
        provider_name: str = "bedrock",
    ) -> None:
        super().__init__()
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.region = region
        self.api_key = api_key
        self.latency_ms = latency_ms
        self.provider = provider_name
        self.cache = PromptCache()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model_id:.+}/converse", self._signed(self.converse))
        app.router.add_post("/model/{model_id:.+}/converse-stream", self._signed(self.converse_stream))

    # -- auth and errors -----------------------------------------------------------------------------------

    def _signed(self, handler):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            record = request[RECORD]
            auth = request.headers.get("Authorization", "")
            if self.api_key is not None and auth.startswith("Bearer "):
                if auth[7:].strip() != self.api_key:
                    return self.error(
                        403, "Invalid API Key format: Must start with pre-defined prefix", "AccessDeniedException"
                    )
            else:
                try:
                    verify_sigv4(
                        method=request.method,
                        raw_path=request.raw_path,
                        headers=dict(request.headers),
                        body=record.body,
                        access_key=self.access_key,
                        secret_key=self.secret_key,
                        session_token=self.session_token,
                        region=self.region,
                    )
                except SigV4Error as err:
                    return self.error(err.status, err.message, err.error_type)
            body = request[BODY]
            if not isinstance(body, dict):
                return self.error(
                    400, "Malformed input request, please reformat your input and try again.", "ValidationException"
                )
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return self.error(
                    400,
                    "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
                    "ValidationException",
                )
            return await handler(request)

        return wrapped

    def error_body(self, status: int, message: str | None, error_type: str | None) -> tuple[bytes, str, dict]:
        kind, default = _ERRORS.get(status, ("InternalServerException", "The server encountered an internal error."))
        kind = error_type or kind
        kind = kind[0].upper() + kind[1:]
        headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        return compact_json({"message": message or default}).encode(), "application/json", headers

    def stream_error_events(self, fault: Fault, sender: EventSender) -> list[bytes]:
        kind = fault.error_type or "modelStreamErrorException"
        kind = kind[0].lower() + kind[1:]
        return [exception_event(kind, fault.message or "The model stream encountered an error. Retry your request.")]

    def response_headers(self) -> dict[str, str]:
        rid = deterministic_id("", self.provider, len(self.requests), length=32)
        return {"x-amzn-RequestId": f"{rid[:8]}-{rid[8:12]}-{rid[12:16]}-{rid[16:20]}-{rid[20:32]}"}

    # -- planning ------------------------------------------------------------------------------------------

    def _plan(self, model_id: str, body: dict) -> tuple[Plan, dict]:
        messages = body["messages"]
        texts: list[str] = []
        system_text = " ".join(b["text"] for b in body.get("system") or [] if "text" in b)
        units: list[Any] = []
        if body.get("system"):
            texts.append(system_text)
            units.append(body["system"])
        for m in messages:
            texts.append(_content_texts(m.get("content")))
            units.append(m.get("content"))
        last = messages[-1]
        results = [b["toolResult"] for b in last.get("content") or [] if isinstance(b, dict) and "toolResult" in b]
        if last.get("role") == "user" and results:
            last_role, last_text = "tool", _tool_result_text(results[-1])
        else:
            last_role = "user"
            last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
            last_text = " ".join(
                b["text"] for b in last_user.get("content") or [] if isinstance(b, dict) and "text" in b
            )
        tool_config = body.get("toolConfig") or {}
        tools = [
            (t["toolSpec"]["name"], (t["toolSpec"].get("inputSchema") or {}).get("json") or {})
            for t in tool_config.get("tools") or []
            if "toolSpec" in t
        ]
        choice = tool_config.get("toolChoice") or {}
        forced = (choice.get("tool") or {}).get("name")
        inference = body.get("inferenceConfig") or {}
        plan = plan_answer(
            self.provider,
            message_texts=texts,
            last_role=last_role,
            last_text=last_text,
            tools=tools,
            forced_tool=forced,
            max_tokens=inference.get("maxTokens"),
            stop=inference.get("stopSequences"),
        )
        # Cache points: the prefix up to the last unit holding one.
        last_marked = -1
        for i, unit in enumerate(units):
            if any(isinstance(b, dict) and "cachePoint" in b for b in unit or []):
                last_marked = i
        tools_marked = any("cachePoint" in t for t in tool_config.get("tools") or [])
        read = write = 0
        if last_marked >= 0 or tools_marked:
            prefix = prompt_tokens(texts[: last_marked + 1]) if last_marked >= 0 else 0
            key = ["bedrock", model_id, tool_config.get("tools"), units[: last_marked + 1]]
            if self.cache.seen(key):
                read = prefix
            else:
                write = prefix
        inputs = plan.prompt_tokens - read - write
        usage = {
            "inputTokens": inputs,
            "outputTokens": plan.output_tokens,
            "totalTokens": inputs + plan.output_tokens + read + write,
            "cacheReadInputTokens": read,
            "cacheWriteInputTokens": write,
        }
        return plan, usage

    @staticmethod
    def _stop_reason(plan: Plan) -> str:
        return {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence", "tool": "tool_use"}[
            plan.finish
        ]

    def _tool_use_id(self, request: web.Request, plan: Plan) -> str:
        return deterministic_id("tooluse_", self.provider, len(self.requests), plan.tool_name, length=22)

    # -- handlers ------------------------------------------------------------------------------------------

    async def converse(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        plan, usage = self._plan(request.match_info["model_id"], body)
        if plan.kind == "tool":
            content = [
                {
                    "toolUse": {
                        "toolUseId": self._tool_use_id(request, plan),
                        "name": plan.tool_name,
                        "input": plan.tool_args,
                    }
                }
            ]
        else:
            content = [{"text": plan.text}]
        return await self.json_response(
            request,
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": self._stop_reason(plan),
                "usage": usage,
                "metrics": {"latencyMs": self.latency_ms},
            },
        )

    async def converse_stream(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        plan, usage = self._plan(request.match_info["model_id"], body)
        sender = self.event_sender(request, content_type=EVENTSTREAM, kind="converse-stream")
        n = 0

        async def emit(event_type: str, payload: dict) -> None:
            nonlocal n
            payload = {**payload, "p": _padding(n)}
            n += 1
            await sender.send(event(event_type, payload))

        await emit("messageStart", {"role": "assistant"})
        if plan.kind == "tool":
            tid = self._tool_use_id(request, plan)
            await emit(
                "contentBlockStart",
                {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": tid, "name": plan.tool_name}}},
            )
            for piece in fragments(compact_json(plan.tool_args)):
                await emit("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}})
        else:
            for word in word_chunks(plan.text):
                await emit("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word}})
        await emit("contentBlockStop", {"contentBlockIndex": 0})
        await emit("messageStop", {"stopReason": self._stop_reason(plan)})
        await emit("metadata", {"usage": usage, "metrics": {"latencyMs": self.latency_ms}})
        return await sender.finish()
