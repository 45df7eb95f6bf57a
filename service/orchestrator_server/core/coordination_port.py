"""The coordination port: how replicas that share one store cooperate over runs.

A store used by one process (SQLite, in-memory) needs none of it: the engine's own
locks and its table of runs in flight are the whole truth. A store shared by several
replicas (PostgreSQL) provides a doorbell that rings when a run ends (its session's
queue may move on, its followers may read its outcome), delivers cancels to the
replica that executes a run, and tells a replica that lost its lease.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

# How long a waiter trusts the doorbell before it looks again by itself: a notification
# can be lost while the listening connection reconnects.
POLL_SECONDS = 1.0


def session_key(tenant: str, agent_id: str, session_id: str) -> str:
    """The doorbell of a session's queue."""
    return f"s\x1f{tenant}\x1f{agent_id}\x1f{session_id}"


def run_key(tenant: str, run_id: str) -> str:
    """The doorbell of a run's end."""
    return f"r\x1f{tenant}\x1f{run_id}"


class Bell(Protocol):
    """A registration for one doorbell, made before the state it guards is read (so a
    ring between the read and the wait is not missed)."""

    async def wait(self, at_most: float) -> None:
        """Return when the bell rang since it was registered or last waited for, or after
        `at_most` seconds."""


class Coordination(Protocol):
    """Cooperation with the other replicas of a shared store."""

    @property
    def shared(self) -> bool:
        """Whether other processes run turns on the same store."""

    def bell(self, key: str) -> AbstractContextManager[Bell]:
        """Register for a doorbell (session_key, run_key) for the `with` block."""

    async def request_cancel(self, tenant: str, run_id: str, superseded_by: str = "") -> None:
        """Ask the replica executing a run to cancel it (because run `superseded_by` of
        its session interrupts it, if given)."""

    def on_cancel(self, handler: Callable[[str, str, str], None]) -> None:
        """Call handler(tenant, run_id, superseded_by) when a peer asks this replica to
        cancel a run."""

    def on_lease_lost(self, handler: Callable[[], None]) -> None:
        """Call handler() when this replica's lease expired: its runs are fenced off and
        (being marked INTERRUPTED by a peer) must stop."""

    async def announce_followers(self, runs: Sequence[tuple[str, str]]) -> None:
        """Tell the replicas executing these (tenant, run_id) runs that they are followed
        from here (a run whose caller dropped is kept while it is)."""

    def on_follower(self, handler: Callable[[str, str], None]) -> None:
        """Call handler(tenant, run_id) when a peer follows a run."""


class _Silent:
    async def wait(self, at_most: float) -> None:
        return None

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LocalCoordination:
    """The coordination of a store only this process uses: nothing to coordinate."""

    shared = False

    def bell(self, key: str) -> AbstractContextManager[Bell]:
        """A bell that never rings (nothing waits for one in a single process)."""
        return _Silent()

    async def request_cancel(self, tenant: str, run_id: str, superseded_by: str = "") -> None:
        """Nobody else executes runs."""

    def on_cancel(self, handler: Callable[[str, str, str], None]) -> None:
        """No peer will ask."""

    def on_lease_lost(self, handler: Callable[[], None]) -> None:
        """There is no lease."""

    async def announce_followers(self, runs: Sequence[tuple[str, str]]) -> None:
        """Followers are all here."""

    def on_follower(self, handler: Callable[[str, str], None]) -> None:
        """No peer follows."""
