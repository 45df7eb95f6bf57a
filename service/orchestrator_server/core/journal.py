"""The journal of run events: every event of the runs this replica executes, written to
the store in batches, and the feeds of live runs for followers on this replica.

One writer task flushes every `flush_seconds` (and soon after a run ends): the new events
of every run that changed go to the store in one write, a chunk per run, so the cost is
a write per interval, not per event or per run. Followers on this replica read the
feeds in memory; followers on other replicas read the store, woken by the store's
doorbell. A run's feed leaves the index once its end is stored.

Bounded: at most `max_pending_events` events wait for the store (a database outage);
past that, the oldest runs' unwritten events are given up, with an error in the log, and
their followers elsewhere get RUN_EVENTS_UNAVAILABLE where the gap begins. A pruner
deletes chunks older than the retention, then the oldest while the journal is larger
than `max_bytes`, in small batches between which serving goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from .errors import UnavailableError
from .journal_codec import encode_chunk
from .journal_port import EventChunk, JournalStore
from .run_feed import RunFeed

log = logging.getLogger(__name__)

DEFAULT_FLUSH_SECONDS = 0.05
DEFAULT_RETENTION_SECONDS = 7 * 86400.0
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_MAX_PENDING_EVENTS = 200_000
PRUNE_INTERVAL = 60.0
PRUNE_BATCH = 500
# Chunks a follower reads from the store at once (a chunk may hold a whole answer).
READ_BATCH = 8
# After encoding a chunk this large, the writer lets the loop serve others.
YIELD_BYTES = 256 * 1024


class Journal:
    """The live feeds of this replica's runs and their writer to the store."""

    def __init__(
        self,
        store: JournalStore,
        *,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._flush_seconds = flush_seconds
        self._retention = retention_seconds
        self._max_bytes = max_bytes
        self._max_pending = max_pending_events
        self._clock = clock
        self._feeds: dict[tuple[str, str], RunFeed] = {}
        self._dirty: dict[tuple[str, str], RunFeed] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.lost_events = 0  # events given up (store unavailable too long)

    def open_feed(
        self, tenant: str, run_id: str, agent_id: str, session_id: str, parent_run_id: str = ""
    ) -> RunFeed:
        """The feed of a run about to start, known to followers on this replica."""
        feed = RunFeed(tenant, run_id, agent_id, session_id, parent_run_id, on_change=self._changed)
        self._feeds[(tenant, run_id)] = feed
        return feed

    def feed(self, tenant: str, run_id: str) -> RunFeed | None:
        """The feed of a run this replica executes, or ended recently and is writing."""
        return self._feeds.get((tenant, run_id))

    def _changed(self, feed: RunFeed) -> None:
        self._dirty[(feed.tenant, feed.run_id)] = feed
        if feed.ended:
            self._wake.set()  # its end is written without waiting for the interval

    def start(self) -> None:
        """Start the writer and the pruner."""
        self._tasks = [
            asyncio.create_task(self._write_periodically(), name="journal writer"),
            asyncio.create_task(self._prune_periodically(), name="journal pruner"),
        ]

    async def close(self) -> None:
        """Write what is pending (a few seconds at most), then stop."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        with contextlib.suppress(TimeoutError, UnavailableError):
            async with asyncio.timeout(5.0):
                await self.flush()

    async def _write_periodically(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_seconds):
                    await self._wake.wait()
            self._wake.clear()
            if self._dirty:
                try:
                    await self.flush()
                except UnavailableError:
                    self._give_up_if_over_limit()
                    await asyncio.sleep(1.0)  # the store is down: retry, not spin
                except Exception:
                    # Not an outage: writing the same chunks again would fail the same way.
                    log.exception("could not write run events; their followers elsewhere lose them")
                    self._give_up(list(self._dirty.values()))

    async def flush(self) -> None:
        """Write every feed's unwritten events (and ends) in one store write."""
        if not self._dirty:
            return
        feeds = list(self._dirty.values())
        self._dirty.clear()
        chunks: list[EventChunk] = []
        marks: list[tuple[RunFeed, int, bool]] = []
        try:
            for feed in feeds:
                chunk = await self._chunk_of(feed)
                if chunk is not None:
                    chunks.append(chunk)
                    marks.append((feed, chunk.end_position, feed.end is not None))
            if chunks:
                await self.store.append_run_events(chunks)
        except BaseException:
            for feed in feeds:  # written by the next flush
                if feed.stored < len(feed.events) or not feed.end_stored:
                    self._dirty.setdefault((feed.tenant, feed.run_id), feed)
            raise
        for feed, written, with_end in marks:
            feed.stored = max(feed.stored, written)
            if with_end and feed.stored == len(feed.events):
                feed.end_stored = True
                self._forget(feed)
            elif feed.stored < len(feed.events) or (feed.ended and not feed.end_stored):
                self._dirty[(feed.tenant, feed.run_id)] = feed

    async def _chunk_of(self, feed: RunFeed) -> EventChunk | None:
        """The feed's unwritten events (and end) as a chunk; None when there is nothing
        to write. A feed whose events cannot be encoded is given up (and logged)."""
        start, stop = feed.stored, len(feed.events)
        end = feed.end if not feed.end_stored else None
        if start == stop and end is None:
            return None
        if not feed.events:  # refused before its first event: nothing of the run is stored
            self._forget(feed)
            return None
        try:
            data = encode_chunk(
                (feed.run_id, feed.agent_id, feed.parent_run_id), feed.events[start:stop], end
            )
        except Exception:
            log.exception("could not encode the events of run %s", feed.run_id)
            self._give_up([feed])
            return None
        if len(data) > YIELD_BYTES:
            await asyncio.sleep(0)  # a large chunk was encoded: let the loop serve others
        first, last = feed.own_sequences(start, stop)
        return EventChunk(
            feed.tenant,
            feed.run_id,
            feed.agent_id,
            feed.session_id,
            start,
            stop,
            first,
            last,
            data,
            self._clock(),
        )

    def _forget(self, feed: RunFeed) -> None:
        key = (feed.tenant, feed.run_id)
        if self._feeds.get(key) is feed:
            del self._feeds[key]

    def _give_up(self, feeds: list[RunFeed]) -> None:
        """Stop trying to write these feeds' unwritten events (counted as lost)."""
        for feed in feeds:
            self.lost_events += len(feed.events) - feed.stored
            self._dirty.pop((feed.tenant, feed.run_id), None)
            feed.stored = len(feed.events)
            if feed.ended:
                feed.end_stored = True
                self._forget(feed)

    def _give_up_if_over_limit(self) -> None:
        """Past `max_pending_events` unwritten, drop the unwritten events of the runs
        that ended longest ago (their followers elsewhere see where the gap begins)."""
        pending = sum(len(f.events) - f.stored for f in self._dirty.values())
        if pending <= self._max_pending:
            return
        for feed in list(self._dirty.values()):
            if pending <= self._max_pending:
                break
            if not feed.ended:
                continue
            lost = len(feed.events) - feed.stored
            pending -= lost
            log.error(
                "gave up %d events of run %s: the store stayed unavailable", lost, feed.run_id
            )
            self._give_up([feed])

    async def _prune_periodically(self) -> None:
        while True:
            try:
                await self.prune()
            except UnavailableError:
                pass  # the store is down; the next round prunes
            except Exception:
                log.exception("could not prune the run event journal")
            await asyncio.sleep(PRUNE_INTERVAL)

    async def prune(self) -> int:
        """Delete chunks past the retention (age, then size), a batch at a time."""
        before = self._clock() - self._retention
        total = 0
        while (
            deleted := await self.store.prune_run_events(before, self._max_bytes, PRUNE_BATCH)
        ) > 0:
            total += deleted
        return total


class NoJournalStore:
    """A journal store that keeps nothing (an engine built without one: feeds live in
    memory only)."""

    async def append_run_events(self, chunks: Sequence[EventChunk]) -> None:
        """Keep nothing."""

    async def run_events(
        self, tenant: str, run_id: str, after: int, limit: int, from_position: int = 0
    ) -> list[EventChunk]:
        """Nothing is kept."""
        return []

    async def prune_run_events(self, before: float, max_bytes: int, limit: int) -> int:
        """Nothing to prune."""
        return 0
