"""The Run stream, memory, concurrency, cancellation and model faults (issue 3).

Every model call goes through the real openai client over HTTP to the development model
server; assertions about what the model saw read the requests that server recorded.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from helpers import (
    LiveServer,
    drain,
    error_info,
    final_of,
    requests_of,
    run_turn,
    start,
    start_live_server,
    text_of,
)
from orchestrator.v1 import agent_pb2, run_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin, DevModelServer


async def make_agent(live: LiveServer, agent_id: str, **kwargs: Any) -> None:
    default = kwargs.pop("set_as_default", False)
    await live.stub.CreateAgent(
        pb.CreateAgentRequest(
            agent=agent_pb2.Agent(agent_id=agent_id, **kwargs), set_as_default=default
        )
    )


def kinds(events: list[run_pb2.RunEvent]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


async def test_turn_streams_deltas_and_persists_history(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await make_agent(live, "research_agent", system_message="You are a research assistant.")
    events = await run_turn(live.stub, "What is quantum computing?", "research_agent")
    assert kinds(events)[0] == "run_started"
    assert kinds(events)[-2:] == ["message_completed", "run_completed"]
    # Deltas that queue up while the stream is busy are sent as one message.
    assert 1 <= kinds(events).count("text_delta") <= 5
    final = final_of(events)
    assert text_of(events) == final.output == "Echo: What is quantum computing?"
    assert final.usage.completion_tokens == 5
    assert final.usage.prompt_tokens > 0
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens
    # One run id, sequence numbers 1..n without gaps.
    assert {e.run_id for e in events} == {events[0].run_id}
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))

    await run_turn(live.stub, "And entanglement?", "research_agent")
    received = await admin.requests()
    assert received[-1]["body"]["messages"] == [
        {"role": "system", "content": "You are a research assistant."},
        {"role": "user", "content": "What is quantum computing?"},
        {"role": "assistant", "content": "Echo: What is quantum computing?"},
        {"role": "user", "content": "And entanglement?"},
    ]
    stored = await live.stub.ListMessages(pb.ListMessagesRequest(agent_id="research_agent"))
    assert [m.content for m in stored.messages] == [
        "What is quantum computing?",
        "Echo: What is quantum computing?",
        "And entanglement?",
        "Echo: And entanglement?",
    ]
    assert [m.sequence for m in stored.messages] == [1, 2, 3, 4]
    run = await live.stub.GetRun(pb.GetRunRequest(run_id=events[0].run_id))
    assert run.run.status == run_pb2.RUN_STATUS_COMPLETED
    assert run.run.output == final.output
    assert run.run.usage == final.usage


async def test_memory_window_sends_system_and_last_n(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await make_agent(
        live, "brief", system_message="sys", memory=agent_pb2.MemoryConfig(max_messages=3)
    )
    for i in range(4):
        await run_turn(live.stub, f"m{i}", "brief")
    last = (await admin.requests())[-1]["body"]["messages"]
    # system + the last 3 messages of the conversation (the new user message included).
    assert last == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "m2"},
        {"role": "assistant", "content": "Echo: m2"},
        {"role": "user", "content": "m3"},
    ]


async def test_multi_turn_on_one_stream_and_sessions(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await make_agent(live, "chat")
    call = live.stub.Run(
        requests_of(start("one", "chat", session_id="s1"), start("two", "chat", session_id="s1"))
    )
    events = [e async for e in call]
    outputs = [e.run_completed.output for e in events if e.WhichOneof("event") == "run_completed"]
    assert outputs == ["Echo: one", "Echo: two"]
    # The second turn saw the first; the default session is untouched.
    assert len((await admin.requests())[-1]["body"]["messages"]) == 3
    sessions = await live.stub.ListSessions(pb.ListSessionsRequest(agent_id="chat"))
    assert [(s.session_id, s.message_count) for s in sessions.sessions] == [("s1", 4)]
    deleted = await live.stub.DeleteSession(
        pb.DeleteSessionRequest(agent_id="chat", session_id="s1")
    )
    assert deleted.deleted_messages == 4
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await live.stub.DeleteSession(pb.DeleteSessionRequest(agent_id="chat", session_id="s1"))
    assert error_info(caught.value).reason == "SESSION_NOT_FOUND"


async def test_default_routing_and_unknown_agents(live: LiveServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_turn(live.stub, "hello")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(caught.value).reason == "NO_DEFAULT_AGENT"

    await make_agent(live, "router", set_as_default=True)
    events = await run_turn(live.stub, "to the default")
    assert {e.agent_id for e in events} == {"router"}
    assert final_of(events).output == "Echo: to the default"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_turn(live.stub, "hello", "nobody")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(caught.value).reason == "AGENT_NOT_FOUND"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_turn(live.stub, "", "router")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        call = live.stub.Run(requests_of(run_pb2.RunRequest(cancel=run_pb2.CancelTurn())))
        [e async for e in call]
    assert error_info(caught.value).reason == "STREAM_PROTOCOL_VIOLATION"


async def test_duplicate_request_id_does_not_duplicate_the_turn(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await make_agent(live, "idem")
    first = await run_turn(live.stub, "charge the card", "idem", request_id="req-42")
    again = await run_turn(live.stub, "charge the card", "idem", request_id="req-42")
    assert again[0].run_started.replayed
    assert again[0].run_id == first[0].run_id
    assert final_of(again).output == final_of(first).output
    assert len(await admin.requests()) == 1
    messages = await live.stub.ListMessages(pb.ListMessagesRequest(agent_id="idem"))
    assert len(messages.messages) == 2
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_turn(live.stub, "something else", "idem", request_id="req-42")
    assert error_info(caught.value).reason == "REQUEST_ID_CONFLICT"


async def test_duplicate_request_id_while_running_follows_the_run(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([{"match": {"contains": "slow"}, "reply": {"latency_ms": 300}}])
    await make_agent(live, "idem2")
    both = await asyncio.gather(
        run_turn(live.stub, "slow job", "idem2", request_id="r1"),
        run_turn(live.new_stub(), "slow job", "idem2", request_id="r1"),
    )
    assert both[0][0].run_id == both[1][0].run_id
    assert final_of(both[0]).output == final_of(both[1]).output == "Echo: slow job"
    assert len(await admin.requests()) == 1


async def test_100_concurrent_runs_on_100_sessions(live: LiveServer) -> None:
    await make_agent(live, "busy")
    results = await asyncio.gather(
        *(run_turn(live.stub, f"hello {i}", "busy", session_id=f"s{i}") for i in range(100))
    )
    assert [final_of(r).output for r in results] == [f"Echo: hello {i}" for i in range(100)]
    sessions = await live.stub.ListSessions(pb.ListSessionsRequest(agent_id="busy", page_size=1000))
    assert len(sessions.sessions) == 100
    assert all(s.message_count == 2 for s in sessions.sessions)


async def test_busy_session_reject_and_enqueue(live: LiveServer, admin: DevModelAdmin) -> None:
    await admin.set_rules([{"match": {"contains": "first"}, "reply": {"latency_ms": 400}}])
    await make_agent(live, "single")
    first = live.stub.Run(requests_of(start("first question", "single")))
    started = await first.read()
    assert started.run_started.status == run_pb2.RUN_STATUS_RUNNING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_turn(live.new_stub(), "second question", "single")
    assert caught.value.code() == grpc.StatusCode.ABORTED
    info = error_info(caught.value)
    assert info.reason == "SESSION_BUSY"
    assert info.metadata["active_run_id"] == started.run_id
    rest = await drain(first)
    assert final_of(rest).output == "Echo: first question"

    # Enqueue: both complete, in arrival order, with an intact history.
    first = live.stub.Run(requests_of(start("first again", "single")))
    await first.read()
    queued = asyncio.ensure_future(
        run_turn(
            live.new_stub(),
            "queued question",
            "single",
            busy_policy=run_pb2.BUSY_POLICY_ENQUEUE,
        )
    )
    rest = await drain(first)
    queued_events = await queued
    assert queued_events[0].run_started.status == run_pb2.RUN_STATUS_QUEUED
    assert final_of(queued_events).output == "Echo: queued question"
    messages = await live.stub.ListMessages(pb.ListMessagesRequest(agent_id="single"))
    assert [m.content for m in messages.messages] == [
        "first question",
        "Echo: first question",
        "first again",
        "Echo: first again",
        "queued question",
        "Echo: queued question",
    ]
    assert final_of(rest).output == "Echo: first again"


async def _partial_stream(live: LiveServer, admin: DevModelAdmin, agent_id: str) -> None:
    await admin.set_rules(
        [
            {
                "match": {"contains": "long"},
                "reply": {"tokens_per_second": 20, "text": " ".join(f"w{i}" for i in range(200))},
            }
        ]
    )
    await make_agent(live, agent_id)


async def assert_upstream_closed_quickly(admin: DevModelAdmin, cancelled_at: float) -> None:
    events = await admin.events(outcome="client_disconnected", wait=5)
    assert events, "the model server never saw the connection close"
    assert events[-1]["finished_at"] - cancelled_at < 0.1


async def test_cancel_message_closes_upstream_and_keeps_stream(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await _partial_stream(live, admin, "canceller")
    queue: asyncio.Queue[run_pb2.RunRequest | None] = asyncio.Queue()

    async def requests():  # type: ignore[no-untyped-def]
        while (item := await queue.get()) is not None:
            yield item

    call = live.stub.Run(requests())
    await queue.put(start("a long answer please", "canceller"))
    run_id = (await call.read()).run_id
    while (await call.read()).WhichOneof("event") != "text_delta":
        pass
    cancelled_at = time.time()
    await queue.put(run_pb2.RunRequest(cancel=run_pb2.CancelTurn()))
    event = await call.read()
    while event.WhichOneof("event") == "text_delta":
        event = await call.read()
    assert event.WhichOneof("event") == "run_cancelled"
    assert event.run_cancelled.reason == "RUN_CANCELLED"
    await assert_upstream_closed_quickly(admin, cancelled_at)
    # The stream stays usable for the next turn.
    await queue.put(start("short", "canceller"))
    events = []
    while (event := await call.read()).WhichOneof("event") != "run_completed":
        events.append(event)
    assert event.run_completed.output == "Echo: short"
    await queue.put(None)
    run = (await live.stub.GetRun(pb.GetRunRequest(run_id=run_id))).run
    assert run.status == run_pb2.RUN_STATUS_CANCELLED
    assert run.output.startswith("w0")  # what was generated before the cancel
    # History: the cancelled turn's user message stays, its partial answer does not.
    messages = await live.stub.ListMessages(pb.ListMessagesRequest(agent_id="canceller"))
    assert [m.content for m in messages.messages] == [
        "a long answer please",
        "short",
        "Echo: short",
    ]


async def test_client_disconnect_cancels_the_run(live: LiveServer, admin: DevModelAdmin) -> None:
    await _partial_stream(live, admin, "leaver")
    call = live.stub.Run(requests_of(start("a long answer please", "leaver")))
    run_id = (await call.read()).run_id
    await call.read()
    cancelled_at = time.time()
    call.cancel()
    await assert_upstream_closed_quickly(admin, cancelled_at)
    run = await wait_for_status(live, run_id, run_pb2.RUN_STATUS_CANCELLED)
    assert run.error_reason == "RUN_CANCELLED"


async def test_deadline_cancels_the_run(live: LiveServer, admin: DevModelAdmin) -> None:
    await _partial_stream(live, admin, "late")
    call = live.stub.Run(requests_of(start("a long answer please", "late")), timeout=0.5)
    run_id = ""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for event in call:
            run_id = event.run_id
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await assert_upstream_closed_quickly(admin, time.time() - 0.05)
    run = await wait_for_status(live, run_id, run_pb2.RUN_STATUS_CANCELLED)
    assert run.error_reason == "DEADLINE_EXCEEDED"


async def test_cancel_run_from_another_connection(live: LiveServer, admin: DevModelAdmin) -> None:
    await _partial_stream(live, admin, "remote")
    call = live.stub.Run(requests_of(start("a long answer please", "remote")))
    run_id = (await call.read()).run_id
    await call.read()
    cancelled_at = time.time()
    reply = await live.new_stub().CancelRun(pb.CancelRunRequest(run_id=run_id))
    assert reply.run.status == run_pb2.RUN_STATUS_CANCELLED
    rest = await drain(call)
    assert rest[-1].WhichOneof("event") == "run_cancelled"
    await assert_upstream_closed_quickly(admin, cancelled_at)
    # Cancelling a finished run is not an error.
    again = await live.stub.CancelRun(pb.CancelRunRequest(run_id=run_id))
    assert again.run.status == run_pb2.RUN_STATUS_CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await live.stub.CancelRun(pb.CancelRunRequest(run_id="run_missing"))
    assert error_info(caught.value).reason == "RUN_NOT_FOUND"


async def wait_for_status(
    live: LiveServer, run_id: str, status: run_pb2.RunStatus.ValueType
) -> run_pb2.Run:
    """The run once it reached `status`. The server records a cancel right after the
    client's side of the stream closes; ListRuns/GetRun are the only way to observe it
    from a client, so this polls GetRun, bounded."""
    for _ in range(200):
        run = (await live.stub.GetRun(pb.GetRunRequest(run_id=run_id))).run
        if run.status == status:
            return run
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} stayed {run.status}")


async def test_rate_limit_is_retried(live: LiveServer, admin: DevModelAdmin) -> None:
    await admin.set_rules([{"times": 1, "reply": {"error": {"status": 429, "retry_after": 0.3}}}])
    await make_agent(live, "patient")
    began = time.monotonic()
    events = await run_turn(live.stub, "retry me", "patient")
    assert final_of(events).output == "Echo: retry me"
    assert time.monotonic() - began >= 0.3
    received = await admin.requests()
    assert len(received) == 2
    assert received[1]["received_at"] - received[0]["received_at"] >= 0.29


async def test_persistent_500_is_unavailable_while_others_complete(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules(
        [{"match": {"system_contains": "broken"}, "reply": {"error": {"status": 500}}}]
    )
    await make_agent(live, "broken", system_message="broken agent")
    await make_agent(live, "healthy", system_message="fine agent")
    broken = asyncio.ensure_future(run_turn(live.stub, "hi", "broken"))
    healthy = await asyncio.gather(
        *(run_turn(live.stub, f"hi {i}", "healthy", session_id=f"s{i}") for i in range(10))
    )
    assert all(final_of(r).output.startswith("Echo: hi") for r in healthy)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await broken
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    info = error_info(caught.value)
    assert info.reason == "MODEL_UNAVAILABLE"
    assert info.metadata["upstream_status"] == "500"
    runs = await live.stub.ListRuns(pb.ListRunsRequest(agent_id="broken"))
    assert [(r.status, r.error_reason) for r in runs.runs] == [
        (run_pb2.RUN_STATUS_FAILED, "MODEL_UNAVAILABLE")
    ]


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (401, grpc.StatusCode.FAILED_PRECONDITION, "MODEL_AUTH_FAILED"),
        (404, grpc.StatusCode.FAILED_PRECONDITION, "MODEL_NOT_FOUND"),
        (400, grpc.StatusCode.INVALID_ARGUMENT, "MODEL_REQUEST_REJECTED"),
    ],
)
async def test_provider_errors_are_mapped(
    live: LiveServer, admin: DevModelAdmin, status: int, code: grpc.StatusCode, reason: str
) -> None:
    await admin.set_rules([{"reply": {"error": {"status": status}}}])
    await make_agent(live, "mapped")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_turn(live.stub, "hi", "mapped")
    assert caught.value.code() == code
    assert error_info(caught.value).reason == reason


async def test_unknown_provider_and_cut_stream(live: LiveServer, admin: DevModelAdmin) -> None:
    await make_agent(live, "elsewhere", model=agent_pb2.ModelSpec(provider="nowhere"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_turn(live.stub, "hi", "elsewhere")
    assert error_info(caught.value).reason == "PROVIDER_NOT_CONFIGURED"
    await live.stub.UpdateAgent(
        pb.UpdateAgentRequest(
            agent=agent_pb2.Agent(agent_id="elsewhere"),
            update_mask=field_mask_pb2.FieldMask(paths=["model"]),
        )
    )
    await admin.set_rules([{"reply": {"cut_after_tokens": 2}}])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_turn(live.stub, "one two three four", "elsewhere")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(caught.value).reason == "MODEL_UNAVAILABLE"


async def test_list_runs_paginates_newest_first(live: LiveServer) -> None:
    await make_agent(live, "lister")
    ids = []
    for i in range(5):
        ids.append((await run_turn(live.stub, f"q{i}", "lister"))[0].run_id)
    seen: list[str] = []
    token = ""
    while True:
        page = await live.stub.ListRuns(
            pb.ListRunsRequest(agent_id="lister", page_size=2, page_token=token)
        )
        seen += [r.run_id for r in page.runs]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))


async def test_deleting_an_agent_mid_run_leaves_no_orphans(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([{"match": {"contains": "slow"}, "reply": {"latency_ms": 300}}])
    await make_agent(live, "doomed")
    call = live.stub.Run(requests_of(start("slow question", "doomed")))
    run_id = (await call.read()).run_id
    await live.stub.DeleteAgent(pb.DeleteAgentRequest(agent_id="doomed"))
    rest = await drain(call)
    # The caller still gets its answer; nothing is written for the deleted agent.
    assert final_of(rest).output == "Echo: slow question"
    conn = live.app.stores.store._read_conn  # type: ignore[attr-defined]
    assert conn is not None
    for table in ("messages", "sessions", "runs"):
        count = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE agent_id = 'doomed'").fetchone()[
            0
        ]
        assert count == 0, table
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await live.stub.GetRun(pb.GetRunRequest(run_id=run_id))
    assert error_info(caught.value).reason == "RUN_NOT_FOUND"


async def test_cancel_sent_right_after_start_is_not_lost(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await _partial_stream(live, admin, "hasty")
    call = live.stub.Run(
        requests_of(
            start("a long answer please", "hasty"), run_pb2.RunRequest(cancel=run_pb2.CancelTurn())
        )
    )
    events = [e async for e in call]
    assert events[0].WhichOneof("event") == "run_started"
    assert events[-1].WhichOneof("event") == "run_cancelled"
    run = (await live.stub.GetRun(pb.GetRunRequest(run_id=events[0].run_id))).run
    assert run.status == run_pb2.RUN_STATUS_CANCELLED


async def test_run_started_always_comes_first(live: LiveServer) -> None:
    await make_agent(live, "orderly")
    results = await asyncio.gather(
        *(run_turn(live.stub, f"order {i}", "orderly", session_id=f"o{i}") for i in range(40))
    )
    for events in results:
        assert events[0].WhichOneof("event") == "run_started"
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))


async def test_server_stop_marks_runs_in_flight_interrupted(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([{"match": {"contains": "forever"}, "reply": {"stall": True}}])
    await make_agent(live, "stopper")
    call = live.stub.Run(requests_of(start("forever and ever", "stopper")))
    run_id = (await call.read()).run_id
    # Graceful stop as serve() does it: new calls are refused, this stream is cut when the
    # grace ends, and the core then stops what is left.
    live.app.runs.active.begin_shutdown()
    await live.server.stop(0.2)
    await live.app.runs.active.shutdown()
    run = await live.app.run_records.get("default", run_id)
    assert run.status.value == "interrupted"
    assert run.error_reason == "RUN_INTERRUPTED"


async def test_too_many_turns_waiting_on_one_stream_end_it(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    """Abuse case: a client that keeps starting turns behind a running one cannot make
    the server buffer them without bound."""
    await admin.set_rules([{"match": {"contains": "forever"}, "reply": {"stall": True}}])
    await make_agent(live, "flooded")
    limit = live.app.settings.max_pending_turns
    call = live.stub.Run()
    await call.write(start("forever", "flooded"))
    run_id = (await call.read()).run_id
    for i in range(limit + 1):
        await call.write(start(f"waiting {i}", "flooded"))
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await drain(call)
    assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(ended.value)
    assert info.reason == "TOO_MANY_PENDING_TURNS" and info.metadata["limit"] == str(limit)
    run = (await live.stub.GetRun(pb.GetRunRequest(run_id=run_id))).run
    assert run.status == run_pb2.RUN_STATUS_CANCELLED
    runs = await live.stub.ListRuns(pb.ListRunsRequest(agent_id="flooded"))
    assert [r.run_id for r in runs.runs] == [run_id]


async def test_a_flood_of_starts_sent_in_one_batch_ends_the_stream(
    devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    """The same abuse without waiting for RunStarted: the first turn has no run id yet
    when the limit is crossed, and is cancelled all the same."""
    live = await start_live_server(tmp_path / "flood.db", devmodel.base_url, max_pending_turns=1)
    try:
        await admin.set_rules([{"match": {"contains": "forever"}, "reply": {"stall": True}}])
        await make_agent(live, "flooded")
        flood = [start(f"waiting {i}", "flooded") for i in range(3)]
        call = live.stub.Run(requests_of(start("forever", "flooded"), *flood), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await drain(call)
        assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_info(ended.value).reason == "TOO_MANY_PENDING_TURNS"
        runs = await live.stub.ListRuns(pb.ListRunsRequest(agent_id="flooded"))
        assert [r.status for r in runs.runs] == [run_pb2.RUN_STATUS_CANCELLED]
    finally:
        await live.stop()
