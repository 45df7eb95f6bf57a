"""The runs executing in this process: lookup by id and by request id, and cancellation.

A run is cancelled by cancelling its task; the reason recorded for it is set first
(`RUN_CANCELLED` by default, `RUN_INTERRUPTED` when the server stops, `MEMBER_TIMEOUT` for
a team member, `DEADLINE_EXCEEDED` when its caller's deadline passed), so that the task's
own cleanup writes the right outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import QuotaExceededError, Reason, UnavailableError
from .run_feed import RunFeed
from .task_stream import TaskStream
from .types import Run

RequestKey = tuple[str, str, str]  # tenant, agent_id, request_id
# Turns in flight (running or queued), server-wide and per tenant.
DEFAULT_MAX_RUNS = 5000
DEFAULT_MAX_RUNS_PER_TENANT = 1000
# Open Run streams, server-wide and per tenant (an idle stream costs memory too).
DEFAULT_MAX_STREAMS = 10_000
DEFAULT_MAX_STREAMS_PER_TENANT = 2_000
# Of those, turns waiting for a busy session (wait_if_busy): a queue per session.
DEFAULT_MAX_QUEUED_RUNS = 1000
DEFAULT_MAX_QUEUED_RUNS_PER_TENANT = 100
# gRPC measures a caller's deadline on its own clock: a caller gone within this much of
# its deadline is taken to have hit it.
DEADLINE_SLACK_SECONDS = 0.05


def deadline_passed(deadline: float | None) -> bool:
    """Whether a caller's deadline (a time.monotonic() instant) has passed, within the
    clock slack; False without a deadline."""
    return deadline is not None and time.monotonic() >= deadline - DEADLINE_SLACK_SECONDS


@dataclass(frozen=True, slots=True)
class RunLimits:
    """How much may be in flight at once, server-wide and per tenant (QUOTA_EXCEEDED past
    a limit): turns running or queued, queued turns, and open Run streams."""

    max_runs: int = DEFAULT_MAX_RUNS
    max_runs_per_tenant: int = DEFAULT_MAX_RUNS_PER_TENANT
    max_streams: int = DEFAULT_MAX_STREAMS
    max_streams_per_tenant: int = DEFAULT_MAX_STREAMS_PER_TENANT
    max_queued_runs: int = DEFAULT_MAX_QUEUED_RUNS
    max_queued_runs_per_tenant: int = DEFAULT_MAX_QUEUED_RUNS_PER_TENANT


@dataclass(slots=True)
class ActiveRun:
    """A run executing in this process and why it would be cancelled."""

    run: Run
    tenant: str
    stream: TaskStream[object] | None = None
    feed: RunFeed | None = None  # its numbered events, for followers
    queued: bool = False  # counted among the queued runs until it gets its session
    cancel_reason: Reason = Reason.RUN_CANCELLED
    cancel_message: str = "the run was cancelled"
    done: asyncio.Future[Run] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def cancel(self, reason: Reason, message: str) -> None:
        """Cancel the run's task, recording `reason` and `message` as its outcome."""
        self.cancel_reason = reason
        self.cancel_message = message
        if self.stream is not None:
            self.stream.cancel()

    def finished(self, run: Run) -> None:
        """The run's final record is known: wake whoever waits for it."""
        self.run = run
        if not self.done.done():
            self.done.set_result(run)


class ActiveRuns:
    """Runs in flight: turns, and pipelines/team runs (whose tasks run elsewhere)."""

    def __init__(self, limits: RunLimits | None = None) -> None:
        limits = limits or RunLimits()
        self._runs = _Slots("runs", "in flight", limits.max_runs, limits.max_runs_per_tenant)
        self._streams = _Slots("streams", "open", limits.max_streams, limits.max_streams_per_tenant)
        self._queued = _Slots(
            "queued_runs", "waiting", limits.max_queued_runs, limits.max_queued_runs_per_tenant
        )
        self._by_id: dict[str, ActiveRun] = {}
        self._by_request: dict[RequestKey, ActiveRun] = {}
        self._external: dict[str, tuple[str, TaskStream[Any]]] = {}
        self.stopping = False
        self._on_stop: set[Callable[[], None]] = set()  # open streams, told at shutdown
        self._idle = asyncio.Event()
        self._idle.set()
        # Tasks draining detached runs (their callers went away): held until they end.
        self._detached: set[asyncio.Task[None]] = set()

    def add(self, active: ActiveRun) -> None:
        """Track a turn that is about to start."""
        run = active.run
        self._by_id[run.run_id] = active
        self._runs.count(active.tenant)
        if active.queued:
            self._queued.count(active.tenant)
        self._idle.clear()
        if run.request_id:
            self._by_request[(active.tenant, run.agent_id, run.request_id)] = active

    def remove(self, active: ActiveRun) -> None:
        """Forget a turn that has ended."""
        run = active.run
        if self._by_id.pop(run.run_id, None) is not None:
            self._runs.give(active.tenant)
            self.dequeued(active)
        self._settle()
        if run.request_id:
            self._by_request.pop((active.tenant, run.agent_id, run.request_id), None)

    def admit(self, tenant: str, *, queued: bool = False) -> None:
        """QUOTA_EXCEEDED unless one more turn (running, or `queued` for a busy session)
        of `tenant` fits the server's and the tenant's limits: one caller cannot hold every
        slot. Checked with no await before the turn is added, so a stop that began
        meanwhile is seen too."""
        self.refuse_if_stopping()
        self._runs.check(tenant)
        if queued:
            self._queued.check(tenant)

    def dequeued(self, active: ActiveRun) -> None:
        """A queued turn got its session (or ended waiting): no longer counted as queued."""
        if active.queued:
            active.queued = False
            self._queued.give(active.tenant)

    def refuse_if_stopping(self) -> None:
        """SERVER_STOPPING once a stop began: no new turn starts."""
        if self.stopping:
            raise UnavailableError(
                "the server is stopping and starts no new turn; retry",
                reason=Reason.SERVER_STOPPING,
            )

    def open_stream(self, tenant: str) -> None:
        """Count an open Run stream of `tenant`; QUOTA_EXCEEDED past the limits."""
        self._streams.take(tenant)

    def close_stream(self, tenant: str) -> None:
        """A Run stream of `tenant` ended."""
        self._streams.give(tenant)

    def on_stop(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when the server interrupts what is in flight (an open stream
        ends itself with a reason); returns the call that unregisters it."""
        self._on_stop.add(callback)
        return lambda: self._on_stop.discard(callback)

    def keep_detached(self, task: asyncio.Task[None]) -> None:
        """Hold the task draining a detached run until it ends."""
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    def in_session(self, tenant: str, agent_id: str, session_id: str) -> list[ActiveRun]:
        """The runs of a session in flight here (running or queued)."""
        return [
            a
            for a in self._by_id.values()
            if a.tenant == tenant
            and a.run.agent_id == agent_id
            and a.run.session_id == session_id
            and not a.done.done()
        ]

    def get(self, tenant: str, run_id: str) -> ActiveRun | None:
        """A run of `tenant` in flight here."""
        active = self._by_id.get(run_id)
        return active if active is not None and active.tenant == tenant else None

    def by_request(self, tenant: str, agent_id: str, request_id: str) -> ActiveRun | None:
        """The turn in flight that a request id started, if any."""
        return self._by_request.get((tenant, agent_id, request_id))

    def track(self, run_id: str, tenant: str, stream: TaskStream[Any]) -> None:
        """Make a run executed by `stream` outside the engine cancellable with CancelRun."""
        self._external[run_id] = (tenant, stream)
        self._idle.clear()

        def untrack(_: object) -> None:
            self._external.pop(run_id, None)
            self._settle()

        stream.task.add_done_callback(untrack)

    def _settle(self) -> None:
        if not self._by_id and not self._external:
            self._idle.set()

    async def idle(self) -> None:
        """Wait until no run is in flight (a graceful stop lets runs finish first)."""
        await self._idle.wait()

    async def cancel(
        self,
        tenant: str,
        run_id: str,
        reason: Reason = Reason.RUN_CANCELLED,
        message: str = "the run was cancelled by CancelRun",
    ) -> bool:
        """Cancel a run of `tenant` in flight and wait for its outcome; False if none."""
        external = self._external.get(run_id)
        if external is not None and external[0] == tenant:
            stream = external[1]
            stream.cancel()
            # Shielded: a CancelRun call that is itself cancelled must not cancel the
            # collaboration a second time while it records its members' outcomes.
            await asyncio.gather(asyncio.shield(stream.task), return_exceptions=True)
            return True
        active = self._by_id.get(run_id)
        if active is None or active.tenant != tenant or active.stream is None:
            return False
        active.cancel(reason, message)
        await asyncio.shield(active.done)
        return True

    def cancel_own(self, run_id: str, message: str, reason: Reason) -> None:
        """Cancel a run its caller owns (a cancel on its stream, a member timeout)."""
        active = self._by_id.get(run_id)
        if active is not None:
            active.cancel(reason, message)

    def abandoned(self, active: ActiveRun, deadline_passed: bool) -> None:
        """The caller of a turn went away: choose the reason the turn is cancelled with."""
        if self.stopping:
            active.cancel_reason = Reason.RUN_INTERRUPTED
            active.cancel_message = "the server is stopping"
        elif deadline_passed:
            active.cancel_reason = Reason.DEADLINE_EXCEEDED
            active.cancel_message = "the caller's deadline passed"
        else:
            active.cancel_message = "the client went away"

    def interrupt_all(self, reason: Reason, message: str) -> None:
        """Cancel every run in flight with `reason` (this replica lost its lease: peers
        have recorded its runs INTERRUPTED, and it must not go on with them)."""
        for active in list(self._by_id.values()):
            active.cancel(reason, message)
        for _, stream in list(self._external.values()):
            stream.cancel()

    def begin_shutdown(self) -> None:
        """The server is stopping: turns whose callers are cut off from now on are recorded
        INTERRUPTED (the server's doing), not CANCELLED."""
        self.stopping = True

    async def shutdown(self) -> None:
        """Interrupt every run in flight (server stop) and wait for their outcomes."""
        self.stopping = True
        for callback in list(self._on_stop):
            callback()
        actives = list(self._by_id.values())
        for active in actives:
            active.cancel(Reason.RUN_INTERRUPTED, "the server is stopping")
        collaborations = [stream for _, stream in self._external.values()]
        for stream in collaborations:
            stream.cancel()
        tasks = [a.stream.task for a in actives if a.stream is not None]
        await asyncio.gather(*tasks, *(c.task for c in collaborations), return_exceptions=True)
        # Detached runs' drains end once their runs have: their feeds then hold the end.
        await asyncio.gather(*list(self._detached), return_exceptions=True)


class _Slots:
    """Counts of something in use, server-wide and per tenant, with their limits."""

    def __init__(self, name: str, state: str, limit: int, per_tenant: int) -> None:
        self._name = name
        self._state = state  # how the error message says they are in use
        self._limit = limit
        self._per_tenant_limit = per_tenant
        self._per_tenant: Counter[str] = Counter()
        self._total = 0

    def take(self, tenant: str) -> None:
        """Use one slot of `tenant`, or QUOTA_EXCEEDED."""
        self.check(tenant)
        self.count(tenant)

    def check(self, tenant: str) -> None:
        """QUOTA_EXCEEDED unless `tenant` may use one more slot."""
        what = f"{self._name} {self._state}"
        if self._per_tenant[tenant] >= self._per_tenant_limit:
            raise QuotaExceededError(
                f"tenant '{tenant}' has {self._per_tenant_limit} {what}, its limit",
                subject=f"tenant:{tenant}",
                quota=f"max_{self._name}_per_tenant",
                limit=self._per_tenant_limit,
            )
        if self._total >= self._limit:
            raise QuotaExceededError(
                f"the server has {self._limit} {what}, its limit",
                subject="server",
                quota=f"max_{self._name}",
                limit=self._limit,
            )

    def count(self, tenant: str) -> None:
        """Use one slot of `tenant` (checked before)."""
        self._per_tenant[tenant] += 1
        self._total += 1

    def give(self, tenant: str) -> None:
        """Free one slot of `tenant`."""
        self._total -= 1
        self._per_tenant[tenant] -= 1
        if not self._per_tenant[tenant]:
            del self._per_tenant[tenant]
