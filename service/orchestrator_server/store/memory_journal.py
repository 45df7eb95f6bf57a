"""A JournalStore in memory (tests and the in-memory store)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..core.journal_port import EventChunk, enough_to_free


class InMemoryJournalStore:
    """Run event chunks in a dict; `run_exists(tenant, run_id)` says which runs may get
    chunks (as the database's check that the run was not deleted)."""

    def __init__(self, run_exists: Callable[[str, str], bool] | None = None) -> None:
        self._chunks: dict[tuple[str, str], dict[int, EventChunk]] = {}
        self._run_exists = run_exists or (lambda tenant, run_id: True)

    async def append_run_events(self, chunks: Sequence[EventChunk]) -> None:
        """Store chunks of existing runs, once each."""
        for chunk in chunks:
            if self._run_exists(chunk.tenant, chunk.run_id):
                stored = self._chunks.setdefault((chunk.tenant, chunk.run_id), {})
                before = stored.get(chunk.position)
                if before is None or before.end_position <= chunk.end_position:
                    stored[chunk.position] = chunk

    async def run_events(
        self, tenant: str, run_id: str, after: int, limit: int, from_position: int = 0
    ) -> list[EventChunk]:
        """A run's chunks after `after`, in order."""
        chunks = sorted(self._chunks.get((tenant, run_id), {}).values(), key=lambda c: c.position)
        return [
            c
            for c in chunks
            if c.position >= from_position and (c.last_sequence >= after or c is chunks[-1])
        ][:limit]

    async def prune_run_events(self, before: float, max_bytes: int, limit: int) -> int:
        """Delete a batch of chunks stored before `before`, then the oldest over size."""
        every = sorted(
            (c for run in self._chunks.values() for c in run.values()),
            key=lambda c: c.create_time,
        )
        doomed = [c for c in every if c.create_time < before][:limit]
        if not doomed:
            excess = sum(len(c.data) for c in every) - max_bytes
            oldest = [(c, len(c.data)) for c in every[:limit]]
            doomed = [row[0] for row in enough_to_free(oldest, excess)]
        for chunk in doomed:
            del self._chunks[(chunk.tenant, chunk.run_id)][chunk.position]
        return len(doomed)

    def forget(self, tenant: str, keep: Callable[[str], bool]) -> None:
        """Delete the tenant's chunks of runs `keep(run_id)` is False for."""
        for key in [k for k in self._chunks if k[0] == tenant and not keep(k[1])]:
            del self._chunks[key]
