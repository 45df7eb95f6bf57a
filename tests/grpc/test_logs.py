"""`--log-format json` (issue 16, structured logs): every line is a JSON object, and the
lines of a run carry its run id, its agent, the call's tenant and principal, and the
trace id of the caller's W3C `traceparent`, which the model request carries on."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from helpers import LiveServer, ServerProcess, free_port, requests_of, start
from orchestrator.v1 import agent_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc
from orchestrator_devmodel import DevModelAdmin, DevModelServer
from orchestrator_server.config import load_settings
from orchestrator_server.log_format import JsonFormatter

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


async def run_turn(
    live: LiveServer, message: str, metadata: tuple[tuple[str, str], ...] = ()
) -> list[Any]:
    call = live.stub.Run(requests_of(start(message, "logged")), metadata=metadata, timeout=30)
    return [event async for event in call]


@contextmanager
def json_lines() -> Iterator[list[dict[str, Any]]]:
    """The server's log lines (it runs in this process) as parsed JSON objects."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("orchestrator_server")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        lines.extend(json.loads(line) for line in out.getvalue().splitlines())


async def test_a_runs_log_lines_carry_its_run_and_trace_ids(live: LiveServer) -> None:
    await live.stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="logged")))
    metadata = (("traceparent", f"00-{TRACE}-{PARENT}-01"),)
    with json_lines() as lines:
        traced = await run_turn(live, "hello", metadata)
        plain = await run_turn(live, "again")
    ended = {line["run_id"]: line for line in lines if line["message"].startswith("run ended")}
    first = ended[traced[0].run_id]
    assert first["message"].startswith("run ended: completed in ")
    assert first["agent_id"] == "logged"
    assert first["tenant"] == "default"
    assert (first["trace_id"], first["parent_span_id"]) == (TRACE, PARENT)
    assert first["level"] == "INFO" and first["time"].endswith("+00:00")
    second = ended[plain[0].run_id]
    assert "trace_id" not in second
    assert "hello" not in json.dumps(lines)  # message contents are not logged


@pytest.mark.parametrize(
    "traceparent",
    [
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE.upper()}-{PARENT}-01",  # uppercase hex
        "garbage",
    ],
)
async def test_an_invalid_traceparent_is_ignored(live: LiveServer, traceparent: str) -> None:
    await live.stub.CreateAgent(
        pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="logged"), if_not_exists=True)
    )
    with json_lines() as lines:
        events = await run_turn(live, "hi", (("traceparent", traceparent),))
    [ended] = [line for line in lines if line.get("run_id") == events[0].run_id]
    assert "trace_id" not in ended


def test_the_log_format_setting_is_checked() -> None:
    assert load_settings(None, {"log_format": "json"}).log_format == "json"
    with pytest.raises(ValueError, match="log_format"):
        load_settings(None, {"log_format": "xml"})


async def test_serve_log_format_json_writes_json_lines(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    log_path = tmp_path / "server.log"
    server = ServerProcess(
        tmp_path / "json.db",
        devmodel.base_url,
        free_port(),
        log_path=log_path,
        extra_args=("--log-format", "json", "--log-level", "INFO"),
    )
    server.start()
    try:
        await server.wait_serving()
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            await stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="logged")))
            call = stub.Run(
                requests_of(start("hi", "logged")),
                metadata=(("traceparent", f"00-{TRACE}-{PARENT}-01"),),
                timeout=30,
            )
            events = [event async for event in call]
    finally:
        assert server.terminate() == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]  # all JSON
    [ended] = [line for line in lines if line.get("run_id") == events[0].run_id]
    assert ended["trace_id"] == TRACE and ended["logger"] == "orchestrator_server.core.turn"


async def test_the_model_request_carries_the_callers_trace(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await live.stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="logged")))
    await run_turn(live, "traced", (("traceparent", f"00-{TRACE}-{PARENT}-01"),))
    await run_turn(live, "untraced")
    traced, untraced = await admin.requests()
    version, trace_id, parent_id, flags = traced["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "01")
    assert len(parent_id) == 16 and parent_id != PARENT  # a new parent: the model call
    assert untraced["traceparent"] is None


async def test_get_run_shows_the_trace_id_of_the_call_that_started_it(live: LiveServer) -> None:
    await live.stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="logged")))
    traced = await run_turn(live, "traced", (("traceparent", f"00-{TRACE}-{PARENT}-01"),))
    plain = await run_turn(live, "plain")
    record = (await live.stub.GetRun(pb.GetRunRequest(run_id=traced[0].run_id))).run
    assert record.trace_id == TRACE
    untraced = (await live.stub.GetRun(pb.GetRunRequest(run_id=plain[0].run_id))).run
    assert untraced.trace_id == ""
