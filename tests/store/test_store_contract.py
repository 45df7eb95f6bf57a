"""The store port's contract, run against every Store implementation (SQLite, in-memory):
tenant isolation, revisions and etags, cascades, message sequencing, run records and
their idempotency keys, keyset pagination order, and teams."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from helpers import other_callbacks
from orchestrator_server.core.errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    Reason,
)
from orchestrator_server.core.store_port import (
    DuplicateRequestError,
    MissingAgentsError,
    SessionRevision,
    Store,
    WindowMovedError,
)
from orchestrator_server.core.types import (
    AgentSpec,
    Message,
    NewAgent,
    Role,
    Run,
    RunQuery,
    RunStatus,
    TeamSpec,
    Usage,
)
from orchestrator_server.store.memory import InMemoryStore
from orchestrator_server.store.postgres import PostgresStore
from orchestrator_server.store.sqlite import SQLiteStore
from orchestrator_server.store.sqlite_loop_writer import STEP_BYTES
from scripts.pg_cluster import create_database


@pytest.fixture(params=["sqlite", "memory", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    implementation: Store
    if request.param == "postgres":
        implementation = PostgresStore(
            await create_database(request.getfixturevalue("postgres_server"))
        )
    elif request.param == "sqlite":
        implementation = SQLiteStore(str(tmp_path / "contract.db"))
    else:
        implementation = InMemoryStore()
    await implementation.open()
    try:
        yield implementation
    finally:
        await implementation.close()


def spec(**labels: str) -> AgentSpec:
    return AgentSpec(system_message="be brief", labels=dict(labels))


def a_run(run_id: str, agent_id: str = "a1", session_id: str = "s1", **fields: object) -> Run:
    values: dict[str, object] = {"status": RunStatus.RUNNING, "input": "hi", "create_time": 1.0}
    values.update(fields)
    return Run(run_id, agent_id, session_id, **values)  # type: ignore[arg-type]


async def test_agents_belong_to_their_tenant(store: Store) -> None:
    created, fresh = await store.create_agent("t1", NewAgent("a1", spec(), True, False))
    assert fresh and created.revision == 1 and created.is_default
    assert await store.get_agent("t2", "a1") is None
    assert await store.list_agents("t2", after=None, limit=10, label_filter={}) == []
    assert await store.default_agent_id("t2") is None
    again, fresh = await store.create_agent("t1", NewAgent("a1", spec(), False, True))
    assert not fresh and again.agent_id == "a1"
    with pytest.raises(AlreadyExistsError) as exists:
        await store.create_agent("t1", NewAgent("a1", spec(), False, False))
    assert exists.value.reason is Reason.AGENT_ALREADY_EXISTS


async def test_agents_list_in_id_order_with_label_filters(store: Store) -> None:
    for agent_id, team in [("c", "x"), ("a", "x"), ("b", "y")]:
        await store.create_agent("t", NewAgent(agent_id, spec(team=team), False, False))
    page = await store.list_agents("t", after=None, limit=2, label_filter={})
    assert [a.agent_id for a in page] == ["a", "b"]
    rest = await store.list_agents("t", after="b", limit=2, label_filter={})
    assert [a.agent_id for a in rest] == ["c"]
    xs = await store.list_agents("t", after=None, limit=10, label_filter={"team": "x"})
    assert [a.agent_id for a in xs] == ["a", "c"]


async def test_updates_bump_the_revision_and_check_it(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", spec(), False, False))
    updated = await store.update_agent("t", "a1", spec(v="2"), expected_revision=1)
    assert updated.revision == 2 and updated.spec.labels == {"v": "2"}
    assert updated.etag == 'W/"2"'
    with pytest.raises(AbortedError) as stale:
        await store.update_agent("t", "a1", spec(v="3"), expected_revision=1)
    assert stale.value.reason is Reason.ETAG_MISMATCH
    assert stale.value.metadata["current_etag"] == 'W/"2"'
    with pytest.raises(NotFoundError) as missing:
        await store.update_agent("t", "zz", spec(), expected_revision=None)
    assert missing.value.reason is Reason.AGENT_NOT_FOUND


async def test_deleting_an_agent_removes_its_conversations_runs_and_default(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", spec(), True, False))
    await store.begin_run("t", a_run("r1"), Message(Role.USER, "hi", run_id="r1"))
    await store.delete_agent("t", "a1", expected_revision=None)
    assert await store.get_agent("t", "a1") is None
    assert await store.default_agent_id("t") is None
    assert await store.get_run("t", "r1") is None
    assert await store.list_sessions("t", "a1", after=None, limit=10) == []
    assert await store.load_history("t", "a1", "s1", 10) == []


async def test_messages_are_numbered_per_session_and_windowed(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", spec(), False, False))
    await store.append_messages("t", "a1", "s1", [Message(Role.USER, f"m{i}") for i in range(5)])
    await store.append_messages("t", "a1", "s2", [Message(Role.USER, "other")])
    last = await store.load_history("t", "a1", "s1", 2)
    assert [(m.sequence, m.content) for m in last] == [(4, "m3"), (5, "m4")]
    after = await store.list_messages("t", "a1", "s1", after=3, limit=10)
    assert [m.sequence for m in after] == [4, 5]
    sessions = await store.list_sessions("t", "a1", after=None, limit=10)
    assert [(s.session_id, s.message_count) for s in sessions] == [("s1", 5), ("s2", 1)]
    assert await store.delete_session("t", "a1", "s1") == 5
    assert [s.session_id for s in await store.list_sessions("t", "a1", after=None, limit=10)] == [
        "s2"
    ]


async def finished_turn(store: Store, run: Run, answer: str) -> None:
    await store.begin_run("t", run, Message(Role.USER, run.input, run_id=run.run_id))
    done = dataclasses.replace(run, status=RunStatus.COMPLETED, output=answer, end_time=9.0)
    await store.finish_run("t", done, [Message(Role.ASSISTANT, answer, run_id=run.run_id)])


async def test_a_turn_start_reads_its_window_and_the_write_checks_it_is_current(
    store: Store,
) -> None:
    await store.create_agent("t", NewAgent("a1", spec(), False, False))
    start = await store.read_turn_start("t", "a1", "s1", "hi")
    if start is None:  # a store whose reads are local: the engine reads one by one
        assert isinstance(store, SQLiteStore)
        return
    assert (start.owner, start.revision, start.messages) == (None, SessionRevision(0.0, 0), [])
    assert start.agent is not None and start.limit == 50
    assert (await store.read_turn_start("t", "ghost", "s1", "hi")).agent is None  # type: ignore[union-attr]
    await finished_turn(store, a_run("r1", owner="p", input="hi"), "yo")
    read = await store.read_turn_start("t", "a1", "s1", "hi")
    assert read is not None and read.owner == "p" and read.revision.count == 2
    assert [m.content for m in read.messages] == ["hi", "yo"]
    # Current: stored, no error; then stale (another turn ended since the read).
    await finished_turn(store, a_run("r2", owner="p", input="more"), "ok")
    late = a_run("r3", owner="p", input="late")
    with pytest.raises(WindowMovedError) as moved:
        await store.begin_run(
            "t", late, Message(Role.USER, "late", run_id="r3"), window_at=read.revision
        )
    assert moved.value.stored.run_id == "r3"
    stored = await store.get_run("t", "r3")
    assert stored is not None and stored.status is RunStatus.RUNNING
    history = await store.load_history("t", "a1", "s1", 10)
    assert [m.content for m in history] == ["hi", "yo", "more", "ok", "late"]
    # A session deleted and started again to the same count is another one.
    await finished_turn(store, a_run("r4", session_id="s2", owner="p", input="x"), "y")
    at_two = await store.read_turn_start("t", "a1", "s2", "hi")
    assert at_two is not None and at_two.revision.count == 2
    await store.delete_session("t", "a1", "s2")
    await finished_turn(store, a_run("r5", session_id="s2", owner="p", create_time=5.0), "z")
    with pytest.raises(WindowMovedError):
        run = a_run("r6", session_id="s2", owner="p", create_time=6.0)
        await store.begin_run("t", run, Message(Role.USER, "hi"), window_at=at_two.revision)


async def test_any_text_is_kept_exactly_nul_characters_too(store: Store) -> None:
    """Callers and models may send NUL characters (PostgreSQL's TEXT cannot hold them)."""
    text = "before\x00after é 🙂"
    await store.create_agent("t", NewAgent("a1", spec(), False, False))
    run = a_run("r1", input=text)
    await store.begin_run("t", run, Message(Role.USER, text, run_id="r1"))
    final = dataclasses.replace(
        run, status=RunStatus.FAILED, output=text, error_message=text, end_time=2.0
    )
    await store.finish_run("t", final, [Message(Role.ASSISTANT, text, run_id="r1")])
    history = await store.load_history("t", "a1", "s1", 10)
    assert [m.content for m in history] == [text, text]
    stored = await store.get_run("t", "r1")
    assert stored is not None
    assert (stored.input, stored.output, stored.error_message) == (text, text, text)


async def test_messages_of_a_deleted_agent_are_not_stored(store: Store) -> None:
    await store.append_messages("t", "ghost", "s1", [Message(Role.USER, "orphan")])
    assert await store.load_history("t", "ghost", "s1", 10) == []


async def test_a_run_moves_from_begin_to_its_recorded_outcome(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", spec(), False, False))
    queued = a_run("r1", status=RunStatus.QUEUED, request_id="k1")
    await store.begin_run("t", queued, None)
    await store.mark_running("t", "r1", 2.0, Message(Role.USER, "hi", run_id="r1"))
    running = await store.get_run("t", "r1")
    assert running is not None and running.status is RunStatus.RUNNING and running.start_time == 2.0
    assert running is not None
    final = dataclasses.replace(
        running, status=RunStatus.COMPLETED, output="done", usage=Usage(3, 4), end_time=3.0
    )
    stored = await store.finish_run("t", final, [Message(Role.ASSISTANT, "done", run_id="r1")])
    assert [m.sequence for m in stored] == [2]
    run = await store.get_run("t", "r1")
    assert run is not None and run.status is RunStatus.COMPLETED
    assert (run.output, run.usage, run.end_time) == ("done", Usage(3, 4), 3.0)
    assert await store.find_run_by_request("t", "a1", "k1") == run
    assert await store.get_run("t2", "r1") is None


async def test_a_run_keeps_the_trace_id_of_its_call(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", spec(), False, False))
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    await store.begin_run("t", a_run("r1", trace_id=trace), None)
    await store.begin_run("t", a_run("r2", session_id="s2"), None)
    assert (await store.get_run("t", "r1")).trace_id == trace  # type: ignore[union-attr]
    assert (await store.get_run("t", "r2")).trace_id == ""  # type: ignore[union-attr]
    [listed] = [r for r in await store.list_runs("t", RunQuery(10)) if r.run_id == "r1"]
    assert listed.trace_id == trace


async def test_a_request_id_is_used_once_per_agent(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", spec(), False, False))
    await store.begin_run("t", a_run("r1", request_id="k"), None)
    with pytest.raises(DuplicateRequestError) as duplicate:
        await store.begin_run("t", a_run("r2", request_id="k"), None)
    assert duplicate.value.existing.run_id == "r1"
    await store.begin_run("t2", a_run("r3", request_id="k"), None)  # another tenant's key


async def test_runs_list_newest_first_with_keyset_pages(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", spec(), False, False))
    for i, session in enumerate(["s1", "s2", "s1"]):
        run = a_run(f"r{i}", session_id=session, create_time=10.0 + i, status=RunStatus.COMPLETED)
        await store.begin_run("t", run, None)
    first = await store.list_runs("t", RunQuery(2))
    assert [r.run_id for r in first] == ["r2", "r1"]
    after = (first[-1].create_time, first[-1].run_id)
    rest = await store.list_runs("t", RunQuery(2, after=after))
    assert [r.run_id for r in rest] == ["r0"]
    s1 = await store.list_runs("t", RunQuery(10, "a1", "s1", None))
    assert [r.run_id for r in s1] == ["r2", "r0"]


async def test_unfinished_runs_are_marked_interrupted(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", spec(), False, False))
    await store.begin_run("t", a_run("r1"), None)
    await store.begin_run("t", a_run("r2", status=RunStatus.QUEUED), None)
    await store.begin_run("t", a_run("r3", status=RunStatus.COMPLETED), None)
    if isinstance(store, PostgresStore):
        # A shared store leaves the runs of live replicas (this one) alone; its reaper
        # is tested with expired leases in test_postgres_replicas.
        assert await store.interrupt_unfinished_runs(9.0) == 0
        return
    assert await store.interrupt_unfinished_runs(9.0) == 2
    run = await store.get_run("t", "r1")
    assert run is not None and run.status is RunStatus.INTERRUPTED
    assert run.error_reason == Reason.RUN_INTERRUPTED and run.end_time == 9.0


async def test_teams_name_existing_agents_and_keep_them(store: Store) -> None:
    await store.create_agent("t", NewAgent("a1", spec(), False, False))
    with pytest.raises(MissingAgentsError) as missing:
        await store.create_team("t", "team", TeamSpec(members=("a1", "nope")), if_not_exists=False)
    assert missing.value.agent_ids == ("nope",)
    team, created = await store.create_team(
        "t", "team", TeamSpec(members=("a1",)), if_not_exists=False
    )
    assert created and team.revision == 1
    with pytest.raises(FailedPreconditionError) as in_use:
        await store.delete_agent("t", "a1", expected_revision=None)
    assert in_use.value.reason is Reason.AGENT_IN_USE
    assert in_use.value.metadata["team_id"] == "team"
    updated = await store.update_team(
        "t", "team", TeamSpec(members=("a1",), description="d"), expected_revision=1
    )
    assert updated.revision == 2
    with pytest.raises(AbortedError):
        await store.delete_team("t", "team", expected_revision=1)
    assert [t.team_id for t in await store.list_teams("t", after=None, limit=10)] == ["team"]
    await store.delete_team("t", "team", expected_revision=2)
    with pytest.raises(NotFoundError) as gone:
        await store.delete_team("t", "team", expected_revision=None)
    assert gone.value.reason is Reason.TEAM_NOT_FOUND
    await store.delete_agent("t", "a1", expected_revision=None)


async def test_the_page_token_secret_is_stable(store: Store) -> None:
    first = await store.page_token_secret()
    assert len(first) >= 16 and await store.page_token_secret() == first


async def test_sqlite_runs_label_scans_off_the_event_loop(tmp_path: Path) -> None:
    """A label filter evaluates JSON in every agent row of a tenant: the SQLite store runs
    that read on its scanner thread, never on the event loop's."""
    threads: list[str] = []

    class Watched(SQLiteStore):
        def _scan_rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
            threads.append(threading.current_thread().name)
            return super()._scan_rows(sql, params)

    store = Watched(str(tmp_path / "scan.db"))
    await store.open()
    try:
        await store.create_agent("t", NewAgent("a1", spec(team="blue")))
        found = await store.list_agents("t", after=None, limit=10, label_filter={"team": "blue"})
        assert [a.agent_id for a in found] == ["a1"]
        assert threads and all(t.startswith("sqlite-scan") for t in threads)
        threads.clear()
        await store.list_agents("t", after=None, limit=10, label_filter={})
        assert threads == []  # a plain keyset page is a point read on the loop's connection
    finally:
        await store.close()
        await store.close()  # closing twice is harmless


async def test_a_history_of_large_messages_is_read_in_steps(tmp_path: Path) -> None:
    """SQLite reads on the loop; a history of megabyte messages gives it back between
    rows, so that one session's large turns do not hold every other call."""
    store = SQLiteStore(str(tmp_path / "steps.db"))
    await store.open()
    try:
        await store.create_agent("t", NewAgent("a1", spec()))
        big = [Message(Role.USER, "x" * STEP_BYTES) for _ in range(6)]
        await store.append_messages("t", "a1", "s1", big)
        async with other_callbacks() as ticks:
            history = await store.load_history("t", "a1", "s1", limit=50)
        assert [m.content for m in history] == [m.content for m in big]
        assert ticks[0] >= len(big) - 1
    finally:
        await store.close()
