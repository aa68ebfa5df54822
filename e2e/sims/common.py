"""Shared machinery of the provider simulators.

Every simulator (``OpenAISim``, ``AzureOpenAISim``, ``AnthropicSim``, ``BedrockSim``, ``GoogleSim``) is a
subclass of :class:`Sim`. This module holds what they share:

* :class:`ServerThread` runs an aiohttp application on ``127.0.0.1`` port 0 in a background thread with its own
  event loop. ``start()`` returns once the socket is bound (the caller waits on a ``threading.Event``, no
  sleep), ``stop()`` shuts the runner down and joins the thread.
* :class:`RecordedRequest` and ``Sim.requests``: every request a simulator receives, in arrival order.
* :class:`Fault` and :class:`FaultQueue`: scripted misbehaviour consumed by the next matching requests
  (provider-shaped HTTP errors, delays, streams cut midway or ended by an in-stream error event).
* :class:`EventSender`: writes a streamed answer event by event and applies stream faults.
* The deterministic answer rules shared by all providers (:func:`answer_text`, :func:`prompt_tokens`,
  :func:`truncate`, :func:`word_chunks`, :func:`tool_arguments`, :class:`PromptCache`, :func:`embedding`).

Deterministic rules (identical for every provider, so a test can compute the expected numbers):

* answer text: ``"Hello from <provider>! You said: <last user text>"``; after a tool result,
  ``"Hello from <provider>! The tool returned: <result text>"``;
* prompt tokens: number of whitespace-separated words over every message's text (system / instructions count
  as one message; tool calls count the words of ``"<name> <compact JSON arguments>"``; tool results the words
  of their text) plus 3 per message;
* output tokens: words of the answer (a tool call counts the words of ``"<name> <compact JSON arguments>"``);
* a text answer longer than the request's max-tokens is cut to that many words and reported with the
  provider's "length" stop reason; a tool call is never truncated;
* streams send the text word by word (``"Hello "``, ``"from "``, ...).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import json
import math
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from aiohttp import web

__all__ = [
    "BODY",
    "FAULT",
    "RECORD",
    "EventSender",
    "Fault",
    "FaultQueue",
    "Plan",
    "PromptCache",
    "RecordedRequest",
    "ServerThread",
    "Sim",
    "answer_text",
    "apply_stop_sequences",
    "deterministic_id",
    "embedding",
    "plan_answer",
    "prompt_tokens",
    "tool_arguments",
    "tool_call_tokens",
    "tool_result_text",
    "truncate",
    "word_chunks",
    "word_count",
]


# ----------------------------------------------------------------------------------------------------------
# Server thread
# ----------------------------------------------------------------------------------------------------------


class ServerThread:
    """Runs one aiohttp application on 127.0.0.1:0 in a daemon thread with its own event loop."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0, name: str = "sim"):
        self._app = app
        self._host = host
        self._want_port = port
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port: int | None = None

    def start(self, timeout: float = 10.0) -> int:
        """Starts the thread and returns the bound port once the listening socket exists."""
        self._thread = threading.Thread(target=self._run, name=f"{self._name}-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"{self._name}: server did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"{self._name}: server failed to start") from self._error
        assert self.port is not None
        return self.port

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._setup())
        except BaseException as err:  # reported to start()
            self._error = err
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _setup(self) -> None:
        # A short shutdown_timeout: handlers still sleeping in a scripted delay are cancelled at stop().
        self._runner = web.AppRunner(self._app, handle_signals=False, access_log=None, shutdown_timeout=0.05)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._want_port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the loop (running the runner's cleanup in it) and joins the thread."""
        if self._thread is None or self._loop is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._thread = None


# ----------------------------------------------------------------------------------------------------------
# Request log and faults
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the simulator received it."""

    method: str
    path: str  # decoded path, without the query string
    raw_path: str  # path and query exactly as sent (percent-encoding kept)
    query: dict[str, str]  # last value of each query parameter
    headers: dict[str, str]  # header names lower-cased; repeated headers joined with ", "
    body: bytes
    json: Any = None  # the parsed JSON body, or None when the body is not JSON
    form: dict[str, str] | None = None  # the parsed form body (application/x-www-form-urlencoded)
    received_at: float = 0.0

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Fault:
    """A scripted misbehaviour for one request.

    ``status``: answer with this HTTP status and the provider's own error body (``message`` and ``error_type``
    override the defaults; ``retry_after`` / ``retry_after_ms`` add those headers; ``headers`` adds more).
    ``delay``: seconds to wait before answering (combines with every other field).
    ``cut_after``: streamed answers send this many events (at most: a shorter stream is sent whole) then the
    connection is closed without the terminating event and without the body's final chunk; a non-streamed
    answer with
    ``cut_after=0`` closes the connection without any response, with ``cut_after>0`` it sends the status line,
    headers and half the body, then closes.
    ``stream_error_after``: streamed answers send this many events (at most) then the provider's in-stream
    error event (``error_type`` / ``message`` override its defaults), and end the stream cleanly.
    ``chunk_delay``: seconds to wait between streamed events.
    ``path``: only requests whose path contains this string consume the fault (others pass it by).
    """

    status: int | None = None
    message: str | None = None
    error_type: str | None = None
    retry_after: float | int | None = None
    retry_after_ms: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    cut_after: int | None = None
    stream_error_after: int | None = None
    chunk_delay: float = 0.0
    path: str | None = None


class FaultQueue:
    """Thread-safe FIFO of faults; each request consumes the first fault whose ``path`` filter matches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: collections.deque[Fault] = collections.deque()

    def push(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            for _ in range(times):
                self._queue.append(fault)

    def pop_for(self, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._queue):
                if fault.path is None or fault.path in path:
                    del self._queue[i]
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)


# Per-request storage the middleware fills for handlers.
RECORD = web.RequestKey("record", RecordedRequest)  # the request as recorded
BODY = web.RequestKey("body", object)  # the parsed JSON body (None when not JSON)
FAULT = web.RequestKey("fault", object)  # the Fault this request consumed, or None
STREAM_RESPONSE = web.RequestKey("stream_response", web.StreamResponse)  # set once a response is prepared


class _StreamInterrupted(Exception):
    """Raised inside a handler once a stream fault has been applied; the middleware ends the exchange."""


# ----------------------------------------------------------------------------------------------------------
# Base simulator
# ----------------------------------------------------------------------------------------------------------


class Sim:
    """Base class: lifecycle, request recording, fault application, helpers to answer.

    Subclasses set ``provider`` and implement ``add_routes(app)``, ``error_body(status, message, error_type)``
    (returning ``(body_bytes, content_type, extra_headers)``; or override ``error()`` itself) and, for streams,
    ``stream_error_events(fault, sender)``.
    """

    provider = "sim"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.faults = FaultQueue()
        self._server: ServerThread | None = None
        self.port: int | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> "Sim":
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self.add_routes(app)
        self._server = ServerThread(app, name=self.provider)
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self.port is None:
            raise RuntimeError("simulator not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL an SDK's ``base_url`` should be set to (the origin unless a subclass adds a prefix)."""
        return self.origin

    # -- scripting faults ----------------------------------------------------------------------------------

    def fail(
        self,
        status: int,
        *,
        message: str | None = None,
        error_type: str | None = None,
        retry_after: float | int | None = None,
        retry_after_ms: int | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        times: int = 1,
        path: str | None = None,
    ) -> None:
        """The next ``times`` requests get an HTTP error with the provider's error body."""
        self.faults.push(
            Fault(
                status=status,
                message=message,
                error_type=error_type,
                retry_after=retry_after,
                retry_after_ms=retry_after_ms,
                headers=dict(headers or {}),
                delay=delay,
                path=path,
            ),
            times,
        )

    def delay(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """The next ``times`` requests are answered normally after ``seconds``."""
        self.faults.push(Fault(delay=seconds, path=path), times)

    def cut(self, after_events: int = 1, *, times: int = 1, path: str | None = None) -> None:
        """The next ``times`` requests lose their connection midway (see :class:`Fault` ``cut_after``)."""
        self.faults.push(Fault(cut_after=after_events, path=path), times)

    def stream_error(
        self,
        after_events: int = 1,
        *,
        error_type: str | None = None,
        message: str | None = None,
        times: int = 1,
        path: str | None = None,
    ) -> None:
        """The next ``times`` streams end with the provider's in-stream error event after ``after_events``."""
        self.faults.push(
            Fault(stream_error_after=after_events, error_type=error_type, message=message, path=path), times
        )

    def slow_stream(self, chunk_delay: float, *, times: int = 1, path: str | None = None) -> None:
        """The next ``times`` streams wait ``chunk_delay`` seconds between events."""
        self.faults.push(Fault(chunk_delay=chunk_delay, path=path), times)

    def reset(self) -> None:
        """Forgets recorded requests and pending faults."""
        self.requests.clear()
        self.faults.clear()

    # -- what subclasses provide ---------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def error_body(self, status: int, message: str | None, error_type: str | None) -> tuple[bytes, str, dict]:
        raise NotImplementedError  # pragma: no cover - abstract

    def stream_error_events(self, fault: Fault, sender: "EventSender") -> list[bytes]:  # pragma: no cover
        """The provider's in-stream error event(s); ``sender.kind`` tells which stream, ``sender.sent`` how far."""
        raise NotImplementedError

    def response_headers(self) -> dict[str, str]:
        """Headers the provider adds to every answer (request ids and the like)."""
        return {}

    # -- helpers for handlers ------------------------------------------------------------------------------

    def error(
        self,
        status: int,
        message: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        body, content_type, extra = self.error_body(status, message, error_type)
        all_headers = {**self.response_headers(), **extra, **(headers or {})}
        return web.Response(status=status, body=body, content_type=content_type, headers=all_headers)

    async def json_response(
        self, request: web.Request, data: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.StreamResponse:
        """Answers ``data`` as JSON, honouring a non-stream ``cut`` fault."""
        body = json.dumps(data).encode()
        all_headers = {**self.response_headers(), **(headers or {})}
        fault: Fault | None = request.get(FAULT)
        if fault is not None and fault.cut_after is not None:
            if fault.cut_after == 0:
                request.transport.close()
                raise _StreamInterrupted()
            resp = web.StreamResponse(status=status, headers=all_headers)
            resp.content_type = "application/json"
            resp.content_length = len(body)
            await resp.prepare(request)
            await resp.write(body[: len(body) // 2])
            request[STREAM_RESPONSE] = resp
            request.transport.close()
            raise _StreamInterrupted()
        return web.Response(status=status, body=body, content_type="application/json", headers=all_headers)

    def event_sender(
        self,
        request: web.Request,
        content_type: str = "text/event-stream",
        headers: dict[str, str] | None = None,
        kind: str = "",
    ) -> "EventSender":
        extra = {"Cache-Control": "no-cache", **self.response_headers(), **(headers or {})}
        return EventSender(self, request, content_type, extra, kind)

    # -- middleware ----------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        body = await request.read()
        parsed: Any = None
        form: dict[str, str] | None = None
        if body:
            ctype = request.content_type
            if ctype == "application/x-www-form-urlencoded":
                from urllib.parse import parse_qsl

                form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            else:
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            raw_path=request.raw_path,
            query={k: v for k, v in request.query.items()},
            headers=headers,
            body=body,
            json=parsed,
            form=form,
            received_at=time.time(),
        )
        self.requests.append(record)
        request[RECORD] = record
        request[BODY] = parsed
        fault = self.faults.pop_for(request.path)
        request[FAULT] = fault
        try:
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    headers_out = dict(fault.headers)
                    if fault.retry_after is not None:
                        ra = fault.retry_after
                        headers_out["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
                    if fault.retry_after_ms is not None:
                        headers_out["retry-after-ms"] = str(fault.retry_after_ms)
                    return self.error(fault.status, fault.message, fault.error_type, headers_out)
            return await handler(request)
        except _StreamInterrupted:
            resp = request.get(STREAM_RESPONSE)
            if resp is None:  # nothing was sent: return something aiohttp can try (and fail) to write
                resp = web.Response(status=500)
            return resp


# ----------------------------------------------------------------------------------------------------------
# Streaming
# ----------------------------------------------------------------------------------------------------------


class EventSender:
    """Writes a streamed answer one event at a time, applying the request's stream fault.

    ``await sender.send(event_bytes)`` for each event; ``await sender.finish()`` at the end. When the fault
    says so, ``send`` cuts the connection (``cut_after``) or emits the provider's in-stream error events
    (``stream_error_after``) and then raises an internal exception that the middleware turns into the end of
    the exchange, so handlers need no special code. A count larger than the stream applies at its end (the
    events are all sent, then the connection is cut before the end of the body, or the error event follows).
    """

    def __init__(self, sim: Sim, request: web.Request, content_type: str, headers: dict[str, str], kind: str = ""):
        self.sim = sim
        self.kind = kind
        self.request = request
        self.fault: Fault | None = request.get(FAULT)
        self.response = web.StreamResponse(status=200, headers=headers)
        self.response.content_type = content_type
        self.sent = 0
        self._prepared = False

    async def _prepare(self) -> None:
        if not self._prepared:
            self.response.enable_chunked_encoding()
            await self.response.prepare(self.request)
            self.request[STREAM_RESPONSE] = self.response
            self._prepared = True

    async def send(self, event: bytes) -> None:
        await self._prepare()
        await self._apply_fault(at_end=False)
        fault = self.fault
        if fault is not None and fault.chunk_delay and self.sent > 0:
            await asyncio.sleep(fault.chunk_delay)
        await self.response.write(event)
        self.sent += 1

    async def finish(self) -> web.StreamResponse:
        """Ends the stream; a stream fault whose event count was not reached applies here."""
        await self._prepare()
        await self._apply_fault(at_end=True)
        await self.response.write_eof()
        return self.response

    async def _apply_fault(self, at_end: bool) -> None:
        fault = self.fault
        if fault is None:
            return
        if fault.cut_after is not None and (at_end or self.sent >= fault.cut_after):
            # Close without the terminating chunk: the client sees a truncated body.
            self.request.transport.close()
            raise _StreamInterrupted()
        if fault.stream_error_after is not None and (at_end or self.sent >= fault.stream_error_after):
            for payload in self.sim.stream_error_events(fault, self):
                await self.response.write(payload)
            await self.response.write_eof()
            raise _StreamInterrupted()


def sse(data: Any, event: str | None = None, sep: str = "\n\n") -> bytes:
    """One server-sent event: optional ``event:`` line, one ``data:`` line with compact JSON (or a string)."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}{sep}".encode()


# ----------------------------------------------------------------------------------------------------------
# Deterministic answers
# ----------------------------------------------------------------------------------------------------------


def word_count(text: str) -> int:
    return len(text.split())


def prompt_tokens(message_texts: Iterable[str]) -> int:
    """Words over all messages plus 3 per message."""
    texts = list(message_texts)
    return sum(word_count(t) for t in texts) + 3 * len(texts)


def answer_text(provider: str, last_user_text: str) -> str:
    said = " ".join(last_user_text.split())
    return f"Hello from {provider}! You said: {said}"


def tool_result_text(provider: str, result_text: str) -> str:
    said = " ".join(result_text.split())
    return f"Hello from {provider}! The tool returned: {said}"


def word_chunks(text: str) -> list[str]:
    """Splits ``text`` into word chunks that concatenate back to it (``"Hello "``, ``"from "``, ...)."""
    return re.findall(r"\S+\s*", text)


def truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """Keeps the first ``max_tokens`` words; returns ``(text, truncated)``."""
    if max_tokens is None:
        return text, False
    chunks = word_chunks(text)
    if len(chunks) <= max_tokens:
        return text, False
    return "".join(chunks[: max(max_tokens, 0)]).rstrip(), True


def apply_stop_sequences(text: str, stops: Iterable[str] | str | None) -> tuple[str, str | None]:
    """Cuts ``text`` before the earliest stop sequence; returns ``(text, matched_sequence)``."""
    if not stops:
        return text, None
    if isinstance(stops, str):
        stops = [stops]
    best: tuple[int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        at = text.find(stop)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, stop)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def fragments(text: str, size: int = 12) -> list[str]:
    """Splits ``text`` (e.g. JSON arguments) into pieces of ``size`` characters, at least one piece."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def tool_call_tokens(name: str, arguments: Any) -> int:
    return word_count(f"{name} {compact_json(arguments)}")


def _schema_type(schema: dict) -> str | None:
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if str(x).lower() != "null"), None)
    return str(t).lower() if t is not None else None


def example_value(schema: Any) -> Any:
    """An example value for a JSON schema (OpenAPI-style upper-case Google types accepted)."""
    if not isinstance(schema, dict):
        return "Paris"
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if _schema_type(s) != "null"] or schema[key]
            return example_value(options[0])
    kind = _schema_type(schema)
    if kind == "string":
        return "Paris"
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        return [example_value(schema.get("items", {"type": "string"}))]
    if kind == "object" or "properties" in schema:
        return tool_arguments(schema)
    return "Paris"


def tool_arguments(schema: Any) -> dict:
    """Arguments for a tool call: each required property of the schema gets an example value."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties") or {}
    return {name: example_value(props.get(name, {})) for name in schema.get("required") or []}


def deterministic_id(prefix: str, *parts: Any, length: int = 24) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return f"{prefix}{digest[:length]}"


@dataclass
class Plan:
    """What a simulator answers, before it is put in the provider's wire format.

    ``kind`` is ``"text"`` or ``"tool"``; ``finish`` is the generic stop reason: ``"stop"`` (natural end),
    ``"length"`` (cut at max tokens), ``"stop_sequence"`` (cut before ``stop_sequence``) or ``"tool"``.
    """

    kind: str
    prompt_tokens: int
    output_tokens: int
    text: str = ""
    finish: str = "stop"
    stop_sequence: str | None = None
    tool_name: str | None = None
    tool_args: dict | None = None


def plan_answer(
    provider: str,
    *,
    message_texts: list[str],
    last_role: str,
    last_text: str,
    tools: list[tuple[str, Any]] | None = None,
    forced_tool: str | None = None,
    tools_disabled: bool = False,
    max_tokens: int | None = None,
    stop: Iterable[str] | str | None = None,
) -> Plan:
    """Applies the shared deterministic rules.

    ``last_role`` is ``"tool"`` when the last turn carries a tool result (``last_text`` is then the result),
    ``"user"`` otherwise (``last_text`` is the last user text). ``tools`` lists ``(name, json_schema)``.
    """
    ptoks = prompt_tokens(message_texts)
    if last_role == "user" and tools and not tools_disabled:
        name, schema = tools[0]
        if forced_tool:
            name, schema = next(((n, s) for n, s in tools if n == forced_tool), (name, schema))
        args = tool_arguments(schema)
        return Plan("tool", ptoks, tool_call_tokens(name, args), finish="tool", tool_name=name, tool_args=args)
    text = tool_result_text(provider, last_text) if last_role == "tool" else answer_text(provider, last_text)
    finish = "stop"
    text, matched = apply_stop_sequences(text, stop)
    if matched is not None:
        finish = "stop_sequence"
    text, cut = truncate(text, max_tokens)
    if cut:
        finish, matched = "length", None
    return Plan("text", ptoks, word_count(text), text=text, finish=finish, stop_sequence=matched)


class PromptCache:
    """Remembers prompt prefixes, so a repeated prefix is reported as read from cache.

    ``seen(key)`` returns True when ``key`` was looked up before (a cache read), otherwise records it (a cache
    write) and returns False. One instance per simulator, so results depend only on the request sequence.
    """

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def seen(self, key: Any) -> bool:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        with self._lock:
            if digest in self._keys:
                return True
            self._keys.add(digest)
            return False


def embedding(text: str, dims: int) -> list[float]:
    """A unit-length vector derived from SHA-256 of the text (same text, same vector)."""
    values: list[float] = []
    counter = 0
    while len(values) < dims:
        block = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for i in range(0, len(block), 2):
            values.append(int.from_bytes(block[i : i + 2], "big") / 32767.5 - 1.0)
        counter += 1
    values = values[:dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Round-trip through float32 so float and base64 encodings carry the same numbers.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in values]


def embedding_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def unix_time() -> int:
    return int(time.time())
