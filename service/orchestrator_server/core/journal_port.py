"""The journal port: where the events of runs are kept for followers (FollowRun).

A run's events are stored as chunks of consecutive events (see journal_codec); the
sequence numbers of one run's chunks are gap-free unless retention removed the oldest
chunks or the server could not record some (a follower then gets
RUN_EVENTS_UNAVAILABLE). A chunk that holds only the run's end has `first_sequence` one
past `last_sequence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class EventChunk:
    """Consecutive events of one run, encoded (journal_codec)."""

    tenant: str
    run_id: str
    agent_id: str
    session_id: str
    first_sequence: int
    last_sequence: int
    data: bytes
    create_time: float


class JournalStore(Protocol):
    """Chunks of run events, kept until retention removes them."""

    async def append_run_events(self, chunks: Sequence[EventChunk]) -> None:
        """Store chunks (of any runs) in one write, skipping those of runs that no longer
        exist (deleted with their session). A chunk written again (a write whose outcome
        was unknown) replaces the stored one with the same first sequence, which it
        contains. On a store shared by replicas, ring each run's doorbell (run_key)."""

    async def run_events(
        self, tenant: str, run_id: str, after: int, limit: int
    ) -> list[EventChunk]:
        """At most `limit` chunks of a run, in order: those that may hold events after
        sequence `after` (last_sequence >= after), and its newest chunk in any case (the
        one that records the run's end, once it has ended)."""

    async def prune_run_events(self, before: float, max_bytes: int, limit: int) -> int:
        """Delete at most `limit` chunks: those stored before `before`, then the oldest
        while the journal holds more than `max_bytes`; the number deleted."""
