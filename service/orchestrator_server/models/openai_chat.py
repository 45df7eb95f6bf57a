"""Chat models through the `openai` package: OpenAI and every OpenAI-compatible server.

One AsyncOpenAI client per configured endpoint, reused for every call (its connection pool
is per client). Retries are the client's own: connection errors, 408/409/429/5xx with
exponential backoff, honouring `retry-after-ms`/`Retry-After`. A limiter caps the calls in
flight per provider (`max_concurrency`), so that one busy agent cannot open unbounded
upstream requests, and hands a freed slot to the waiting tenant holding the fewest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

import aiohttp
import httpx2
import openai

from ..core import errors
from ..core.errors import Reason
from ..core.fair_limiter import FairLimiter
from ..core.model_port import ChatRequest, ModelTurnEnd
from ..core.types import ModelSpec, ToolCall, Usage
from .provider_config import ProviderConfig
from .request_body import encode_chat_body

log = logging.getLogger(__name__)
# Characters of tool calls (names and arguments) one model response may stream, and how
# many calls (the turn runs at most 32 of them; the rest are reported as not run).
MAX_TOOL_CALL_CHARS = 1_000_000
MAX_STREAMED_TOOL_CALLS = 1000
# The aiohttp transport bounds connecting and each read, not writing the body: a request
# is also given up when its headers have not come back within the time its attempts may
# take, counting the body sent at this rate at least and the longest wait before a retry
# (openai honours a provider's Retry-After up to two minutes: its MAX_RETRY_AFTER_DELAY).
MIN_UPLOAD_BYTES_PER_S = 4 * 1024 * 1024
MAX_RETRY_WAIT_S = 120.0


# How each openai/httpx failure is reported: the first matching row wins; anything else
# is MODEL_UNAVAILABLE. Provider texts are not passed on: some echo fragments of credentials.
_FAILURES: tuple[
    tuple[tuple[type[BaseException], ...], type[errors.OrchestratorError], Reason, str], ...
] = (
    (
        (openai.RateLimitError,),
        errors.ResourceExhaustedError,
        Reason.MODEL_RATE_LIMITED,
        "is rate limiting requests (retries exhausted)",
    ),
    (
        (openai.AuthenticationError, openai.PermissionDeniedError),
        errors.FailedPreconditionError,
        Reason.MODEL_AUTH_FAILED,
        "rejected the server's credentials",
    ),
    (
        (openai.NotFoundError,),
        errors.FailedPreconditionError,
        Reason.MODEL_NOT_FOUND,
        "does not know the agent's model",
    ),
    (
        (openai.BadRequestError, openai.UnprocessableEntityError),
        errors.InvalidArgumentError,
        Reason.MODEL_REQUEST_REJECTED,
        "rejected the request (parameters or context length)",
    ),
    (
        (openai.APITimeoutError, httpx2.TimeoutException),
        errors.DeadlineExceededError,
        Reason.MODEL_TIMEOUT,
        "did not answer in time",
    ),
)


def _aiohttp_cause(error: BaseException) -> BaseException | None:
    """The aiohttp failure that is (or is behind) an httpx/openai error, if the transport
    raised one."""
    seen = 0
    cause: BaseException | None = error
    while cause is not None and seen < 8:
        if isinstance(cause, aiohttp.ClientError | TimeoutError):
            return cause
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return None


def _translate(error: BaseException, provider: str) -> errors.OrchestratorError:
    """A domain error for an openai/httpx failure."""
    meta = {"provider": provider}
    status = getattr(error, "status_code", None)
    if status is not None:
        meta["upstream_status"] = str(status)
    cause = _aiohttp_cause(error)
    # The aiohttp transport reports every lost connection (refused, reset, closed) as
    # httpx's ConnectTimeout: only a real timeout is a timeout.
    if cause is not None and not isinstance(cause, TimeoutError):
        return _unavailable(provider, "is unavailable or broke the stream", meta)
    for types, cls, reason, what in _FAILURES:
        if isinstance(error, types):
            return cls(f"provider '{provider}' {what}", reason=reason, metadata=meta)
    return _unavailable(provider, "is unavailable or broke the stream", meta)


def _callers_deadline() -> errors.DeadlineExceededError:
    """The caller's deadline passed (the model call had the time the caller had left)."""
    return errors.DeadlineExceededError(
        "the caller's deadline passed", reason=Reason.DEADLINE_EXCEEDED
    )


def _unavailable(
    provider: str, what: str, meta: dict[str, str] | None = None
) -> errors.UnavailableError:
    return errors.UnavailableError(
        f"provider '{provider}' {what}",
        reason=Reason.MODEL_UNAVAILABLE,
        metadata=meta or {"provider": provider},
    )


def _request_params(spec: ModelSpec) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if spec.temperature is not None:
        params["temperature"] = spec.temperature
    if spec.max_tokens is not None:
        params["max_tokens"] = spec.max_tokens
    if spec.top_p is not None:
        params["top_p"] = spec.top_p
    if spec.stop:
        params["stop"] = list(spec.stop)
    if spec.seed is not None:
        params["seed"] = spec.seed
    return params


def _count(value: object) -> int:
    """A count a provider sent (tokens, an index), as a sane int: a provider is not
    trusted with values that would overflow int64 columns and protobuf fields."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        return 0
    return int(min(max(value, 0), 2**31 - 1))


class _ToolCallAssembler:
    """Joins streamed tool-call fragments (by index) into whole calls, within
    MAX_TOOL_CALL_CHARS for the whole response (the model's text has its own bound)."""

    def __init__(self, provider: str) -> None:
        self._provider = provider
        # Fragments are kept in lists and joined once: appending to a string held in a
        # dict copies it every time, quadratic in the number of fragments.
        self._calls: dict[int, tuple[list[str], list[str], list[str]]] = {}
        self._chars = 0

    def add(self, fragments: Sequence[dict[str, Any]]) -> None:
        for fragment in fragments:
            index = _count(fragment.get("index"))
            ids, names, args = self._calls.setdefault(index, ([], [], []))
            if fragment.get("id"):
                ids[:] = [str(fragment["id"])]
            function = fragment.get("function") or {}
            for parts, text in ((names, function.get("name")), (args, function.get("arguments"))):
                if text:
                    parts.append(str(text))
                    self._chars += len(parts[-1])
        if self._chars > MAX_TOOL_CALL_CHARS or len(self._calls) > MAX_STREAMED_TOOL_CALLS:
            raise errors.ResourceExhaustedError(
                f"provider {self._provider} sent over {MAX_STREAMED_TOOL_CALLS:,} tool calls or "
                f"{MAX_TOOL_CALL_CHARS:,} characters of them in one response",
                reason=Reason.MODEL_OUTPUT_LIMIT,
                metadata={"provider": self._provider, "limit": str(MAX_TOOL_CALL_CHARS)},
            )

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall("".join(ids) or f"call_{i}", "".join(names), "".join(args) or "{}")
            for i, (ids, names, args) in sorted(self._calls.items())
        )


class _ChunkReader:
    """The state of one streamed response: usage, finish reason and tool-call fragments,
    fed one SSE line at a time."""

    __slots__ = ("assembler", "finish_reason", "model", "provider", "usage")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.assembler = _ToolCallAssembler(provider)
        self.usage = Usage()
        self.finish_reason = ""
        self.model = ""

    def text_of(self, line: str) -> str | None:
        """The text delta one SSE line carries (None when it carries none)."""
        if not line.startswith("data:"):
            return None
        data = line[5:].strip()
        if data == "[DONE]":
            return None
        chunk = json.loads(data)
        if "error" in chunk:
            log.warning("provider %s reported an error inside the stream", self.provider)
            raise _unavailable(self.provider, "reported an error during the stream")
        if chunk.get("usage"):
            raw = chunk["usage"]
            self.usage = Usage(
                _count(raw.get("prompt_tokens")), _count(raw.get("completion_tokens"))
            )
        if not self.model:
            self.model = str(chunk.get("model") or "")[:200]
        choices = chunk.get("choices")
        if not choices:
            return None
        choice = choices[0]
        delta = choice.get("delta") or {}
        if delta.get("tool_calls"):
            self.assembler.add(delta["tool_calls"])
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        content: str | None = delta.get("content")
        return content

    def end(self) -> ModelTurnEnd:
        """The response's end; a stream without a finish reason was cut by the provider."""
        if not self.finish_reason:
            raise _unavailable(self.provider, "ended the stream before the answer was complete")
        return ModelTurnEnd(self.assembler.calls(), self.usage, self.finish_reason, self.model)


class OpenAIChatModel:
    """A ChatModel on one OpenAI-compatible endpoint."""

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self.default_model = config.default_model
        self.config = config
        timeout = httpx2.Timeout(config.read_timeout_s, connect=config.connect_timeout_s)
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key(),
            max_retries=config.max_retries,
            timeout=timeout,
            # The SDK's aiohttp transport: the same requests, retries and errors at about
            # two thirds of httpx's CPU per streamed response (measured: 4.5 vs 6.8 ms of
            # the server's CPU per run at c=32, 225 vs 155 runs/s).
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )
        # A provider's concurrent calls, shared fairly among the tenants waiting.
        self._slots = FairLimiter(config.max_concurrency)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()

    async def _body(self, request: ChatRequest) -> bytes:
        """The JSON body of one streaming completion request."""
        # Encoded here rather than by the SDK's `create`: its TypedDict transform of
        # `messages` costs ~7 ms for fifty messages (json.dumps: ~30 µs), and its single
        # json.dumps of a large history would hold the loop (see request_body).
        params: dict[str, Any] = {
            "model": request.spec.model or self.default_model,
            "stream": True,
            "stream_options": {"include_usage": True},
            **_request_params(request.spec),
        }
        if request.tools:
            params["tools"] = list(request.tools)
        return await encode_chat_body(params, request.messages)

    def _options(self, request: ChatRequest) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if request.traceparent:  # the provider's logs can be joined to the caller's trace
            headers["traceparent"] = request.traceparent
        options: dict[str, Any] = {"headers": headers}
        timeout = request.timeout
        if timeout is not None:  # the caller's time left caps the provider's limits
            timeout = max(timeout, 0.001)
            options["timeout"] = httpx2.Timeout(
                min(self.config.read_timeout_s, timeout),
                connect=min(self.config.connect_timeout_s, timeout),
                pool=timeout,
            )
        return options

    def _headers_within(self, body: bytes) -> float:
        """Seconds the request may take until its response's headers, retries included."""
        config = self.config
        attempt = config.connect_timeout_s + config.read_timeout_s
        attempt += len(body) / MIN_UPLOAD_BYTES_PER_S
        return (config.max_retries + 1) * attempt + config.max_retries * MAX_RETRY_WAIT_S

    def _timed_out(self, error: BaseException, timeout: float | None) -> errors.OrchestratorError:
        """The error for a transport timeout: the caller's deadline when the limit that
        ran out was the caller's time left (which caps the provider's connect and read
        timeouts, see _options), else MODEL_TIMEOUT. Told here, not by the clock: a timer
        may fire early by a busy turn of the event loop, before the deadline has passed
        on the wall clock."""
        cause = _aiohttp_cause(error)
        if timeout is None or (cause is not None and not isinstance(cause, TimeoutError)):
            return _translate(error, self.name)  # not a timeout at all (see _translate)
        connecting = isinstance(cause, aiohttp.ConnectionTimeoutError)
        limit = self.config.connect_timeout_s if connecting else self.config.read_timeout_s
        return _callers_deadline() if timeout < limit else _translate(error, self.name)

    async def _post(self, request: ChatRequest, body: bytes) -> httpx2.Response:
        """The streaming request, until its response's headers."""
        budget = self._headers_within(body)
        limit = budget if request.timeout is None else min(budget, max(request.timeout, 0.001))
        try:
            async with asyncio.timeout(limit):
                # The SDK's documented raw call: it still does the request, auth, retries
                # with backoff and error mapping, and hands back the unread HTTP response;
                # each SSE chunk is then parsed with json.loads instead of being validated
                # into pydantic models (~50 µs per chunk, the largest per-token cost).
                response: httpx2.Response = await self._client.post(
                    "/chat/completions",
                    cast_to=httpx2.Response,
                    content=body,
                    options=cast(Any, self._options(request)),
                    stream=True,
                    stream_cls=None,
                )
        except TimeoutError:
            log.warning("model call to provider %s: no response in time", self.name)
            if limit < budget:  # the caller's time left was the limit
                raise _callers_deadline() from None
            raise errors.DeadlineExceededError(
                f"provider '{self.name}' did not take the request in time",
                reason=Reason.MODEL_TIMEOUT,
                metadata={"provider": self.name},
            ) from None
        return response

    async def stream(self, request: ChatRequest) -> AsyncGenerator[str | ModelTurnEnd, None]:
        """Stream one chat completion: text deltas, then a ModelTurnEnd."""
        body = await self._body(request)
        reader = _ChunkReader(self.name)
        async with self._slots.slot(request.tenant):
            try:
                response = await self._post(request, body)
                try:
                    # Read to the end of the body (past [DONE]): a response left unread is
                    # closed instead of going back to the connection pool.
                    async for line in response.aiter_lines():
                        text = reader.text_of(line)
                        if text:
                            yield text
                finally:
                    await response.aclose()
            except (openai.APITimeoutError, httpx2.TimeoutException) as error:
                log.warning("model call to provider %s: %s", self.name, type(error).__name__)
                raise self._timed_out(error, request.timeout) from error
            # A malformed response (status line, headers, chunk sizes) leaves the transport
            # as aiohttp's own error, outside httpx's.
            except (openai.APIError, httpx2.HTTPError, aiohttp.ClientError) as error:
                log.warning("model call to provider %s failed: %s", self.name, type(error).__name__)
                raise _translate(error, self.name) from error
            except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as error:
                log.warning("provider %s sent a malformed stream: %s", self.name, error)
                raise _unavailable(self.name, "sent a malformed stream") from error
        yield reader.end()
