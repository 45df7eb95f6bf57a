"""One turn of an agent in a session, from the user message to the final answer: the
work that `RunEngine` runs in a task of its own (see `task_stream.py`).

Persistence is one transaction when the turn starts (run record + user message) and one
when it ends (assistant message + outcome), never one per token. What a cancelled or
failed turn keeps: the user message stays in the history; the partial answer is not
added to the history (the next turn would otherwise build on half a sentence) but is
kept in the run record's `output` for inspection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from . import events as ev
from .active_runs import ActiveRun, ActiveRuns, deadline_passed
from .coordination_port import POLL_SECONDS, Coordination, session_key
from .errors import DeadlineExceededError, FailedPreconditionError, Reason, UnavailableError
from .log_context import bind_run
from .memory import window_limit
from .model_loop import AskAgent, ModelLoop, TurnContext
from .model_port import ModelCatalog
from .observer import RunObserver, RunReport
from .outcome import OutcomeRecorder, despite_cancels, failure_of
from .session_locks import Reservation
from .start_gate import QueuedBehindPeer, StaleStart, StaleWindow, StartGate
from .store_port import AgentRevision, Store, TurnStart
from .task_stream import Emit
from .telemetry import Span, Tracer
from .telemetry_spans import agent_span, run_ended
from .token_window import TokenWindow
from .types import Agent, Message, Role, Run, RunStatus, Usage

log = logging.getLogger(__name__)
# How long a turn waits, after its first delta, for the caller to send it before it
# parses the rest of the model's answer: far above a send's ~0.1 ms, far below anything
# a caller would notice from a consumer that stopped reading.
HAND_OVER_LIMIT_S = 0.02

# Builds the agent-as-tool callback of a turn from its agent, run and event sink.
AgentCaller = Callable[[Agent, ActiveRun, TurnContext, Emit[object]], AskAgent]


@dataclass(frozen=True, slots=True)
class TurnServices:
    """What every turn uses: the store, models, run tracking and monitoring."""

    store: Store
    models: ModelCatalog
    runs: ActiveRuns
    observer: RunObserver
    ask_agent: AgentCaller
    default_max_model_calls: int
    max_output_chars: int
    tokens: TokenWindow
    coordination: Coordination
    tracer: Tracer


class Turn:
    """Executes one turn: waits for the session, runs the model loop, records the end."""

    def __init__(
        self,
        services: TurnServices,
        active: ActiveRun,
        agent: Agent,
        reservation: Reservation,
        context: TurnContext,
        start: TurnStart | None = None,
        *,
        retry_usage: Usage | None = None,
    ) -> None:
        self._services = services
        self._active = active
        self._agent = agent
        self._reservation = reservation
        self._context = context
        # The window read with the agent (a shared store's TurnStart): the first model
        # request is built on it if the run starts at once; its write checks it is current.
        usable = start is not None and start.limit >= window_limit(agent.spec)
        self._early = start if usable and reservation.immediate else None
        # A guessed start: the write checks the agent is still the one cached.
        guessed = start is not None and start.guessed
        self._agent_at = AgentRevision.of(agent) if guessed else None
        # The first attempt of a turn whose guessed start was stale (StaleStart) is not a
        # run: it stored and emitted nothing, and the engine's retry (given the model
        # usage of the first attempt's dropped request; None: not a retry) is the run.
        self._retry_usage = retry_usage
        self._stale = False
        run = active.run
        self._outcome = OutcomeRecorder(services.store, active.tenant, run)
        self._user_message = Message(Role.USER, run.input, run_id=run.run_id)
        self._started = time.monotonic()
        self._loop: ModelLoop | None = None
        self._span: Span | None = None

    async def run(self, emit: Emit[object]) -> None:
        """The turn's task: every exit records an outcome, and a cancelled turn emits
        RunCancelled (the caller's stream stays open for further turns)."""
        services, active = self._services, self._active
        bind_run(active.run.run_id, active.run.agent_id)  # this task's log lines
        immediate = self._reservation.immediate
        gate = StartGate(
            services.store,
            active.tenant,
            active.run,
            self._user_message if immediate else None,
            emit,
            queue_if_busy=self._context.request.wait_if_busy,
            sequence=self._reservation.sequenced,
            window_at=self._early.revision if self._early else None,
            agent_at=self._agent_at,
        )
        if self._retry_usage is None:  # a retry's run was counted by its first attempt
            services.observer.run_started()
        with agent_span(services.tracer, active.tenant, self._agent, active.run) as span:
            self._span = span
            try:
                await self._execute(gate, emit)
            except asyncio.CancelledError:
                # The ending is written and announced however often the task is cancelled
                # meanwhile (a second cancel, the caller going away while it is written).
                await despite_cancels(self._cancelled(gate, emit))
                raise
            except StaleStart:
                self._stale = True  # nothing stored or emitted: nothing to record
                if self._loop is not None:  # the retry counts the dropped request
                    active.run = replace(active.run, usage=self._loop.usage)
                raise
            except Exception as error:
                await despite_cancels(self._failed(gate, error))
                raise
            finally:
                self._finished()

    async def _cancelled(self, gate: StartGate, emit: Emit[object]) -> None:
        active = self._active
        await gate.settle()
        if not gate.opened:
            # The run's write was refused (or never made): it was never stored nor
            # announced, so it has no end to record and no event to show.
            return
        if self._outcome.run.status is RunStatus.COMPLETED:
            # The cancel came while the answer was being recorded, which succeeded: the
            # run completed, and its stream says so.
            self._announce_completed(emit)
            return
        # A server stop is not the client's doing: such runs read INTERRUPTED, like runs
        # found unfinished after a crash.
        stopped = active.cancel_reason is Reason.RUN_INTERRUPTED
        status = RunStatus.INTERRUPTED if stopped else RunStatus.CANCELLED
        await self._record_end(status, active.cancel_reason, active.cancel_message)
        emit(ev.RunCancelled(active.cancel_reason, active.cancel_message))

    async def _failed(self, gate: StartGate, error: Exception) -> None:
        await gate.settle()
        if self._caller_deadline_passed(error):
            # One outcome for a caller's deadline, whichever step noticed it first (the
            # model call's timeout is the time the caller had left).
            await self._record_end(
                RunStatus.CANCELLED, Reason.DEADLINE_EXCEEDED, "the caller's deadline passed"
            )
            return
        await self._record_end(
            RunStatus.FAILED, *failure_of(error, f"run {self._active.run.run_id}")
        )

    async def _handed_over(self) -> None:
        """Until the caller has sent what the turn emitted (bounded: see TaskStream)."""
        stream = self._active.stream
        if stream is not None:
            await stream.handed_over(HAND_OVER_LIMIT_S)

    def _caller_deadline_passed(self, error: Exception) -> bool:
        if not isinstance(error, DeadlineExceededError):
            return False
        if error.reason is Reason.DEADLINE_EXCEEDED:
            return True
        return error.reason is Reason.MODEL_TIMEOUT and deadline_passed(self._context.deadline)

    async def _execute(self, gate: StartGate, emit: Emit[object]) -> None:
        reservation = self._reservation
        if reservation.immediate:
            # The run's first write is made while the model request is out; the gate is
            # waited for before the first event.
            gate.submit(asyncio.current_task())
            await gate.sent()
        else:
            await gate.wait()
        async with reservation.hold(self._active.run.run_id):
            if not reservation.immediate:
                await self._begin_queued()
            try:
                await self._first_answer(gate, emit)
            except (QueuedBehindPeer, StaleWindow) as again:
                self._early = None  # a window read before the session moved on
                await self._answer_again(again, gate, emit)

    async def _answer_again(
        self, why: QueuedBehindPeer | StaleWindow, gate: StartGate, emit: Emit[object]
    ) -> None:
        """The turn after its first model request was dropped unread."""
        if isinstance(why, QueuedBehindPeer):
            # Another replica runs a turn of the session: wait for this run's turn.
            self._active.run = replace(self._active.run, status=RunStatus.QUEUED)
            await self._begin_queued()
        # Else a turn elsewhere ended between the window's read and this run's write: ask
        # again on the window as it is now.
        await self._answer(gate, emit)

    async def _first_answer(self, gate: StartGate, emit: Emit[object]) -> None:
        """The answer, unless the run's first write (made in parallel) failed or was
        queued: then the gate interrupted the model request, and says why."""
        try:
            await self._answer(gate, emit)
        except asyncio.CancelledError:
            if not gate.take_interruption():
                raise
            await gate.wait()  # raises the write's error, QueuedBehindPeer or StaleWindow
            raise
        except Exception:
            if not gate.blocking:
                raise  # the run is stored and the request was good: its failure stands
            # The request failed before the write answered: the write's answer comes
            # first (a queued run or a stale window asks again; a refused write says why).
            await gate.wait()
            raise

    async def _answer(self, gate: StartGate, emit: Emit[object]) -> None:
        """The model loop of the turn, and its recorded completion."""
        services = self._services
        model = await services.models.resolve(self._agent.spec.model.provider)
        previous = self._loop
        loop = self._loop = ModelLoop(
            model,
            self._agent,
            self._active.run,
            self._context,
            gate,
            emit,
            services.max_output_chars,
            services.tokens,
            services.tracer,
            handed_over=self._handed_over,
        )
        if previous is not None:  # a request dropped unread (queued behind a peer) was sent
            loop.usage = previous.usage
        elif self._retry_usage is not None:  # a stale first attempt's dropped request
            loop.usage = self._retry_usage
        early, self._early = self._early, None  # good for the first request only
        messages = await loop.history(services.store, self._active.tenant, early)
        gate.announce_if_stored()  # a write that overlapped the history read
        if gate.refused:
            await gate.wait()  # raises why: no request is sent for nothing
        ask = services.ask_agent(self._agent, self._active, self._context, emit)
        output = await loop.run(messages, self._max_model_calls(), ask)
        final = Message(Role.ASSISTANT, output, run_id=self._active.run.run_id)
        await gate.wait()
        await self._outcome.completed(output, loop.usage, [*loop.steps, final])
        self._announce_completed(emit)

    def _announce_completed(self, emit: Emit[object]) -> None:
        """MessageCompleted (the answer as stored) and RunCompleted, once it is recorded."""
        run = self._active.run = self._outcome.run
        stored = self._outcome.stored
        final = stored[-1] if stored else Message(Role.ASSISTANT, run.output, run_id=run.run_id)
        emit(ev.MessageCompleted(final))
        loop = self._loop
        ttfd = (loop.first_delta - self._started) * 1000 if loop and loop.first_delta else 0.0
        duration = (time.monotonic() - self._started) * 1000
        emit(ev.RunCompleted(run.output, run.usage, ttfd, duration))

    async def _begin_queued(self) -> None:
        """A queued run gets the session: mark it running and reload its agent, which may
        have been changed or deleted while the run waited."""
        active = self._active
        self._services.runs.dequeued(active)
        now = await self._claim()
        active.run = replace(active.run, status=RunStatus.RUNNING, start_time=now)
        self._outcome.run = active.run
        self._started = time.monotonic()
        current = await self._services.store.get_agent(active.tenant, self._agent.agent_id)
        if current is None:
            raise self._agent_deleted()
        self._agent = current

    async def _claim(self) -> float:
        """Mark the queued run running once the store lets it (at once with this process's
        locks; with a shared store, when it heads the session's queue and nothing runs):
        the doorbell of the session rings when a turn there ends. Returns the start time."""
        store, run = self._services.store, self._active.run
        tenant = self._active.tenant
        key = session_key(tenant, run.agent_id, run.session_id)
        with self._services.coordination.bell(key) as bell:
            while True:
                now = time.time()
                if await store.mark_running(tenant, run.run_id, now, self._user_message):
                    return now
                stored = await store.get_run(tenant, run.run_id)
                if stored is None and await store.get_agent(tenant, run.agent_id) is None:
                    raise self._agent_deleted()
                if stored is None or stored.status is not RunStatus.QUEUED:
                    # Ended while it waited (a peer's reaper, a delete): nothing to run.
                    raise UnavailableError(
                        "the run ended while it was queued", reason=Reason.RUN_INTERRUPTED
                    )
                await bell.wait(POLL_SECONDS)

    def _agent_deleted(self) -> FailedPreconditionError:
        return FailedPreconditionError(
            f"agent '{self._agent.agent_id}' was deleted",
            reason=Reason.AGENT_DELETED,
            metadata={"agent_id": self._agent.agent_id},
        )

    def _max_model_calls(self) -> int:
        return (
            self._context.request.max_model_calls
            or self._agent.spec.max_model_calls
            or self._services.default_max_model_calls
        )

    async def _record_end(self, status: RunStatus, reason: str, message: str) -> None:
        loop = self._loop
        partial = "".join(loop.parts) if loop else ""
        usage = loop.usage if loop else None
        await self._outcome.ended(status, reason, message, output=partial, usage=usage)

    def _finished(self) -> None:
        run = self._outcome.run
        self._reservation.release()
        self._services.runs.remove(self._active)
        if not self._stale:  # a stale start's retry is the run reported (see StaleStart)
            self._report(run)
        self._active.finished(run)

    def _report(self, run: Run) -> None:
        """The run's end for monitoring: the metrics, its span and a log line."""
        loop = self._loop
        first_delta = loop.first_delta if loop and loop.first_delta else None
        report = RunReport(
            run.status,
            run.error_reason,
            time.monotonic() - self._started,
            first_delta - self._started if first_delta else None,
            run.usage,
        )
        self._services.observer.run_finished(report)
        if self._span is not None:
            run_ended(self._span, run)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "run ended: %s%s in %.0f ms, %d input and %d output tokens",
                run.status.value,
                f" ({run.error_reason})" if run.error_reason else "",
                report.duration_s * 1000,
                run.usage.prompt_tokens,
                run.usage.completion_tokens,
            )
