"""Server-level behaviour: persistence across restarts, reflection and health through
grpcurl, and hostile input (issue 2)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import grpc
import pytest

from helpers import LiveServer, error_info, start_live_server
from orchestrator.v1 import agent_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelServer

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


async def grpcurl(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run grpcurl as a subprocess without blocking the event loop the server runs on."""
    proc = await asyncio.create_subprocess_exec(
        GRPCURL,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


async def test_agents_and_default_survive_restart(devmodel: DevModelServer, tmp_path: Path) -> None:
    db = tmp_path / "persist.db"
    first = await start_live_server(db, devmodel.base_url)
    try:
        for name in ["research_agent", "coding_agent", "analysis_agent"]:
            await first.stub.CreateAgent(
                pb.CreateAgentRequest(
                    agent=agent_pb2.Agent(agent_id=name, system_message=f"I am {name}"),
                    set_as_default=name == "coding_agent",
                )
            )
        before = await first.stub.ListAgents(pb.ListAgentsRequest())
    finally:
        await first.stop()
    second = await start_live_server(db, devmodel.base_url)
    try:
        after = await second.stub.ListAgents(pb.ListAgentsRequest())
        assert after == before
        default = await second.stub.GetDefaultAgent(pb.GetDefaultAgentRequest())
        assert default.agent.agent_id == "coding_agent"
        assert default.agent.system_message == "I am coding_agent"
    finally:
        await second.stop()
    assert integrity(db) == "ok"


async def test_grpcurl_list_describe_health_and_calls(live: LiveServer) -> None:
    if shutil.which(GRPCURL) is None:
        pytest.fail("grpcurl is not installed in the virtualenv (make install)")
    code, out, err = await grpcurl("-plaintext", live.address, "list")
    assert code == 0, err
    assert "orchestrator.v1.OrchestratorService" in out.split()
    assert "grpc.health.v1.Health" in out.split()

    code, out, err = await grpcurl(
        "-plaintext", live.address, "describe", "orchestrator.v1.OrchestratorService"
    )
    assert code == 0, err
    for rpc in [
        "CreateAgent",
        "GetAgent",
        "ListAgents",
        "UpdateAgent",
        "DeleteAgent",
        "SetDefaultAgent",
        "GetDefaultAgent",
        "Run",
    ]:
        assert f"rpc {rpc} (" in out

    code, out, err = await grpcurl("-plaintext", live.address, "grpc.health.v1.Health/Check")
    assert code == 0, err
    assert json.loads(out)["status"] == "SERVING"

    code, out, err = await grpcurl(
        "-plaintext",
        "-d",
        '{"agent": {"agent_id": "shell_agent"}, "set_as_default": true}',
        live.address,
        "orchestrator.v1.OrchestratorService/CreateAgent",
    )
    assert code == 0, err
    assert json.loads(out)["agent"]["is_default"] is True

    code, out, err = await grpcurl(
        "-plaintext",
        "-d",
        '{"agent_id": "ghost"}',
        live.address,
        "orchestrator.v1.OrchestratorService/GetAgent",
    )
    assert code != 0
    assert "NotFound" in err and "AGENT_NOT_FOUND" in err


async def test_garbage_bytes_get_invalid_argument(live: LiveServer, tmp_path: Path) -> None:
    await live.stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="keep")))
    raw = live.channel.unary_unary(
        "/orchestrator.v1.OrchestratorService/CreateAgent",
        request_serializer=None,
        response_deserializer=None,
    )
    for garbage in [b"\xff\xff\xff\xff", b"\x0a\x05ab", bytes(range(256))]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(garbage)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value).reason == "MALFORMED_REQUEST"

    raw_stream = live.channel.stream_stream(
        "/orchestrator.v1.OrchestratorService/Run",
        request_serializer=None,
        response_deserializer=None,
    )

    async def garbage_stream():  # type: ignore[no-untyped-def]
        yield b"\xff\xff\xff"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in raw_stream(garbage_stream()):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "MALFORMED_REQUEST"

    # An oversized message is refused by the transport before it reaches the service.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await live.stub.CreateAgent(
            pb.CreateAgentRequest(
                agent=agent_pb2.Agent(agent_id="huge", system_message="x" * (5 * 1024 * 1024))
            )
        )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A large but transportable field is refused by validation.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await live.stub.CreateAgent(
            pb.CreateAgentRequest(
                agent=agent_pb2.Agent(agent_id="big", system_message="x" * 200_000)
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The service still works and nothing was written by the bad calls.
    listed = await live.stub.ListAgents(pb.ListAgentsRequest())
    assert [a.agent_id for a in listed.agents] == ["keep"]
    assert await live.app.stores.store.integrity_check()  # type: ignore[attr-defined] == "ok"
