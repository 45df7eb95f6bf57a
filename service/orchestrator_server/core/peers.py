"""Runs held by other replicas of a shared store: following one to its end, cancelling
one, and answering the cancels and lease losses peers report to this replica."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .active_runs import ActiveRuns
from .coordination_port import POLL_SECONDS, Coordination, run_key
from .errors import Reason
from .store_port import Store
from .types import Run, RunStatus

log = logging.getLogger(__name__)
_UNFINISHED = (RunStatus.QUEUED, RunStatus.RUNNING)
# How long CancelRun waits for the replica executing a run to record its end (that
# replica answers in milliseconds; a dead one's runs are ended by the lease reaper).
CANCEL_WAIT_SECONDS = 15.0


def superseded(by_run_id: str) -> tuple[Reason, str]:
    """The reason and message a run is cancelled with: RUN_SUPERSEDED naming the run that
    interrupts it, or a plain CancelRun."""
    if by_run_id:
        return Reason.RUN_SUPERSEDED, f"interrupted by run {by_run_id}"
    return Reason.RUN_CANCELLED, "the run was cancelled by CancelRun"


def unfinished(run: Run) -> bool:
    """Whether a run is still queued or running."""
    return run.status in _UNFINISHED


class Follower:
    """Waits for a run executed elsewhere to end (a request id repeated on another
    replica than the one running it)."""

    def __init__(self, store: Store, coordination: Coordination, tenant: str) -> None:
        self._store = store
        self._coordination = coordination
        self._tenant = tenant

    async def __call__(self, run: Run) -> Run:
        """The run's record once it ended (the caller's deadline bounds the wait)."""
        key = run_key(self._tenant, run.run_id)
        with self._coordination.bell(key) as bell:
            while unfinished(run) and self._coordination.shared:
                await bell.wait(POLL_SECONDS)
                current = await self._store.get_run(self._tenant, run.run_id)
                if current is None:
                    return run
                run = current
        return run


class PeerCancels:
    """Carries out what peers ask of this replica: cancelling a run it executes, and
    stopping every run when its lease was lost."""

    def __init__(self, active: ActiveRuns, coordination: Coordination) -> None:
        self._active = active
        self._pending: set[asyncio.Task[bool]] = set()
        coordination.on_cancel(self._cancel)
        coordination.on_lease_lost(self._lease_lost)

    def _cancel(self, tenant: str, run_id: str, superseded_by: str) -> None:
        reason, message = superseded(superseded_by)
        task = asyncio.ensure_future(self._active.cancel(tenant, run_id, reason, message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _lease_lost(self) -> None:
        self._active.interrupt_all(Reason.RUN_INTERRUPTED, "the replica running it lost its lease")


async def cancel_elsewhere(
    store: Store, coordination: Coordination, tenant: str, run: Run, *, superseded_by: str = ""
) -> Run:
    """Ask the replica executing `run` to cancel it and wait (bounded) for its end. The
    request is sent again while the run goes on: a doorbell rung while that replica's
    listening connection was being re-established is lost."""
    if not coordination.shared or not unfinished(run):
        return run
    with coordination.bell(run_key(tenant, run.run_id)) as bell, contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CANCEL_WAIT_SECONDS):
            while unfinished(run):
                await coordination.request_cancel(tenant, run.run_id, superseded_by)
                await bell.wait(POLL_SECONDS)
                current = await store.get_run(tenant, run.run_id)
                if current is None:
                    break
                run = current
    return run
