"""FollowRun: a run's events after a given sequence number, from any replica.

A run this replica executes (or ended moments ago and is still writing its journal) is
followed in memory, from its feed. Any other run is followed from the journal in the
store: stored chunks first, then new ones as the executing replica writes them (its
store's doorbell rings for each write; the follower also looks every POLL_SECONDS), until
the chunk that records the run's end. Visibility is GetRun's: a run the caller may not
see is RUN_NOT_FOUND.

A run whose journal does not reach the position asked for (retention removed it, or the
replica executing it died before writing it) ends the follow with RUN_EVENTS_UNAVAILABLE,
or RUN_INTERRUPTED for a run that was interrupted: its record (GetRun) has the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncGenerator, Iterator

from . import events as ev
from .active_runs import ActiveRuns
from .coordination_port import POLL_SECONDS, Coordination, run_key
from .errors import FailedPreconditionError, InvalidArgumentError, Reason, UnavailableError
from .journal import READ_BATCH, Journal
from .journal_codec import RunEnd, decode_chunk
from .journal_port import EventChunk
from .run_feed import Interruption, RunFeed
from .run_records import RunRecords
from .types import Run, RunStatus

# A run that ended this long ago has written its journal (its replica writes within
# milliseconds; a dead replica never will).
END_GRACE_SECONDS = 5.0


def events_unavailable(run_id: str, after: int) -> FailedPreconditionError:
    """The error of a follow whose events are not (or no longer) in the journal."""
    return FailedPreconditionError(
        f"the events of run '{run_id}' after sequence {after} are no longer kept; "
        "GetRun has its outcome",
        reason=Reason.RUN_EVENTS_UNAVAILABLE,
        metadata={"run_id": run_id, "after_sequence": str(after)},
    )


# How often a replica tells the replicas executing runs it follows that it still does.
ANNOUNCE_SECONDS = 0.25


class RunFollowing:
    """Streams the events of runs to followers."""

    def __init__(
        self,
        journal: Journal,
        records: RunRecords,
        coordination: Coordination,
        active: ActiveRuns | None = None,
    ) -> None:
        self._journal = journal
        self._records = records
        self._coordination = coordination
        # Follow streams count among the open streams (server-wide and per tenant).
        self.active = active or ActiveRuns()
        # Runs executed elsewhere that followers here follow (counted), announced to
        # their replicas every ANNOUNCE_SECONDS while any is.
        self._remote: Counter[tuple[str, str]] = Counter()
        self._announcer: asyncio.Task[None] | None = None
        coordination.on_follower(self._followed_elsewhere)

    async def close(self) -> None:
        """Stop announcing (the server is stopping)."""
        if self._announcer is not None:
            self._announcer.cancel()
            await asyncio.gather(self._announcer, return_exceptions=True)

    def _followed_elsewhere(self, tenant: str, run_id: str) -> None:
        feed = self._journal.feed(tenant, run_id)
        if feed is not None:
            feed.touched()

    async def _announce(self) -> None:
        while self._remote:
            with contextlib.suppress(UnavailableError):
                await self._coordination.announce_followers(list(self._remote))
            await asyncio.sleep(ANNOUNCE_SECONDS)
        self._announcer = None

    @contextlib.contextmanager
    def _remote_follower(self, tenant: str, run_id: str) -> Iterator[None]:
        key = (tenant, run_id)
        self._remote[key] += 1
        if self._announcer is None and self._coordination.shared:
            self._announcer = asyncio.create_task(self._announce(), name="follower announcer")
        try:
            yield
        finally:
            self._remote[key] -= 1
            if not self._remote[key]:
                del self._remote[key]

    async def open(self, tenant: str, run_id: str, after: int) -> tuple[Run, RunFeed | None]:
        """The run to follow (RUN_NOT_FOUND unless the caller may see it) and its feed if
        this replica has it."""
        if after < 0:
            raise InvalidArgumentError.for_field("start.after_sequence", "must not be negative")
        if not run_id:
            raise InvalidArgumentError.for_field("start.run_id", "is required")
        run = await self._records.get(tenant, run_id)
        return run, self._journal.feed(tenant, run_id)

    async def follow(
        self,
        tenant: str,
        run: Run,
        feed: RunFeed | None,
        after: int,
        interruption: Interruption | None = None,
    ) -> AsyncGenerator[ev.RunEvent, None]:
        """The run's events after sequence `after` until its end (raising its error)."""
        interruption = interruption or Interruption()
        if feed is not None:
            async for event in feed.follow(after, interruption):
                yield event
            return
        if not run.agent_id:
            raise FailedPreconditionError(
                f"run '{run.run_id}' is a pipeline or team run: follow its steps' and "
                "members' runs",
                reason=Reason.RUN_EVENTS_UNAVAILABLE,
                metadata={"run_id": run.run_id, "after_sequence": str(after)},
            )
        async for event in self._from_store(tenant, run, after, interruption):
            yield event

    async def _from_store(
        self, tenant: str, run: Run, after: int, interruption: Interruption
    ) -> AsyncGenerator[ev.RunEvent, None]:
        reader = JournalReader(run.run_id, after)
        with (
            self._coordination.bell(run_key(tenant, run.run_id)) as bell,
            self._remote_follower(tenant, run.run_id),
        ):
            while True:
                interruption.check()
                chunks = await self._journal.store.run_events(
                    tenant, run.run_id, after, READ_BATCH, reader.next_position
                )
                for chunk in chunks:
                    events, end = reader.read(chunk)
                    for event in events:
                        yield event
                    if end is not None:
                        _raise_end(end)
                        return
                if len(chunks) == READ_BATCH:
                    continue  # more stored already
                # Nothing more stored yet: the run goes on elsewhere, or ended without
                # its journal's end (the record says which).
                current = await self._records.get(tenant, run.run_id)
                if _journal_will_not_end(current):
                    _raise_missing(current, after)
                await interruption.wait(bell.wait(POLL_SECONDS))


class JournalReader:
    """Reads a run's stored chunks in order from what came after its own event `after`;
    RUN_EVENTS_UNAVAILABLE where the journal has a gap (pruned, or given up while the
    store was down)."""

    def __init__(self, run_id: str, after: int) -> None:
        self.run_id = run_id
        self.after = after
        self.next_position = 0  # known once a chunk was read: the next must start there
        self._started = after <= 0

    def read(self, chunk: EventChunk) -> tuple[list[ev.RunEvent], RunEnd | None]:
        """The chunk's events not yet delivered, and the run's end if it records it."""
        if self._gap_before(chunk):
            raise events_unavailable(chunk.run_id, self.after)
        if chunk.position < self.next_position:
            return [], None  # read before (the newest chunk, asked for again)
        self.next_position = chunk.end_position
        if chunk.first_sequence > self.after:
            self._started = True  # none of its own events was delivered before
        events, end = decode_chunk(chunk.run_id, chunk.data)
        if self._started:
            return events, end
        fresh: list[ev.RunEvent] = []
        for event in events:
            if self._started:
                fresh.append(event)
            elif event.run_id == self.run_id and event.sequence >= self.after:
                self._started = True  # what follows its own event `after` is new
        return fresh, end

    def _gap_before(self, chunk: EventChunk) -> bool:
        if self.next_position:
            return chunk.position > self.next_position
        if self.after <= 0:
            return chunk.position > 0
        return chunk.first_sequence > self.after + 1


def _raise_end(end: RunEnd) -> None:
    error = end.error()
    if error is not None:
        raise error


def _journal_will_not_end(run: Run) -> bool:
    """Whether a run's journal will get no more chunks: it ended long enough ago."""
    if not run.status.is_final:
        return False
    return run.end_time is None or time.time() - run.end_time > END_GRACE_SECONDS


def _raise_missing(run: Run, position: int) -> None:
    if run.status is RunStatus.INTERRUPTED:
        raise UnavailableError(
            f"run '{run.run_id}' was interrupted: {run.error_message}",
            reason=Reason.RUN_INTERRUPTED,
            metadata={"run_id": run.run_id},
        )
    raise events_unavailable(run.run_id, position)
