"""The audit trail's batches: records close together go out in one write, some time after
the call (off the path of the run they record), and a listing still includes every
record of the calls that ended before it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from orchestrator_server.core import audit
from orchestrator_server.core.access_port import AuditEvent, AuditQuery
from orchestrator_server.core.audit import AuditTrail
from orchestrator_server.core.errors import UnavailableError
from orchestrator_server.core.pagination import PageTokens


class FakeAuditStore:
    """Keeps the batches it is given; `down` makes every write fail as unavailable."""

    def __init__(self) -> None:
        self.batches: list[list[AuditEvent]] = []
        self.down = False
        self.appended = asyncio.Event()

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        if self.down:
            raise UnavailableError("the store is down")
        self.batches.append(list(events))
        self.appended.set()

    async def list_audit(self, tenant: str, query: AuditQuery) -> list[AuditEvent]:
        stored = [e for batch in self.batches for e in batch if e.tenant == tenant]
        return stored[: query.limit]

    async def prune_audit(self, before: float, limit: int) -> int:
        return 0


def _event(number: int) -> AuditEvent:
    return AuditEvent("t", float(number), "alice", "Run", f"runs/{number}", "OK")


async def _trail(store: FakeAuditStore) -> AuditTrail:
    trail = AuditTrail(store, PageTokens(b"k" * 32))  # type: ignore[arg-type]
    trail.start()
    return trail


@pytest.fixture(autouse=True)
def long_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window no test outlasts: a batch goes out only when someone waits for it."""
    monkeypatch.setattr(audit, "BATCH_WINDOW_S", 3600.0)
    monkeypatch.setattr(audit, "RETRY_SECONDS", 0.01)


async def test_records_of_calls_close_together_are_written_in_one_batch_after_the_calls() -> None:
    store = FakeAuditStore()
    trail = await _trail(store)
    try:
        for number in range(5):
            await trail.record(_event(number))
            await asyncio.sleep(0)  # the writer has woken up between the calls
        assert store.batches == []  # nothing written on the calls' way
        await trail.flush()  # waits for the batch, which then goes out at once
        assert [[e.resource for e in batch] for batch in store.batches] == [
            [f"runs/{n}" for n in range(5)]
        ]
    finally:
        await trail.close()


async def test_a_listing_includes_every_record_made_before_it_without_waiting_the_window() -> None:
    store = FakeAuditStore()
    trail = await _trail(store)
    try:
        for number in range(3):
            await trail.record(_event(number))
        # The listing has the batch written now rather than at the end of its window.
        page = await asyncio.wait_for(trail.list("t"), 30)
        assert [e.resource for e in page.items] == ["runs/0", "runs/1", "runs/2"]
        assert len(store.batches) == 1
    finally:
        await trail.close()


async def test_a_listing_while_the_store_is_down_answers_after_its_bounded_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit, "LIST_WAITS_S", 0.05)
    store = FakeAuditStore()
    store.down = True
    trail = await _trail(store)
    try:
        await trail.record(_event(1))
        page = await asyncio.wait_for(trail.list("t"), 30)
        assert page.items == []  # not stored yet; the writer keeps retrying
        store.down = False
        await trail.flush()
        assert [e.resource for e in (await trail.list("t")).items] == ["runs/1"]
    finally:
        await trail.close()


async def test_a_full_batch_goes_out_without_waiting_for_the_window() -> None:
    store = FakeAuditStore()
    trail = await _trail(store)
    try:
        for number in range(audit.BATCH):
            await trail.record(_event(number))
        await asyncio.wait_for(_written(store, audit.BATCH), 30)  # not the hour's window
        assert [len(batch) for batch in store.batches] == [audit.BATCH]
    finally:
        await trail.close()


async def _written(store: FakeAuditStore, count: int) -> None:
    while sum(len(batch) for batch in store.batches) < count:
        store.appended.clear()
        await store.appended.wait()
