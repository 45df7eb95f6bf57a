"""The journal writer when the store fails: an outage is retried, anything else gives the
events up (counted, logged once) instead of writing the same chunks forever."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from helpers import settled
from orchestrator_server.core import events as ev
from orchestrator_server.core import journal as journal_module
from orchestrator_server.core.errors import UnavailableError
from orchestrator_server.core.journal import Journal
from orchestrator_server.core.journal_port import EventChunk
from orchestrator_server.core.types import RunStatus


class FailingStore:
    """Fails every write with `error`, counting the attempts."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.attempts = 0

    async def append_run_events(self, chunks: Sequence[EventChunk]) -> None:
        self.attempts += 1
        raise self.error

    async def run_events(
        self, tenant: str, run_id: str, after: int, limit: int
    ) -> list[EventChunk]:
        return []

    async def prune_run_events(self, before: float, max_bytes: int, limit: int) -> int:
        return 0


async def test_a_write_that_fails_for_good_is_given_up_once() -> None:
    store = FailingStore(ValueError("a chunk the store cannot take"))
    journal = Journal(store, flush_seconds=0.01)
    journal.start()
    try:
        feed = journal.open_feed("t", "run_1", "a", "s")
        feed.publish(ev.RunStarted("s", RunStatus.RUNNING))
        feed.publish(ev.TextDelta("hi"))
        feed.finish()
        await settled(lambda: journal.lost_events == 2, step_seconds=0.01)
        assert journal.feed("t", "run_1") is None
        attempts = store.attempts
        await journal.flush()  # nothing left to write
        assert store.attempts == attempts == 1
    finally:
        await journal.close()


async def test_an_outage_keeps_the_events_for_the_next_write() -> None:
    store = FailingStore(UnavailableError("down"))
    journal = Journal(store, flush_seconds=0.01)
    feed = journal.open_feed("t", "run_1", "a", "s")
    feed.publish(ev.RunStarted("s", RunStatus.RUNNING))
    for _ in range(2):
        with pytest.raises(UnavailableError):
            await journal.flush()
    assert store.attempts == 2
    assert journal.lost_events == 0
    assert journal.feed("t", "run_1") is feed


async def test_a_run_whose_events_cannot_be_encoded_does_not_hold_up_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written: list[EventChunk] = []

    class Store(FailingStore):
        async def append_run_events(self, chunks: Sequence[EventChunk]) -> None:
            written.extend(chunks)

    original = journal_module.encode_chunk

    def encode(run: tuple[str, str, str], events: Sequence[ev.RunEvent], end: object) -> bytes:
        if run[0] == "run_bad":
            raise ValueError("cannot encode")
        return original(run, events, end)  # type: ignore[arg-type]

    monkeypatch.setattr(journal_module, "encode_chunk", encode)
    journal = Journal(Store(ValueError("unused")))
    for run_id in ("run_bad", "run_good"):
        feed = journal.open_feed("t", run_id, "a", "s")
        feed.publish(ev.RunStarted("s", RunStatus.RUNNING))
        feed.finish()
    await journal.flush()
    assert [c.run_id for c in written] == ["run_good"]
    assert journal.lost_events == 1
    assert journal.feed("t", "run_bad") is None and journal.feed("t", "run_good") is None
