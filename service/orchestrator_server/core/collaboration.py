"""What pipelines and teams share: the parent run record, the event stream, and running
one participant (a step, member or coordinator) as a child run of the engine.

A collaboration runs in its own task and hands its events to the caller through a
`TaskStream`, like a turn does: parallel members emit from several tasks at once, and the
caller going away cancels the task, which cancels every participant's run in turn.

The parent run is an ordinary run record (agent_id empty, no messages) so that GetRun,
ListRuns and the crash recovery of unfinished runs cover it without new storage; its
children name it in `parent_run_id`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass

from . import events as ev
from .access import current_caller
from .errors import (
    DeadlineExceededError,
    OrchestratorError,
    Reason,
    RunCancelledError,
    UnavailableError,
    error_for_reason,
)
from .events import (
    CollaborationBody,
    CollaborationCompleted,
    CollaborationEvent,
    Participant,
    ParticipantResult,
    ParticipantStarted,
)
from .outcome import OutcomeRecorder, despite_cancels, failure_of
from .runs import RunEngine
from .store_port import Store
from .task_stream import TaskStream
from .telemetry_spans import run_ended, workflow_span
from .types import Run, RunStatus, TurnRequest, Usage

log = logging.getLogger(__name__)

Emit = Callable[[Participant | None, CollaborationBody], None]


@dataclass(frozen=True, slots=True)
class Stage:
    """Where the participants of one collaboration run: the tenant, the collaboration's
    own run (their parent), the session they share, where events go, and the deadline."""

    tenant: str
    run_id: str
    session_id: str
    emit: Emit
    deadline: float | None


Body = Callable[[Stage], Awaitable[CollaborationCompleted]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A participant's result, and the error to report if the collaboration stops on it."""

    result: ParticipantResult
    error: OrchestratorError | None


def participant_error(
    outcome: Outcome, message: str, metadata: dict[str, str]
) -> OrchestratorError:
    """The participant's error (same class and reason) with the collaboration's context."""
    error = outcome.error
    assert error is not None
    return type(error)(
        f"{message}: {error.message}",
        reason=error.reason,
        metadata={**error.metadata, **metadata, "run_id": outcome.result.run_id},
        violations=error.violations,
    )


def total_usage(results: tuple[ParticipantResult, ...]) -> Usage:
    """Token usage summed over participants."""
    usage = Usage()
    for result in results:
        usage = usage + result.usage
    return usage


class Collaborations:
    """Runs collaborations: parent run records, event streams and participant runs."""

    def __init__(self, store: Store, runs: RunEngine) -> None:
        self._store = store
        self._runs = runs

    async def stream(
        self,
        tenant: str,
        run_id: str,
        session_id: str,
        task_input: str,
        body: Body,
        deadline: float | None,
        workflow: tuple[str, str],
    ) -> AsyncGenerator[CollaborationEvent, None]:
        """Record the parent run, run `body` in a task and yield what it emits; the final
        `completed` event is emitted here once the parent run is recorded as completed.
        `workflow` is the (kind, name) its span shows: ("pipeline", ...) or ("team", ...)."""
        now = time.time()
        parent = Run(
            run_id=run_id,
            agent_id="",
            session_id=session_id,
            status=RunStatus.RUNNING,
            input=task_input,
            create_time=now,
            start_time=now,
            owner=current_caller().principal,
        )

        async def work(put: Callable[[CollaborationEvent], None]) -> None:
            sequence = 0

            def emit(participant: Participant | None, event: CollaborationBody) -> None:
                nonlocal sequence
                sequence += 1
                put(CollaborationEvent(run_id, sequence, participant, event))

            outcome = OutcomeRecorder(self._store, tenant, parent)
            stage = Stage(tenant, run_id, session_id, emit, deadline)
            kind, name = workflow
            tracer = self._runs.tracer
            with workflow_span(tracer, kind, name, tenant, run_id, session_id) as span:
                completed = await self._recorded(outcome, stage, body)
                run_ended(span, outcome.run)
            emit(None, completed)

        stream: TaskStream[CollaborationEvent] = TaskStream(
            work,
            name=f"collaboration {run_id}",
            # Cancelled by CancelRun or a server stop (when the caller went away, nobody
            # reads this).
            cancelled_error=self._cancelled_error,
        )
        # CancelRun on the parent run id reaches this task.
        self._runs.active.track(run_id, tenant, stream)
        async with aclosing(stream.events()) as items:
            async for event in items:
                yield event

    def _cancelled_error(self) -> OrchestratorError:
        if self._runs.active.stopping:
            return UnavailableError(
                "the server is stopping; the run was interrupted", reason=Reason.RUN_INTERRUPTED
            )
        return RunCancelledError("the collaboration was cancelled", reason=Reason.RUN_CANCELLED)

    async def _recorded(
        self, outcome: OutcomeRecorder, stage: Stage, body: Body
    ) -> CollaborationCompleted:
        """Run `body` between the parent run's begin and end records. The begin write is
        awaited inside the error handling: a cancel while it is pending still records an
        end once the row exists."""
        begin = asyncio.ensure_future(self._store.begin_run(outcome.tenant, outcome.run, None))
        completed: CollaborationCompleted | None = None
        try:
            await asyncio.shield(begin)
            completed = await body(stage)
            await outcome.completed(completed.output, completed.usage)
        except asyncio.CancelledError:
            await despite_cancels(self._cancelled(begin, outcome))
            if completed is not None and outcome.run.status is RunStatus.COMPLETED:
                return completed  # cancelled while its success was written: it completed
            raise
        except Exception as error:
            await despite_cancels(self._failed(begin, outcome, error))
            raise
        return completed

    async def _cancelled(self, begin: asyncio.Future[Run], outcome: OutcomeRecorder) -> None:
        await asyncio.gather(begin, return_exceptions=True)
        if self._runs.active.stopping:
            # Like its members' runs: the server's doing, not the client's.
            status, reason, message = (
                RunStatus.INTERRUPTED,
                Reason.RUN_INTERRUPTED,
                "the server is stopping",
            )
        else:
            status, reason, message = (
                RunStatus.CANCELLED,
                Reason.RUN_CANCELLED,
                "the collaboration was cancelled (CancelRun, the client went away, or its "
                "deadline passed)",
            )
        await outcome.ended(status, reason, message)

    async def _failed(
        self, begin: asyncio.Future[Run], outcome: OutcomeRecorder, error: Exception
    ) -> None:
        await asyncio.gather(begin, return_exceptions=True)
        reason, message = failure_of(error, f"collaboration {outcome.run.run_id}")
        await outcome.ended(RunStatus.FAILED, reason, message)

    async def run_participant(
        self, stage: Stage, who: Participant, message: str, time_limit: float | None = None
    ) -> Outcome:
        """Run one participant's turn on `message` in the stage's session (waiting if a
        client holds it), announcing it and its result; never raises its error.

        After `time_limit` seconds the participant's run is cancelled through the engine
        (so that its record says why) and reported with reason MEMBER_TIMEOUT.
        """
        stage.emit(who, ParticipantStarted(message))
        request = TurnRequest(
            agent_id=who.agent_id,
            message=message,
            session_id=stage.session_id,
            wait_if_busy=True,
            parent_run_id=stage.run_id,
        )
        outcome = await self._participant_turn(stage, who, request, time_limit)
        stage.emit(who, outcome.result)
        return outcome

    async def _participant_turn(
        self, stage: Stage, who: Participant, request: TurnRequest, time_limit: float | None
    ) -> Outcome:
        tenant, emit, deadline = stage.tenant, stage.emit, stage.deadline
        started = time.monotonic()
        run_id = ""
        last: ev.EventBody | None = None
        timed_out = False

        async def consume() -> None:
            nonlocal run_id, last
            async with aclosing(self._runs.execute(tenant, request, deadline=deadline)) as items:
                async for event in items:
                    run_id = run_id or event.run_id
                    last = event.body
                    emit(who, event)

        turn = asyncio.create_task(consume(), name=f"participant {who.role} {who.index}")

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            if run_id:
                self._runs.active.cancel_own(
                    run_id,
                    f"the team's member timeout ({time_limit:g} s) passed",
                    Reason.MEMBER_TIMEOUT,
                )
            else:
                turn.cancel()

        timer = (
            asyncio.get_running_loop().call_later(time_limit, expire)
            if time_limit is not None
            else None
        )
        try:
            await asyncio.wait({turn})
        finally:
            if timer is not None:
                timer.cancel()
            if not turn.done():
                turn.cancel()
                await asyncio.gather(turn, return_exceptions=True)
        duration = (time.monotonic() - started) * 1000
        error = _error_of(turn, last, timed_out, time_limit)
        return Outcome(_result(who, run_id, last, error, duration), error)


_CANCEL_REASONS = frozenset({Reason.RUN_CANCELLED, Reason.RUN_INTERRUPTED, Reason.MEMBER_TIMEOUT})


def _result(
    who: Participant,
    run_id: str,
    last: ev.EventBody | None,
    error: OrchestratorError | None,
    duration_ms: float,
) -> ParticipantResult:
    """A participant's result from its last event or its error."""
    if error is None:
        assert isinstance(last, ev.RunCompleted)
        return ParticipantResult(
            who, run_id, RunStatus.COMPLETED, last.output, usage=last.usage, duration_ms=duration_ms
        )
    status = RunStatus.CANCELLED if error.reason in _CANCEL_REASONS else RunStatus.FAILED
    return ParticipantResult(
        who, run_id, status, "", error.reason, error.message, duration_ms=duration_ms
    )


def _error_of(
    turn: asyncio.Task[None], last: ev.EventBody | None, timed_out: bool, time_limit: float | None
) -> OrchestratorError | None:
    """Why a participant's turn did not complete, or None if it did."""
    if timed_out and not isinstance(last, ev.RunCompleted):
        return DeadlineExceededError(
            f"did not finish within the member timeout of {time_limit:g} s",
            reason=Reason.MEMBER_TIMEOUT,
        )
    if turn.cancelled():
        return error_for_reason(Reason.RUN_CANCELLED, "the participant's turn was cancelled")
    exception = turn.exception()
    if isinstance(exception, OrchestratorError):
        return exception
    if exception is not None:
        log.error("participant turn failed unexpectedly", exc_info=exception)
        return OrchestratorError("internal error", reason=Reason.INTERNAL_ERROR)
    if isinstance(last, ev.RunCancelled):
        return error_for_reason(last.reason, last.message)
    if not isinstance(last, ev.RunCompleted):
        return OrchestratorError("the turn ended without an outcome", reason=Reason.INTERNAL_ERROR)
    return None
