"""Section limits: what the stack under the orchestrator does on its own.

A bare grpc.aio bidi stream (1 request -> 20 messages) and a bare unary echo against a
generic-handler server, and bare AsyncOpenAI streamed calls (20 tokens) to the dev model
server: the ceilings the orchestrated figures are divided by.
"""

from __future__ import annotations

import contextlib
import json

import grpc
from openai import AsyncOpenAI

from .config import ECHO_REQUEST, MESSAGES, OP_TIMEOUT, TOKENS
from .driver import Case, FirstDelta, Op, cases_of, one
from .servers import Child, model_client, start_echo


def grpc_stream_op(
    channel: grpc.aio.Channel, path: str = "/bench.Echo/Stream", request: bytes = ECHO_REQUEST
) -> Op:
    """Bare bidi stream: one request, 20 messages back (from the echo itself, or from the
    model through its Proxy)."""
    method: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(path)

    async def op(_: int) -> tuple[float, int]:
        delta = FirstDelta()
        async for _message in method(one(request), timeout=OP_TIMEOUT):
            delta.add(1)
        return delta.result(TOKENS)

    return op


def grpc_unary_op(channel: grpc.aio.Channel) -> Op:
    """Bare unary echo."""
    method: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        "/bench.Echo/Unary"
    )

    async def op(_: int) -> tuple[float, int]:
        await method(ECHO_REQUEST, timeout=OP_TIMEOUT)
        return 0.0, 0

    return op


def openai_op(client: AsyncOpenAI) -> Op:
    """Bare streamed chat completion (the same request the orchestrator makes)."""

    async def op(_: int) -> tuple[float, int]:
        delta = FirstDelta()
        stream = await client.chat.completions.create(
            model="dev-echo",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                delta.add(1)
        return delta.result(TOKENS)

    return op


async def echo_cases(
    stack: contextlib.AsyncExitStack, selected: set[str], model_url: str = ""
) -> list[Case]:
    """The bare gRPC cases. The unary echo is measured for the agents section too: it is
    the baseline of the agent-management figures. With a model server, also the bare
    proxy of a model stream (what a minimal service adds to the first delta)."""
    echo, address = await start_echo(stack, model_url)
    channel = grpc.aio.insecure_channel(address)
    stack.push_async_callback(channel.close)
    procs = {"echo": echo}
    cases: list[Case] = []
    if "limits" in selected:
        stream_variants = [
            ("limits.grpc_stream_c1", "bare grpc bidi stream (20 msgs), c=1", 1),
            ("limits.grpc_stream_c32", "bare grpc bidi stream (20 msgs), c=32", 32),
        ]
        cases += cases_of("limits", "streams/s", grpc_stream_op(channel), procs, stream_variants)
    if "limits" in selected and model_url:
        proxy_variants = [
            ("limits.proxy_c1", "bare grpc proxy of an openai stream (20 tokens), c=1", 1)
        ]
        # The messages of the bare openai calls, passed on by a minimal service.
        proxy = grpc_stream_op(channel, "/bench.Echo/Proxy", json.dumps(MESSAGES).encode())
        cases += cases_of("limits", "streams/s", proxy, procs, proxy_variants)
    unary_variants = [("limits.grpc_unary_c16", "bare grpc unary echo, 16 in flight", 16)]
    cases += cases_of("limits", "QPS", grpc_unary_op(channel), procs, unary_variants)
    return cases


def openai_cases(stack: contextlib.AsyncExitStack, model: Child, model_url: str) -> list[Case]:
    """Bare streamed calls to the dev model server, c=1 and c=32."""
    op = openai_op(model_client(stack, model_url))
    variants = [
        ("limits.openai_c1", "bare openai stream (20 tokens), c=1", 1),
        ("limits.openai_c32", "bare openai stream (20 tokens), c=32", 32),
    ]
    return cases_of("limits", "calls/s", op, {"devmodel": model}, variants)
