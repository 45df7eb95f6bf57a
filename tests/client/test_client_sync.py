"""The blocking Orchestrator against a live server, and the original examples unchanged.

The live server runs in the test's event loop, so blocking code runs in a worker thread
(`asyncio.to_thread`) while the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest
from original_example import original_examples

from helpers import LiveServer
from orchestrator import (
    AgentNotFound,
    Answer,
    MessageRole,
    Orchestrator,
    RunCancelled,
    RunCompleted,
    RunStarted,
    RunStatus,
    SessionBusy,
    TextDelta,
    connect,
)
from orchestrator_devmodel import DevModelAdmin


async def test_sync_client_calls(live: LiveServer) -> None:
    def scenario() -> None:
        with connect(live.address, timeout=30) as orchestrator:
            created = orchestrator.create_agent("echo", system_message="hi", set_as_default=True)
            assert created.is_default
            assert orchestrator.get_or_create_agent("echo").etag == created.etag
            assert orchestrator.get_agent("echo") == created
            assert orchestrator.has_agent("echo") and not orchestrator.has_agent("other")
            orchestrator.create_agent("other", labels={"k": "v"})
            assert orchestrator.list_agents() == ["echo", "other"]
            assert [a.agent_id for a in orchestrator.iter_agents(labels={"k": "v"})] == ["other"]
            updated = orchestrator.update_agent("other", etag=None, description="d")
            assert updated.description == "d"
            assert orchestrator.set_default_agent("other").agent_id == "other"
            assert orchestrator.get_default_agent().agent_id == "other"

            answer = orchestrator.run("hello", "echo")
            assert answer == "Echo: hello" and isinstance(answer, Answer)
            with orchestrator.stream("streamed", "echo", session_id="s2") as stream:
                events = list(stream)
            assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunCompleted)
            assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Echo: streamed"
            assert stream.run_id == events[0].run_id
            with orchestrator.chat("echo", session_id="s3") as chat:
                assert list(chat.send("one"))[-1].output == "Echo: one"  # type: ignore[union-attr]
                assert list(chat.send("two"))[-1].output == "Echo: two"  # type: ignore[union-attr]
            assert chat.session_id == "s3"

            sessions = orchestrator.list_sessions("echo")
            assert [s.session_id for s in sessions] == ["default", "s2", "s3"]
            messages = orchestrator.list_messages("echo", "s3")
            assert [m.role for m in messages] == [MessageRole.USER, MessageRole.ASSISTANT] * 2
            runs = orchestrator.list_runs("echo", limit=10)
            assert len(runs) == 4
            assert orchestrator.get_run(runs[0].run_id).status is RunStatus.COMPLETED
            assert orchestrator.cancel_run(runs[0].run_id).status is RunStatus.COMPLETED
            assert orchestrator.delete_session("echo", "s3") == 4
            orchestrator.delete_agent("other")
            with pytest.raises(AgentNotFound):
                orchestrator.get_agent("other")

    await asyncio.to_thread(scenario)


async def test_sync_stream_cancel_and_busy(live: LiveServer, slow_admin: DevModelAdmin) -> None:
    def scenario() -> None:
        with Orchestrator(live.address) as orchestrator:
            orchestrator.create_agent("echo")
            with orchestrator.stream("answer slowly", "echo") as stream:
                seen = []
                for event in stream:
                    seen.append(event)
                    if isinstance(event, TextDelta):
                        with pytest.raises(SessionBusy):
                            orchestrator.run("meanwhile", "echo")
                        stream.cancel()
            assert isinstance(seen[-1], RunCancelled)

    await asyncio.to_thread(scenario)


async def test_one_sync_client_from_many_threads(live: LiveServer) -> None:
    def scenario() -> None:
        with connect(live.address, timeout=30) as orchestrator:
            assert orchestrator.get_or_create_agent("echo").created
            assert not orchestrator.create_agent("echo", if_not_exists=True).created

            def turn(index: int) -> str:
                return orchestrator.run(f"hello {index}", "echo", session_id=f"s{index}")

            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(turn, range(8)))
            assert answers == [f"Echo: hello {index}" for index in range(8)]
            assert len(orchestrator.list_runs("echo", limit=20)) == 8
            assert [r.agent_id for r in orchestrator.iter_runs("echo", page_size=3)] == ["echo"] * 8

    await asyncio.to_thread(scenario)


async def test_answer_is_awaitable() -> None:
    answer = Answer("text")
    assert await answer == "text"


async def test_original_examples_run_unchanged(
    live: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    await asyncio.to_thread(asyncio.run, original_examples(live.address))
    assert capsys.readouterr().out.splitlines() == [
        "Echo: What are the latest developments in quantum computing?",
        "Echo: Explain the concept of quantum entanglement",
        "Available agents: ['coding_agent', 'research_agent']",
        "Research agent exists",
        "Echo: Explain quantum field theory in simple terms",
        "research_agent ['physics_specialist', 'research_agent']",
    ]
