"""Request-id idempotency of turns (AIP-155): a start repeated with the same request_id
replays the first one's outcome instead of running again, waiting if it still runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable

from . import events as ev
from .active_runs import ActiveRun, ActiveRuns
from .errors import InvalidArgumentError, OrchestratorError, Reason, error_for_reason
from .store_port import Store
from .types import Message, Role, Run, RunStatus, TurnRequest


async def find_previous(
    store: Store,
    runs: ActiveRuns,
    tenant: str,
    agent_id: str,
    session_id: str,
    request: TurnRequest,
) -> Run | ActiveRun | None:
    """The run an earlier start with this request_id made (in flight or stored), or None;
    REQUEST_ID_CONFLICT if that start asked for something else."""
    active = runs.by_request(tenant, agent_id, request.request_id)
    previous = (
        active.run
        if active
        else await store.find_run_by_request(tenant, agent_id, request.request_id)
    )
    if previous is None:
        return None
    if previous.input != request.message or previous.session_id != session_id:
        raise InvalidArgumentError.for_field(
            "request_id",
            "was already used for a different message or session",
            reason=Reason.REQUEST_ID_CONFLICT,
            metadata={"run_id": previous.run_id},
        )
    return active or previous


async def replay(
    previous: Run | ActiveRun, follow: Callable[[Run], Awaitable[Run]] | None = None
) -> AsyncGenerator[ev.RunEvent, None]:
    """The outcome of an earlier start: RunStarted(replayed), then the answer or the
    run's error. A stored run still in progress (on another replica) is followed to its
    end with `follow`."""
    run = previous.run if isinstance(previous, ActiveRun) else previous
    started = ev.RunStarted(run.session_id, run.status, True)
    yield ev.RunEvent(run.run_id, run.agent_id, 1, started)
    if isinstance(previous, ActiveRun):
        run = await asyncio.shield(previous.done)
    elif follow is not None and run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        run = await follow(run)
    if run.status is not RunStatus.COMPLETED:
        raise _error_of(run)
    message = Message(Role.ASSISTANT, run.output, run_id=run.run_id)
    yield ev.RunEvent(run.run_id, run.agent_id, 2, ev.MessageCompleted(message))
    duration = ((run.end_time or 0) - (run.start_time or run.create_time)) * 1000
    completed = ev.RunCompleted(run.output, run.usage, 0.0, duration)
    yield ev.RunEvent(run.run_id, run.agent_id, 3, completed)


def _error_of(run: Run) -> OrchestratorError:
    """The error a replay of a failed, cancelled or interrupted run reports."""
    return error_for_reason(
        run.error_reason or Reason.INTERNAL_ERROR, run.error_message or "the run failed"
    )
