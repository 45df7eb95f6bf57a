"""The events of one run as its followers see them.

Each event is numbered once, when the run's stream hands it over, and kept in order in
memory while the run lives: the run's own stream and every follower read the same list,
each at its own position, so a thousand followers cost a thousand positions, not a
thousand queues, and a slow follower holds up nobody. Appending wakes the followers that
wait (one shared future per change, not one per follower).

The list also holds the events of the run's child runs (agents asked by its agent) where
its stream carried them, with their own run ids and numbers: a follower resuming after
the run's event N gets every event its stream carried after that one.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

from . import events as ev
from .errors import OrchestratorError
from .journal_codec import RunEnd

T = TypeVar("T")


class Interruption:
    """Lets a follower's own stream end its waits with an error (a refused command): the
    wait in progress is cancelled and raises the error in the follower's frame (not in
    the transport's, where a cancel would be taken for the caller leaving)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._waiting: asyncio.Future[Any] | None = None

    def check(self) -> None:
        """Raise the error, if the stream was interrupted."""
        if self.error is not None:
            raise self.error

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` unless (until) the stream is interrupted."""
        self.check()
        waiting: asyncio.Future[T] = asyncio.ensure_future(awaitable)
        self._waiting = waiting
        try:
            return await waiting
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.error is None or (task is not None and task.cancelling()):
                raise
            raise self.error from None
        finally:
            self._waiting = None

    def interrupt(self, error: BaseException) -> None:
        """End the stream's waits with `error`."""
        self.error = error
        if self._waiting is not None:
            self._waiting.cancel()


class RunFeed:
    """The numbered events of one run, and how it ended."""

    def __init__(
        self,
        tenant: str,
        run_id: str,
        agent_id: str,
        session_id: str = "",
        parent_run_id: str = "",
        on_change: Callable[[RunFeed], None] | None = None,
    ) -> None:
        self.tenant = tenant
        self.run_id = run_id
        self.agent_id = agent_id
        self.session_id = session_id
        self.parent_run_id = parent_run_id
        self.events: list[ev.RunEvent] = []  # its own and its child runs', in order
        self._own: list[int] = []  # the index in `events` of its own event N at [N - 1]
        self.end: RunEnd | None = None
        # Events before this index are in the journal (the journal's bookkeeping).
        self.stored = 0
        self.end_stored = False
        # The client-tool calls of the run still waiting for a result: re-sent to a new
        # follower (set by the engine; ids of ToolCallStarted events).
        self.waiting_calls: Callable[[], list[str]] = list
        self.deliver: Callable[[str, str, str], None] | None = None
        self._on_change = on_change
        self._changed: asyncio.Future[None] | None = None
        # Who follows the run (a run whose caller dropped waits for one to come back):
        # followers here, and the last time one here or on another replica followed.
        self.followers = 0
        self.last_followed = time.monotonic()

    @property
    def last_sequence(self) -> int:
        """The sequence number of the run's newest own event (0: none yet)."""
        return len(self._own)

    def own_sequences(self, start: int, stop: int) -> tuple[int, int]:
        """The first and last own sequence numbers among events[start:stop] (the first is
        one past the last when there is none)."""
        before = bisect.bisect_left(self._own, start)
        upto = bisect.bisect_left(self._own, stop)
        return (before + 1, upto) if upto > before else (upto + 1, upto)

    def index_after(self, sequence: int) -> int:
        """The index in `events` of what came after the run's own event `sequence`."""
        if sequence <= 0:
            return 0
        if sequence > len(self._own):
            return len(self.events)
        return self._own[sequence - 1] + 1

    @property
    def ended(self) -> bool:
        """Whether the run has ended (no event will follow)."""
        return self.end is not None

    def publish(self, body: ev.EventBody) -> ev.RunEvent:
        """Number an event of the run and keep it."""
        event = ev.RunEvent(
            self.run_id, self.agent_id, len(self._own) + 1, body, self.parent_run_id
        )
        self._own.append(len(self.events))
        self.events.append(event)
        self._wake()
        return event

    def publish_child(self, event: ev.RunEvent) -> None:
        """Keep an event of a child run (already numbered by its own run)."""
        self.events.append(event)
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        """The run ended: plainly (its events say how), or with `error`."""
        if self.end is not None:
            return
        if isinstance(error, OrchestratorError):
            self.end = RunEnd(error.reason.value, error.message)
        elif error is not None:
            self.end = RunEnd("INTERNAL_ERROR", "the run failed; the server log has the details")
        else:
            self.end = RunEnd()
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)
        if self._on_change is not None:
            self._on_change(self)

    def changed(self) -> asyncio.Future[None]:
        """A future done at the next event or the end (made now: a follower that looked
        and found nothing new cannot miss an event published before it awaits this)."""
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        return asyncio.shield(self._changed)

    def pending_tool_calls(self, after: int) -> list[ev.RunEvent]:
        """The ToolCallStarted events at or before `after` of client-tool calls that
        still wait for a result (a follower that saw them may not have answered)."""
        waiting = set(self.waiting_calls())
        if not waiting:
            return []
        return [
            e
            for e in self.events[: self.index_after(after)]
            if e.run_id == self.run_id
            and isinstance(e.body, ev.ToolCallStarted)
            and e.body.call.call_id in waiting
        ]

    def waits_for(self, call_id: str) -> bool:
        """Whether a client-tool call of this run itself (not of another run started on
        the same Run stream) waits for `call_id`'s result."""
        return any(
            isinstance(e.body, ev.ToolCallStarted) and e.body.call.call_id == call_id
            for e in self.pending_tool_calls(self.last_sequence)
        )

    def touched(self) -> None:
        """A follower elsewhere still follows the run."""
        self.last_followed = time.monotonic()

    async def follow(
        self, after: int, interruption: Interruption | None = None
    ) -> AsyncGenerator[ev.RunEvent, None]:
        """The events after sequence `after`, then each new one, until the run's end;
        raises the run's error if it failed."""
        self.followers += 1
        try:
            async for event in self._events_after(after, interruption or Interruption()):
                yield event
        finally:
            self.followers -= 1
            self.touched()

    async def _events_after(
        self, after: int, interruption: Interruption
    ) -> AsyncGenerator[ev.RunEvent, None]:
        for event in self.pending_tool_calls(after):
            yield event
        position = self.index_after(after)
        while True:
            interruption.check()
            if position < len(self.events):
                batch = self.events[position:]
                position += len(batch)
                for event in batch:
                    yield event
                continue
            if self.end is not None:
                error = self.end.error()
                if error is not None:
                    raise error
                return
            await interruption.wait(self.changed())
