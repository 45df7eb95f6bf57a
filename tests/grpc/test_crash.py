"""A server killed with SIGKILL mid-run loses nothing that was completed (issue 3)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc

from helpers import ServerProcess, final_of, free_port, requests_of, run_turn, start
from orchestrator.v1 import agent_pb2, run_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc
from orchestrator_devmodel import DevModelAdmin, DevModelServer


async def test_sigkill_mid_run_then_restart(
    devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    db = tmp_path / "crash.db"
    server = ServerProcess(db, devmodel.base_url, free_port())
    server.start()
    try:
        await server.wait_serving()
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            await stub.CreateAgent(
                pb.CreateAgentRequest(
                    agent=agent_pb2.Agent(agent_id="durable"), set_as_default=True
                )
            )
            for i in range(3):
                assert final_of(await run_turn(stub, f"turn {i}")).output == f"Echo: turn {i}"
            await admin.set_rules([{"match": {"contains": "doomed"}, "reply": {"stall": True}}])
            call = stub.Run(requests_of(start("doomed turn")))
            doomed = await call.read()
            assert doomed.run_started.status == run_pb2.RUN_STATUS_RUNNING
            server.kill()
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    server.start()
    try:
        await server.wait_serving()
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.OrchestratorServiceStub(channel)
            run = (await stub.GetRun(pb.GetRunRequest(run_id=doomed.run_id))).run
            assert run.status == run_pb2.RUN_STATUS_INTERRUPTED
            assert run.error_reason == "RUN_INTERRUPTED"
            messages = await stub.ListMessages(pb.ListMessagesRequest(agent_id="durable"))
            assert [m.content for m in messages.messages] == [
                "turn 0",
                "Echo: turn 0",
                "turn 1",
                "Echo: turn 1",
                "turn 2",
                "Echo: turn 2",
                "doomed turn",
            ]
            runs = await stub.ListRuns(pb.ListRunsRequest(agent_id="durable"))
            assert [r.status for r in runs.runs] == [run_pb2.RUN_STATUS_INTERRUPTED] + [
                run_pb2.RUN_STATUS_COMPLETED
            ] * 3
            # The conversation continues after the restart.
            await admin.clear_rules()
            assert final_of(await run_turn(stub, "after")).output == "Echo: after"
        assert server.terminate() == 0
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
