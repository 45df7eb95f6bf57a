"""The journal port: where the events of runs are kept for followers (FollowRun).

A run's events are stored as chunks of consecutive events (see journal_codec): chunk
`position` holds the events from that index of the run's feed up to `end_position`, so
one run's chunks follow each other without a gap unless retention removed the oldest
or the server could not record some (a follower then gets RUN_EVENTS_UNAVAILABLE).
`first_sequence`/`last_sequence` are the run's own first and last sequence numbers in
the chunk: a chunk with none of its own events (only a child run's, or only the run's
end) has `first_sequence` one past `last_sequence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class EventChunk:
    """Consecutive events of one run, encoded (journal_codec)."""

    tenant: str
    run_id: str
    agent_id: str
    session_id: str
    position: int
    end_position: int
    first_sequence: int
    last_sequence: int
    data: bytes
    create_time: float

    def row(self) -> tuple[str, str, str, str, int, int, int, int, bytes, float]:
        """The fields in order, as a store's row (dataclasses.astuple deep-copies each)."""
        return (
            self.tenant,
            self.run_id,
            self.agent_id,
            self.session_id,
            self.position,
            self.end_position,
            self.first_sequence,
            self.last_sequence,
            self.data,
            self.create_time,
        )


class JournalStore(Protocol):
    """Chunks of run events, kept until retention removes them."""

    async def append_run_events(self, chunks: Sequence[EventChunk]) -> None:
        """Store chunks (of any runs) in one write, skipping those of runs that no longer
        exist (deleted with their session). A chunk written again (a write whose outcome
        was unknown) replaces the stored one at its position, which it contains (its
        end_position is not smaller). On a store shared by replicas, ring each run's
        doorbell (run_key)."""

    async def run_events(
        self, tenant: str, run_id: str, after: int, limit: int, from_position: int = 0
    ) -> list[EventChunk]:
        """At most `limit` chunks of a run from `from_position` on, in order: those that
        may hold what came after its own event `after` (last_sequence >= after), and its
        newest chunk in any case (the one that records the run's end, once it ended)."""

    async def prune_run_events(self, before: float, max_bytes: int, limit: int) -> int:
        """Delete at most `limit` chunks: those stored before `before`, then the oldest
        while the journal holds more than `max_bytes`; the number deleted."""


def enough_to_free(oldest: Sequence[Sequence[Any]], excess: int) -> list[Sequence[Any]]:
    """The first of `oldest` (rows ending with their size) that free `excess` bytes: what
    pruning by size deletes, oldest first, in every implementation."""
    chosen: list[Sequence[Any]] = []
    for row in oldest:
        if excess <= 0:
            break
        chosen.append(row)
        excess -= row[-1]
    return chosen
