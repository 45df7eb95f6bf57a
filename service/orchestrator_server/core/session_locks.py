"""Mutual exclusion of turns per conversation, with reject or first-come-first-served waits.

Two turns of one session never interleave: their history writes and model calls would mix.
A turn reserves its place synchronously (no await between the busy check and the
reservation, so two starts can never both see a free session), then holds the lock while
it runs. The locks live in this process; entries are dropped when nobody holds or waits
for them so that millions of sessions do not accumulate.

With a store shared by several replicas the database decides (see pg_runs): these locks
then only track what this process has in flight (a fast SESSION_BUSY, the QUEUED status
of a start behind a local turn), and a queued turn waits for its claim in the database
instead of for the local lock: waiting for both could deadlock when their orders differ.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import AbortedError, Reason

SessionKey = tuple[str, str, str]  # tenant, agent_id, session_id
R = TypeVar("R")


@dataclass(slots=True)
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    active_run_id: str = ""
    last_write: asyncio.Future[Any] | None = None  # the session's last first-write


@dataclass(slots=True)
class Reservation:
    """A turn's place in a session's queue; `immediate` when nobody was ahead of it."""

    locks: SessionLocks
    key: SessionKey
    slot: _Slot
    immediate: bool
    released: bool = False

    @asynccontextmanager
    async def hold(self, run_id: str) -> AsyncIterator[None]:
        """Wait for the turn's turn (FIFO: asyncio.Lock wakes waiters in arrival order);
        with a shared store only mark the slot (the database orders the turns)."""
        if self.locks.shared:
            self.slot.active_run_id = run_id
            yield
            return
        async with self.slot.lock:
            self.slot.active_run_id = run_id
            try:
                yield
            finally:
                self.slot.active_run_id = ""

    def sequenced(self, write: Callable[[], Awaitable[R]]) -> asyncio.Future[R]:
        """Start a run's first write only after the previous start of this session in
        this process has been written (ended either way): the store orders the turns by
        their writes (a shared store's queue; who claims a new session; the quota each
        counts against), which must keep the order of arrival here (tasks, deferred
        writes and pooled connections would not)."""
        previous = self.slot.last_write
        if previous is None or previous.done():
            future = asyncio.ensure_future(write())
        else:

            async def after_previous() -> R:
                await asyncio.wait([previous])
                return await write()

            future = asyncio.ensure_future(after_previous())
        self.slot.last_write = future
        return future

    def release(self) -> None:
        """Give the place up; the last user removes the session's entry."""
        if self.released:
            return
        self.released = True
        self.slot.users -= 1
        if self.slot.users == 0 and self.locks._slots.get(self.key) is self.slot:
            del self.locks._slots[self.key]


class SessionLocks:
    """One FIFO lock per (tenant, agent, session)."""

    def __init__(self, *, shared: bool = False) -> None:
        self._slots: dict[SessionKey, _Slot] = {}
        self.shared = shared

    def taken(self, key: SessionKey) -> bool:
        """Whether a turn holds or waits for the session (a new one would queue)."""
        slot = self._slots.get(key)
        return slot is not None and slot.users > 0

    def busy(self, key: SessionKey) -> str:
        """The id of the run holding the session, or "" when it is free (with a shared
        store, always "": the database knows)."""
        if self.shared:
            return ""
        slot = self._slots.get(key)
        return slot.active_run_id if slot is not None and slot.users else ""

    def reserve(self, key: SessionKey, *, wait: bool) -> Reservation:
        """Take a place in the session's queue; without `wait`, SESSION_BUSY if taken."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        if self.shared and not wait:
            # The database answers SESSION_BUSY with the run that really holds the
            # session (a local start may yet lose to another replica's).
            slot.users += 1
            return Reservation(self, key, slot, immediate=True)
        if slot.users and not wait:
            raise AbortedError(
                "the session is running another turn",
                reason=Reason.SESSION_BUSY,
                metadata={"session_id": key[2], "active_run_id": slot.active_run_id},
            )
        slot.users += 1
        return Reservation(self, key, slot, immediate=slot.users == 1)
