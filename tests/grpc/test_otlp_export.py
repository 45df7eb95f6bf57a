"""Tracing configured through the standard OTEL_* environment (issue 16): `orchestrator
serve` exports its spans over OTLP/gRPC to a collector (one in this test), in the
caller's trace, and the model server receives that trace; bad settings stop start-up
with a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc

from helpers import ServerProcess, free_port, requests_of, start
from orchestrator.v1 import agent_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc
from orchestrator_devmodel import DevModelAdmin, DevModelServer
from scripts.otlp_sink import OtlpCollector

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


async def test_spans_reach_an_otlp_collector_in_the_callers_trace(
    devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    collector = OtlpCollector()
    endpoint = await collector.start()
    server = ServerProcess(
        tmp_path / "otlp.db",
        devmodel.base_url,
        free_port(),
        log_path=tmp_path / "server.log",
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_SERVICE_NAME": "orchestrator-under-test",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        },
    )
    server.start()
    try:
        await server.wait_serving()
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            await stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="otlp")))
            call = stub.Run(
                requests_of(start("hello", "otlp")),
                metadata=(("traceparent", f"00-{TRACE}-{PARENT}-01"),),
                timeout=30,
            )
            events = [event async for event in call]
        # Exported while the server runs (the batch processor's 50 ms delay); the RPC's
        # span ends after the agent's, and may be in a later batch.
        agent = await collector.wait_for("invoke_agent otlp")
        await collector.wait_for("orchestrator.v1.OrchestratorService/Run")
    finally:
        assert server.terminate() == 0
        await collector.stop()
    assert agent.trace_id == TRACE
    assert agent.service_name == "orchestrator-under-test"
    assert agent.attributes["orchestrator.run.id"] == events[0].run_id
    by_name = {span.name: span for span in collector.spans if span.trace_id == TRACE}
    rpc = by_name["orchestrator.v1.OrchestratorService/Run"]
    assert rpc.parent_span_id == PARENT
    assert agent.parent_span_id == rpc.span_id
    chat = by_name["chat dev-echo"]
    assert chat.parent_span_id == agent.span_id
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    [request] = await admin.requests()
    assert request["traceparent"] == f"00-{TRACE}-{chat.span_id}-01"


def serve_exit(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator_server.cli", "serve", "--db", str(tmp_path / "x.db")],
        env={"PATH": "/usr/bin:/bin", "ORCHESTRATOR_DEV_MODEL": "off", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tracing_settings_this_build_cannot_honour_stop_start_up(tmp_path: Path) -> None:
    done = serve_exit(
        tmp_path,
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
    )
    assert done.returncode == 2
    assert "OTLP protocol 'http/protobuf' is not supported by this build: use grpc" in done.stderr
    done = serve_exit(tmp_path, {"OTEL_TRACES_EXPORTER": "zipkin"})
    assert done.returncode == 2
    assert "OTEL_TRACES_EXPORTER='zipkin' is not supported" in done.stderr
    done = serve_exit(
        tmp_path, {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "-5"}
    )
    assert done.returncode == 2
    assert "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT='-5' must be a positive integer" in done.stderr
    assert "Traceback" not in done.stderr


def test_recorded_contents_are_bounded_unless_the_operator_says_otherwise() -> None:
    from orchestrator_server.tracing import MAX_ATTRIBUTE_CHARS, provider_from_env

    on = {"OTEL_TRACES_EXPORTER": "console"}
    assert provider_from_env({}) is None
    assert provider_from_env({**on, "OTEL_SDK_DISABLED": "true"}) is None
    default = provider_from_env(on)
    assert default is not None
    span = default.get_tracer("t").start_span("s", attributes={"big": "x" * 10**6})
    assert len(span.attributes["big"]) == MAX_ATTRIBUTE_CHARS  # type: ignore[index, arg-type]
    chosen = provider_from_env({**on, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10"})
    assert chosen is not None
    span = chosen.get_tracer("t").start_span("s", attributes={"big": "x" * 100})
    assert span.attributes["big"] == "x" * 10  # type: ignore[index]
    default.shutdown()
    chosen.shutdown()
