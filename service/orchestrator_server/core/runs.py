"""The run engine: starts turns, numbers their events, runs agents as tools, and cancels
runs in flight.

A turn executes in its own task (`Turn`, run by a `TaskStream`) and hands its events to
the caller through a channel, so that a cancel (a cancel message, `CancelRun` from
another connection, the caller going away or its deadline) can stop the turn without
stopping the caller's stream. Runs in flight are tracked by `ActiveRuns`; reading run
records is `RunQueries`' job.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

from . import events as ev
from .access import (
    require_runnable,
    session_owner_for_new_turn,
)
from .active_runs import (
    ActiveRun,
    ActiveRuns,
    RunLimits,
)
from .agent_calls import AgentCalls
from .agents import AgentRegistry, no_default_agent
from .argument_validation import in_validation_thread
from .attempts import Attempt, may_guess, not_launched
from .audit import AuditTrail
from .client_tools import parse_client_tools
from .coordination_port import Coordination, LocalCoordination
from .errors import InvalidArgumentError, OrchestratorError, Reason, UnavailableError
from .journal import Journal, NoJournalStore
from .log_context import CURRENT_TRACE
from .model_loop import (
    DEFAULT_MAX_AGENT_CALLS_PER_TURN,
    DEFAULT_MAX_OUTPUT_CHARS,
    AgentCallBudget,
    TurnContext,
)
from .model_port import ModelCatalog
from .observer import RunObserver
from .outcome import despite_cancels
from .peers import Follower, PeerCancels
from .policy import TenantPolicies
from .replay import find_previous, replay
from .run_delivery import Delivery, open_delivery
from .session_locks import Reservation, SessionLocks
from .start_gate import StaleStart
from .store_port import Store, TurnStart
from .supersede import supersede
from .task_stream import TaskStream
from .telemetry import NoTracer, Tracer
from .token_window import DEFAULT_MODEL_TOKENS_PER_MINUTE_PER_TENANT, TokenWindow
from .tool_calls import ClientToolBridge, TurnTools
from .tool_port import ServerTool, ToolCatalog
from .turn import Turn, TurnServices
from .types import Agent, Run, RunStatus, TurnRequest, Usage
from .validation import check_agent_id, check_turn_request

log = logging.getLogger(__name__)


def new_run_id() -> str:
    """Run ids sort by creation time (a hex microsecond clock) and are unguessable."""
    return f"run_{time.time_ns() // 1000:014x}{secrets.token_hex(6)}"


class RunEngine:
    """Executes turns and controls the runs in flight."""

    def __init__(
        self,
        store: Store,
        agents: AgentRegistry,
        models: ModelCatalog,
        *,
        tools: ToolCatalog | None = None,
        default_max_model_calls: int = 10,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        max_agent_depth: int = 3,
        limits: RunLimits | None = None,
        model_tokens_per_minute: int = DEFAULT_MODEL_TOKENS_PER_MINUTE_PER_TENANT,
        max_agent_calls: int = DEFAULT_MAX_AGENT_CALLS_PER_TURN,
        observer: RunObserver | None = None,
        policy: TenantPolicies | None = None,
        audit: AuditTrail | None = None,
        coordination: Coordination | None = None,
        journal: Journal | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._audit = audit
        # Without a journal store (unit tests of other parts), feeds live in memory only.
        self._journal = journal or Journal(NoJournalStore())
        self._store = store
        self._policy = policy or TenantPolicies({})
        self._agents = agents
        self._coordination = coordination or LocalCoordination()
        self._locks = SessionLocks(shared=self._coordination.shared)
        self.active = ActiveRuns(limits)
        self._peer_cancels = PeerCancels(self.active, self._coordination)
        self._max_agent_calls = max_agent_calls
        self._tools: ToolCatalog = tools or _NoTools()
        self.tracer: Tracer = tracer or NoTracer()
        self._services = TurnServices(
            store=store,
            models=models,
            runs=self.active,
            observer=observer or RunObserver(),
            ask_agent=AgentCalls(self.execute, max_agent_depth).caller,
            default_max_model_calls=default_max_model_calls,
            max_output_chars=max_output_chars,
            tokens=TokenWindow(model_tokens_per_minute),
            coordination=self._coordination,
            tracer=self.tracer,
        )

    async def execute(
        self,
        tenant: str,
        request: TurnRequest,
        *,
        deadline: float | None = None,
        bridge: ClientToolBridge | None = None,
        agent_calls: AgentCallBudget | None = None,
    ) -> AsyncGenerator[ev.RunEvent, None]:
        """Run one turn and yield its events; raise the run's error if it fails.

        `deadline` is a time.monotonic() instant after which the turn is cancelled with
        reason DEADLINE_EXCEEDED; model calls get only the time that remains.
        """
        self.active.refuse_if_stopping()
        session_id = check_turn_request(request)
        attempt = Attempt(tenant, request, session_id, deadline, bridge, agent_calls)
        yielded = False
        try:
            async with aclosing(self._attempt(attempt, retried=False)) as events:
                async for event in events:
                    yielded = True
                    yield event
        except StaleStart:
            if yielded:  # cannot happen: a stale start stores and emits nothing
                raise UnavailableError(
                    "the run's start failed; retry", reason=Reason.RUN_INTERRUPTED
                ) from None
            # The turn's start was guessed with an agent changed since it was cached:
            # nothing was stored or sent to the caller; start again from a read. The
            # first attempt counted a run as started, which the retry's turn ends.
            attempt.launched = False
            ended: BaseException | None = None
            try:
                async with aclosing(self._attempt(attempt, retried=True)) as events:
                    async for event in events:
                        yield event
            except BaseException as error:
                ended = error
                raise
            finally:
                if not attempt.launched:  # refused, or replayed: end the counted start
                    self._services.observer.run_finished(not_launched(ended))

    async def _attempt(
        self, attempt: Attempt, *, retried: bool
    ) -> AsyncGenerator[ev.RunEvent, None]:
        """One attempt at a turn (a second one only after a StaleStart: see execute)."""
        tenant, request, session_id = attempt.tenant, attempt.request, attempt.session_id
        deadline, bridge = attempt.deadline, attempt.bridge
        # With a shared store the quota is read with the agent and the session (its
        # refusal still comes after the admission's, and after a replay).
        agent, owner, start = await self._admit(tenant, request, session_id, guess=not retried)
        tools = await self._turn_tools(tenant, agent, request, bridge)
        if request.request_id:
            previous = await find_previous(
                self._store, self.active, tenant, agent.agent_id, session_id, request
            )
            if previous is not None:
                async with aclosing(self._repeat(tenant, previous)) as repeated:
                    async for event in repeated:
                        yield event
                return
        key = (tenant, agent.agent_id, session_id)
        self.active.admit(tenant, queued=request.wait_if_busy and self._locks.taken(key))
        self._services.tokens.check(tenant)
        # Before the run's first write, which goes out together with the model request:
        # a tenant already at its stored bytes is refused before the model is asked.
        if start is not None:  # the quota as read with the turn's start
            start.check_fits()
        else:
            await self._store.check_turn_fits(tenant, request.message)
        run_id = new_run_id()
        if request.interrupt_if_busy:  # admitted: only now may it cancel anything
            session = (tenant, agent.agent_id, session_id)
            await supersede(self.active, self._store, self._coordination, session, owner, run_id)
        # Reject at once when busy, before anything is written; an enqueued run is recorded
        # as QUEUED so that it can be seen and cancelled while it waits.
        reservation = self._locks.reserve(key, wait=request.wait_if_busy)
        run = _new_run(run_id, agent, session_id, request, reservation.immediate, owner)
        # A guessed start's run is put in the audit trail once its write answered (see
        # _audited): a stale guess is started again under another run id.
        guessed = start is not None and start.guessed
        if not guessed:
            await self._record_start(run, reservation)
        budget = attempt.agent_calls or AgentCallBudget(self._max_agent_calls)
        context = TurnContext(tenant, request, tools, deadline, budget)
        # A retry carries the usage of the first attempt's dropped request.
        carried = (attempt.first.run.usage if attempt.first else Usage()) if retried else None
        active, _ = self._launch(run, agent, reservation, context, start, retry_usage=carried)
        attempt.first = attempt.first or active
        attempt.launched = True
        del start  # the turn holds the window until its first request, not this generator
        delivery = open_delivery(self._journal, self.active, active, request, deadline, bridge)
        # (A layer of its own only for a guessed start: every event of a run passes here.)
        delivered = self._audited(delivery, run) if guessed else delivery.events()
        async with aclosing(delivered) as events:
            async for event in events:
                yield event

    async def _audited(self, delivery: Delivery, run: Run) -> AsyncGenerator[ev.RunEvent, None]:
        """The events of a guessed start's run for its caller; the call is put in the
        audit trail with the first event (the run is stored then), its refusal, or the
        caller leaving (the run may be stored), not before its write: a stale guess
        stores nothing and is started again under another run id."""
        audit = self._audit
        async with aclosing(delivery.events()) as events:
            try:
                async for event in events:
                    if audit is not None:  # stored: the run has its first event
                        stored, audit = audit, None
                        await stored.record_call("Run", f"runs/{run.run_id}", None)
                    yield event
            except StaleStart:
                raise  # the retry is audited
            except BaseException as error:
                if audit is not None:  # refused, or the caller left (the run may be stored)
                    refusal = error if isinstance(error, OrchestratorError) else None
                    await despite_cancels(audit.record_call("Run", f"runs/{run.run_id}", refusal))
                raise

    def _repeat(self, tenant: str, previous: Run | ActiveRun) -> AsyncGenerator[ev.RunEvent, None]:
        """A start repeating a request id: the run in flight here as its own stream saw
        it (from its feed: every event, with its numbers; this caller follows it), or
        the replay of a stored run's outcome (followed to its end if it runs elsewhere)."""
        if isinstance(previous, ActiveRun) and previous.feed is not None:
            return previous.feed.follow(0)
        return replay(previous, Follower(self._store, self._coordination, tenant))

    def _launch(
        self,
        run: Run,
        agent: Agent,
        reservation: Reservation,
        context: TurnContext,
        start: TurnStart | None = None,
        *,
        retry_usage: Usage | None = None,
    ) -> tuple[ActiveRun, TaskStream[object]]:
        """The turn's task stream, registered among the runs in flight."""
        active = ActiveRun(run, context.tenant, queued=not reservation.immediate)
        turn = Turn(
            self._services, active, agent, reservation, context, start, retry_usage=retry_usage
        )
        stream: TaskStream[object] = TaskStream(
            turn.run, name=f"turn {run.run_id}", merge=ev.coalesce_deltas
        )
        active.stream = stream
        self.active.add(active)
        return active, stream

    async def _record_start(self, run: Run, reservation: Reservation) -> None:
        """Put the run's start in the audit trail; the wait for room in its buffer may be
        cancelled, which must not keep the session reserved."""
        if self._audit is None:
            return
        try:
            await self._audit.record_call("Run", f"runs/{run.run_id}", None)
        except BaseException:
            reservation.release()
            raise

    async def _admit(
        self, tenant: str, request: TurnRequest, session_id: str, *, guess: bool
    ) -> tuple[Agent, str, TurnStart | None]:
        """The agent of a turn the current caller may start (with the tenant's allowlist
        applied), the owner of its session, and, from a shared store, what the turn's
        start read of them in one round trip (its memory window included); a refusal is
        recorded in the audit trail."""
        try:
            start = await self._turn_start(tenant, request, session_id, guess)
            if start is not None:
                agent = (
                    self._agents.found(request.agent_id, start.agent)
                    if request.agent_id
                    else self._agents.found_default(start.agent)
                )
                stored_owner = start.owner
            else:
                agent = await self._resolve_agent(tenant, request.agent_id)
                stored_owner = await self._store.session_owner(tenant, agent.agent_id, session_id)
            agent = require_runnable(agent)
            spec = self._policy.check_agent(tenant, agent.spec, "agent")
            owner = session_owner_for_new_turn(stored_owner)
        except OrchestratorError as error:
            if self._audit is not None:
                resource = f"agents/{request.agent_id}/sessions/{session_id}"
                await self._audit.record_call("Run", resource, error)
            raise
        agent = dataclasses.replace(agent, spec=spec) if spec is not agent.spec else agent
        return agent, owner, start

    async def _turn_start(
        self, tenant: str, request: TurnRequest, session_id: str, guess: bool
    ) -> TurnStart | None:
        """What a shared store reads of the turn's agent and session in one round trip
        (the tenant's default agent's id is read first), or guesses without a read (the
        first turn of a session new to this replica, checked by the run's write); None
        with a store whose reads are local (they are made one by one)."""
        if not self._coordination.shared:
            return None
        if request.agent_id:
            check_agent_id(request.agent_id)
            if guess and may_guess(request):
                guessed = self._store.guess_turn_start(tenant, request.agent_id, session_id)
                if guessed is not None:
                    return guessed
        agent_id = request.agent_id or await self._store.default_agent_id(tenant)
        if not agent_id:
            raise no_default_agent()
        return await self._store.read_turn_start(tenant, agent_id, session_id, request.message)

    async def _resolve_agent(self, tenant: str, agent_id: str) -> Agent:
        if agent_id:
            return await self._agents.get(tenant, agent_id)
        return await self._agents.get_default(tenant)

    async def _turn_tools(
        self, tenant: str, agent: Agent, request: TurnRequest, bridge: ClientToolBridge | None
    ) -> TurnTools:
        """The tools of one turn: the agent's server tools and callable agents, plus the
        client's tools for this turn."""
        tools = TurnTools(bridge=bridge, tenant=tenant, tracer=self.tracer)
        for name in agent.spec.tools:
            tool = self._tools.get(name)
            if tool is None:
                log.warning("agent %s names tool %s, no longer registered", agent.agent_id, name)
                continue
            tools.server[name] = tool
        for callee in agent.spec.callable_agents:
            tools.agents[f"ask_{callee}"[:64]] = callee
        if request.client_tools:
            if bridge is None:
                raise InvalidArgumentError.for_field(
                    "start.client_tools", "client tools need a Run stream to answer on"
                )
            taken = set(tools.server) | set(tools.agents)
            # Off the loop: checking a schema against the metaschema costs ~0.5 ms per
            # subschema (the limits allow 2,000 per turn).
            parsed = await in_validation_thread(
                tenant, parse_client_tools, request.client_tools, taken
            )
            for client_tool in parsed:
                tools.client[client_tool.name] = client_tool
        if request.client_tool_timeout:
            tools.client_timeout = request.client_tool_timeout
        return tools

    def busy_run(self, tenant: str, agent_id: str, session_id: str) -> str:
        """The run holding a session in this process, or ""."""
        return self._locks.busy((tenant, agent_id, session_id))


def _new_run(
    run_id: str, agent: Agent, session_id: str, request: TurnRequest, immediate: bool, owner: str
) -> Run:
    now = time.time()
    return Run(
        run_id=run_id,
        agent_id=agent.agent_id,
        session_id=session_id,
        status=RunStatus.RUNNING if immediate else RunStatus.QUEUED,
        input=request.message,
        create_time=now,
        request_id=request.request_id,
        parent_run_id=request.parent_run_id,
        start_time=now if immediate else None,
        owner=owner,
        trace_id=trace.trace_id if (trace := CURRENT_TRACE.get()) else "",
    )


class _NoTools:
    def get(self, name: str) -> ServerTool | None:
        return None

    def all(self) -> list[ServerTool]:
        return []
