"""The limit of the stack for `scripts/bench.py`: a bare grpc.aio server without a proto.

Two methods registered through a generic handler with bytes in and bytes out (no
serialisation at all), on uvloop like the orchestrator:
  * `/bench.Echo/Stream` (bidi): for every request message, 20 response messages of the
    size of a small RunEvent text delta (like a Run turn answering with 20 tokens);
  * `/bench.Echo/Unary`: returns the request bytes;
  * with `--model-url`, `/bench.Echo/Proxy` (bidi): for every request (the JSON of the
    chat messages), one streamed chat completion through the openai SDK (its aiohttp
    transport, as the orchestrator's), each text chunk sent on as a delta. Nothing else:
    no agent, store, history or run record: what a minimal gRPC service in front of the
    model costs, with the SDK's standard call (the orchestrator's lighter raw call and
    chunk parsing can beat it).

    .venv/bin/python scripts/bench_echo_server.py --port 0 [--messages 20] [--model-url URL]

prints `ECHO_LISTENING 127.0.0.1:PORT` once listening and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import uvloop

SERVICE = "bench.Echo"
STREAM_METHOD = f"/{SERVICE}/Stream"
UNARY_METHOD = f"/{SERVICE}/Unary"
LISTENING_PREFIX = "ECHO_LISTENING"
# About the size of a serialised RunEvent carrying one text delta (run id, sequence,
# agent id, " tokN").
DELTA = b"\n\x1crun_0000000000000000000000000\x10\x05\x1a\x05bench\x5a\x06\n\x04 tok"


def handlers(messages: int, model_url: str = "") -> grpc.GenericRpcHandler:
    """The generic handler of the methods (bytes in, bytes out)."""

    async def stream(
        request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        async for _request in request_iterator:
            for _ in range(messages):
                yield DELTA

    async def unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return request

    methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Stream": grpc.stream_stream_rpc_method_handler(stream),
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
    }
    if model_url:
        methods["Proxy"] = grpc.stream_stream_rpc_method_handler(proxy(model_url))
    return grpc.method_handlers_generic_handler(SERVICE, methods)


Bidi = Callable[[AsyncIterator[bytes], grpc.aio.ServicerContext[Any, Any]], AsyncIterator[bytes]]


def proxy(model_url: str) -> Bidi:
    """The Proxy method: a model stream passed on, chunk by chunk."""
    import openai

    client = openai.AsyncOpenAI(
        base_url=model_url, api_key="bench", http_client=openai.DefaultAioHttpClient()
    )

    async def handle(
        request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        async for request in request_iterator:
            stream = await client.chat.completions.create(
                model="dev-echo",
                messages=json.loads(request),
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield DELTA

    return handle


async def serve(host: str, port: int, messages: int, model_url: str) -> None:
    """Serve until SIGTERM/SIGINT."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handlers(messages, model_url),))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"{LISTENING_PREFIX} {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


def main() -> int:
    """Parse flags and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--messages", type=int, default=20, help="responses per request")
    parser.add_argument("--model-url", default="", help="serve Proxy to this model server")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.host, args.port, args.messages, args.model_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
