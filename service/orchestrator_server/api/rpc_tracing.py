"""The server span of every RPC (when tracing is on): it continues the caller's W3C
trace, is current for everything the call does (the core's GenAI spans nest under it),
and ends with the call's gRPC status code. Health checks and reflection are served
outside this wrapper, so they make no spans."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from ..core.log_context import bind_trace
from ..tracing import OtelTracer, error_type_of, trace_context_of

Context = grpc.aio.ServicerContext[Any, Any]
UnaryBehaviour = Callable[[Any, Context], Awaitable[Any]]
StreamBehaviour = Callable[[Any, Context], AsyncGenerator[Any, None]]


def _metadata(context: Context) -> dict[str, str]:
    return {
        key: value
        for key, value in context.invocation_metadata() or ()
        if key in ("traceparent", "tracestate") and isinstance(value, str)
    }


def _end(span: trace.Span, context: Context, error: BaseException | None) -> None:
    """End the span with the call's status code (and error type when it failed)."""
    if error is None:
        code = grpc.StatusCode.OK
    elif isinstance(error, asyncio.CancelledError | GeneratorExit):  # the caller left
        code = grpc.StatusCode.CANCELLED
    else:
        # Errors reach the client through context.abort(), which set the code.
        code = context.code() or grpc.StatusCode.UNKNOWN
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_attribute("error.type", code.name if error is None else _cause(error, code))
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def _cause(error: BaseException, code: grpc.StatusCode) -> str:
    return code.name if isinstance(error, grpc.aio.AbortError) else error_type_of(error)


def traced_unary(behaviour: UnaryBehaviour, full_method: str, tracer: OtelTracer) -> UnaryBehaviour:
    """A unary-response handler inside a server span."""

    async def handle(request: Any, context: Context) -> Any:
        span = tracer.start_server_span(full_method, _metadata(context))
        bind_trace(trace_context_of(span))
        error: BaseException | None = None
        try:
            return await behaviour(request, context)
        except BaseException as raised:
            error = raised
            raise
        finally:
            _end(span, context, error)

    return handle


def traced_stream(
    behaviour: StreamBehaviour, full_method: str, tracer: OtelTracer
) -> StreamBehaviour:
    """A server-streaming handler inside a server span."""

    async def handle(request: Any, context: Context) -> AsyncGenerator[Any, None]:
        span = tracer.start_server_span(full_method, _metadata(context))
        bind_trace(trace_context_of(span))
        error: BaseException | None = None
        try:
            async with aclosing(behaviour(request, context)) as responses:
                async for response in responses:
                    yield response
        except BaseException as raised:
            error = raised
            raise
        finally:
            _end(span, context, error)

    return handle
