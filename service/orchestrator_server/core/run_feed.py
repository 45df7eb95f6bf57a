"""The events of one run as its followers see them.

Each event is numbered once, when the run's stream hands it over, and kept in order in
memory while the run lives: the run's own stream and every follower read the same list,
each at its own position, so a thousand followers cost a thousand positions, not a
thousand queues, and a slow follower holds up nobody. Appending wakes the followers that
wait (one shared future per change, not one per follower).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

from . import events as ev
from .errors import OrchestratorError
from .journal_codec import RunEnd


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
        self.events: list[ev.RunEvent] = []
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

    @property
    def last_sequence(self) -> int:
        """The sequence number of the newest event (0: none yet)."""
        return len(self.events)

    @property
    def ended(self) -> bool:
        """Whether the run has ended (no event will follow)."""
        return self.end is not None

    def publish(self, body: ev.EventBody) -> ev.RunEvent:
        """Number an event of the run and keep it."""
        event = ev.RunEvent(
            self.run_id, self.agent_id, len(self.events) + 1, body, self.parent_run_id
        )
        self.events.append(event)
        self._wake()
        return event

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

    async def changed(self) -> None:
        """Wait for the next event or the end."""
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._changed)

    def pending_tool_calls(self, after: int) -> list[ev.RunEvent]:
        """The ToolCallStarted events at or before `after` of client-tool calls that
        still wait for a result (a follower that saw them may not have answered)."""
        waiting = set(self.waiting_calls())
        if not waiting:
            return []
        return [
            e
            for e in self.events[:after]
            if isinstance(e.body, ev.ToolCallStarted) and e.body.call.call_id in waiting
        ]

    async def follow(self, after: int) -> AsyncGenerator[ev.RunEvent, None]:
        """The events after sequence `after`, then each new one, until the run's end;
        raises the run's error if it failed."""
        for event in self.pending_tool_calls(after):
            yield event
        position = max(after, 0)
        while True:
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
            await self.changed()
