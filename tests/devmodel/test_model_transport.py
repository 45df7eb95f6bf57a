"""The openai adapter on its aiohttp transport, against real sockets: answers stream, and
each way a connection fails is reported as what it is (the transport reports every lost
connection as a connect timeout; a refused or dropped connection is not a timeout)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from orchestrator_devmodel import DevModelAdmin, DevModelServer
from orchestrator_server.core import errors
from orchestrator_server.core.errors import Reason
from orchestrator_server.core.model_port import ChatRequest, ModelTurnEnd
from orchestrator_server.core.types import ModelSpec
from orchestrator_server.models.openai_chat import OpenAIChatModel
from orchestrator_server.models.provider_config import ProviderConfig


def _model(url: str, **timeouts: float) -> OpenAIChatModel:
    config = ProviderConfig(
        name="p", base_url=url, default_model="dev-echo", max_retries=0, **timeouts
    )
    return OpenAIChatModel(config)


async def _collect(
    model: OpenAIChatModel, text: str = "hello there", timeout: float | None = None
) -> list[str | ModelTurnEnd]:
    request = ChatRequest(ModelSpec(), [{"role": "user", "content": text}], timeout=timeout)
    try:
        return [item async for item in model.stream(request)]
    finally:
        await model.close()


@asynccontextmanager
async def _raw_server(handle: object) -> AsyncIterator[int]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)  # type: ignore[arg-type]
    async with server:
        yield server.sockets[0].getsockname()[1]


@asynccontextmanager
async def _holding_server(first: bytes = b"") -> AsyncIterator[int]:
    """A provider that reads a request's head (never its body), sends `first`, then
    holds the connection without a word until the test is over."""
    over = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if first:
            writer.write(first)
        await over.wait()
        writer.close()

    async with _raw_server(hold) as port:
        try:
            yield port
        finally:
            over.set()


async def _read_request(reader: asyncio.StreamReader) -> None:
    """Read one HTTP request, its head and its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = [
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    await reader.readexactly(lengths[0] if lengths else 0)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_streams_an_answer_and_reuses_the_connection(devmodel: DevModelServer) -> None:
    model = _model(devmodel.base_url)
    try:
        for _ in range(3):
            request = ChatRequest(ModelSpec(), [{"role": "user", "content": "one two"}])
            items = [item async for item in model.stream(request)]
            assert "".join(i for i in items if isinstance(i, str)) == "Echo: one two"
            end = items[-1]
            assert isinstance(end, ModelTurnEnd)
            assert end.finish_reason == "stop"
            assert end.usage.completion_tokens > 0
    finally:
        await model.close()


async def test_refused_connection_is_unavailable_not_a_timeout() -> None:
    with pytest.raises(errors.UnavailableError) as caught:
        await _collect(_model(f"http://127.0.0.1:{_closed_port()}/v1"))
    assert caught.value.reason is Reason.MODEL_UNAVAILABLE


async def test_silent_provider_is_a_timeout() -> None:
    async with _holding_server() as port:
        with pytest.raises(errors.DeadlineExceededError) as caught:
            await _collect(_model(f"http://127.0.0.1:{port}/v1", read_timeout_s=0.3))
    assert caught.value.reason is Reason.MODEL_TIMEOUT


_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
_CHUNK = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
MALFORMED = {
    "closed before the answer": b"",
    "bad status line": b"HELLO\r\n\r\n",
    "bad chunk size after a delta": _HEAD + b"%x\r\n%s\r\nzz\r\n" % (len(_CHUNK), _CHUNK),
    "header line too long": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_lost_or_malformed_response_is_unavailable(case: str) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        if MALFORMED[case]:
            writer.write(MALFORMED[case])
            await writer.drain()
            await reader.read()  # until the client closes
        writer.close()

    async with _raw_server(reply) as port:
        with pytest.raises(errors.UnavailableError) as caught:
            await _collect(_model(f"http://127.0.0.1:{port}/v1"))
    assert caught.value.reason is Reason.MODEL_UNAVAILABLE


async def test_a_provider_that_stops_reading_the_body_times_out() -> None:
    """The transport bounds reads, not writes: a request whose body the provider stops
    reading (hung, partitioned) is given up all the same."""
    async with _holding_server() as port:
        model = _model(f"http://127.0.0.1:{port}/v1", connect_timeout_s=0.2, read_timeout_s=0.3)
        with pytest.raises(errors.DeadlineExceededError) as caught:
            # Past what the sockets' buffers take: the write blocks.
            await asyncio.wait_for(_collect(model, "y" * 8_000_000), 20)
    assert caught.value.reason is Reason.MODEL_TIMEOUT


async def test_a_retry_after_wait_is_not_cut_short_by_the_time_to_the_headers() -> None:
    """openai waits as long as a provider's Retry-After says (up to two minutes) before
    its retry: that wait counts in the time a request may take to its headers, and the
    answer stays the provider's (here: still rate limited), not a timeout."""
    answers: list[float] = []
    body = b'{"error": {"message": "slow down"}}'
    limited = b"HTTP/1.1 429 Too Many Requests\r\nretry-after-ms: 8600\r\n"
    limited += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )

    async def rate_limit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await _read_request(reader)
                answers.append(time.monotonic())
                writer.write(limited)
                await writer.drain()
        writer.close()

    async with _raw_server(rate_limit) as port:
        # Without the wait counted: (1 + 1) x (0.1 + 0.1) s + 8 s of backoff < 8.6 s.
        config = {"connect_timeout_s": 0.1, "read_timeout_s": 0.1}
        model = OpenAIChatModel(
            ProviderConfig(
                name="p", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, **config
            )
        )
        with pytest.raises(errors.ResourceExhaustedError) as caught:
            await _collect(model)
    assert caught.value.reason is Reason.MODEL_RATE_LIMITED
    assert len(answers) == 2 and answers[1] - answers[0] >= 8.5


@pytest.mark.parametrize("stall", ["before the headers", "after a delta"])
async def test_a_call_that_runs_out_of_the_callers_time_reports_the_callers_deadline(
    stall: str,
) -> None:
    """With the caller's remaining time as the call's timeout, running out of it is the
    caller's deadline (the turn is then CANCELLED/DEADLINE_EXCEEDED, not FAILED), told
    by which limit fired rather than by the clock, which a busy loop's timers outrun."""
    first = _HEAD + b"%x\r\n%s\r\n" % (len(_CHUNK), _CHUNK) if stall == "after a delta" else b""
    async with _holding_server(first) as port:
        with pytest.raises(errors.DeadlineExceededError) as caught:
            await _collect(_model(f"http://127.0.0.1:{port}/v1"), timeout=0.3)
    assert caught.value.reason is Reason.DEADLINE_EXCEEDED


async def test_the_providers_read_timeout_within_a_longer_caller_deadline_is_its_own() -> None:
    """The caller's time left caps the provider's read timeout, not replaces it: a
    provider silent for longer than its read timeout is MODEL_TIMEOUT then, though the
    caller would have waited longer."""
    async with _holding_server(_HEAD + b"%x\r\n%s\r\n" % (len(_CHUNK), _CHUNK)) as port:
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceededError) as caught:
            await _collect(_model(f"http://127.0.0.1:{port}/v1", read_timeout_s=0.3), timeout=30)
    assert caught.value.reason is Reason.MODEL_TIMEOUT
    assert time.monotonic() - started < 10


async def test_a_refused_connection_within_the_callers_time_is_still_unavailable() -> None:
    with pytest.raises(errors.UnavailableError) as caught:
        await _collect(_model(f"http://127.0.0.1:{_closed_port()}/v1"), timeout=5.0)
    assert caught.value.reason is Reason.MODEL_UNAVAILABLE


async def test_stream_cut_midway_is_unavailable(
    devmodel: DevModelServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([{"reply": {"cut_after_tokens": 2}}])
    with pytest.raises(errors.UnavailableError) as caught:
        await _collect(_model(devmodel.base_url), "one two three four")
    assert caught.value.reason is Reason.MODEL_UNAVAILABLE
