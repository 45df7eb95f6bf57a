"""Guessed turn starts on PostgreSQL (Store.guess_turn_start, begin_run's agent check,
schema version 6): the first turn of a session a replica has never seen goes out without
a read, and its write checks the guess; every way the guess can be wrong gives the
answer a read would have given (two engines as replicas of one real database)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from orchestrator_server.core import events as ev
from orchestrator_server.core.access import AccessRole, Caller, acting_as
from orchestrator_server.core.errors import (
    NotFoundError,
    QuotaExceededError,
)
from orchestrator_server.core.observer import RunObserver, RunReport
from orchestrator_server.core.quotas import StorageQuotas
from orchestrator_server.core.store_port import AgentChangedError, AgentRevision
from orchestrator_server.core.types import (
    AgentSpec,
    Message,
    Role,
    Run,
    RunQuery,
    RunStatus,
    TurnRequest,
)
from orchestrator_server.store import pg_counters, pg_turn_start
from orchestrator_server.store.pg_rows import encode
from orchestrator_server.store.postgres import PostgresStore

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from fakes import Core, collect, make_core
from test_shared_store import Hub, HubCoordination

Reads = list[tuple[str, str, str]]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    """The (tenant, agent, session) of every turn-start read, on any replica."""
    made: Reads = []
    read = pg_turn_start.read_turn_start

    async def counted(*args: Any) -> Any:
        made.append(args[4])
        return await read(*args)

    monkeypatch.setattr(pg_turn_start, "read_turn_start", counted)
    return made


class Replicas:
    """Engines over their own PostgresStore on one database (opened on demand)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.hub = Hub()
        self.stores: list[PostgresStore] = []

    async def replica(self, quotas: StorageQuotas | None = None, **engine: Any) -> Core:
        """A replica; `observer` is then its Counted observer."""
        store = PostgresStore(self.url, **({"quotas": quotas} if quotas else {}))
        await store.open()
        self.stores.append(store)
        self.observer = Counted()
        coordination = HubCoordination(self.hub)
        return make_core(store, coordination=coordination, observer=self.observer, **engine)  # type: ignore[arg-type]

    async def close(self) -> None:
        for store in self.stores:
            await store.close()


class Counted(RunObserver):
    """Runs started and finished, as the metrics count them."""

    def __init__(self) -> None:
        self.started = 0
        self.finished: list[tuple[RunStatus, str]] = []

    def run_started(self) -> None:
        self.started += 1

    def run_finished(self, report: RunReport) -> None:
        self.finished.append((report.status, report.reason))


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[Replicas]:
    group = Replicas(postgres_url)
    try:
        yield group
    finally:
        await group.close()


def turn(core: Core, message: str, session: str, principal: str = "p") -> Awaitable[list[Any]]:
    with acting_as(Caller(principal, "t", frozenset({AccessRole.RUNNER}))):
        return asyncio.ensure_future(
            collect(core.engine.execute("t", TurnRequest("alpha", message, session_id=session)))
        )


def completed(events: list[Any]) -> ev.RunCompleted:
    body = events[-1].body
    assert isinstance(body, ev.RunCompleted), body
    assert sum(isinstance(e.body, ev.RunStarted) for e in events) == 1
    return body


async def runs_of(core: Core, session: str) -> list[Run]:
    return await core.store.list_runs("t", RunQuery(100, "alpha", session))


async def test_a_new_sessions_first_turn_is_not_read(replicas: Replicas, reads: Reads) -> None:
    b = await replicas.replica()
    await b.agent("alpha")
    completed(await turn(b, "hi", "s0"))  # the agent is now cached here
    reads.clear()
    completed(await turn(b, "hello", "s1"))
    assert reads == []  # guessed: the run's write checked it
    completed(await turn(b, "again", "s1"))
    assert reads == [("t", "alpha", "s1")]  # a session seen: read
    stored = await b.store.load_history("t", "alpha", "s1", 10)
    assert [m.content for m in stored] == ["hello", "ok", "again", "ok"]
    assert [m["content"] for m in b.model.calls[-1]] == ["hello", "ok", "again"]


async def test_a_guessed_session_that_existed_is_answered_on_its_window(
    replicas: Replicas, reads: Reads
) -> None:
    """A replica that started after the session's last turn has not heard of it: its
    guess (no session) is stale, and the turn asks again on the window as stored."""
    a = await replicas.replica()
    await a.agent("alpha")
    completed(await turn(a, "first", "s"))
    b = await replicas.replica()  # listens from now on
    completed(await turn(b, "warm", "s0"))
    reads.clear()
    done = completed(await turn(b, "second", "s"))
    assert done.output == "ok" and reads == []
    assert [m["content"] for m in b.model.calls[-1]] == ["first", "ok", "second"]
    stored = await a.store.load_history("t", "alpha", "s", 10)
    assert [m.content for m in stored] == ["first", "ok", "second", "ok"]
    assert len(await runs_of(b, "s")) == 2


async def test_a_session_that_ended_elsewhere_is_read_not_guessed(
    replicas: Replicas, reads: Reads
) -> None:
    """The doorbell's NOTIFY of a turn's end tells every replica the session exists."""
    a, b = await replicas.replica(), await replicas.replica()
    await a.agent("alpha")
    completed(await turn(b, "warm", "s0"))
    heard = asyncio.Event()
    coordination = b.store.coordination  # type: ignore[attr-defined]
    coordination.on_session_end(lambda *key: key[2] == "s" and heard.set())
    completed(await turn(a, "first", "s"))
    await asyncio.wait_for(heard.wait(), 10)
    reads.clear()
    completed(await turn(b, "second", "s"))
    assert reads == [("t", "alpha", "s")]
    assert [m["content"] for m in b.model.calls[-1]] == ["first", "ok", "second"]


async def test_an_agent_changed_elsewhere_starts_the_turn_again_from_a_read(
    replicas: Replicas, reads: Reads
) -> None:
    """The change's notice (NOTIFY) has not reached b yet: its guess uses version 1,
    and the write's agent check catches it."""
    a, b = await replicas.replica(), await replicas.replica()
    await a.agent("alpha")
    completed(await turn(b, "warm", "s0"))  # b caches version 1
    deaf(b)
    await a.store.update_agent(
        "t", "alpha", AgentSpec(system_message="version 2"), expected_revision=None
    )
    reads.clear()
    calls = len(b.model.calls)
    events = await turn(b, "hello", "s1")
    completed(events)
    assert reads == [("t", "alpha", "s1")]  # the retry read the agent afresh
    assert b.model.calls[-1][0] == {"role": "system", "content": "version 2"}
    assert len(b.model.calls) - calls in (1, 2)  # the guessed request, if it went out
    assert [r.status for r in await runs_of(b, "s1")] == [RunStatus.COMPLETED]
    counted = replicas.observer  # b's: one run each, the retry included
    assert counted.started == 2 and counted.finished == [(RunStatus.COMPLETED, "")] * 2
    stored = await b.store.load_history("t", "alpha", "s1", 10)
    assert [m.content for m in stored] == ["hello", "ok"]


def deaf(core: Core) -> None:
    """The replica hears no more notices of agents changed elsewhere (as if they were
    late): its cached agents stay."""
    coordination = core.store.coordination  # type: ignore[attr-defined]
    coordination._agent_handlers.clear()


async def test_an_agent_changed_elsewhere_is_forgotten_when_heard(
    replicas: Replicas, reads: Reads
) -> None:
    """Heard, the notice drops b's cached copy: no request carries version 1 again."""
    a, b = await replicas.replica(), await replicas.replica()
    await a.agent("alpha", system_message="version 1")
    completed(await turn(b, "warm", "s0"))
    heard = asyncio.Event()
    b.store.coordination.on_agent_change(lambda *_: heard.set())  # type: ignore[attr-defined]
    await a.store.update_agent(
        "t", "alpha", AgentSpec(system_message="version 2"), expected_revision=None
    )
    await asyncio.wait_for(heard.wait(), 10)
    reads.clear()
    calls = len(b.model.calls)
    completed(await turn(b, "hello", "s1"))
    assert reads == [("t", "alpha", "s1")]  # not cached: read, not guessed
    assert [c[0]["content"] for c in b.model.calls[calls:]] == ["version 2"]


async def test_an_agent_deleted_and_created_again_here_is_not_guessed_from_its_old_copy(
    replicas: Replicas,
) -> None:
    b = await replicas.replica()
    await b.agent("alpha", system_message="old and secret")
    completed(await turn(b, "warm", "s0"))
    await b.store.delete_agent("t", "alpha", expected_revision=None)
    await b.agent("alpha", system_message="new")
    calls = len(b.model.calls)
    completed(await turn(b, "hello", "s1"))
    assert [c[0]["content"] for c in b.model.calls[calls:]] == ["new"]


async def test_a_deleted_agent_is_not_found_after_a_guess(replicas: Replicas) -> None:
    a, b = await replicas.replica(), await replicas.replica()
    await a.agent("alpha")
    completed(await turn(b, "warm", "s0"))
    deaf(b)
    await a.store.delete_agent("t", "alpha", expected_revision=None)
    with pytest.raises(NotFoundError) as refused:
        await turn(b, "hello", "s1")
    counted = replicas.observer  # b's: the guessed attempt's count is ended
    assert counted.started == 2
    assert counted.finished == [(RunStatus.COMPLETED, ""), (RunStatus.FAILED, refused.value.reason)]


async def private_session_unknown_to_b(replicas: Replicas, principal: str) -> tuple[Core, Core]:
    """Replica a with session "private" of principal "owner"; replica b, started after it
    (it has not heard of the session), with the agent cached by `principal`'s turn."""
    a = await replicas.replica()
    await a.agent("alpha")
    completed(await turn(a, "mine", "private", principal="owner"))
    b = await replicas.replica()
    completed(await turn(b, "warm", "s0", principal=principal))
    return a, b


async def test_a_guess_in_another_principals_session_is_not_found_then_read(
    replicas: Replicas, reads: Reads
) -> None:
    a, b = await private_session_unknown_to_b(replicas, "intruder")
    reads.clear()
    calls = len(b.model.calls)
    with pytest.raises(NotFoundError):
        await turn(b, "let me in", "private", principal="intruder")
    # Guessed, the write found the session; started again from a read, which refused.
    assert reads == [("t", "alpha", "private")]
    assert all(call[-1]["content"] != "mine" for call in b.model.calls[calls:])
    assert [r.input for r in await runs_of(a, "private")] == ["mine"]
    # Refused once: the tenant's next new sessions are read for a while.
    completed(await turn(b, "fine", "fresh", principal="intruder"))
    assert reads == [("t", "alpha", "private"), ("t", "alpha", "fresh")]


async def test_an_admin_continues_another_principals_session_it_was_not_told_of(
    replicas: Replicas, reads: Reads
) -> None:
    a, b = await private_session_unknown_to_b(replicas, "p")
    reads.clear()
    with acting_as(Caller("root", "t", frozenset({AccessRole.ADMIN}))):
        request = TurnRequest("alpha", "admin here", session_id="private")
        completed(await collect(b.engine.execute("t", request)))
    assert reads == [("t", "alpha", "private")]  # the guess was stale: read
    assert [m["content"] for m in b.model.calls[-1]] == ["mine", "ok", "admin here"]
    runs = await runs_of(a, "private")
    assert [(r.input, r.owner) for r in runs] == [("admin here", "owner"), ("mine", "owner")]


async def test_a_guess_over_the_quota_is_refused_by_the_write(
    replicas: Replicas, reads: Reads
) -> None:
    b = await replicas.replica(StorageQuotas(max_stored_bytes_per_tenant=2_000))
    await b.agent("alpha")
    completed(await turn(b, "warm", "s0"))
    reads.clear()
    with pytest.raises(QuotaExceededError):
        await turn(b, "x" * 1000, "big")
    assert reads == []
    assert await runs_of(b, "big") == []
    with pytest.raises(QuotaExceededError):  # read this time, refused before the model
        calls = len(b.model.calls)
        await turn(b, "y" * 1000, "big2")
    assert reads == [("t", "alpha", "big2")] and len(b.model.calls) == calls


async def test_the_write_checks_the_agent_revision_on_every_store_path(
    replicas: Replicas,
) -> None:
    b = await replicas.replica()
    await b.agent("alpha")
    store = b.store
    agent = await store.get_agent("t", "alpha")
    assert agent is not None
    stale = AgentRevision(agent.revision, agent.update_time - 1)
    run = Run("r1", "alpha", "s", RunStatus.RUNNING, input="hi", create_time=1.0)
    with pytest.raises(AgentChangedError):
        await store.begin_run("t", run, Message(Role.USER, "hi", run_id="r1"), agent_at=stale)
    assert await store.get_run("t", "r1") is None
    current = AgentRevision.of(agent)
    stored = await store.begin_run(
        "t", run, Message(Role.USER, "hi", run_id="r1"), agent_at=current
    )
    assert stored.status is RunStatus.RUNNING


@pytest.mark.parametrize(
    "option",
    [
        {"interrupt_if_busy": True},  # its session exists
        {"request_id": "once"},  # a repeat would follow the first attempt
        {"continue_on_disconnect": True},  # detached, no caller would retry it
        {"resume_window": 30.0},
    ],
)
async def test_turns_that_others_may_consume_are_read(
    replicas: Replicas, reads: Reads, option: dict[str, Any]
) -> None:
    b = await replicas.replica()
    await b.agent("alpha")
    completed(await turn(b, "warm", "s0"))
    reads.clear()
    request = TurnRequest("alpha", "now", session_id="s1", **option)
    with acting_as(Caller("p", "t", frozenset({AccessRole.RUNNER}))):
        completed(await collect(b.engine.execute("t", request)))
    assert reads == [("t", "alpha", "s1")]


async def test_a_v5_replica_still_begins_runs_after_the_v6_migration(
    replicas: Replicas,
) -> None:
    """The 27-argument begin_run a v5 replica calls (no agent check) still exists."""
    b = await replicas.replica()
    await b.agent("alpha")
    store = b.store
    assert isinstance(store, PostgresStore)
    run = Run("v5", "alpha", "s", RunStatus.RUNNING, input="from v5", create_time=1.0)
    row = await store.fetchrow(
        "SELECT * FROM begin_run($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
        "$14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)",
        "t", run.run_id, run.agent_id, run.session_id, run.status.value,
        encode(run.input), run.create_time, "", "", encode(""), 0, 0, "", encode(""),
        run.create_time, None, "", store.replica_id, False, 10**12, 10,
        encode("from v5"), 10, pg_counters.USAGE_SHARDS, "", 0.0, 0,
    )  # fmt: skip
    assert tuple(row) == ("ok", "", "running")
    history = await store.load_history("t", "alpha", "s", 10)
    assert [m.content for m in history] == ["from v5"]


async def test_a_run_starts_no_earlier_than_the_turn_before_it_ended(
    replicas: Replicas,
) -> None:
    """A write that waited for the previous turn's end (its clock behind that end) is
    stored as starting after it: runs of a session never overlap in the record."""
    b = await replicas.replica()
    await b.agent("alpha")
    store = b.store
    first = Run("r1", "alpha", "s", RunStatus.RUNNING, input="q1", create_time=1.0, start_time=1.0)
    await store.begin_run("t", first, Message(Role.USER, "q1", run_id="r1"))
    done = dataclasses.replace(first, status=RunStatus.COMPLETED, end_time=5.0)
    await store.finish_run("t", done, [Message(Role.ASSISTANT, "a1", run_id="r1")])
    second = Run("r2", "alpha", "s", RunStatus.RUNNING, input="q2", create_time=3.0, start_time=3.0)
    await store.begin_run("t", second, Message(Role.USER, "q2", run_id="r2"))
    stored = await store.get_run("t", "r2")
    assert stored is not None and stored.start_time == 5.0 and stored.create_time == 3.0
