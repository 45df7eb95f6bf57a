"""A small OTLP/gRPC trace collector for the tests and the benchmark: it accepts
ExportTraceServiceRequest batches on 127.0.0.1 and keeps the spans (name, ids,
attributes) in memory, waking whoever waits for a span of a given name.

    python scripts/otlp_sink.py   # prints "OTLP_LISTENING <endpoint>", then counts spans

Run as a script (the benchmark's collector), it keeps only counts, and prints them when
it is stopped (SIGTERM).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2


@dataclass(frozen=True)
class CollectedSpan:
    """One exported span, decoded."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    service_name: str


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


@dataclass
class OtlpCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """Collects the spans exported to it (or only counts them); `address` once started."""

    spans: list[CollectedSpan] = field(default_factory=list)
    batches: int = 0
    counted: int = 0
    keep: bool = True
    address: str = ""
    _server: grpc.aio.Server | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.batches += 1
        for resource_spans in request.resource_spans:
            if not self.keep:
                self.counted += sum(len(scope.spans) for scope in resource_spans.scope_spans)
                continue
            service = _attributes(resource_spans.resource.attributes).get("service.name", "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        CollectedSpan(
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            _attributes(span.attributes),
                            service,
                        )
                    )
        self._changed.set()
        return trace_service_pb2.ExportTraceServiceResponse()

    async def start(self) -> str:
        """Listen on an ephemeral loopback port; the endpoint URL for OTEL_* settings."""
        self._server = grpc.aio.server()
        add_servicer = trace_service_pb2_grpc.add_TraceServiceServicer_to_server
        add_servicer(self, self._server)  # type: ignore[no-untyped-call]
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        self.address = f"127.0.0.1:{port}"
        return f"http://{self.address}"

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)

    async def wait_for(self, name: str, within: float = 20) -> CollectedSpan:
        """The first collected span called `name` (waits for an export carrying it)."""
        async with asyncio.timeout(within):
            while True:
                for span in self.spans:
                    if span.name == name:
                        return span
                self._changed.clear()
                await self._changed.wait()


async def _serve_until_stopped() -> None:
    import signal

    collector = OtlpCollector(keep=False)
    endpoint = await collector.start()
    print(f"OTLP_LISTENING {endpoint}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    await collector.stop()
    print(f"OTLP_RECEIVED {collector.counted} spans in {collector.batches} batches", flush=True)


if __name__ == "__main__":
    asyncio.run(_serve_until_stopped())
