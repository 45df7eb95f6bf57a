"""The first write of a run, overlapped with the model request (see StartGate)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from . import events as ev
from .access import session_not_found
from .errors import AbortedError, InvalidArgumentError, Reason
from .store_port import (
    AgentChangedError,
    AgentRevision,
    DuplicateRequestError,
    SessionBusyError,
    SessionOwnerError,
    SessionRevision,
    Store,
    WindowMovedError,
)
from .types import Message, Run, RunStatus

Emit = Callable[[ev.EventBody], None]
# Starts a write after the previous start of the session (Reservation.sequenced).
Sequencer = Callable[[Callable[[], Awaitable[Run]]], "asyncio.Future[Run]"]


class QueuedBehindPeer(Exception):
    """A start meant to run at once was stored QUEUED: another replica runs a turn of the
    session (a shared store decides in the run's write). The turn waits for its claim."""


class StaleWindow(Exception):
    """The run was stored RUNNING, but its session moved on after the turn's window was
    read (a turn elsewhere ended meanwhile): the turn asks again on the session as it
    is now."""


class StaleStart(Exception):
    """Nothing was stored: the turn's start was guessed (Store.guess_turn_start) with an
    agent that changed since this replica cached it, or for a session that exists with
    another owner. Raised before any event of the run; the engine starts the turn again
    from a read."""


class StartGate:
    """The first write of a run (its record and, unless queued, its user message).

    For a run that starts at once the write overlaps the model request. The run is
    announced (RunStarted) only once it is stored, and no other event of the run goes
    out before that: a client that saw a run id can always find the run, and a crash at
    any point after it leaves the run INTERRUPTED, never missing."""

    def __init__(
        self,
        store: Store,
        tenant: str,
        run: Run,
        user_message: Message | None,
        emit: Emit,
        *,
        sequence: Sequencer,
        queue_if_busy: bool = False,
        window_at: SessionRevision | None = None,
        agent_at: AgentRevision | None = None,
    ) -> None:
        self._store = store
        self._sequence = sequence
        self._queue_if_busy = queue_if_busy
        # The revision the turn's window was read at, checked by the write.
        self._window_at = window_at
        # The revision of a guessed start's agent, checked by the write.
        self._agent_at = agent_at
        self.queued_by_store = False
        self.window_moved = False
        self._tenant = tenant
        self._run = run
        self.user_message = user_message
        self._emit = emit
        self._write: asyncio.Future[Run] | None = None
        self.opened = False
        self._watched: asyncio.Task[object] | None = None
        self._interrupted = False
        self._on_loop = False  # the write is made on the loop (see submit)

    def submit(self, watched: asyncio.Task[object] | None = None) -> None:
        """Send the write to the store without waiting; RunStarted goes out as soon as it
        is stored. If the write fails or is queued, `watched` (the turn, busy with the
        model request) is interrupted at once rather than when the model's first token
        arrives (which may be never): see take_interruption.

        A write the store makes on the loop (~0.3 ms of SQLite) is made two turns of the
        loop later, which is once the model request is out (or waits for its
        connection): it then overlaps the model's answer instead of coming before the
        request. A write that is a round trip starts now. Either way the first writes of
        a session keep the order of its starts (Reservation.sequenced)."""
        self._watched = watched
        if self._write is not None:
            return
        self._on_loop = self._window_at is None and self._store.may_begin_at_once(self._run)
        self._write = self._sequence(self._begin_soon if self._on_loop else self._begin)
        self._write.add_done_callback(self._on_written)

    async def sent(self) -> None:
        """Let a write that is a round trip go out now (its task's first step sends it),
        before the model request is built: that takes ~0.7 ms of the loop, and the first
        delta waits for the write. A write made on the loop waits for the request."""
        if not self._on_loop:
            await asyncio.sleep(0)

    def _begin(self) -> Coroutine[Any, Any, Run]:
        return self._store.begin_run(
            self._tenant,
            self._run,
            self.user_message,
            queue_if_busy=self._queue_if_busy,
            window_at=self._window_at,
            agent_at=self._agent_at,
        )

    async def _begin_soon(self) -> Run:
        """The write on the loop if the store can make it now, else the usual way, in
        this task's second step: its start is one turn of the loop and the sleep another
        (the HTTP client writes a request's body from a task of its own, started by the
        request's first step)."""
        await asyncio.sleep(0)
        stored = self._store.begin_run_at_once(self._tenant, self._run, self.user_message)
        if stored is None:
            return await self._begin()
        if not self._queued_by_store(stored):
            # Announced now rather than from the write's done-callback, which runs a turn
            # of the loop later, after the model's response (already arrived) is handled:
            # the caller then gets RunStarted well before the first delta instead of just
            # ahead of it. A run the store queued is announced by the done-callback, which
            # interrupts the model request in the same step (no delta of it may go out).
            self._open(stored)
        return stored

    def _open(self, stored: Run, *, window_moved: bool = False) -> None:
        """The run is stored: announce it (once)."""
        if self.opened:
            return
        self.opened = True
        self.queued_by_store = self._queued_by_store(stored)
        self.window_moved = window_moved
        self._emit(ev.RunStarted(stored.session_id, stored.status))

    def _queued_by_store(self, stored: Run) -> bool:
        """Whether the store queued a run meant to start at once (a peer holds its
        session)."""
        return stored.status is RunStatus.QUEUED and self._run.status is RunStatus.RUNNING

    def _on_written(self, write: asyncio.Future[Run]) -> None:
        cancelled = write.cancelled()
        error = None if cancelled else write.exception()
        if isinstance(error, WindowMovedError):
            self._open(error.stored, window_moved=True)
            error = None  # stored, on a session that moved on: window_moved says so
        elif not cancelled and error is None:
            self._open(write.result())
        refused = cancelled or error is not None or self.queued_by_store or self.window_moved
        watched, self._watched = self._watched, None
        # The turn itself (announce_if_stored) is not interrupted: it checks `refused`.
        if refused and watched not in (None, asyncio.current_task()) and not watched.done():
            self._interrupted = True
            watched.cancel()

    @property
    def blocking(self) -> bool:
        """Whether the turn must wait() before it uses the model's answer: the run is not
        stored yet, or its write was refused, queued or found the window stale (then
        wait() raises why)."""
        return not self.opened or self.queued_by_store or self.window_moved

    @property
    def refused(self) -> bool:
        """Whether the write has completed and the model request may not be used."""
        return self._write is not None and self._write.done() and self.blocking

    def announce_if_stored(self) -> None:
        """Announce the run now if its write has completed: its done-callback would run
        only after the model request is built and sent, and RunStarted would then go out
        just before the first delta, which would wait for RunStarted's send."""
        if self._write is not None and self._write.done():
            self._on_written(self._write)

    def take_interruption(self) -> bool:
        """In the watched task, handling a CancelledError: whether it was this gate's
        interruption alone (then undone: the caller awaits wait(), which raises why)."""
        if not self._interrupted:
            return False
        self._interrupted = False
        task = asyncio.current_task()
        assert task is not None
        return task.uncancel() == 0

    async def wait(self) -> None:
        """Wait until the run is stored (and so announced); QueuedBehindPeer (once) when
        the store queued a run meant to start at once."""
        if not self.opened:
            await self._stored()
        if self.queued_by_store:
            self.queued_by_store = False  # raised once; the turn then waits for its claim
            raise QueuedBehindPeer
        if self.window_moved:
            self.window_moved = False  # raised once; the turn then reads the window again
            raise StaleWindow

    async def _stored(self) -> None:
        self.submit()
        assert self._write is not None
        try:
            await asyncio.shield(self._write)
        except WindowMovedError:
            pass  # stored: wait() says so
        except AgentChangedError:
            raise StaleStart from None
        except DuplicateRequestError as duplicate:
            # Another replica or a race outside this process used the key first.
            raise InvalidArgumentError.for_field(
                "request_id",
                "is already in use",
                reason=Reason.REQUEST_ID_CONFLICT,
                metadata={"run_id": duplicate.existing.run_id},
            ) from None
        except SessionOwnerError:
            if self._agent_at is not None:
                # A guessed start (no session, the caller its owner) found the session
                # exists: start again from a read, which decides (another principal's
                # session is not found; an admin continues it for its owner).
                raise StaleStart from None
            # Another principal started the session between the engine's check and this
            # write.
            raise session_not_found() from None
        except SessionBusyError as busy:
            # Another replica runs a turn of the session (this one's locks were free).
            raise AbortedError(
                "the session is running another turn",
                reason=Reason.SESSION_BUSY,
                metadata={"session_id": self._run.session_id, "active_run_id": busy.active_run_id},
            ) from None
        # Awaiting a future that is already done does not run its pending callbacks
        # first: announce here too (idempotent), so RunStarted always precedes the rest.
        self._on_written(self._write)

    async def settle(self) -> None:
        """Let a write in flight finish, and announce the run if it was stored: the run's
        end is recorded after it. (A write that completed in this turn of the loop has
        not run its done-callback yet: a cancel handled now would find the run neither
        refused nor announced, and leave it running.)"""
        if self._write is None:
            return
        if not self._write.done():
            await asyncio.gather(asyncio.shield(self._write), return_exceptions=True)
        self._on_written(self._write)
