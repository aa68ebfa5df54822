"""Anthropic Messages API simulator.

Follows the published Claude API reference (https://docs.anthropic.com/en/api/messages,
https://docs.anthropic.com/en/docs/build-with-claude/streaming, https://docs.anthropic.com/en/api/errors):

* ``POST /v1/messages`` — a ``message`` object (``content`` of ``text`` or ``tool_use`` blocks, ``stop_reason``
  ``end_turn`` / ``max_tokens`` / ``stop_sequence`` / ``tool_use``, ``usage`` with ``input_tokens``,
  ``output_tokens``, ``cache_creation_input_tokens``, ``cache_read_input_tokens``, ``cache_creation``,
  ``service_tier``); with ``"stream": true`` server-sent events with ``event:`` names: ``message_start``,
  ``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``, or ``input_json_delta`` for tool
  input), ``content_block_stop``, ``message_delta`` (stop reason and cumulative usage), ``message_stop``; a
  scripted in-stream error is an ``error`` event ``{"type": "error", "error": {...}}``.
* ``POST /v1/messages/count_tokens`` — ``{"input_tokens": N}``.
* ``GET /v1/models`` — the model list page.

Headers: the API key in ``x-api-key`` (the documented header) or as ``Authorization: Bearer <key>`` (what the
official SDK sends since its 2.x releases; an OAuth ``auth_token`` given to the simulator is accepted there too),
and ``anthropic-version`` (one of ``versions``: ``2023-06-01``, ``2023-01-01``, and ``2026-10-21`` which the
pinned SDK sends) are required. Errors are
``{"type": "error", "error": {"type", "message"}, "request_id"}``: 400 ``invalid_request_error``,
401 ``authentication_error``, 403 ``permission_error``, 404 ``not_found_error``, 413 ``request_too_large``,
429 ``rate_limit_error``, 500 ``api_error``, 529 ``overloaded_error``. Answers carry a ``request-id`` header.

Prompt caching: blocks marked ``cache_control`` (in ``tools``, ``system`` or ``messages``) set a breakpoint;
the prompt up to the message holding the last breakpoint (``system`` counts as the first message) is the cached
prefix: the first time it is reported as ``cache_creation_input_tokens`` (and in ``cache_creation`` by TTL), the
next times as ``cache_read_input_tokens``; ``input_tokens`` is the rest. (The API only caches prefixes of
1024+ tokens; the simulator caches any.)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .common import (
    BODY,
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
    sse,
    word_chunks,
)

VERSIONS = ("2023-06-01", "2023-01-01", "2026-10-21")

_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization. Please try again later.",
    ),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}

DEFAULT_MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "claude-3-5-haiku-latest")


def block_text(content: Any) -> str:
    """Text of a message ``content`` (a string or blocks): text blocks, tool_use as "name input", tool_result text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for block in content if isinstance(content, list) else [content]:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            texts.append(f"{block.get('name', '')} {compact_json(block.get('input', {}))}")
        elif kind == "tool_result":
            texts.append(block_text(block.get("content")))
        elif kind == "thinking":
            texts.append(block.get("thinking", ""))
    return " ".join(texts)


def _has_cache_control(value: Any) -> str | None:
    """The TTL (``"5m"``/``"1h"``) of a ``cache_control`` marker found in ``value`` (a block or block list)."""
    items = value if isinstance(value, list) else [value]
    ttl = None
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("cache_control"), dict):
            ttl = item["cache_control"].get("ttl", "5m")
    return ttl


class AnthropicSim(Sim):
    """Simulates api.anthropic.com; ``base_url`` (the origin) is ``anthropic.Anthropic(base_url=...)``."""

    provider = "anthropic"

    def __init__(
        self,
        api_key: str = "sk-ant-sim-0123456789",
        auth_token: str | None = None,
        versions: tuple[str, ...] | list[str] = VERSIONS,
        models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
        provider_name: str = "anthropic",
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.auth_token = auth_token
        self.versions = tuple(versions)
        self.models = list(models)
        self.provider = provider_name
        self.cache = PromptCache()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._checked(self.messages))
        app.router.add_post("/v1/messages/count_tokens", self._checked(self.count_tokens))
        app.router.add_get("/v1/models", self._checked(self.list_models))

    # -- auth and errors -----------------------------------------------------------------------------------

    def _checked(self, handler):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            key = request.headers.get("x-api-key")
            bearer = request.headers.get("Authorization", "")
            if key is not None:
                if key != self.api_key:
                    return self.error(401, "invalid x-api-key")
            elif bearer.startswith("Bearer "):
                if bearer[7:].strip() not in (self.api_key, self.auth_token):
                    return self.error(401, "Invalid bearer token")
            else:
                return self.error(401, "x-api-key header is required")
            version = request.headers.get("anthropic-version")
            if not version:
                return self.error(400, "anthropic-version: header is required")
            if version not in self.versions:
                return self.error(400, f"anthropic-version: invalid version '{version}'")
            if request.method == "POST" and not isinstance(request[BODY], dict):
                return self.error(400, "There was an error parsing the body of your request.")
            return await handler(request)

        return wrapped

    def error_body(self, status: int, message: str | None, error_type: str | None) -> tuple[bytes, str, dict]:
        kind, default = _ERRORS.get(status, ("api_error", "Internal server error"))
        body = {
            "type": "error",
            "error": {"type": error_type or kind, "message": message or default},
            "request_id": self._request_id(),
        }
        return compact_json(body).encode(), "application/json", {}

    def stream_error_events(self, fault: Fault, sender: EventSender) -> list[bytes]:
        body = {
            "type": "error",
            "error": {"type": fault.error_type or "overloaded_error", "message": fault.message or "Overloaded"},
        }
        return [sse(body, event="error")]

    def _request_id(self) -> str:
        return deterministic_id("req_", self.provider, len(self.requests), length=24)

    def response_headers(self) -> dict[str, str]:
        return {"request-id": self._request_id(), "anthropic-organization-id": "00000000-0000-0000-0000-000000000000"}

    def _validate(self, body: dict, need_max_tokens: bool) -> web.Response | None:
        if "model" not in body:
            return self.error(400, "model: Field required")
        if need_max_tokens and "max_tokens" not in body:
            return self.error(400, "max_tokens: Field required")
        if "messages" not in body:
            return self.error(400, "messages: Field required")
        if not isinstance(body["messages"], list) or not body["messages"]:
            return self.error(400, "messages: at least one message is required")
        return None

    # -- planning ------------------------------------------------------------------------------------------

    @staticmethod
    def _texts(body: dict) -> list[str]:
        texts = []
        if body.get("system"):
            texts.append(block_text(body["system"]))
        texts += [block_text(m.get("content")) for m in body["messages"]]
        return texts

    def _plan(self, body: dict) -> Plan:
        messages = body["messages"]
        last = messages[-1]
        content = last.get("content")
        results = (
            [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
            if isinstance(content, list)
            else []
        )
        if last.get("role") == "user" and results:
            last_role, last_text = "tool", block_text(results[-1].get("content"))
        else:
            last_role = "user"
            last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
            parts = last_user.get("content")
            last_text = (
                parts
                if isinstance(parts, str)
                else " ".join(b.get("text", "") for b in parts or [] if isinstance(b, dict) and b.get("type") == "text")
            )
        tools = [(t.get("name"), t.get("input_schema") or {}) for t in body.get("tools") or [] if "input_schema" in t]
        choice = body.get("tool_choice") or {}
        forced = choice.get("name") if choice.get("type") == "tool" else None
        return plan_answer(
            self.provider,
            message_texts=self._texts(body),
            last_role=last_role,
            last_text=last_text,
            tools=tools,
            forced_tool=forced,
            tools_disabled=choice.get("type") == "none",
            max_tokens=body.get("max_tokens"),
            stop=body.get("stop_sequences"),
        )

    def _cache_split(self, body: dict, total: int) -> dict:
        """``usage`` input fields: the cached prefix (see the module docstring) and the rest."""
        units: list[tuple[str, Any]] = []
        if body.get("system"):
            units.append(("system", body["system"]))
        units += [("message", m.get("content")) for m in body["messages"]]
        last_marked, ttl = -1, None
        for i, (_, value) in enumerate(units):
            found = _has_cache_control(value)
            if found:
                last_marked, ttl = i, found
        tool_ttl = next(
            (
                t["cache_control"].get("ttl", "5m")
                for t in body.get("tools") or []
                if isinstance(t.get("cache_control"), dict)
            ),
            None,
        )
        usage = {
            "input_tokens": total,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        }
        if last_marked < 0 and tool_ttl is None:
            return usage
        ttl = ttl or tool_ttl
        prefix_tokens = prompt_tokens(self._texts(body)[: last_marked + 1]) if last_marked >= 0 else 0
        key = ["anthropic", body.get("model"), body.get("tools"), [u[1] for u in units[: last_marked + 1]]]
        if self.cache.seen(key):
            usage["cache_read_input_tokens"] = prefix_tokens
        else:
            usage["cache_creation_input_tokens"] = prefix_tokens
            usage["cache_creation"][
                "ephemeral_1h_input_tokens" if ttl == "1h" else "ephemeral_5m_input_tokens"
            ] = prefix_tokens
        usage["input_tokens"] = total - prefix_tokens
        return usage

    # -- handlers ------------------------------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        invalid = self._validate(body, need_max_tokens=True)
        if invalid is not None:
            return invalid
        plan = self._plan(body)
        inputs = self._cache_split(body, plan.prompt_tokens)
        n = len(self.requests)
        mid = deterministic_id("msg_", self.provider, n, body, length=24)
        tid = deterministic_id("toolu_", self.provider, n, plan.tool_name, length=24)
        stop_reason = {
            "stop": "end_turn",
            "length": "max_tokens",
            "stop_sequence": "stop_sequence",
            "tool": "tool_use",
        }[plan.finish]
        usage = {**inputs, "output_tokens": plan.output_tokens, "service_tier": "standard"}
        if plan.kind == "tool":
            block = {"type": "tool_use", "id": tid, "name": plan.tool_name, "input": plan.tool_args}
        else:
            block = {"type": "text", "text": plan.text}
        message = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [block],
            "stop_reason": stop_reason,
            "stop_sequence": plan.stop_sequence,
            "usage": usage,
        }
        if not body.get("stream"):
            return await self.json_response(request, message)

        sender = self.event_sender(request, kind="messages")

        async def emit(event: dict) -> None:
            await sender.send(sse(event, event=event["type"]))

        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**inputs, "output_tokens": 1, "service_tier": "standard"},
        }
        await emit({"type": "message_start", "message": start})
        if plan.kind == "tool":
            await emit({"type": "content_block_start", "index": 0, "content_block": {**block, "input": {}}})
            await emit({"type": "ping"})
            for piece in [""] + fragments(compact_json(plan.tool_args)):
                await emit(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    }
                )
        else:
            await emit({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            await emit({"type": "ping"})
            for word in word_chunks(plan.text):
                await emit({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}})
        await emit({"type": "content_block_stop", "index": 0})
        await emit(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": plan.stop_sequence},
                "usage": {
                    "input_tokens": inputs["input_tokens"],
                    "cache_creation_input_tokens": inputs["cache_creation_input_tokens"],
                    "cache_read_input_tokens": inputs["cache_read_input_tokens"],
                    "output_tokens": plan.output_tokens,
                },
            }
        )
        await emit({"type": "message_stop"})
        return await sender.finish()

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        invalid = self._validate(body, need_max_tokens=False)
        if invalid is not None:
            return invalid
        return await self.json_response(request, {"input_tokens": prompt_tokens(self._texts(body))})

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in self.models
        ]
        return await self.json_response(
            request,
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )
