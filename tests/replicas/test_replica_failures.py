"""Replicas that die, stall or are asked by a peer: cross-replica cancel, the lease
reaper after SIGKILL, fencing after SIGSTOP, and agent writes seen by every replica."""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import pytest
from replica_helpers import LEASE_SECONDS, Replicas, create_agent, run_status, until_status

from helpers import drain, error_info, final_of, requests_of, run_turn, start
from orchestrator.v1 import agent_pb2, run_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin

INTERRUPTED = run_pb2.RUN_STATUS_INTERRUPTED


async def test_cancel_run_reaches_the_replica_executing_it(
    replicas: Replicas, admin: DevModelAdmin
) -> None:
    await admin.set_rules([{"match": {"contains": "hold"}, "reply": {"stall": True}}])
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        call = stubs[0].Run(requests_of(start("hold on")))
        started = await call.read()
        async with asyncio.timeout(10):  # the model server's state: polled
            while True:
                if (await admin.stats())["in_flight"] >= 1:
                    break
                await asyncio.sleep(0.01)
        sent = time.time()
        cancelled = await stubs[1].CancelRun(pb.CancelRunRequest(run_id=started.run_id))
        assert cancelled.run.status == run_pb2.RUN_STATUS_CANCELLED
        assert cancelled.run.error_reason == "RUN_CANCELLED"
        events = await drain(call)
        assert events[-1].run_cancelled.reason == "RUN_CANCELLED"
        closed = await admin.events(outcome="client_disconnected", wait=5)
        assert len(closed) == 1 and closed[0]["finished_at"] - sent < 2.0
        print(f"upstream request closed {closed[0]['finished_at'] - sent:.3f} s after CancelRun")
        # A finished run is returned unchanged, by any replica.
        again = await stubs[2].CancelRun(pb.CancelRunRequest(run_id=started.run_id))
        assert again.run.status == run_pb2.RUN_STATUS_CANCELLED


async def test_a_killed_replicas_runs_are_interrupted_while_the_others_complete(
    replicas: Replicas, admin: DevModelAdmin
) -> None:
    await admin.set_rules(
        [
            {"match": {"contains": "doomed"}, "reply": {"stall": True}},
            {"match": {"contains": "survivor"}, "reply": {"latency_ms": 1500}},
        ]
    )
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        doomed = [stubs[0].Run(requests_of(start("doomed", session_id=f"d{i}"))) for i in range(3)]
        doomed_ids = [(await call.read()).run_id for call in doomed]
        survivors = [
            asyncio.ensure_future(run_turn(stubs[1 + i % 2], "survivor", session_id=f"s{i}"))
            for i in range(4)
        ]
        replicas.processes[0].kill()
        took = await until_status(stubs[1], doomed_ids, INTERRUPTED, within=LEASE_SECONDS * 4)
        assert took <= LEASE_SECONDS * 2, took
        for run_id in doomed_ids:
            run = (await stubs[2].GetRun(pb.GetRunRequest(run_id=run_id))).run
            assert run.error_reason == "RUN_INTERRUPTED"
        for survivor in survivors:
            assert final_of(await survivor).output == "Echo: survivor"
        # The killed replica's sessions are free again.
        assert final_of(await run_turn(stubs[1], "after", session_id="d0")).output == "Echo: after"


async def test_a_stalled_replica_past_its_lease_cannot_overwrite_the_outcome(
    replicas: Replicas, admin: DevModelAdmin
) -> None:
    # The answer arrives while the replica is stopped: it would complete the run on waking.
    await admin.set_rules([{"match": {"contains": "late"}, "reply": {"latency_ms": 500}}])
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        call = stubs[0].Run(requests_of(start("late answer")))
        run_id = (await call.read()).run_id
        stalled = replicas.processes[0].proc
        assert stalled is not None
        stalled.send_signal(signal.SIGSTOP)
        try:
            await until_status(stubs[1], [run_id], INTERRUPTED, within=LEASE_SECONDS * 4)
        finally:
            stalled.send_signal(signal.SIGCONT)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await drain(call)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(ended.value).reason == "RUN_INTERRUPTED"
        assert "lost its lease" in (ended.value.details() or "")
        # Woken, it goes on serving under a new lease, and the outcome stays.
        assert final_of(await run_turn(stubs[0], "fresh", session_id="x")).output == "Echo: fresh"
        assert await run_status(stubs[2], run_id) == INTERRUPTED
        messages = await stubs[2].ListMessages(pb.ListMessagesRequest(agent_id="shared"))
        assert [m.content for m in messages.messages] == ["late answer"]


async def test_an_agent_written_on_one_replica_is_run_current_on_the_next(
    replicas: Replicas, admin: DevModelAdmin
) -> None:
    trials = 1000
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        # Every replica has the agent cached before the writes begin.
        for stub in stubs:
            await run_turn(stub, "warm", session_id="warm")
        await admin.clear_requests()
        for i in range(trials):
            agent = agent_pb2.Agent(agent_id="shared", system_message=f"version {i}")
            await stubs[i % 3].UpdateAgent(
                pb.UpdateAgentRequest(agent=agent, update_mask={"paths": ["system_message"]})
            )
            await run_turn(stubs[(i + 1) % 3], f"trial {i}", session_id=f"t{i % 7}")
        requests = await admin.requests()
    seen = {}
    for request in requests:
        messages = request["body"]["messages"]
        seen[messages[-1]["content"]] = messages[0]["content"]
    stale = [i for i in range(trials) if seen[f"trial {i}"] != f"version {i}"]
    assert len(seen) == trials and stale == []
