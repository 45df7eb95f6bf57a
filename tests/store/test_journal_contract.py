"""The journal port's contract against every implementation (SQLite, in-memory,
PostgreSQL): chunks of existing runs only, once each, read back in order with the run's
newest chunk, deleted with their session or agent, and pruned by age and then by size;
and the core's Journal and codec over it (what a follower reads back is what was
published, including a failure)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator_server.core import events as ev
from orchestrator_server.core.errors import Reason, UnavailableError
from orchestrator_server.core.journal import Journal
from orchestrator_server.core.journal_codec import decode_chunk, encode_chunk
from orchestrator_server.core.journal_port import EventChunk, JournalStore
from orchestrator_server.core.store_port import Store
from orchestrator_server.core.types import (
    AgentSpec,
    Message,
    NewAgent,
    Role,
    Run,
    RunStatus,
    ToolCall,
    Usage,
)
from orchestrator_server.store.memory import InMemoryStore
from orchestrator_server.store.pg_journal import PostgresJournalStore
from orchestrator_server.store.postgres import PostgresStore
from orchestrator_server.store.sqlite import SQLiteStore
from orchestrator_server.store.sqlite_journal import SQLiteJournalStore
from scripts.pg_cluster import create_database

Stores = tuple[Store, JournalStore]


@pytest.fixture(params=["sqlite", "memory", "postgres"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    store: Store
    journal: JournalStore
    if request.param == "postgres":
        pg = PostgresStore(await create_database(request.getfixturevalue("postgres_server")))
        store, journal = pg, PostgresJournalStore(pg)
    elif request.param == "sqlite":
        lite = SQLiteStore(str(tmp_path / "journal.db"))
        store, journal = lite, SQLiteJournalStore(lite)
    else:
        memory = InMemoryStore()
        store, journal = memory, memory.journal
    await store.open()
    try:
        yield store, journal
    finally:
        await store.close()


async def stored_run(store: Store, run_id: str, session_id: str = "s1") -> None:
    if await store.get_agent("t", "a1") is None:
        await store.create_agent("t", NewAgent("a1", AgentSpec()))
    run = Run(run_id, "a1", session_id, RunStatus.RUNNING, "hi", 1.0, start_time=1.0)
    await store.begin_run("t", run, Message(Role.USER, "hi", run_id=run_id))


def chunk(run_id: str, first: int, last: int, data: bytes = b"x", at: float = 1.0) -> EventChunk:
    """A chunk of the run's own events `first`..`last` (positions first-1 .. last)."""
    return EventChunk("t", run_id, "a1", "s1", first - 1, last, first, last, data, at)


async def test_chunks_of_existing_runs_are_kept_once_and_read_in_order(stores: Stores) -> None:
    store, journal = stores
    await stored_run(store, "run_a")
    await journal.append_run_events(
        [chunk("run_a", 1, 3, b"one"), chunk("run_gone", 1, 1), chunk("run_a", 4, 4, b"two")]
    )
    # A flush written again after its outcome was unknown: the same events and more.
    await journal.append_run_events([chunk("run_a", 4, 5, b"two+end")])
    await journal.append_run_events([chunk("run_a", 4, 4, b"stale")])  # never shrinks
    read = await journal.run_events("t", "run_a", 0, 10)
    assert [(c.first_sequence, c.last_sequence, c.data) for c in read] == [
        (1, 3, b"one"),
        (4, 5, b"two+end"),
    ]
    assert await journal.run_events("t", "run_gone", 0, 10) == []
    assert await journal.run_events("other", "run_a", 0, 10) == []
    # After sequence 3: the chunk that ends at 3 may hold nothing new; the rest does.
    assert [c.first_sequence for c in await journal.run_events("t", "run_a", 4, 10)] == [4]
    assert [c.first_sequence for c in await journal.run_events("t", "run_a", 5, 10)] == [4]
    # Far past the end: the newest chunk still comes (it would record the run's end).
    assert [c.first_sequence for c in await journal.run_events("t", "run_a", 99, 10)] == [4]
    assert len(await journal.run_events("t", "run_a", 0, 1)) == 1
    # From a position on (a follower that read the first chunk asks for what follows).
    later = await journal.run_events("t", "run_a", 0, 10, from_position=3)
    assert [c.position for c in later] == [3]
    assert await journal.run_events("t", "run_a", 0, 10, from_position=5) == []


async def test_chunks_go_with_their_session_and_agent(stores: Stores) -> None:
    store, journal = stores
    await stored_run(store, "run_a", "s1")
    await stored_run(store, "run_b", "s2")
    await journal.append_run_events(
        [chunk("run_a", 1, 1), EventChunk("t", "run_b", "a1", "s2", 0, 1, 1, 1, b"y", 1.0)]
    )
    await store.finish_run("t", Run("run_a", "a1", "s1", RunStatus.COMPLETED, "hi", 1.0), [])
    await store.delete_session("t", "a1", "s1")
    assert await journal.run_events("t", "run_a", 0, 10) == []
    assert len(await journal.run_events("t", "run_b", 0, 10)) == 1
    await store.finish_run("t", Run("run_b", "a1", "s2", RunStatus.COMPLETED, "hi", 1.0), [])
    await store.delete_agent("t", "a1", expected_revision=None)
    assert await journal.run_events("t", "run_b", 0, 10) == []


async def test_pruning_goes_by_age_then_by_size(stores: Stores) -> None:
    store, journal = stores
    for n in range(6):
        await stored_run(store, f"run_{n}", f"s{n}")
        await journal.append_run_events([chunk(f"run_{n}", 1, 1, b"z" * 100, at=float(n))])
    # Age: chunks stored before t=2 go, in batches of at most `limit`.
    assert await journal.prune_run_events(2.0, 10_000, 1) == 1
    assert await journal.prune_run_events(2.0, 10_000, 10) == 1
    assert await journal.prune_run_events(2.0, 10_000, 10) == 0
    # Size: the oldest go while the journal holds more than 250 bytes (4 x 100 now).
    assert await journal.prune_run_events(0.0, 250, 1) == 1
    assert await journal.prune_run_events(0.0, 250, 10) == 1
    assert await journal.prune_run_events(0.0, 250, 10) == 0
    left = [n for n in range(6) if await journal.run_events("t", f"run_{n}", 0, 10)]
    assert left == [4, 5]


def every_kind(run_id: str) -> list[ev.RunEvent]:
    call = ToolCall("c1", "lookup", '{"k": "\\u0000 nul"}')
    bodies: list[ev.EventBody] = [
        ev.RunStarted("s1", RunStatus.RUNNING),
        ev.TextDelta("héllo \x00 wörld"),
        ev.ToolCallStarted(call, "client"),
        ev.ToolCallFinished("c1", "lookup", "out", "", 1.5),
        ev.MessageCompleted(Message(Role.ASSISTANT, "done", (call,), "", run_id, 4, 2.0)),
        ev.RunCancelled("RUN_CANCELLED", "why"),
        ev.RunCompleted("done", Usage(3, 4, 2), 1.25, 9.5),
    ]
    return [ev.RunEvent(run_id, "a1", n, b, "parent") for n, b in enumerate(bodies, start=1)]


def test_the_codec_reads_back_every_kind_of_event() -> None:
    events = every_kind("run_x")
    child = ev.RunEvent("run_child", "helper", 2, ev.TextDelta("from below"), "run_x")
    surrogate = ev.RunEvent("run_x", "a1", 8, ev.TextDelta("half an emoji \ud83d"), "parent")
    events = [*events, child, surrogate]
    decoded, end = decode_chunk("run_x", encode_chunk(("run_x", "a1", "parent"), events, None))
    assert decoded == events and end is None
    _, only_end = decode_chunk("run_x", encode_chunk(("run_x", "a1", "parent"), [], None))
    assert only_end is None


def test_a_chunk_stays_readable_by_the_previous_version() -> None:
    """During a rolling upgrade an older server reads chunks this one wrote: every event
    keeps its previous form (model calls ride in a key older versions ignore), and
    chunks written before model calls were counted read back with none."""
    completed = ev.RunEvent("run_x", "a1", 1, ev.RunCompleted("ok", Usage(3, 4, 2), 1.0, 2.0))
    document = json.loads(encode_chunk(("run_x", "a1", ""), [completed], None))
    assert document["e"] == [[1, "c", "ok", 3, 4, 1.0, 2.0]]  # the five fields of version 1
    assert document["mc"] == {"run_x": 2}
    del document["mc"]
    [old] = decode_chunk("run_x", json.dumps(document).encode())[0]
    assert old.body == ev.RunCompleted("ok", Usage(3, 4), 1.0, 2.0)


async def test_the_journal_writes_what_followers_read_back(stores: Stores) -> None:
    store, journal_store = stores
    await stored_run(store, "run_j")
    journal = Journal(journal_store)
    feed = journal.open_feed("t", "run_j", "a1", "s1", "parent")
    published = [feed.publish(e.body) for e in every_kind("run_j")[:3]]
    await journal.flush()
    published += [feed.publish(e.body) for e in every_kind("run_j")[3:]]
    feed.finish(UnavailableError("gone", reason=Reason.MODEL_UNAVAILABLE))
    await journal.flush()
    assert journal.feed("t", "run_j") is None  # its end is stored: out of the index
    chunks = await journal_store.run_events("t", "run_j", 0, 10)
    assert [(c.first_sequence, c.last_sequence) for c in chunks] == [(1, 3), (4, 7)]
    assert [(c.position, c.end_position) for c in chunks] == [(0, 3), (3, 7)]
    read: list[ev.RunEvent] = []
    ends = []
    for stored in chunks:
        events, end = decode_chunk("run_j", stored.data)
        read += events
        ends.append(end)
    assert read == published
    assert ends[0] is None and ends[1] is not None
    error = ends[1].error()
    assert isinstance(error, UnavailableError) and error.reason is Reason.MODEL_UNAVAILABLE


async def test_a_feed_refused_before_its_first_event_writes_nothing(stores: Stores) -> None:
    _, journal_store = stores
    journal = Journal(journal_store)
    feed = journal.open_feed("t", "run_r", "a1", "s1")
    feed.finish(UnavailableError("busy", reason=Reason.SESSION_BUSY))
    await journal.flush()
    assert journal.feed("t", "run_r") is None
    assert await journal_store.run_events("t", "run_r", 0, 10) == []
