"""One turn per session across replicas: REJECT and ENQUEUE decided in the database."""

from __future__ import annotations

import asyncio
import itertools

import grpc
import pytest
from replica_helpers import Replicas, create_agent

from helpers import drain, error_info, final_of, requests_of, run_turn, start
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import run_pb2
from orchestrator_devmodel import DevModelAdmin


async def test_agents_and_conversations_are_shared(replicas: Replicas) -> None:
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        for i, stub in enumerate(stubs):
            assert final_of(await run_turn(stub, f"turn {i}")).output == f"Echo: turn {i}"
        messages = await stubs[2].ListMessages(pb.ListMessagesRequest(agent_id="shared"))
        assert [m.content for m in messages.messages] == [
            text for i in range(3) for text in (f"turn {i}", f"Echo: turn {i}")
        ]
        # Page tokens made by one replica are valid on the others.
        first = await stubs[0].ListRuns(pb.ListRunsRequest(page_size=1))
        rest = await stubs[1].ListRuns(
            pb.ListRunsRequest(page_size=5, page_token=first.next_page_token)
        )
        assert len(first.runs) + len(rest.runs) == 3


async def first_event(call: grpc.aio.StreamStreamCall) -> run_pb2.RunEvent | grpc.aio.AioRpcError:
    try:
        event: run_pb2.RunEvent = await call.read()
        return event
    except grpc.aio.AioRpcError as error:
        return error


async def test_thirty_rejecting_starts_on_one_session_run_exactly_one(
    replicas: Replicas, admin: DevModelAdmin
) -> None:
    await admin.set_rules([{"match": {"contains": "hold"}, "reply": {"stall": True}}])
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        calls = [stubs[i % 3].Run(requests_of(start(f"hold {i}"))) for i in range(30)]
        outcomes = await asyncio.gather(*(first_event(c) for c in calls))
        started = [o for o in outcomes if isinstance(o, run_pb2.RunEvent)]
        refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(started) == 1, outcomes
        assert started[0].run_started.status == run_pb2.RUN_STATUS_RUNNING
        assert len(refused) == 29
        for error in refused:
            assert error.code() == grpc.StatusCode.ABORTED
            info = error_info(error)
            assert info.reason == "SESSION_BUSY"
            assert info.metadata["active_run_id"] == started[0].run_id
        runs = await stubs[1].ListRuns(pb.ListRunsRequest(agent_id="shared"))
        assert [r.run_id for r in runs.runs] == [started[0].run_id]
        for call in calls:
            call.cancel()


async def test_thirty_enqueued_starts_run_one_at_a_time_in_arrival_order(
    replicas: Replicas, admin: DevModelAdmin
) -> None:
    # Each turn is slow enough that the later ones arrive while it runs.
    await admin.set_rules([{"match": {"contains": "q"}, "reply": {"latency_ms": 30}}])
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        calls = []
        for i in range(30):
            call = stubs[i % 3].Run(
                requests_of(start(f"q{i}", busy_policy=run_pb2.BUSY_POLICY_ENQUEUE))
            )
            # Arrival order is defined: the next start is sent once this one is stored.
            announced = await call.read()
            assert announced.WhichOneof("event") == "run_started"
            calls.append((i, announced.run_id, call))
        for i, _, call in calls:
            events = await drain(call)
            assert final_of(events).output == f"Echo: q{i}"
        runs = (await stubs[2].ListRuns(pb.ListRunsRequest(agent_id="shared", page_size=50))).runs
        assert all(r.status == run_pb2.RUN_STATUS_COMPLETED for r in runs)
        by_start = sorted(runs, key=lambda r: r.start_time.ToNanoseconds())
        assert [r.input for r in by_start] == [f"q{i}" for i in range(30)]
        for earlier, later in itertools.pairwise(by_start):
            assert later.start_time.ToNanoseconds() >= earlier.end_time.ToNanoseconds()
        messages = await stubs[1].ListMessages(
            pb.ListMessagesRequest(agent_id="shared", page_size=100)
        )
        assert [m.content for m in messages.messages] == [
            text for i in range(30) for text in (f"q{i}", f"Echo: q{i}")
        ]


async def test_a_request_id_repeated_on_another_replica_follows_then_replays_the_run(
    replicas: Replicas, admin: DevModelAdmin
) -> None:
    await admin.set_rules([{"match": {"contains": "slow"}, "reply": {"latency_ms": 600}}])
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        first = stubs[0].Run(requests_of(start("slow answer", request_id="key-1")))
        started = await first.read()
        # While it runs on replica 0, the same start on replica 1 follows it to its end.
        followed = await run_turn(stubs[1], "slow answer", request_id="key-1")
        assert followed[0].run_id == started.run_id and followed[0].run_started.replayed
        assert final_of(followed).output == "Echo: slow answer"
        assert final_of(await drain(first)).output == "Echo: slow answer"
        # Once it ended, replica 2 replays it; a different message with the key is refused.
        replayed = await run_turn(stubs[2], "slow answer", request_id="key-1")
        assert replayed[0].run_id == started.run_id and replayed[0].run_started.replayed
        with pytest.raises(grpc.aio.AioRpcError) as conflict:
            await run_turn(stubs[2], "another message", request_id="key-1")
        assert error_info(conflict.value).reason == "REQUEST_ID_CONFLICT"
        runs = await stubs[0].ListRuns(pb.ListRunsRequest(agent_id="shared"))
        assert [r.run_id for r in runs.runs] == [started.run_id]
