"""The Run stream protocol (core/run_stream.py) without gRPC: ordered starts, cancels,
client tool results, which run is the stream's own, and the bound on buffered starts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator

import pytest
from fakes import Core, Reply, gated_core

from orchestrator_server.core import events as ev
from orchestrator_server.core.errors import InvalidArgumentError, Reason, ResourceExhaustedError
from orchestrator_server.core.model_port import ChatRequest, ModelTurnEnd
from orchestrator_server.core.run_stream import (
    CancelTurn,
    RunStream,
    StreamCommand,
    ToolResult,
)
from orchestrator_server.core.types import RunStatus, ToolCall, TurnRequest


class Client:
    """The client side of one stream: commands go in, events come out."""

    def __init__(self, core: Core, max_pending_starts: int = 32) -> None:
        self._commands: asyncio.Queue[StreamCommand | None] = asyncio.Queue()
        self.stream = RunStream(core.engine, "t", max_pending_starts=max_pending_starts)
        self.events = self.stream.run(self._feed())

    async def _feed(self) -> AsyncIterator[StreamCommand]:
        while (command := await self._commands.get()) is not None:
            yield command

    def send(self, *commands: StreamCommand) -> None:
        for command in commands:
            self._commands.put_nowait(command)

    def close(self) -> None:
        self._commands.put_nowait(None)

    async def until(self, kind: type) -> ev.RunEvent:
        """Read events until one whose body is `kind`."""
        async for event in self.events:
            if isinstance(event.body, kind):
                return event
        raise AssertionError(f"the stream ended before a {kind.__name__}")

    async def rest(self) -> list[ev.RunEvent]:
        return [event async for event in self.events]


async def test_turns_run_in_the_order_they_were_started(core: Core) -> None:
    core.model.script(Reply("first"), Reply("second"))
    client = Client(core)
    client.send(TurnRequest("alpha", "one"), TurnRequest("alpha", "two"))
    client.close()
    events = await client.rest()
    outputs = [e.body.output for e in events if isinstance(e.body, ev.RunCompleted)]
    assert outputs == ["first", "second"]
    runs = [e.run_id for e in events if isinstance(e.body, ev.RunStarted)]
    assert len(set(runs)) == 2


async def test_the_first_message_must_be_a_start(core: Core) -> None:
    client = Client(core)
    client.send(CancelTurn())
    with pytest.raises(InvalidArgumentError) as violation:
        await client.rest()
    assert violation.value.reason is Reason.STREAM_PROTOCOL_VIOLATION


async def test_a_cancel_sent_before_the_run_has_an_id_cancels_it_when_it_begins() -> None:
    store, core = await gated_core()
    client = Client(core)
    # The cancel is routed while the start executes and its run is not stored yet (the
    # store holds the write), so the run has no id the client could name.
    client.send(TurnRequest("alpha", "hi"), CancelTurn())
    reading = asyncio.create_task(client.until(ev.RunCancelled))
    await store.entered.wait()
    assert not client.stream._current
    store.gate.set()
    cancelled = await reading
    client.close()
    await client.rest()
    run = await core.records.get("t", cancelled.run_id)
    assert run.status is RunStatus.CANCELLED


async def test_a_cancel_naming_a_run_of_another_stream_is_ignored(core: Core) -> None:
    core.model.script(Reply(stall=True), Reply("mine"))
    other = Client(core)
    other.send(TurnRequest("alpha", "elsewhere", session_id="s2"))
    foreign = await other.until(ev.RunStarted)
    await core.model.stalled.wait()
    client = Client(core)
    client.send(TurnRequest("alpha", "hi"), CancelTurn(foreign.run_id))
    client.close()
    events = await client.rest()
    assert isinstance(events[-1].body, ev.RunCompleted)
    assert core.engine.busy_run("t", "alpha", "s2") == foreign.run_id
    core.model.unstall.set()
    other.close()
    assert isinstance((await other.rest())[-1].body, ev.RunCompleted)


async def test_a_client_tool_result_reaches_the_waiting_call(core: Core) -> None:
    call = ToolCall("call-1", "lookup", '{"key": "x"}')
    core.model.script(Reply(tool_calls=(call,)), Reply("found it"))
    schema = json.dumps({"type": "object", "properties": {"key": {"type": "string"}}})
    client = Client(core)
    client.send(TurnRequest("alpha", "find x", client_tools=(("lookup", "Look up", schema),)))
    started = await client.until(ev.ToolCallStarted)
    assert started.body.location == "client"  # type: ignore[union-attr]
    client.send(ToolResult("call-1", "42"))
    done = await client.until(ev.RunCompleted)
    assert done.body.output == "found it"  # type: ignore[union-attr]
    assert core.model.calls[1][-1] == {"role": "tool", "tool_call_id": "call-1", "content": "42"}
    client.close()
    await client.rest()


async def test_a_tool_result_nobody_waits_for_ends_the_stream(core: Core) -> None:
    core.model.script(Reply(stall=True))
    client = Client(core)
    client.send(TurnRequest("alpha", "hi"))
    started = await client.until(ev.RunStarted)
    await core.model.stalled.wait()
    client.send(ToolResult("no-such-call", "x"))
    with pytest.raises(InvalidArgumentError) as unexpected:
        await client.rest()
    assert unexpected.value.reason is Reason.UNEXPECTED_TOOL_RESULT
    run = await core.records.get("t", started.run_id)
    assert run.status is RunStatus.CANCELLED


async def test_starts_beyond_the_pending_limit_end_the_stream(core: Core) -> None:
    core.model.script(Reply(stall=True))
    client = Client(core, max_pending_starts=2)
    client.send(TurnRequest("alpha", "running"))
    started = await client.until(ev.RunStarted)
    await core.model.stalled.wait()
    client.send(*(TurnRequest("alpha", f"waiting {i}") for i in range(3)))
    with pytest.raises(ResourceExhaustedError) as full:
        await client.rest()
    assert full.value.reason is Reason.TOO_MANY_PENDING_TURNS
    assert full.value.metadata == {"limit": "2"}
    run = await core.records.get("t", started.run_id)
    assert run.status is RunStatus.CANCELLED
    assert len((await core.records.list("t")).items) == 1  # the waiting starts never ran


async def test_open_streams_are_capped_per_tenant() -> None:
    from fakes import make_core

    from orchestrator_server.core.active_runs import RunLimits
    from orchestrator_server.core.errors import QuotaExceededError

    core = make_core(limits=RunLimits(max_streams_per_tenant=1))
    await core.agent("alpha")
    core.model.script(Reply(stall=True))
    first = Client(core)
    first.send(TurnRequest("alpha", "hold"))
    await first.until(ev.RunStarted)
    second = Client(core)
    second.send(TurnRequest("alpha", "me too", session_id="other"))
    with pytest.raises(QuotaExceededError) as full:
        await second.rest()
    assert full.value.quota == "max_streams_per_tenant"
    core.model.unstall.set()
    first.close()
    await first.rest()
    third = Client(core)  # the slot is free again once the first stream has ended
    third.send(TurnRequest("alpha", "now"))
    third.close()
    assert isinstance((await third.rest())[-1].body, ev.RunCompleted)


async def test_the_first_turn_sends_its_model_request_before_the_stream_reads_on(
    core: Core,
) -> None:
    """The reader of further commands starts after the first turn's first step, which
    sends the model request: a read ahead of it would delay the request. (With a store
    whose writes are round trips the first step sends the run's write instead, and the
    request follows: see test_first_write.)"""
    core.store.may_begin_at_once = lambda run: True  # type: ignore[method-assign]
    log: list[str] = []
    scripted = core.model.stream

    async def stream(request: ChatRequest) -> AsyncGenerator[str | ModelTurnEnd, None]:
        log.append("model request")
        async for item in scripted(request):
            yield item

    core.model.stream = stream  # type: ignore[method-assign]
    core.model.script(Reply("hello"))
    commands: asyncio.Queue[StreamCommand | None] = asyncio.Queue()
    commands.put_nowait(TurnRequest("alpha", "hi"))

    async def feed() -> AsyncIterator[StreamCommand]:
        while True:
            log.append("read")
            command = await commands.get()
            if command is None:
                return
            yield command

    events = RunStream(core.engine, "t").run(feed())
    completed = await anext(e async for e in events if isinstance(e.body, ev.RunCompleted))
    assert completed.body.output == "hello"
    assert log[:3] == ["read", "model request", "read"]
    commands.put_nowait(None)
    assert [e async for e in events] == []
