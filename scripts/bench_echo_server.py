"""The limit of the stack for `scripts/bench.py`: a bare grpc.aio server without a proto.

Two methods registered through a generic handler with bytes in and bytes out (no
serialisation at all), on uvloop like the orchestrator:
  * `/bench.Echo/Stream` (bidi): for every request message, 20 response messages of the
    size of a small RunEvent text delta (like a Run turn answering with 20 tokens);
  * `/bench.Echo/Unary`: returns the request bytes.

    .venv/bin/python scripts/bench_echo_server.py --port 0 [--messages 20]

prints `ECHO_LISTENING 127.0.0.1:PORT` once listening and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import AsyncIterator
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


def handlers(messages: int) -> grpc.GenericRpcHandler:
    """The generic handler of the two methods (bytes in, bytes out)."""

    async def stream(
        request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        async for _request in request_iterator:
            for _ in range(messages):
                yield DELTA

    async def unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return request

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Stream": grpc.stream_stream_rpc_method_handler(stream),
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
        },
    )


async def serve(host: str, port: int, messages: int) -> None:
    """Serve until SIGTERM/SIGINT."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handlers(messages),))
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
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.host, args.port, args.messages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
