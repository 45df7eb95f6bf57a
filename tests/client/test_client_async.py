"""AsyncOrchestrator against a live server: every call, typed events, chats, cancels."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from client_helpers import SLOW_WORDS

from helpers import LiveServer
from orchestrator import (
    AgentAlreadyExists,
    AsyncOrchestrator,
    BufferMemory,
    DeadlineExceeded,
    MessageCompleted,
    MessageRole,
    Model,
    RunCancelled,
    RunCancelledError,
    RunCompleted,
    RunStarted,
    RunStatus,
    ServerTool,
    TextDelta,
)
from orchestrator_devmodel import DevModelAdmin


async def test_create_get_list_and_has(client: AsyncOrchestrator) -> None:
    created = await client.create_agent(
        "research_agent",
        model=Model(model="gpt-4o", temperature=0.5, max_tokens=100),
        system_message="You research.",
        tools=["calculator", ServerTool("current_time")],
        buffer_memory=BufferMemory(max_messages=7),
        labels={"team": "blue"},
        description="finds things",
    )
    assert created.agent_id == "research_agent"
    assert created.model == Model(model="gpt-4o", temperature=0.5, max_tokens=100)
    assert created.buffer_memory == BufferMemory(7)
    assert created.tools == ("calculator", "current_time")
    assert created.labels == {"team": "blue"}
    assert created.etag and created.create_time is not None and not created.is_default
    assert await client.get_agent("research_agent") == created
    assert await client.has_agent("research_agent")
    assert not await client.has_agent("nobody")
    assert not await client.has_agent("Not An Id")

    await client.create_agent("coding_agent", model="gpt-4o-mini")
    await client.create_agent("analysis_agent", labels={"team": "blue"})
    assert await client.list_agents() == ["analysis_agent", "coding_agent", "research_agent"]
    # Page by page: three agents over pages of two.
    assert [a.agent_id async for a in client.iter_agents(page_size=2)] == [
        "analysis_agent",
        "coding_agent",
        "research_agent",
    ]
    assert [a.agent_id async for a in client.iter_agents(labels={"team": "blue"})] == [
        "analysis_agent",
        "research_agent",
    ]
    assert await client.list_agents(labels={"team": "red"}) == []


async def test_get_or_create_returns_existing_unchanged(client: AsyncOrchestrator) -> None:
    first = await client.get_or_create_agent("helper", system_message="first")
    again = await client.get_or_create_agent("helper", system_message="second")
    assert again == first
    assert again.system_message == "first"
    with pytest.raises(AgentAlreadyExists):
        await client.create_agent("helper")


async def test_create_agent_reports_whether_it_created(client: AsyncOrchestrator) -> None:
    created = await client.create_agent("helper", system_message="first")
    assert created.created
    existing = await client.create_agent("helper", system_message="second", if_not_exists=True)
    assert not existing.created and existing.system_message == "first"
    # `created` describes the call, not the agent: equal agents, whatever the call did.
    assert existing == created == await client.get_agent("helper")
    assert not (await client.get_agent("helper")).created
    assert "created" not in repr(created)
    assert (await client.get_or_create_agent("other")).created
    assert not (await client.get_or_create_agent("other")).created


async def test_update_changes_only_the_fields_passed(client: AsyncOrchestrator) -> None:
    await client.create_agent(
        "writer",
        model=Model(model="m1", provider="dev", temperature=0.3),
        system_message="keep me",
        description="old",
    )
    updated = await client.update_agent("writer", description="new", labels={"k": "v"})
    assert updated.description == "new"
    assert updated.labels == {"k": "v"}
    assert updated.system_message == "keep me"
    # A bare model name changes only the name; provider and temperature stay.
    renamed = await client.update_agent("writer", model="m2")
    assert renamed.model == Model(model="m2", provider="dev", temperature=0.3)
    # A Model replaces the whole model.
    replaced = await client.update_agent(
        "writer", model=Model(model="m3"), buffer_memory=BufferMemory(3), max_model_calls=4
    )
    assert replaced.model == Model(model="m3")
    assert replaced.buffer_memory.max_messages == 3
    assert replaced.max_model_calls == 4
    conditional = await client.update_agent(
        "writer", etag=replaced.etag, tools=["calculator"], callable_agents=["writer"]
    )
    assert conditional.tools == ("calculator",)
    assert conditional.callable_agents == ("writer",)
    assert conditional.etag != replaced.etag


async def test_delete_and_default_agent(client: AsyncOrchestrator) -> None:
    await client.create_agent("first", set_as_default=True)
    await client.create_agent("second")
    assert (await client.get_default_agent()).agent_id == "first"
    default = await client.set_default_agent("second")
    assert default.agent_id == "second" and default.is_default
    assert (await client.get_default_agent()).agent_id == "second"
    agent = await client.get_agent("first")
    await client.delete_agent("first", etag=agent.etag)
    await client.delete_agent("second")
    assert await client.list_agents() == []


async def test_run_returns_the_answer(client: AsyncOrchestrator) -> None:
    await client.create_agent("echo", set_as_default=True)
    assert await client.run("hello there", "echo") == "Echo: hello there"
    # No agent named: the default agent answers.
    assert await client.run("to the default") == "Echo: to the default"


async def test_stream_yields_typed_events_in_order(
    client: AsyncOrchestrator, admin: DevModelAdmin
) -> None:
    # Paced tokens: the server sends each as it arrives (deltas that queue up while the
    # stream is busy would be merged into one message).
    await admin.set_rules([{"reply": {"tokens_per_second": 100}}])
    await client.create_agent("echo")
    async with client.stream("one two three", "echo", session_id="s1") as stream:
        events = [event async for event in stream]
    assert isinstance(events[0], RunStarted)
    assert events[0].session_id == "s1" and events[0].status is RunStatus.RUNNING
    assert not events[0].replayed
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert "".join(d.text for d in deltas) == "Echo: one two three"
    assert len(deltas) > 1, "the dev model streams word by word"
    completed = events[-2]
    assert isinstance(completed, MessageCompleted)
    assert completed.message.role is MessageRole.ASSISTANT
    assert completed.message.content == "Echo: one two three"
    final = events[-1]
    assert isinstance(final, RunCompleted)
    assert final.output == "Echo: one two three"
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens
    assert final.usage.completion_tokens > 0
    assert {e.run_id for e in events} == {stream.run_id}
    assert {e.agent_id for e in events} == {"echo"}
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))


async def test_request_id_replays_the_run(client: AsyncOrchestrator) -> None:
    await client.create_agent("echo")
    first = [e async for e in client.stream("hi", "echo", request_id="req-1")]
    again = [e async for e in client.stream("hi", "echo", request_id="req-1")]
    assert isinstance(again[0], RunStarted) and again[0].replayed
    assert again[0].run_id == first[0].run_id
    assert isinstance(again[-1], RunCompleted) and again[-1].output == "Echo: hi"
    assert len(await client.list_runs("echo")) == 1


async def test_sessions_and_messages(client: AsyncOrchestrator) -> None:
    await client.create_agent("echo")
    await client.run("first", "echo")
    await client.run("in s2", "echo", session_id="s2")
    await client.run("again in s2", "echo", session_id="s2")
    sessions = await client.list_sessions("echo")
    assert [(s.session_id, s.message_count) for s in sessions] == [("default", 2), ("s2", 4)]
    assert [s.session_id for s in await client.list_sessions("echo", page_size=1)] == [
        "default",
        "s2",
    ]
    messages = await client.list_messages("echo", "s2", page_size=3)
    assert [(m.sequence, m.role, m.content) for m in messages] == [
        (1, MessageRole.USER, "in s2"),
        (2, MessageRole.ASSISTANT, "Echo: in s2"),
        (3, MessageRole.USER, "again in s2"),
        (4, MessageRole.ASSISTANT, "Echo: again in s2"),
    ]
    assert [m.content for m in await client.list_messages("echo")] == ["first", "Echo: first"]
    assert await client.delete_session("echo", "s2") == 4
    assert await client.list_messages("echo", "s2") == []
    assert await client.delete_session("echo") == 2


async def test_runs_get_list_and_cancel_finished(client: AsyncOrchestrator) -> None:
    await client.create_agent("echo")
    await client.create_agent("other")
    await client.run("a", "echo")
    await client.run("b", "echo", session_id="s2")
    await client.run("c", "other")
    runs = await client.list_runs()
    assert [r.input for r in runs] == ["c", "b", "a"], "newest first"
    assert [r.input for r in await client.list_runs("echo", page_size=1)] == ["b", "a"]
    assert [r.input for r in await client.list_runs("echo", "s2")] == ["b"]
    assert [r.input for r in await client.list_runs(limit=2)] == ["c", "b"]
    run = await client.get_run(runs[-1].run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.output == "Echo: a" and run.agent_id == "echo" and run.session_id == "default"
    assert run.end_time is not None and run.usage.total_tokens > 0
    # Cancelling a finished run returns it unchanged.
    assert await client.cancel_run(run.run_id) == run


async def test_stream_cancel_ends_with_run_cancelled(
    client: AsyncOrchestrator, slow_admin: DevModelAdmin
) -> None:
    await client.create_agent("echo")
    events = []
    async with client.stream("answer slowly", "echo") as stream:
        async for event in stream:
            events.append(event)
            if isinstance(event, TextDelta):
                stream.cancel()
    final = events[-1]
    assert isinstance(final, RunCancelled)
    assert final.reason == "RUN_CANCELLED"
    run = await client.get_run(stream.run_id)
    assert run.status is RunStatus.CANCELLED
    assert run.output and SLOW_WORDS.startswith(run.output)


async def test_cancel_before_the_run_started_is_not_lost(
    client: AsyncOrchestrator, slow_admin: DevModelAdmin
) -> None:
    await client.create_agent("echo")
    stream = client.stream("answer slowly", "echo")
    stream.cancel()  # before anything was sent: delivered once the run id is known
    events = [event async for event in stream]
    assert isinstance(events[-1], RunCancelled)


async def test_cancel_run_from_another_call_makes_run_raise(
    client: AsyncOrchestrator, slow_admin: DevModelAdmin
) -> None:
    await client.create_agent("echo")
    running = asyncio.create_task(client.run("answer slowly", "echo", request_id="k"))
    # A second start with the same request_id shares the run and learns its id. Whichever
    # of the two reaches the server first runs the turn; the other follows it.
    async with client.stream("answer slowly", "echo", request_id="k") as other:
        started = await anext(other)
        assert isinstance(started, RunStarted)
        cancelled = await client.cancel_run(started.run_id)
        assert cancelled.status is RunStatus.CANCELLED
        # The follower's stream fails with the outcome; the runner's ends with the event.
        outcome: list[object] = []
        with contextlib.suppress(RunCancelledError):
            outcome = [event async for event in other]
        assert not outcome or isinstance(outcome[-1], RunCancelled)
    with pytest.raises(RunCancelledError) as raised:
        await running
    assert raised.value.reason == "RUN_CANCELLED"


async def test_deadline_cancels_the_run(
    client: AsyncOrchestrator, slow_admin: DevModelAdmin
) -> None:
    await client.create_agent("echo")
    with pytest.raises(DeadlineExceeded):
        await client.run("answer slowly", "echo", timeout=0.5)


async def test_abandoned_stream_cancels_its_run(
    client: AsyncOrchestrator, slow_admin: DevModelAdmin
) -> None:
    await client.create_agent("echo")
    async with client.stream("answer slowly", "echo") as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                break
    # Queue behind the abandoned run: this turn starts once that one has ended, which
    # takes ~10 s unless leaving the stream cancelled it.
    assert await client.run("next", "echo", wait_if_busy=True, timeout=5) == "Echo: next"
    run = await client.get_run(stream.run_id)
    assert run.status is RunStatus.CANCELLED


async def test_chat_keeps_one_conversation(client: AsyncOrchestrator, admin: DevModelAdmin) -> None:
    await client.create_agent("echo", set_as_default=True)
    async with client.chat() as chat:
        first = [e async for e in chat.send("hello")]
        second = [e async for e in chat.send("and again")]
    assert isinstance(first[-1], RunCompleted) and first[-1].output == "Echo: hello"
    assert isinstance(second[-1], RunCompleted) and second[-1].output == "Echo: and again"
    assert chat.agent_id == "echo" and chat.session_id == "default"
    requests = await admin.requests()
    # The second turn was sent with the first one's history.
    contents = [m["content"] for m in requests[-1]["body"]["messages"]]
    assert contents == ["hello", "Echo: hello", "and again"]


async def test_chat_cancel_then_continue(
    client: AsyncOrchestrator, slow_admin: DevModelAdmin
) -> None:
    await client.create_agent("echo")
    async with client.chat("echo", session_id="talk") as chat:
        events = []
        async for event in chat.send("answer slowly"):
            events.append(event)
            if isinstance(event, TextDelta):
                chat.cancel()
        assert isinstance(events[-1], RunCancelled)
        after = [e async for e in chat.send("next")]
        assert isinstance(after[-1], RunCompleted) and after[-1].output == "Echo: next"
        # A turn abandoned half-way is cancelled before the next one starts.
        async for event in chat.send("answer slowly"):
            if isinstance(event, TextDelta):
                break
        last = [e async for e in chat.send("last")]
        assert isinstance(last[-1], RunCompleted) and last[-1].output == "Echo: last"
    statuses = [r.status for r in await client.list_runs("echo", "talk")]
    assert statuses == [
        RunStatus.COMPLETED,
        RunStatus.CANCELLED,
        RunStatus.COMPLETED,
        RunStatus.CANCELLED,
    ]


async def test_chat_continues_after_a_failed_turn(
    client: AsyncOrchestrator, admin: DevModelAdmin
) -> None:
    from orchestrator import ModelUnavailable

    await admin.set_rules(
        [
            {
                "match": {"contains": "fail"},
                "reply": {"error": {"status": 500, "should_retry": False}},
            }
        ]
    )
    await client.create_agent("echo")
    async with client.chat("echo") as chat:
        with pytest.raises(ModelUnavailable):
            async for _event in chat.send("please fail"):
                pass
        after = [e async for e in chat.send("recovered")]
    assert isinstance(after[-1], RunCompleted) and after[-1].output == "Echo: recovered"


async def test_tenants_are_isolated(live: LiveServer) -> None:
    async with (
        AsyncOrchestrator(live.address, tenant="acme") as acme,
        AsyncOrchestrator(live.address, tenant="globex", metadata={"x-extra": "1"}) as globex,
    ):
        await acme.create_agent("shared_name", description="acme's")
        assert await globex.list_agents() == []
        await globex.create_agent("shared_name", description="globex's")
        assert (await acme.get_agent("shared_name")).description == "acme's"
