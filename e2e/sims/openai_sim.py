"""OpenAI API simulator (and any OpenAI-compatible API, through a configurable path prefix).

Follows the published OpenAI REST API reference (https://platform.openai.com/docs/api-reference):

* ``POST {prefix}/chat/completions`` — Chat Completions: ``chat.completion`` objects, or with ``"stream": true``
  server-sent events ``data: {chat.completion.chunk}`` ... ``data: [DONE]``; the usage chunk (``choices: []``)
  is sent only when ``stream_options.include_usage`` is true, and then every chunk carries ``"usage": null``.
  Tools: ``tools[].function`` + ``tool_choice`` (``"none"``, ``"auto"``, ``"required"``, or a named function);
  ``max_completion_tokens`` / ``max_tokens``; ``stop``.
* ``POST {prefix}/completions`` — legacy Completions (``text_completion``), streamed too. As in the API,
  ``max_tokens`` defaults to 16.
* ``POST {prefix}/embeddings`` — ``list`` of ``embedding`` objects; ``encoding_format`` ``"float"`` (default)
  or ``"base64"`` (little-endian float32); ``dimensions``; string, string list and token-array inputs.
* ``POST {prefix}/responses`` — Responses API ``response`` objects, or with ``"stream": true`` the typed event
  sequence (``response.created``, ``response.in_progress``, ``response.output_item.added``,
  ``response.content_part.added``, ``response.output_text.delta``..., ``response.output_text.done``,
  ``response.content_part.done``, ``response.output_item.done``, ``response.completed`` or
  ``response.incomplete``; function calls use ``response.function_call_arguments.delta/done``), each sent as
  ``event: <type>`` + ``data: {..., "sequence_number": n}``, without ``[DONE]``.
* ``GET {prefix}/models`` and ``GET {prefix}/models/{model}``.

Authentication: ``Authorization: Bearer <api_key>``; a missing or wrong key gets the API's 401
``invalid_request_error`` (``code: "invalid_api_key"`` for a wrong one). Errors are
``{"error": {"message", "type", "param", "code"}}``; in-stream errors are ``data: {"error": {...}}`` (chat,
completions) or an ``error`` event (responses).

Usage reporting: ``cached_tokens`` and ``cache_write_tokens`` in ``prompt_tokens_details`` (chat) /
``input_tokens_details`` (responses) are always present. They are 0 unless the request carries
``prompt_cache_key``: then the prompt's prefix (every message but the last) is reported as written to the cache
the first time it is sent with that key and model, and as cached (read) the next times, like the API's
automatic prompt caching (which only caches prompts of 1024+ tokens).
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
    embedding,
    embedding_base64,
    fragments,
    plan_answer,
    prompt_tokens,
    unix_time,
    word_chunks,
    word_count,
    sse,
)

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "text-embedding-3-small", "text-embedding-3-large")

_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    408: ("server_error", None, "Request timed out."),
    409: ("invalid_request_error", None, "Conflict."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}


def content_text(content: Any) -> str:
    """Text of a message ``content``: a string or a list of parts (``text``, ``input_text``, ``output_text``...)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                for key in ("text", "refusal", "output"):
                    if isinstance(part.get(key), str):
                        texts.append(part[key])
                        break
        return " ".join(texts)
    if isinstance(content, dict):
        return content_text([content])
    return str(content)


def mask_key(key: str) -> str:
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:3]}{'*' * (len(key) - 7)}{key[-4:]}"


class OpenAISim(Sim):
    """Simulates the OpenAI API under ``prefix`` (``"/v1"`` for api.openai.com; any prefix, even ``""``, for
    OpenAI-compatible servers). ``base_url`` is what ``openai.OpenAI(base_url=...)`` takes."""

    provider = "openai"

    def __init__(
        self,
        api_key: str = "sk-sim-openai-0123456789",
        prefix: str = "/v1",
        models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
        provider_name: str = "openai",
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.prefix = prefix.rstrip("/")
        self.models = list(models)
        self.provider = provider_name
        self.cache = PromptCache()

    @property
    def base_url(self) -> str:
        return self.origin + self.prefix

    # -- routes and auth -----------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        p = self.prefix
        app.router.add_post(f"{p}/chat/completions", self._with_auth(self.chat_completions))
        app.router.add_post(f"{p}/completions", self._with_auth(self.completions))
        app.router.add_post(f"{p}/embeddings", self._with_auth(self.embeddings))
        app.router.add_post(f"{p}/responses", self._with_auth(self.responses))
        app.router.add_get(f"{p}/models", self._with_auth(self.list_models))
        app.router.add_get(f"{p}/models/{{model:.+}}", self._with_auth(self.get_model))

    def _with_auth(self, handler):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            denied = self.authorize(request)
            if denied is not None:
                return denied
            if request.method == "POST" and not isinstance(request[BODY], dict):
                return self.error(
                    400,
                    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
                    "valid JSON.)",
                )
            return await handler(request)

        return wrapped

    def authorize(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self.error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using "
                "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) "
                "if you're accessing the API from your browser and are prompted for a username and password. You "
                "can obtain an API key from https://platform.openai.com/account/api-keys.",
                error_type="invalid_request_error",
                code=None,
            )
        key = auth[7:].strip()
        if key != self.api_key:
            return self.error(
                401,
                f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                error_type="invalid_request_error",
                code="invalid_api_key",
            )
        return None

    # -- error shapes --------------------------------------------------------------------------------------

    def error(self, status, message=None, error_type=None, headers=None, *, code: Any = ..., param=None):
        kind, default_code, default_message = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
        )
        body = {
            "error": {
                "message": message or default_message,
                "type": error_type or kind,
                "param": param,
                "code": default_code if code is ... else code,
            }
        }
        return web.json_response(body, status=status, headers={**self.response_headers(), **(headers or {})})

    def stream_error_events(self, fault: Fault, sender: EventSender) -> list[bytes]:
        message = fault.message or "The server had an error while processing your request. Sorry about that!"
        if sender.kind == "responses":
            return [
                sse(
                    {
                        "type": "error",
                        "code": fault.error_type or "server_error",
                        "message": message,
                        "param": None,
                        "sequence_number": sender.sent,
                    },
                    event="error",
                )
            ]
        return [
            sse(
                {"error": {"message": message, "type": fault.error_type or "server_error", "param": None, "code": None}}
            )
        ]

    def response_headers(self) -> dict[str, str]:
        n = len(self.requests)
        return {
            "x-request-id": deterministic_id("req_", self.provider, n, length=32),
            "openai-processing-ms": "7",
            "openai-version": "2020-10-01",
        }

    def missing(self, param: str) -> web.Response:
        return self.error(
            400, f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param
        )

    # -- hooks for Azure -----------------------------------------------------------------------------------

    def response_model(self, request: web.Request, body: dict) -> str:
        return body.get("model") or ""

    def decorate_choice(self, choice: dict) -> dict:
        return choice

    def decorate_completion(self, obj: dict) -> dict:
        return obj

    def first_stream_chunks(self, request: web.Request) -> list[dict]:
        return []

    # -- chat completions ----------------------------------------------------------------------------------

    def _chat_plan(self, body: dict) -> tuple[Plan, tuple[int, int]]:
        messages = body["messages"]
        texts: list[str] = []
        for m in messages:
            t = content_text(m.get("content"))
            for call in m.get("tool_calls") or []:
                fn = call.get("function") or {}
                t = f"{t} {fn.get('name', '')} {fn.get('arguments', '')}"
            if m.get("function_call"):
                fn = m["function_call"]
                t = f"{t} {fn.get('name', '')} {fn.get('arguments', '')}"
            texts.append(t)
        last = messages[-1] if messages else {}
        if last.get("role") in ("tool", "function"):
            last_role, last_text = "tool", content_text(last.get("content"))
        else:
            last_role = "user"
            last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
            last_text = content_text(last_user.get("content"))
        tools = [
            (t["function"]["name"], t["function"].get("parameters") or {})
            for t in body.get("tools") or []
            if t.get("type") == "function" and t.get("function")
        ]
        tools += [(f["name"], f.get("parameters") or {}) for f in body.get("functions") or []]
        choice = body.get("tool_choice", body.get("function_call"))
        forced = None
        if isinstance(choice, dict):
            forced = (choice.get("function") or {}).get("name") or choice.get("name")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        plan = plan_answer(
            self.provider,
            message_texts=texts,
            last_role=last_role,
            last_text=last_text,
            tools=tools,
            forced_tool=forced,
            tools_disabled=choice == "none",
            max_tokens=max_tokens,
            stop=body.get("stop"),
        )
        cache = (0, 0)
        if body.get("prompt_cache_key") and len(messages) > 1:
            prefix_tokens = prompt_tokens(texts[:-1])
            seen = self.cache.seen(["chat", body["prompt_cache_key"], body.get("model"), messages[:-1]])
            cache = (prefix_tokens, 0) if seen else (0, prefix_tokens)
        return plan, cache

    @staticmethod
    def _finish_reason(plan: Plan, legacy_functions: bool = False) -> str:
        if plan.kind == "tool":
            return "function_call" if legacy_functions else "tool_calls"
        return "length" if plan.finish == "length" else "stop"

    @staticmethod
    def chat_usage(plan: Plan, cache: tuple[int, int]) -> dict:
        cached, written = cache
        return {
            "prompt_tokens": plan.prompt_tokens,
            "completion_tokens": plan.output_tokens,
            "total_tokens": plan.prompt_tokens + plan.output_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        if not body.get("model") and self.requires_model():
            return self.missing("model")
        if "messages" not in body:
            return self.missing("messages")
        if not isinstance(body["messages"], list) or not body["messages"]:
            return self.error(
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                code="empty_array",
                param="messages",
            )
        plan, cache = self._chat_plan(body)
        model = self.response_model(request, body)
        n = len(self.requests)
        cid = deterministic_id("chatcmpl-", self.provider, n, body, length=29)
        call_id = deterministic_id("call_", self.provider, n, plan.tool_name, length=24)
        legacy = bool(body.get("functions")) and not body.get("tools")
        created = unix_time()
        finish = self._finish_reason(plan, legacy)
        usage = self.chat_usage(plan, cache)
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
            if plan.kind == "tool":
                if legacy:
                    message["function_call"] = {"name": plan.tool_name, "arguments": compact_json(plan.tool_args)}
                else:
                    message["tool_calls"] = [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": plan.tool_name, "arguments": compact_json(plan.tool_args)},
                        }
                    ]
            else:
                message["content"] = plan.text
            obj = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    self.decorate_choice({"index": 0, "message": message, "logprobs": None, "finish_reason": finish})
                ],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": "fp_sim0001",
            }
            return await self.json_response(request, self.decorate_completion(obj))

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        sender = self.event_sender(request, kind="chat")

        def chunk(choices: list, **extra: Any) -> bytes:
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_sim0001",
                "choices": choices,
            }
            if include_usage:
                obj["usage"] = None
            obj.update(extra)
            return sse(obj)

        def delta_choice(delta: dict, finish_reason: str | None = None) -> dict:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        for extra in self.first_stream_chunks(request):
            await sender.send(sse(extra))
        if plan.kind == "tool":
            args = compact_json(plan.tool_args)
            if legacy:
                await sender.send(
                    chunk(
                        [
                            delta_choice(
                                {
                                    "role": "assistant",
                                    "content": None,
                                    "function_call": {"name": plan.tool_name, "arguments": ""},
                                }
                            )
                        ]
                    )
                )
                for piece in fragments(args):
                    await sender.send(chunk([delta_choice({"function_call": {"arguments": piece}})]))
            else:
                await sender.send(
                    chunk(
                        [
                            delta_choice(
                                {
                                    "role": "assistant",
                                    "content": None,
                                    "tool_calls": [
                                        {
                                            "index": 0,
                                            "id": call_id,
                                            "type": "function",
                                            "function": {"name": plan.tool_name, "arguments": ""},
                                        }
                                    ],
                                    "refusal": None,
                                }
                            )
                        ]
                    )
                )
                for piece in fragments(args):
                    await sender.send(
                        chunk([delta_choice({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})])
                    )
        else:
            await sender.send(chunk([delta_choice({"role": "assistant", "content": "", "refusal": None})]))
            for word in word_chunks(plan.text):
                await sender.send(chunk([delta_choice({"content": word})]))
        await sender.send(chunk([self.decorate_choice(delta_choice({}, finish))]))
        if include_usage:
            await sender.send(chunk([], usage=usage))
        await sender.send(b"data: [DONE]\n\n")
        return await sender.finish()

    def requires_model(self) -> bool:
        return True

    # -- legacy completions --------------------------------------------------------------------------------

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        if not body.get("model") and self.requires_model():
            return self.missing("model")
        if "prompt" not in body:
            return self.missing("prompt")
        raw = body["prompt"]
        if isinstance(raw, str):
            prompts = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            prompts = [" ".join(str(x) for x in raw)]
        elif isinstance(raw, list):
            prompts = [p if isinstance(p, str) else " ".join(str(x) for x in p) for p in raw] or [""]
        else:
            prompts = [str(raw)]
        max_tokens = body.get("max_tokens", 16)
        plans = [
            plan_answer(
                self.provider,
                message_texts=[p],
                last_role="user",
                last_text=p,
                max_tokens=max_tokens,
                stop=body.get("stop"),
            )
            for p in prompts
        ]
        ptoks = sum(p.prompt_tokens for p in plans)
        ctoks = sum(p.output_tokens for p in plans)
        usage = {"prompt_tokens": ptoks, "completion_tokens": ctoks, "total_tokens": ptoks + ctoks}
        model = self.response_model(request, body)
        cid = deterministic_id("cmpl-", self.provider, len(self.requests), body, length=29)
        created = unix_time()

        def finish(plan: Plan) -> str:
            return "length" if plan.finish == "length" else "stop"

        if not body.get("stream"):
            obj = {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [
                    self.decorate_choice({"text": p.text, "index": i, "logprobs": None, "finish_reason": finish(p)})
                    for i, p in enumerate(plans)
                ],
                "usage": usage,
                "system_fingerprint": "fp_sim0001",
            }
            return await self.json_response(request, self.decorate_completion(obj))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        sender = self.event_sender(request, kind="completions")

        def chunk(choices: list, **extra: Any) -> bytes:
            obj = {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": choices,
                "system_fingerprint": "fp_sim0001",
            }
            if include_usage:
                obj["usage"] = None
            obj.update(extra)
            return sse(obj)

        for i, p in enumerate(plans):
            for word in word_chunks(p.text):
                await sender.send(chunk([{"text": word, "index": i, "logprobs": None, "finish_reason": None}]))
            await sender.send(
                chunk([self.decorate_choice({"text": "", "index": i, "logprobs": None, "finish_reason": finish(p)})])
            )
        if include_usage:
            await sender.send(chunk([], usage=usage))
        await sender.send(b"data: [DONE]\n\n")
        return await sender.finish()

    # -- embeddings ----------------------------------------------------------------------------------------

    @staticmethod
    def default_dimensions(model: str) -> int:
        return 3072 if "large" in model else 1536

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        if not body.get("model") and self.requires_model():
            return self.missing("model")
        if "input" not in body:
            return self.missing("input")
        raw = body["input"]
        if isinstance(raw, str):
            inputs, counts = [raw], [word_count(raw)]
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            inputs, counts = [" ".join(map(str, raw))], [len(raw)]
        elif isinstance(raw, list) and raw:
            inputs, counts = [], []
            for item in raw:
                if isinstance(item, list):
                    inputs.append(" ".join(map(str, item)))
                    counts.append(len(item))
                else:
                    inputs.append(str(item))
                    counts.append(word_count(str(item)))
        else:
            return self.error(
                400,
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                param="input",
                code=None,
            )
        if any(i == "" for i in inputs):
            return self.error(
                400,
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                param="input",
                code=None,
            )
        model = self.response_model(request, body)
        dims = int(body.get("dimensions") or self.default_dimensions(model))
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            return self.error(400, f"Invalid value for 'encoding_format': '{fmt}'.", param="encoding_format", code=None)
        data = []
        for i, text in enumerate(inputs):
            vec = embedding(text, dims)
            data.append(
                {"object": "embedding", "index": i, "embedding": embedding_base64(vec) if fmt == "base64" else vec}
            )
        total = sum(counts)
        return await self.json_response(
            request,
            {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": total, "total_tokens": total}},
        )

    # -- responses -----------------------------------------------------------------------------------------

    def _responses_plan(self, body: dict) -> tuple[Plan, tuple[int, int]]:
        raw = body.get("input")
        items: list[dict] = [{"role": "user", "content": raw}] if isinstance(raw, str) else list(raw or [])
        texts: list[str] = []
        if body.get("instructions"):
            texts.append(content_text(body["instructions"]))
        last_role, last_text, last_user = "user", "", ""
        for item in items:
            kind = item.get("type", "message")
            if kind == "message" or "role" in item:
                t = content_text(item.get("content"))
                texts.append(t)
                last_role = "user"
                if item.get("role") == "user":
                    last_user = t
            elif kind == "function_call":
                texts.append(f"{item.get('name', '')} {item.get('arguments', '')}")
                last_role = "user"
            elif kind == "function_call_output":
                out = content_text(item.get("output"))
                texts.append(out)
                last_role, last_text = "tool", out
        if last_role == "user":
            last_text = last_user
        tools = [
            (t.get("name"), t.get("parameters") or {}) for t in body.get("tools") or [] if t.get("type") == "function"
        ]
        choice = body.get("tool_choice")
        forced = choice.get("name") if isinstance(choice, dict) else None
        plan = plan_answer(
            self.provider,
            message_texts=texts,
            last_role=last_role,
            last_text=last_text,
            tools=tools,
            forced_tool=forced,
            tools_disabled=choice == "none",
            max_tokens=body.get("max_output_tokens"),
        )
        cache = (0, 0)
        if body.get("prompt_cache_key") and len(texts) > 1:
            prefix_tokens = prompt_tokens(texts[:-1])
            seen = self.cache.seen(
                ["responses", body["prompt_cache_key"], body.get("model"), body.get("instructions"), items[:-1]]
            )
            cache = (prefix_tokens, 0) if seen else (0, prefix_tokens)
        return plan, cache

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = request[BODY]
        if not body.get("model") and self.requires_model():
            return self.missing("model")
        if body.get("input") is None and not body.get("instructions"):
            return self.missing("input")
        plan, cache = self._responses_plan(body)
        n = len(self.requests)
        rid = deterministic_id("resp_", self.provider, n, body, length=48)
        mid = deterministic_id("msg_", self.provider, n, "msg", length=48)
        fid = deterministic_id("fc_", self.provider, n, "fc", length=48)
        call_id = deterministic_id("call_", self.provider, n, plan.tool_name, length=24)
        created = unix_time()
        incomplete = plan.kind == "text" and plan.finish == "length"
        usage = {
            "input_tokens": plan.prompt_tokens,
            "input_tokens_details": {"cached_tokens": cache[0], "cache_write_tokens": cache[1]},
            "output_tokens": plan.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": plan.prompt_tokens + plan.output_tokens,
        }

        def text_part(text: str) -> dict:
            return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}

        if plan.kind == "tool":
            args = compact_json(plan.tool_args)
            item_done = {
                "id": fid,
                "type": "function_call",
                "status": "completed",
                "arguments": args,
                "call_id": call_id,
                "name": plan.tool_name,
            }
        else:
            item_done = {
                "id": mid,
                "type": "message",
                "status": "incomplete" if incomplete else "completed",
                "content": [text_part(plan.text)],
                "role": "assistant",
            }

        def response_obj(status: str, output: list, with_usage: bool) -> dict:
            return {
                "id": rid,
                "object": "response",
                "created_at": created,
                "status": status,
                "background": False,
                "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
                "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"),
                "max_tool_calls": None,
                "model": self.response_model(request, body),
                "output": output,
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "previous_response_id": body.get("previous_response_id"),
                "prompt_cache_key": body.get("prompt_cache_key"),
                "reasoning": {"effort": None, "summary": None},
                "safety_identifier": None,
                "service_tier": "default",
                "store": body.get("store", True),
                "temperature": body.get("temperature", 1.0),
                "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools") or [],
                "top_logprobs": 0,
                "top_p": body.get("top_p", 1.0),
                "truncation": body.get("truncation", "disabled"),
                "usage": usage if with_usage else None,
                "user": None,
                "metadata": body.get("metadata") or {},
            }

        final_status = "incomplete" if incomplete else "completed"
        if not body.get("stream"):
            return await self.json_response(request, response_obj(final_status, [item_done], True))

        sender = self.event_sender(request, kind="responses")
        seq = 0

        async def emit(event: dict) -> None:
            nonlocal seq
            event["sequence_number"] = seq
            seq += 1
            await sender.send(sse(event, event=event["type"]))

        await emit({"type": "response.created", "response": response_obj("in_progress", [], False)})
        await emit({"type": "response.in_progress", "response": response_obj("in_progress", [], False)})
        if plan.kind == "tool":
            added = {**item_done, "status": "in_progress", "arguments": ""}
            await emit({"type": "response.output_item.added", "output_index": 0, "item": added})
            for piece in fragments(item_done["arguments"]):
                await emit(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": fid,
                        "output_index": 0,
                        "delta": piece,
                    }
                )
            await emit(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": fid,
                    "output_index": 0,
                    "name": plan.tool_name,
                    "arguments": item_done["arguments"],
                }
            )
        else:
            added = {"id": mid, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
            await emit({"type": "response.output_item.added", "output_index": 0, "item": added})
            await emit(
                {
                    "type": "response.content_part.added",
                    "item_id": mid,
                    "output_index": 0,
                    "content_index": 0,
                    "part": text_part(""),
                }
            )
            for word in word_chunks(plan.text):
                await emit(
                    {
                        "type": "response.output_text.delta",
                        "item_id": mid,
                        "output_index": 0,
                        "content_index": 0,
                        "delta": word,
                        "logprobs": [],
                    }
                )
            await emit(
                {
                    "type": "response.output_text.done",
                    "item_id": mid,
                    "output_index": 0,
                    "content_index": 0,
                    "text": plan.text,
                    "logprobs": [],
                }
            )
            await emit(
                {
                    "type": "response.content_part.done",
                    "item_id": mid,
                    "output_index": 0,
                    "content_index": 0,
                    "part": text_part(plan.text),
                }
            )
        await emit({"type": "response.output_item.done", "output_index": 0, "item": item_done})
        await emit({"type": f"response.{final_status}", "response": response_obj(final_status, [item_done], True)})
        return await sender.finish()

    # -- models --------------------------------------------------------------------------------------------

    def _model_obj(self, model: str) -> dict:
        return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "system"}

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        return await self.json_response(request, {"object": "list", "data": [self._model_obj(m) for m in self.models]})

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        model = request.match_info["model"]
        if model not in self.models:
            return self.error(404, f"The model '{model}' does not exist", code="model_not_found", param="model")
        return await self.json_response(request, self._model_obj(model))
