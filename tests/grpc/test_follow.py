"""FollowRun, detached runs and BusyPolicy INTERRUPT (issue 15), through real stubs.

The model is the development server over HTTP; slow answers are paced by its rules so
that a run is still going when the test disconnects, follows or interrupts it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from helpers import (
    LiveServer,
    drain,
    error_info,
    final_of,
    run_turn,
    start,
    start_live_server,
    text_of,
)
from orchestrator.v1 import agent_pb2, collaboration_pb2, run_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc
from orchestrator_devmodel import DevModelAdmin, DevModelServer

WORDS = " ".join(f"w{i}" for i in range(40))
SLOW = {"match": {"contains": "slow"}, "reply": {"tokens_per_second": 40, "text": WORDS}}
CONTINUE = run_pb2.DISCONNECT_POLICY_CONTINUE


async def make_agent(live: LiveServer, agent_id: str = "fa") -> None:
    await live.stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id=agent_id)))


def follow_start(run_id: str, after: int = 0) -> pb.FollowRunRequest:
    return pb.FollowRunRequest(start=pb.FollowStart(run_id=run_id, after_sequence=after))


async def sent(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def follow(
    stub: pb_grpc.OrchestratorServiceStub, run_id: str, after: int = 0
) -> list[run_pb2.RunEvent]:
    """Follow a run to its end on a stream that sends only the start."""
    call = stub.FollowRun(sent(follow_start(run_id, after)), timeout=30)
    return [event async for event in call]


def wire(events: Sequence[run_pb2.RunEvent]) -> list[bytes]:
    return [e.SerializeToString(deterministic=True) for e in events]


async def read_until(call: Any, count: int) -> list[run_pb2.RunEvent]:
    """The first `count` events of a call read with read()."""
    events = []
    while len(events) < count:
        event = await call.read()
        assert event is not grpc.aio.EOF, "stream ended early"
        events.append(event)
    return events


async def final_record(stub: pb_grpc.OrchestratorServiceStub, run_id: str) -> run_pb2.Run:
    """The run's record once it has ended (waiting on the run's own FollowRun)."""
    await follow(stub, run_id, 10_000)
    return (await stub.GetRun(pb.GetRunRequest(run_id=run_id))).run


async def test_follow_replays_a_finished_run_exactly(live: LiveServer, tmp_path: Path) -> None:
    await make_agent(live)
    events = await run_turn(live.stub, "hello there", "fa")
    run_id = events[0].run_id
    assert wire(await follow(live.stub, run_id)) == wire(events)
    assert wire(await follow(live.stub, run_id, 2)) == wire(events[2:])
    assert await follow(live.stub, run_id, len(events)) == []


async def test_follow_reads_the_journal_after_a_restart(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    db = tmp_path / "journal.db"
    first = await start_live_server(db, devmodel.base_url)
    await make_agent(first)
    events = await run_turn(first.stub, "remember this", "fa")
    await first.stop()  # writes the journal's last chunk
    second = await start_live_server(db, devmodel.base_url)
    try:
        assert second.app.journal.feed("default", events[0].run_id) is None  # from the store
        assert wire(await follow(second.stub, events[0].run_id)) == wire(events)
        assert wire(await follow(second.stub, events[0].run_id, 3)) == wire(events[3:])
    finally:
        await second.stop()


async def test_detached_run_goes_on_after_its_caller_leaves(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    await make_agent(live)
    call = live.stub.Run(sent(start("slow story", "fa", on_disconnect=CONTINUE)), timeout=30)
    seen = await read_until(call, 3)  # started and two deltas
    call.cancel()  # the caller goes away mid-answer
    rest = await follow(live.new_stub(), seen[0].run_id, seen[-1].sequence)
    assert [e.sequence for e in seen + rest] == list(range(1, len(seen) + len(rest) + 1))
    record = (await live.stub.GetRun(pb.GetRunRequest(run_id=seen[0].run_id))).run
    assert record.status == run_pb2.RUN_STATUS_COMPLETED
    assert text_of(seen + rest) == record.output == final_of(rest).output == WORDS


async def test_a_caller_leaving_cancels_by_default_and_the_journal_says_so(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    await make_agent(live)
    call = live.stub.Run(sent(start("slow story", "fa")), timeout=30)
    seen = await read_until(call, 2)
    call.cancel()
    record = await final_record(live.stub, seen[0].run_id)
    assert record.status == run_pb2.RUN_STATUS_CANCELLED
    journal = await follow(live.stub, seen[0].run_id)
    assert wire(journal[:2]) == wire(seen)
    assert journal[-1].run_cancelled.message == "the client went away"
    assert [e.sequence for e in journal] == list(range(1, len(journal) + 1))


async def test_many_followers_of_a_live_run_see_what_its_caller_sees(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    await make_agent(live)
    call = live.stub.Run(sent(start("slow story", "fa")), timeout=30)
    [started] = await read_until(call, 1)
    stubs = [live.new_stub() for _ in range(4)]
    followers = [asyncio.create_task(follow(stubs[i % 4], started.run_id)) for i in range(40)]
    rest = await drain(call)
    for seen in await asyncio.gather(*followers):
        assert wire(seen) == wire([started, *rest])


async def test_interrupt_cancels_the_session_run_and_starts_at_once(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    await make_agent(live)
    first = live.stub.Run(sent(start("slow story", "fa", session_id="chat")), timeout=30)
    [started] = await read_until(first, 1)
    second = await run_turn(
        live.new_stub(),
        "never mind",
        "fa",
        session_id="chat",
        busy_policy=run_pb2.BUSY_POLICY_INTERRUPT,
    )
    new_run = second[0].run_id
    assert second[0].run_started.status == run_pb2.RUN_STATUS_RUNNING
    assert final_of(second).output == "Echo: never mind"
    ended = await drain(first)
    assert ended[-1].run_cancelled.reason == "RUN_SUPERSEDED"
    assert new_run in ended[-1].run_cancelled.message
    record = (await live.stub.GetRun(pb.GetRunRequest(run_id=started.run_id))).run
    assert record.status == run_pb2.RUN_STATUS_CANCELLED
    assert record.error_reason == "RUN_SUPERSEDED"
    assert record.error_message == f"interrupted by run {new_run}"
    # The interrupted run keeps its partial output, as any cancelled run does.
    assert WORDS.startswith(record.output)


async def test_interrupt_on_an_idle_session_just_runs(live: LiveServer) -> None:
    await make_agent(live)
    events = await run_turn(
        live.stub, "hi", "fa", session_id="idle", busy_policy=run_pb2.BUSY_POLICY_INTERRUPT
    )
    assert final_of(events).output == "Echo: hi"


ANSWER_WITH_TOOL_RESULTS = {"match": {"last_role": "tool"}, "reply": {"echo_tool_results": True}}


async def test_a_pending_client_tool_call_is_answered_by_a_follower(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules(
        [
            ANSWER_WITH_TOOL_RESULTS,
            {"reply": {"tool_calls": [{"name": "lookup", "arguments": {"key": "k"}}]}},
        ]
    )
    await make_agent(live)
    tool = run_pb2.ToolDefinition(
        name="lookup",
        parameters_json_schema=json.dumps({"type": "object", "properties": {}}),
    )
    call = live.stub.Run(
        sent(start("look it up", "fa", client_tools=[tool], on_disconnect=CONTINUE)), timeout=30
    )
    seen = await read_until(call, 1)
    while seen[-1].WhichOneof("event") != "tool_call":
        seen += await read_until(call, 1)
    call.cancel()  # the caller vanishes with the call unanswered
    answers: asyncio.Queue[pb.FollowRunRequest | None] = asyncio.Queue()
    await answers.put(follow_start(seen[0].run_id, seen[-1].sequence))

    async def requests() -> AsyncIterator[pb.FollowRunRequest]:
        while (item := await answers.get()) is not None:
            yield item

    follower = live.new_stub().FollowRun(requests(), timeout=30)
    resent = await follower.read()
    assert resent.sequence == seen[-1].sequence  # the same call, sent again
    assert resent.tool_call.call.call_id == seen[-1].tool_call.call.call_id
    await answers.put(
        pb.FollowRunRequest(
            tool_result=run_pb2.ToolResult(call_id=resent.tool_call.call.call_id, output="42")
        )
    )
    rest = []
    while (event := await follower.read()) is not grpc.aio.EOF:
        rest.append(event)
    await answers.put(None)
    assert final_of(rest).output == "42"


async def test_cancel_on_a_follow_stream_cancels_the_run(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    await make_agent(live)
    call = live.stub.Run(sent(start("slow story", "fa", on_disconnect=CONTINUE)), timeout=30)
    [started] = await read_until(call, 1)
    call.cancel()
    events = [
        e
        async for e in live.new_stub().FollowRun(
            sent(follow_start(started.run_id, 1), pb.FollowRunRequest(cancel=run_pb2.CancelTurn())),
            timeout=30,
        )
    ]
    assert events[-1].run_cancelled.reason == "RUN_CANCELLED"
    record = (await live.stub.GetRun(pb.GetRunRequest(run_id=started.run_id))).run
    assert record.status == run_pb2.RUN_STATUS_CANCELLED


# -- abuse ------------------------------------------------------------------------------


async def follow_error(
    stub: pb_grpc.OrchestratorServiceStub, *requests: pb.FollowRunRequest, **kwargs: Any
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.FollowRun(sent(*requests), timeout=10, **kwargs):
            pass
    return caught.value


async def test_follow_refuses_what_it_cannot_serve(live: LiveServer) -> None:
    await make_agent(live)
    events = await run_turn(live.stub, "mine", "fa")
    run_id = events[0].run_id
    missing = await follow_error(live.stub, follow_start("run_nope"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(missing).reason == "RUN_NOT_FOUND"
    other_tenant = await follow_error(
        live.stub, follow_start(run_id), metadata=(("x-tenant-id", "other"),)
    )
    assert other_tenant.code() == grpc.StatusCode.NOT_FOUND
    negative = await follow_error(live.stub, follow_start(run_id, -1))
    assert negative.code() == grpc.StatusCode.INVALID_ARGUMENT
    no_start = await follow_error(
        live.stub, pb.FollowRunRequest(cancel=run_pb2.CancelTurn(run_id=run_id))
    )
    assert error_info(no_start).reason == "STREAM_PROTOCOL_VIOLATION"
    empty = await follow_error(live.stub, pb.FollowRunRequest())
    assert error_info(empty).reason == "STREAM_PROTOCOL_VIOLATION"
    # Half-closing without a start is a plain, empty end.
    assert [e async for e in live.stub.FollowRun(sent(), timeout=10)] == []


async def test_follow_commands_that_cannot_apply_end_the_stream(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    await make_agent(live)
    call = live.stub.Run(sent(start("slow story", "fa")), timeout=30)
    [started] = await read_until(call, 1)
    stray = await follow_error(
        live.new_stub(),
        follow_start(started.run_id),
        pb.FollowRunRequest(tool_result=run_pb2.ToolResult(call_id="nobody")),
    )
    assert stray.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(stray).reason == "UNEXPECTED_TOOL_RESULT"
    twice = await follow_error(
        live.new_stub(), follow_start(started.run_id), follow_start(started.run_id)
    )
    assert error_info(twice).reason == "STREAM_PROTOCOL_VIOLATION"
    other = await follow_error(
        live.new_stub(),
        follow_start(started.run_id),
        pb.FollowRunRequest(cancel=run_pb2.CancelTurn(run_id="run_other")),
    )
    assert other.code() == grpc.StatusCode.INVALID_ARGUMENT
    call.cancel()


async def test_unknown_policy_numbers_are_refused(live: LiveServer) -> None:
    await make_agent(live)
    for fields in ({"busy_policy": 9}, {"on_disconnect": 7}):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await run_turn(live.stub, "hi", "fa", **fields)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(caught.value).reason == "INVALID_ARGUMENT"


async def test_pipeline_runs_are_followed_through_their_steps(live: LiveServer) -> None:
    await make_agent(live)
    steps = [collaboration_pb2.PipelineStep(agent_id="fa", message_template="{input}")]
    events = [
        e
        async for e in live.stub.RunPipeline(
            collaboration_pb2.RunPipelineRequest(steps=steps, input="x")
        )
    ]
    pipeline_run = events[0].run_id
    refused = await follow_error(live.stub, follow_start(pipeline_run))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(refused).reason == "RUN_EVENTS_UNAVAILABLE"
    step_runs = {e.run_event.run_id for e in events if e.WhichOneof("event") == "run_event"}
    [step_run] = step_runs
    step_events = await follow(live.stub, step_run)
    assert final_of(step_events).output == "Echo: x"


async def test_pruned_journal_answers_run_events_unavailable(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    live = await start_live_server(tmp_path / "p.db", devmodel.base_url, journal_max_mb=1)
    try:
        await make_agent(live)
        events = await run_turn(live.stub, "short-lived", "fa")
        await live.app.journal.flush()
        live.app.journal._retention = -1.0  # everything is past retention now
        assert await live.app.journal.prune() >= 1
        gone = await follow_error(live.stub, follow_start(events[0].run_id))
        assert gone.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(gone).reason == "RUN_EVENTS_UNAVAILABLE"
        # The run's record stays.
        record = (await live.stub.GetRun(pb.GetRunRequest(run_id=events[0].run_id))).run
        assert record.status == run_pb2.RUN_STATUS_COMPLETED
    finally:
        await live.stop()


async def test_a_run_waits_its_resume_window_for_a_follower(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    await make_agent(live)
    call = live.stub.Run(sent(start("slow story", "fa", resume_window_seconds=1)), timeout=30)
    seen = await read_until(call, 2)
    call.cancel()  # a dropped connection; the caller comes back within the window
    rest = await follow(live.new_stub(), seen[0].run_id, seen[-1].sequence)
    assert text_of(seen + rest) == final_of(rest).output == WORDS
    record = (await live.stub.GetRun(pb.GetRunRequest(run_id=seen[0].run_id))).run
    assert record.status == run_pb2.RUN_STATUS_COMPLETED


async def test_a_run_nobody_comes_back_for_is_cancelled_after_its_window(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    slower = {"match": {"contains": "slow"}, "reply": {"tokens_per_second": 5, "text": WORDS}}
    await admin.set_rules([slower])
    await make_agent(live)
    call = live.stub.Run(sent(start("slow story", "fa", resume_window_seconds=1)), timeout=30)
    [started] = await read_until(call, 1)
    active = live.app.runs.active.get("default", started.run_id)
    assert active is not None
    call.cancel()  # the caller died
    # Waited for here, in the server, not by following (a follower keeps the run).
    await asyncio.wait_for(asyncio.shield(active.done), 20)
    record = (await live.stub.GetRun(pb.GetRunRequest(run_id=started.run_id))).run
    assert record.status == run_pb2.RUN_STATUS_CANCELLED
    assert record.error_message == "the client went away"
    assert WORDS.startswith(record.output) and record.output != WORDS


async def test_resume_windows_outside_their_range_are_refused(live: LiveServer) -> None:
    await make_agent(live)
    for window in (0.5, 301.0, float("nan"), -1.0):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await run_turn(live.stub, "hi", "fa", resume_window_seconds=window)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "start.resume_window_seconds" in caught.value.details()


async def test_client_tool_timeouts_are_bounded(live: LiveServer) -> None:
    # A detached run waiting for a client tool nobody will answer must still end.
    await make_agent(live)
    for timeout in (3601.0, float("inf"), -0.5):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await run_turn(live.stub, "hi", "fa", client_tool_timeout_seconds=timeout)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "start.client_tool_timeout_seconds" in caught.value.details()


async def test_follow_streams_count_against_the_stream_quota(
    devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    await admin.set_rules([SLOW])
    live = await start_live_server(tmp_path / "q.db", devmodel.base_url, max_streams_per_tenant=2)
    try:
        await make_agent(live)
        call = live.stub.Run(sent(start("slow story", "fa")), timeout=30)
        [started] = await read_until(call, 1)
        holder = live.new_stub().FollowRun(sent(follow_start(started.run_id)), timeout=30)
        await holder.read()  # two streams open now: the run's own and this follower
        refused = await follow_error(live.new_stub(), follow_start(started.run_id))
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(refused).reason == "QUOTA_EXCEEDED"
        call.cancel()
        holder.cancel()
    finally:
        await live.stop()


async def test_a_refused_interrupt_cancels_nothing(
    devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    await admin.set_rules([SLOW])
    live = await start_live_server(
        tmp_path / "i.db", devmodel.base_url, max_stored_bytes_per_tenant=4000
    )
    try:
        await make_agent(live)
        call = live.stub.Run(sent(start("slow story", "fa", session_id="s")), timeout=30)
        [started] = await read_until(call, 1)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await run_turn(
                live.new_stub(),
                "x" * 6000,  # past the tenant's stored bytes: refused at admission
                "fa",
                session_id="s",
                busy_policy=run_pb2.BUSY_POLICY_INTERRUPT,
            )
        assert error_info(caught.value).reason == "QUOTA_EXCEEDED"
        rest = await drain(call)
        assert isinstance(final_of(rest), run_pb2.RunCompleted)  # the running turn went on
        record = (await live.stub.GetRun(pb.GetRunRequest(run_id=started.run_id))).run
        assert record.status == run_pb2.RUN_STATUS_COMPLETED
    finally:
        await live.stop()
