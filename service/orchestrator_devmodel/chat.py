"""`POST /v1/chat/completions`: pick a plan, then write it (streamed or not), and record
how the exchange ended.

Disconnects are detected promptly: while a response waits (latency, pacing, stall) a
watcher task awaits `receive()`, which uvicorn resolves with `http.disconnect` as soon as
the socket closes, and cancels the handler. The time it noticed is the event's
`finished_at`, so tests can check how fast cancellation propagated.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .asgi import ConnectionCut, Receive, Send, send_bytes, send_error
from .encoding import DONE, ChunkEncoder, completion_body
from .recorder import Recorder
from .replies import Plan, Replier
from .request import ApiError, ChatRequest
from .rules import ErrorSpec, RuleBook

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


@dataclass(slots=True)
class Exchange:
    """Mutable state of one chat request, shared by the handler and its watcher."""

    request_id: str
    started_at: float
    traceparent: str | None = None  # the W3C trace context the client sent, if any
    outcome: str = "error"
    status: int = 200
    rule: str | None = None
    chunks_sent: int = 0
    disconnected_at: float | None = None
    done: bool = False

    def event(self) -> dict[str, Any]:
        """The lifecycle event recorded for `GET /_dev/events`."""
        finished_at = self.disconnected_at if self.outcome == "client_disconnected" else None
        return {
            "request_id": self.request_id,
            "started_at": self.started_at,
            "finished_at": finished_at if finished_at is not None else time.time(),
            "outcome": self.outcome,
            "status": self.status,
            "rule": self.rule,
            "chunks_sent": self.chunks_sent,
        }


class ChatHandler:
    """Answers chat completions from the rule book, recording what happened."""

    def __init__(
        self,
        *,
        rules: RuleBook,
        recorder: Recorder,
        replier: Replier,
        models: frozenset[str],
        is_aborting: Callable[[], bool],
    ) -> None:
        self._rules = rules
        self._recorder = recorder
        self._replier = replier
        self._models = models
        self._is_aborting = is_aborting

    async def handle(self, body: bytes, exchange: Exchange, receive: Receive, send: Send) -> None:
        """Answer one request whose body has been read; always records its event."""
        recorder = self._recorder
        recorder.request_started()
        headers = [(b"x-request-id", exchange.request_id.encode())]
        try:
            request = self._parse(body, exchange)
            rule = self._rules.select(request)
            if rule is not None:
                exchange.rule = rule.name or "unnamed"
            plan = self._replier.plan(request, rule, exchange.request_id)
            await self._run(plan, request, exchange, receive, send, headers)
        except ApiError as err:
            exchange.outcome = "error"
            exchange.status = err.status
            await send_error(send, err, headers)
        finally:
            recorder.request_finished(exchange.event())

    def _parse(self, body: bytes, exchange: Exchange) -> ChatRequest:
        try:
            decoded = json.loads(body)
        except ValueError:
            raise ApiError(
                400, "We could not parse the JSON body of your request.", code="invalid_json"
            ) from None
        if self._recorder.enabled:
            self._recorder.record_request(
                {
                    "request_id": exchange.request_id,
                    "received_at": exchange.started_at,
                    "traceparent": exchange.traceparent,
                    "body": decoded,
                }
            )
        request = ChatRequest.parse(decoded)
        if self._models and request.model not in self._models:
            raise ApiError(
                404,
                f"The model `{request.model}` does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        return request

    async def _run(
        self,
        plan: Plan,
        request: ChatRequest,
        exchange: Exchange,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        watcher = (
            asyncio.create_task(_watch_disconnect(receive, handler, exchange))
            if plan.needs_watch
            else None
        )
        try:
            if plan.error is not None:
                if plan.latency_s > 0:
                    await asyncio.sleep(plan.latency_s)
                raise _api_error(plan.error)
            if request.stream:
                await _stream(plan, request, exchange, send, headers)
            else:
                await _complete(plan, request, exchange, send, headers)
            exchange.outcome = "completed"
        except asyncio.CancelledError:
            if exchange.disconnected_at is None:
                # Not our watcher: server shutdown (abort) or uvicorn giving up on us.
                exchange.outcome = "cut" if self._is_aborting() else "error"
                raise
            handler.uncancel()
            exchange.outcome = "client_disconnected"
        except ConnectionCut:
            exchange.outcome = "cut"
            raise
        finally:
            exchange.done = True
            if watcher is not None:
                watcher.cancel()


async def _watch_disconnect(receive: Receive, handler: asyncio.Task[Any], ex: Exchange) -> None:
    # receive() only returns http.request again for pipelining corner cases: keep waiting.
    while (await receive())["type"] != "http.disconnect":
        pass
    # After the response completes uvicorn also reports a disconnect: not the client's.
    if not ex.done:
        ex.disconnected_at = time.time()
        handler.cancel()


async def _stall() -> None:
    """Wait until cancelled (client disconnect or shutdown)."""
    await asyncio.get_running_loop().create_future()


async def _stream(
    plan: Plan, request: ChatRequest, ex: Exchange, send: Send, headers: list[tuple[bytes, bytes]]
) -> None:
    enc = ChunkEncoder(plan.completion_id, request.model, int(ex.started_at))
    frames = [enc.content(token) for token in plan.tokens]
    for index, call in enumerate(plan.tool_calls):
        frames.append(enc.tool_call_start(index, call.id, call.name))
        frames.extend(enc.tool_call_arguments(index, fragment) for fragment in call.fragments)
    tail = [enc.finish(plan.finish_reason)]
    if request.include_usage:
        tail.append(enc.usage(request.prompt_tokens, plan.completion_tokens))
    tail.append(DONE)
    cut = plan.cut_after

    if plan.latency_s > 0:
        await asyncio.sleep(plan.latency_s)
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS + headers})

    if plan.interval_s <= 0 and not plan.stall:
        # Unpaced: one write for the whole stream, the cheapest thing for both ends.
        sent = frames if cut is None else frames[:cut]
        parts = [enc.role(), *sent] if cut is not None else [enc.role(), *sent, *tail]
        await send(
            {"type": "http.response.body", "body": b"".join(parts), "more_body": cut is not None}
        )
        ex.chunks_sent = len(sent)
        if cut is not None:
            raise ConnectionCut
        return

    await send({"type": "http.response.body", "body": enc.role(), "more_body": True})
    if plan.stall:
        await _stall()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, frame in enumerate(frames):
        if cut is not None and index >= cut:
            raise ConnectionCut
        # Pace against a deadline so sleep overshoot does not accumulate.
        delay = start + (index + 1) * plan.interval_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": frame, "more_body": True})
        ex.chunks_sent = index + 1
    if cut is not None:
        raise ConnectionCut
    await send({"type": "http.response.body", "body": b"".join(tail), "more_body": False})


async def _complete(
    plan: Plan, request: ChatRequest, ex: Exchange, send: Send, headers: list[tuple[bytes, bytes]]
) -> None:
    # A non-streamed answer takes as long as its streamed twin would have.
    delay = plan.latency_s + plan.interval_s * plan.completion_tokens
    if delay > 0:
        await asyncio.sleep(delay)
    if plan.stall:
        await _stall()
    tool_calls = [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for call in plan.tool_calls
    ]
    body = completion_body(
        completion_id=plan.completion_id,
        model=request.model,
        created=int(ex.started_at),
        text=plan.text if plan.tokens or not tool_calls else None,
        tool_calls=tool_calls,
        finish_reason=plan.finish_reason,
        prompt_tokens=request.prompt_tokens,
        completion_tokens=plan.completion_tokens,
    )
    if plan.cut_after is None:
        await send_bytes(send, 200, body, headers)
        return
    # Announce the full length, deliver half: the client sees a truncated body.
    start_headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": start_headers + headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    raise ConnectionCut


def _api_error(spec: ErrorSpec) -> ApiError:
    headers: list[tuple[bytes, bytes]] = []
    if spec.retry_after is not None:
        headers.append((b"retry-after", f"{spec.retry_after:g}".encode()))
        headers.append((b"retry-after-ms", b"%d" % round(spec.retry_after * 1000)))
    if spec.should_retry is not None:
        headers.append((b"x-should-retry", b"true" if spec.should_retry else b"false"))
    return ApiError(spec.status, spec.message, code=spec.code, type_=spec.type, headers=headers)
