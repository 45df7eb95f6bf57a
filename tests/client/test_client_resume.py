"""The Python client resumes a turn across dropped connections (issue 15): a TCP proxy
the test controls sits between client and server and cuts every connection mid-answer;
the client's output must equal the stored output exactly (no gap, no repeat), and the
run must complete once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from tcp_proxy import TcpProxy

from helpers import LiveServer, settled
from orchestrator import AsyncOrchestrator, RunStatus, Unavailable
from orchestrator import types as t
from orchestrator_devmodel import DevModelAdmin
from orchestrator_server.core.active_runs import ActiveRun

WORDS = " ".join(f"w{i}" for i in range(60))
SLOW = {"match": {"contains": "slow"}, "reply": {"tokens_per_second": 40, "text": WORDS}}


@pytest.fixture
async def proxy(live: LiveServer) -> AsyncIterator[TcpProxy]:
    host, port = live.address.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@asynccontextmanager
async def clients(
    live: LiveServer, proxy: TcpProxy
) -> AsyncIterator[tuple[AsyncOrchestrator, AsyncOrchestrator]]:
    """A client straight to the server (to check what it stored) and one through the
    proxy (whose connections the test cuts)."""
    async with (
        AsyncOrchestrator(live.address) as direct,
        AsyncOrchestrator(proxy.address) as client,
    ):
        yield direct, client


async def test_a_stream_cut_mid_answer_resumes_without_gap_or_repeat(
    live: LiveServer, admin: DevModelAdmin, proxy: TcpProxy
) -> None:
    await admin.set_rules([SLOW])
    async with clients(live, proxy) as (direct, client):
        await direct.create_agent("story")
        text, sequences, deltas = "", [], 0
        async with client.stream("slow story", "story", session_id="cut") as events:
            async for event in events:
                if event.run_id != events.run_id:
                    continue
                sequences.append(event.sequence)
                if isinstance(event, t.TextDelta):
                    text += event.text
                    deltas += 1
                    if deltas in (3, 10, 20):
                        proxy.cut()
        assert proxy.cuts == 3 and proxy.connections >= 4  # every cut was resumed
        assert sequences == list(range(1, len(sequences) + 1))
        [run] = await direct.list_runs("story", "cut")
        assert run.status is RunStatus.COMPLETED
        assert text == run.output == WORDS


async def test_a_cut_before_the_run_started_runs_it_once(
    live: LiveServer, admin: DevModelAdmin, proxy: TcpProxy
) -> None:
    await admin.set_rules([SLOW])
    async with clients(live, proxy) as (direct, client):
        await direct.create_agent("story")
        await client.get_agent("story")  # connected through the proxy
        proxy.hold()  # the server's RunStarted never reaches the client...
        stream = client.stream("slow story", "story", session_id="early")
        first = asyncio.create_task(anext(stream))

        def announced() -> bool:  # the server stored the run and sent its RunStarted
            running = live.app.runs.active.in_session("default", "story", "early")
            return bool(running) and running[0].feed is not None and running[0].feed.events != []

        await settled(announced, step_seconds=0.01)
        proxy.cut()  # the start is sent again, with the same request id: it follows the run
        events = [await first] + [e async for e in stream]
        [run] = await direct.list_runs("story", "early")
        assert run.status is RunStatus.COMPLETED
        assert text_of(events) == run.output == WORDS  # every delta, none twice
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))


async def test_a_run_that_ended_while_the_client_was_cut_off_is_read_back_whole(
    live: LiveServer, admin: DevModelAdmin, proxy: TcpProxy
) -> None:
    await admin.set_rules([SLOW])
    async with clients(live, proxy) as (direct, client):
        await direct.create_agent("story")
        await client.get_agent("story")
        proxy.hold()
        stream = client.stream("slow story", "story", session_id="gone")
        first = asyncio.create_task(anext(stream))
        [active] = await _in_session(live, "gone")
        await asyncio.shield(active.done)  # the run ended while nothing reached the client
        await live.app.journal.flush()
        proxy.cut()  # the start again: the server replays the outcome; the client follows
        events = [await first] + [e async for e in stream]
        assert text_of(events) == WORDS
        [run] = await direct.list_runs("story", "gone")
        assert run.status is RunStatus.COMPLETED


async def _in_session(live: LiveServer, session: str) -> list[ActiveRun]:
    await settled(
        lambda: bool(live.app.runs.active.in_session("default", "story", session)),
        step_seconds=0.01,
    )
    return live.app.runs.active.in_session("default", "story", session)


async def test_a_cut_keeps_the_events_of_agents_asked_as_tools(
    live: LiveServer, admin: DevModelAdmin, proxy: TcpProxy
) -> None:
    ask = {"name": "ask_story", "arguments": {"message": "slow story"}}
    await admin.set_rules(
        [
            {"match": {"last_role": "tool"}, "reply": {"echo_tool_results": True}},
            SLOW,
            {"match": {"contains": "delegate"}, "reply": {"tool_calls": [ask]}},
        ]
    )
    async with clients(live, proxy) as (direct, client):
        await direct.create_agent("story")
        await direct.create_agent("boss", callable_agents=["story"])
        child_text, child_sequences = "", []
        async with client.stream("delegate", "boss", session_id="d") as events:
            async for event in events:
                if event.run_id == events.run_id:
                    continue
                child_sequences.append(event.sequence)
                if isinstance(event, t.TextDelta):
                    child_text += event.text
                    if len(child_text) > 20 and not proxy.cuts:
                        proxy.cut()
        assert proxy.cuts == 1
        assert child_text == WORDS  # the child's deltas after the cut came on the follow
        assert child_sequences == list(range(1, len(child_sequences) + 1))


def text_of(events: list[t.RunEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, t.TextDelta))


async def test_run_and_chat_resume_too(
    live: LiveServer, admin: DevModelAdmin, proxy: TcpProxy
) -> None:
    await admin.set_rules([SLOW])
    async with clients(live, proxy) as (direct, client):
        await direct.create_agent("story")

        def answering(session: str) -> bool:
            running = live.app.runs.active.in_session("default", "story", session)
            feed = running[0].feed if running else None
            return feed is not None and feed.last_sequence >= 5

        async def cut_when_answering(session: str) -> None:
            """Cut once the server has streamed a few deltas of the session's run."""
            await settled(lambda: answering(session), step_seconds=0.01)
            proxy.cut()

        cutter = asyncio.create_task(cut_when_answering("run"))
        assert await client.run("slow story", "story", session_id="run") == WORDS
        await cutter
        async with client.chat("story", session_id="chat") as chat:
            cutter = asyncio.create_task(cut_when_answering("chat"))
            text = "".join(
                [e.text async for e in chat.send("slow story") if isinstance(e, t.TextDelta)]
            )
            await cutter
            assert text == WORDS
            second = [e async for e in chat.send("and then?")]  # the chat goes on
            assert isinstance(second[-1], t.RunCompleted)
        runs = await direct.list_runs("story", "chat")
        assert [r.status for r in runs] == [RunStatus.COMPLETED, RunStatus.COMPLETED]


async def test_a_client_tool_answers_once_across_a_cut(
    live: LiveServer, admin: DevModelAdmin, proxy: TcpProxy
) -> None:
    await admin.set_rules(
        [
            {"match": {"last_role": "tool"}, "reply": {"echo_tool_results": True}},
            {"reply": {"tool_calls": [{"name": "lookup", "arguments": {"key": "k"}}]}},
        ]
    )
    calls: list[str] = []
    release = asyncio.Event()

    async def lookup(key: str) -> str:
        """Look a key up."""
        calls.append(key)
        proxy.cut()  # the connection drops while the tool runs
        await release.wait()
        return f"value of {key}"

    async with clients(live, proxy) as (direct, client):
        await direct.create_agent("tooly")
        task = asyncio.create_task(client.run("look", "tooly", tools=[lookup]))
        await settled(lambda: bool(calls), step_seconds=0.01)  # the tool runs
        release.set()
        assert await task == "value of k"
        assert calls == ["k"]


async def test_without_resume_a_cut_cancels_the_run(
    live: LiveServer, admin: DevModelAdmin, proxy: TcpProxy
) -> None:
    await admin.set_rules([SLOW])
    async with clients(live, proxy) as (direct, client):
        await direct.create_agent("story")
        with pytest.raises(Unavailable):
            async with client.stream("slow story", "story", resume=False) as events:
                async for event in events:
                    if isinstance(event, t.TextDelta):
                        proxy.cut()
        [run] = await direct.list_runs("story")
        active = live.app.runs.active.get("default", run.run_id)
        if active is not None:
            await asyncio.shield(active.done)
        cancelled = await direct.get_run(run.run_id)
        assert cancelled.status is RunStatus.CANCELLED
        assert cancelled.error_message == "the client went away"


async def test_leaving_a_resumable_stream_early_cancels_its_run(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    async with AsyncOrchestrator(live.address) as client:
        await client.create_agent("story")
        async with client.stream("slow story", "story") as events:
            async for event in events:
                if isinstance(event, t.TextDelta):
                    break
        run = await client.get_run(events.run_id)
        assert run.status is RunStatus.CANCELLED  # at once, not after the resume window


async def test_a_detached_run_is_followed_from_another_client(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    async with AsyncOrchestrator(live.address) as first, AsyncOrchestrator(live.address) as second:
        await first.create_agent("story")
        seen: list[t.RunEvent] = []
        async with first.stream("slow story", "story", detach=True) as events:
            async for event in events:
                seen.append(event)
                if len(seen) == 3:
                    break  # leaving a detached run's stream leaves the run going
        rest = [e async for e in second.follow(events.run_id, after_sequence=3)]
        text = "".join(e.text for e in seen + rest if isinstance(e, t.TextDelta))
        run = await second.get_run(events.run_id)
        assert run.status is RunStatus.COMPLETED
        assert text == run.output == WORDS
        assert [e.sequence for e in seen + rest] == list(range(1, len(seen) + len(rest) + 1))


async def test_a_follower_cancelled_mid_follow_leaves_the_run_alone(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    async with AsyncOrchestrator(live.address) as first, AsyncOrchestrator(live.address) as second:
        await first.create_agent("story")
        async with first.stream("slow story", "story", detach=True) as events:
            run_id = (await anext(events)).run_id
        seen = asyncio.Event()

        async def follow() -> None:
            async for _ in second.follow(run_id):
                seen.set()

        follower = asyncio.create_task(follow())
        await seen.wait()
        follower.cancel()  # the follower's reader is cancelled (Ctrl-C, a timeout)
        await asyncio.gather(follower, return_exceptions=True)
        rest = [e async for e in second.follow(run_id, after_sequence=1)]
        assert text_of(rest) == WORDS  # the run went on to its end
        assert (await second.get_run(run_id)).status is RunStatus.COMPLETED
