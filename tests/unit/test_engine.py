"""The run engine's races and limits, driven through its ports' fakes (no gRPC, no HTTP)."""

from __future__ import annotations

import asyncio
import time

import pytest
from fakes import Core, Reply, collect, gated_core, make_core

from orchestrator_server.core import events as ev
from orchestrator_server.core.active_runs import RunLimits
from orchestrator_server.core.errors import (
    AbortedError,
    DeadlineExceededError,
    InvalidArgumentError,
    OrchestratorError,
    QuotaExceededError,
    Reason,
    ResourceExhaustedError,
    UnavailableError,
)
from orchestrator_server.core.types import (
    AgentSpec,
    Role,
    RunQuery,
    RunStatus,
    ToolCall,
    TurnRequest,
)


def bodies(events: list[ev.RunEvent], kind: type) -> list[object]:
    return [e.body for e in events if isinstance(e.body, kind)]


async def test_a_turn_streams_numbered_events_and_records_its_messages(core: Core) -> None:
    core.model.script(Reply("hello there"))
    events = await collect(core.engine.execute("t", TurnRequest("alpha", "hi")))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert isinstance(events[0].body, ev.RunStarted)
    completed = events[-1].body
    assert isinstance(completed, ev.RunCompleted) and completed.output == "hello there"
    run = await core.records.get("t", events[0].run_id)
    assert run.status is RunStatus.COMPLETED and run.output == "hello there"
    history = await core.store.load_history("t", "alpha", "default", 10)
    assert [(m.role, m.content) for m in history] == [
        (Role.USER, "hi"),
        (Role.ASSISTANT, "hello there"),
    ]


async def test_cancel_while_the_first_write_is_pending_records_a_cancelled_run() -> None:
    store, core = await gated_core()
    consumer = asyncio.create_task(collect(core.engine.execute("t", TurnRequest("alpha", "hi"))))
    await store.entered.wait()
    consumer.cancel()  # the caller goes away before the run is even stored
    store.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    runs = await store.list_runs("t", RunQuery(10))
    assert len(runs) == 1
    assert runs[0].status is RunStatus.CANCELLED
    assert runs[0].error_message == "the client went away"
    history = await store.load_history("t", "alpha", "default", 10)
    assert [m.content for m in history] == ["hi"]  # the user message stays


async def test_a_finished_run_is_replayed_for_its_request_id(core: Core) -> None:
    core.model.script(Reply("first answer"))
    request = TurnRequest("alpha", "hi", request_id="req-1")
    first = await collect(core.engine.execute("t", request))
    again = await collect(core.engine.execute("t", request))
    assert len(core.model.calls) == 1
    started = again[0].body
    assert isinstance(started, ev.RunStarted) and started.replayed
    assert again[0].run_id == first[0].run_id
    completed = again[-1].body
    assert isinstance(completed, ev.RunCompleted) and completed.output == "first answer"


async def test_a_running_run_is_awaited_by_a_replay(core: Core) -> None:
    core.model.script(Reply("slow answer", stall=True))
    request = TurnRequest("alpha", "hi", request_id="req-2")
    first = asyncio.create_task(collect(core.engine.execute("t", request)))
    await core.model.stalled.wait()
    replay = asyncio.create_task(collect(core.engine.execute("t", request)))
    core.model.unstall.set()
    first_events, replayed = await asyncio.gather(first, replay)
    assert len(core.model.calls) == 1
    assert replayed[0].run_id == first_events[0].run_id
    assert bodies(replayed, ev.RunCompleted)[0].output == "slow answer"  # type: ignore[attr-defined]


async def test_a_failed_run_replays_its_error(core: Core) -> None:
    failure = UnavailableError("down", reason=Reason.MODEL_UNAVAILABLE)
    core.model.script(Reply(error=failure))
    request = TurnRequest("alpha", "hi", request_id="req-3")
    with pytest.raises(UnavailableError):
        await collect(core.engine.execute("t", request))
    with pytest.raises(UnavailableError) as replayed:
        await collect(core.engine.execute("t", request))
    assert replayed.value.reason is Reason.MODEL_UNAVAILABLE
    assert len(core.model.calls) == 1


async def test_a_request_id_reused_for_another_message_conflicts(core: Core) -> None:
    await collect(core.engine.execute("t", TurnRequest("alpha", "hi", request_id="req-4")))
    with pytest.raises(InvalidArgumentError) as conflict:
        await collect(core.engine.execute("t", TurnRequest("alpha", "bye", request_id="req-4")))
    assert conflict.value.reason is Reason.REQUEST_ID_CONFLICT


async def test_a_busy_session_rejects_or_enqueues(core: Core) -> None:
    core.model.script(Reply("one", stall=True), Reply("two"))
    first = asyncio.create_task(collect(core.engine.execute("t", TurnRequest("alpha", "a"))))
    await core.model.stalled.wait()
    with pytest.raises(AbortedError) as busy:
        await collect(core.engine.execute("t", TurnRequest("alpha", "b")))
    assert busy.value.reason is Reason.SESSION_BUSY
    assert busy.value.metadata["active_run_id"]
    queued = core.engine.execute("t", TurnRequest("alpha", "c", wait_if_busy=True))
    started = await anext(queued)
    assert isinstance(started.body, ev.RunStarted) and started.body.status is RunStatus.QUEUED
    core.model.unstall.set()
    rest = await collect(queued)
    assert bodies(rest, ev.RunCompleted)[0].output == "two"  # type: ignore[attr-defined]
    await first
    history = await core.store.load_history("t", "alpha", "default", 10)
    assert [m.content for m in history] == ["a", "one", "c", "two"]


async def test_a_passed_deadline_is_recorded_cancelled_with_deadline_exceeded(core: Core) -> None:
    past = time.monotonic() - 1
    with pytest.raises(DeadlineExceededError) as late:
        await collect(core.engine.execute("t", TurnRequest("alpha", "hi"), deadline=past))
    assert late.value.reason is Reason.DEADLINE_EXCEEDED
    (run,) = (await core.records.list("t")).items
    assert run.status is RunStatus.CANCELLED and run.error_reason == Reason.DEADLINE_EXCEEDED


async def test_a_model_timeout_at_the_callers_deadline_is_the_same_outcome(core: Core) -> None:
    """The model call's timeout is the caller's remaining time: when it fires, the
    caller's deadline has passed, and the run reads like any other deadline."""
    timeout = DeadlineExceededError("provider timed out", reason=Reason.MODEL_TIMEOUT)
    core.model.script(Reply(error=timeout))
    deadline = time.monotonic() + 0.01  # the model gave up within the slack of it
    with pytest.raises(DeadlineExceededError):
        await collect(core.engine.execute("t", TurnRequest("alpha", "hi"), deadline=deadline))
    (run,) = (await core.records.list("t")).items
    assert run.status is RunStatus.CANCELLED and run.error_reason == Reason.DEADLINE_EXCEEDED


async def test_a_model_timeout_without_a_callers_deadline_is_a_failure(core: Core) -> None:
    timeout = DeadlineExceededError("provider timed out", reason=Reason.MODEL_TIMEOUT)
    core.model.script(Reply(error=timeout))
    with pytest.raises(DeadlineExceededError):
        await collect(core.engine.execute("t", TurnRequest("alpha", "hi")))
    (run,) = (await core.records.list("t")).items
    assert run.status is RunStatus.FAILED and run.error_reason == Reason.MODEL_TIMEOUT


async def test_a_caller_gone_after_its_deadline_records_deadline_exceeded(core: Core) -> None:
    core.model.script(Reply(stall=True))
    deadline = time.monotonic() + 60
    events = core.engine.execute("t", TurnRequest("alpha", "hi"), deadline=deadline)
    await anext(events)
    await core.model.stalled.wait()
    active = next(iter(core.engine.active._by_id.values()))
    core.engine.active.abandoned(active, deadline_passed=True)
    await events.aclose()
    (run,) = (await core.records.list("t")).items
    assert run.status is RunStatus.CANCELLED and run.error_reason == Reason.DEADLINE_EXCEEDED


async def test_the_tool_loop_stops_at_the_model_call_limit(core: Core) -> None:
    call = ToolCall("c1", "no_such_tool", "{}")
    core.model.default = Reply("again", tool_calls=(call,))
    request = TurnRequest("alpha", "loop", max_model_calls=3)
    with pytest.raises(ResourceExhaustedError) as limit:
        await collect(core.engine.execute("t", request))
    assert limit.value.reason is Reason.MODEL_CALL_LIMIT
    assert len(core.model.calls) == 3
    (run,) = (await core.records.list("t")).items
    assert run.status is RunStatus.FAILED and run.usage.prompt_tokens == 30


async def test_agents_calling_each_other_in_a_cycle_get_a_tool_error() -> None:
    core = make_core()
    await core.agent("alpha", callable_agents=("beta",))
    await core.agent("beta", callable_agents=("alpha",))
    core.model.script(
        Reply(tool_calls=(ToolCall("a1", "ask_beta", '{"message": "help"}'),)),
        Reply(tool_calls=(ToolCall("b1", "ask_alpha", '{"message": "back?"}'),)),
        Reply("beta answers"),
        Reply("alpha answers"),
    )
    events = await collect(core.engine.execute("t", TurnRequest("alpha", "go")))
    errors = [b.error for b in bodies(events, ev.ToolCallFinished)]  # type: ignore[attr-defined]
    assert any(error.startswith("AGENT_CALL_CYCLE") for error in errors)
    child = [e for e in events if e.parent_run_id]
    assert child and all(e.agent_id == "beta" for e in child)
    assert isinstance(events[-1].body, ev.RunCompleted)
    assert events[-1].body.output == "alpha answers"


async def test_cancel_run_stops_a_running_turn_and_returns_its_record(core: Core) -> None:
    core.model.script(Reply("partial", stall=True))
    events = core.engine.execute("t", TurnRequest("alpha", "hi"))
    started = await anext(events)
    await core.model.stalled.wait()
    rest = asyncio.create_task(collect(events))
    run = await core.records.cancel("t", started.run_id)
    assert run.status is RunStatus.CANCELLED
    cancelled = bodies(await rest, ev.RunCancelled)
    assert cancelled and cancelled[0].reason == Reason.RUN_CANCELLED  # type: ignore[attr-defined]


async def test_another_tenant_cannot_cancel_or_see_a_run(core: Core) -> None:
    core.model.script(Reply(stall=True))
    events = core.engine.execute("t", TurnRequest("alpha", "hi"))
    started = await anext(events)
    with pytest.raises(OrchestratorError) as hidden:
        await core.records.cancel("other", started.run_id)
    assert hidden.value.reason is Reason.RUN_NOT_FOUND
    core.model.unstall.set()
    await collect(events)


async def test_server_shutdown_records_runs_in_flight_as_interrupted(core: Core) -> None:
    core.model.script(Reply(stall=True))
    events = core.engine.execute("t", TurnRequest("alpha", "hi"))
    started = await anext(events)
    await core.model.stalled.wait()
    await core.engine.active.shutdown()
    rest = await collect(events)
    assert bodies(rest, ev.RunCancelled)[0].reason == Reason.RUN_INTERRUPTED  # type: ignore[attr-defined]
    run = await core.records.get("t", started.run_id)
    assert run.status is RunStatus.INTERRUPTED


async def test_an_answer_past_the_output_limit_fails_and_keeps_its_part() -> None:
    core = make_core(max_output_chars=20)
    await core.agent("alpha")
    core.model.script(Reply("one two three four five six seven eight nine ten"))
    with pytest.raises(ResourceExhaustedError) as too_long:
        await collect(core.engine.execute("t", TurnRequest("alpha", "talk")))
    assert too_long.value.reason is Reason.MODEL_OUTPUT_LIMIT
    assert too_long.value.metadata == {"limit": "20"}
    (run,) = (await core.records.list("t")).items
    assert run.status is RunStatus.FAILED and run.error_reason == Reason.MODEL_OUTPUT_LIMIT
    assert run.output == "one two three four"  # the text up to the limit
    history = await core.store.load_history("t", "alpha", "default", 10)
    assert [m.content for m in history] == ["talk"]  # no half answer in the history


async def test_runs_in_flight_are_capped_per_tenant_and_server_wide() -> None:
    core = make_core(limits=RunLimits(max_runs=3, max_runs_per_tenant=2))
    await core.agent("alpha")
    await core.agents.create("u", "alpha", AgentSpec())
    core.model.default = Reply(stall=True)
    held = [
        core.engine.execute("t", TurnRequest("alpha", "hi", session_id=f"s{i}")) for i in (1, 2)
    ]
    for events in held:
        await anext(events)
    with pytest.raises(QuotaExceededError) as tenant_full:
        await collect(core.engine.execute("t", TurnRequest("alpha", "more", session_id="s3")))
    assert tenant_full.value.subject == "tenant:t" and tenant_full.value.limit == 2
    other = core.engine.execute("u", TurnRequest("alpha", "hello"))
    await anext(other)  # another tenant still gets its turn
    with pytest.raises(QuotaExceededError) as server_full:
        await collect(core.engine.execute("u", TurnRequest("alpha", "more", session_id="s9")))
    assert server_full.value.subject == "server"
    core.model.unstall.set()
    for events in [*held, other]:
        await collect(events)
    await collect(core.engine.execute("t", TurnRequest("alpha", "again")))  # slots freed


def _asks(count: int) -> Reply:
    calls = tuple(ToolCall(f"c{i}", "ask_beta", '{"message": "help"}') for i in range(count))
    return Reply(tool_calls=calls)


async def test_one_response_runs_at_most_32_tool_calls() -> None:
    core = make_core()
    await core.agent("alpha", callable_agents=("beta",))
    await core.agent("beta")
    core.model.script(_asks(40))
    events = await collect(core.engine.execute("t", TurnRequest("alpha", "fan out")))
    finished = bodies(events, ev.ToolCallFinished)
    refused = [b for b in finished if b.error.startswith("not run: at most 32")]  # type: ignore[attr-defined]
    assert len(finished) == 40 and len(refused) == 8
    children = {e.run_id for e in events if e.parent_run_id}
    assert len(children) == 32


async def test_agent_calls_per_message_are_budgeted_at_every_depth() -> None:
    core = make_core(max_agent_calls=3)
    await core.agent("alpha", callable_agents=("beta",))
    await core.agent("beta")
    core.model.script(_asks(5))
    events = await collect(core.engine.execute("t", TurnRequest("alpha", "fan out")))
    errors = [b.error for b in bodies(events, ev.ToolCallFinished)]  # type: ignore[attr-defined]
    assert sum(e.startswith("not run: this message already asked 3") for e in errors) == 2
    assert len({e.run_id for e in events if e.parent_run_id}) == 3
