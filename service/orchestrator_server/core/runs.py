"""Runs: one turn of an agent in a session, from the user message to the final answer.

A turn executes in its own task and hands its events to the caller through a queue, so
that a cancel (a cancel message, `CancelRun` from another connection, the caller going
away or its deadline) can stop the turn without stopping the caller's stream.

Persistence is one transaction when the turn starts (run record + user message) and one
when it ends (assistant message + outcome), never one per token. What a cancelled or
failed turn keeps: the user message stays in the history; the partial answer is not
added to the history (the next turn would otherwise build on half a sentence) but is
kept in the run record's `output` for inspection.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import cast

from ..store.base import Store
from . import events as ev
from .agents import AgentRegistry
from .errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OrchestratorError,
    ResourceExhaustedError,
    error_for_reason,
)
from .memory import DEFAULT_MAX_MESSAGES, to_chat_messages, window
from .model_port import ModelCatalog, ModelTurnEnd
from .observer import NoObserver, RunObserver
from .pagination import PageTokens
from .session_locks import Reservation, SessionLocks
from .tool_calls import ClientToolBridge, ToolError, TurnTools, parse_client_tools
from .tool_port import ServerTool, ToolCatalog
from .turn_plumbing import Emit, EventChannel, StartGate, coalesce_deltas
from .types import (
    DEFAULT_SESSION_ID,
    Agent,
    Message,
    Page,
    Role,
    Run,
    RunStatus,
    Usage,
)
from .validation import check_message, check_page_size, check_request_id, check_session_id

log = logging.getLogger(__name__)

_DONE = object()


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """What a client asks for when it starts a turn."""

    agent_id: str
    message: str
    session_id: str = ""
    request_id: str = ""
    wait_if_busy: bool = False
    parent_run_id: str = ""
    # (name, description, JSON schema text) of tools the client executes itself.
    client_tools: tuple[tuple[str, str, str], ...] = ()
    max_model_calls: int = 0
    client_tool_timeout: float = 0.0
    # Agents already asking, outermost first (agent-to-agent calls): the cycle guard.
    call_chain: tuple[str, ...] = ()


@dataclass(slots=True)
class _ActiveRun:
    """A run executing in this process."""

    run: Run
    tenant: str
    task: asyncio.Task[None] | None = None
    cancel_reason: str = "RUN_CANCELLED"
    cancel_message: str = "the run was cancelled"
    done: asyncio.Future[Run] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def new_run_id() -> str:
    """Run ids sort by creation time (a hex microsecond clock) and are unguessable."""
    return f"run_{time.time_ns() // 1000:014x}{secrets.token_hex(6)}"


class RunEngine:
    """Executes turns, tracks the runs in flight, cancels them, answers run queries."""

    def __init__(
        self,
        store: Store,
        agents: AgentRegistry,
        models: ModelCatalog,
        tokens: PageTokens,
        *,
        tools: ToolCatalog | None = None,
        default_max_model_calls: int = 10,
        max_agent_depth: int = 3,
        observer: RunObserver | None = None,
    ) -> None:
        self._store = store
        self._agents = agents
        self._models = models
        self._tokens = tokens
        self._locks = SessionLocks()
        self._active: dict[str, _ActiveRun] = {}
        self._by_request: dict[tuple[str, str, str], _ActiveRun] = {}
        self._default_max_model_calls = default_max_model_calls
        self._max_agent_depth = max_agent_depth
        self._observer: RunObserver = observer or NoObserver()
        self._stopping = False
        # Runs executed outside the engine (pipelines, team runs): CancelRun reaches them too.
        self._external: dict[str, tuple[str, asyncio.Task[None]]] = {}
        self._tools: ToolCatalog = tools or _NoTools()

    # -- starting a turn ----------------------------------------------------------------

    async def _resolve_agent(self, tenant: str, agent_id: str) -> Agent:
        if agent_id:
            return await self._agents.get(tenant, agent_id)
        return await self._agents.get_default(tenant)

    async def execute(
        self,
        tenant: str,
        request: TurnRequest,
        *,
        deadline: float | None = None,
        bridge: ClientToolBridge | None = None,
    ) -> AsyncIterator[ev.RunEvent]:
        """Run one turn and yield its events; raise the run's error if it fails.

        `deadline` is a time.monotonic() instant after which the turn is cancelled with
        reason DEADLINE_EXCEEDED; model calls get only the time that remains.
        """
        check_message(request.message)
        check_request_id(request.request_id)
        session_id = check_session_id(request.session_id or DEFAULT_SESSION_ID)
        if not 0 <= request.max_model_calls <= 1000:
            raise InvalidArgumentError.for_field("start.max_model_calls", "must be 0 to 1000")
        if request.client_tool_timeout < 0:
            raise InvalidArgumentError.for_field(
                "start.client_tool_timeout_seconds", "must not be negative"
            )
        agent = await self._resolve_agent(tenant, request.agent_id)
        tools = self._turn_tools(agent, request, bridge)

        if request.request_id:
            replay = await self._find_previous(tenant, agent.agent_id, session_id, request)
            if replay is not None:
                async for event in self._replay(tenant, replay):
                    yield event
                return

        run_id = new_run_id()
        # Reject at once when busy, before anything is written; an enqueued run is recorded
        # as QUEUED so that it can be seen and cancelled while it waits.
        reservation = self._locks.reserve(
            (tenant, agent.agent_id, session_id), wait=request.wait_if_busy
        )
        immediate = reservation.immediate
        now = time.time()
        run = Run(
            run_id=run_id,
            agent_id=agent.agent_id,
            session_id=session_id,
            status=RunStatus.RUNNING if immediate else RunStatus.QUEUED,
            input=request.message,
            create_time=now,
            request_id=request.request_id,
            parent_run_id=request.parent_run_id,
            start_time=now if immediate else None,
        )
        active = _ActiveRun(run=run, tenant=tenant)
        queue = EventChannel()
        sequence = 0
        context = _TurnContext(
            request=request, tools=tools, emit=queue.put, forward=queue.put, deadline=deadline
        )
        task = asyncio.create_task(
            self._turn(active, agent, reservation, context, queue),
            name=f"turn {run_id}",
        )
        active.task = task
        self._active[run_id] = active
        if request.request_id:
            self._by_request[(tenant, agent.agent_id, request.request_id)] = active
        try:
            done = False
            while not done:
                # Everything the turn produced since the last look, in one wake-up. Text
                # deltas that queued up while the caller was busy go out as one message:
                # under load that saves a gRPC message (~70 µs of CPU) per token.
                for item in coalesce_deltas(await queue.take_all()):
                    if item is _DONE:
                        done = True
                        break
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, ev.RunEvent):  # a child run's event, already numbered
                        yield item
                        continue
                    sequence += 1
                    body = cast(ev.EventBody, item)
                    yield ev.RunEvent(run_id, agent.agent_id, sequence, body, request.parent_run_id)
        finally:
            if not task.done():
                # The caller went away (disconnect or deadline): cancel the turn and wait
                # until its outcome is recorded.
                if self._stopping:
                    active.cancel_reason = "RUN_INTERRUPTED"
                    active.cancel_message = "the server is stopping"
                elif deadline is not None and time.monotonic() >= deadline:
                    active.cancel_reason = "DEADLINE_EXCEEDED"
                    active.cancel_message = "the caller's deadline passed"
                else:
                    active.cancel_message = "the client went away"
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _find_previous(
        self, tenant: str, agent_id: str, session_id: str, request: TurnRequest
    ) -> Run | _ActiveRun | None:
        active = self._by_request.get((tenant, agent_id, request.request_id))
        previous: Run | None = (
            active.run
            if active
            else await self._store.find_run_by_request(tenant, agent_id, request.request_id)
        )
        if previous is None:
            return None
        if previous.input != request.message or previous.session_id != session_id:
            raise InvalidArgumentError.for_field(
                "request_id",
                "was already used for a different message or session",
                reason="REQUEST_ID_CONFLICT",
                metadata={"run_id": previous.run_id},
            )
        return active or previous

    async def _replay(self, tenant: str, previous: Run | _ActiveRun) -> AsyncIterator[ev.RunEvent]:
        """The outcome of an earlier start with the same request_id (waiting if needed)."""
        if isinstance(previous, _ActiveRun):
            run = previous.run
            yield ev.RunEvent(
                run.run_id, run.agent_id, 1, ev.RunStarted(run.session_id, run.status, True)
            )
            run = await asyncio.shield(previous.done)
        else:
            run = previous
            yield ev.RunEvent(
                run.run_id, run.agent_id, 1, ev.RunStarted(run.session_id, run.status, True)
            )
        if run.status is RunStatus.COMPLETED:
            message = Message(Role.ASSISTANT, run.output, run_id=run.run_id)
            yield ev.RunEvent(run.run_id, run.agent_id, 2, ev.MessageCompleted(message))
            duration = ((run.end_time or 0) - (run.start_time or run.create_time)) * 1000
            yield ev.RunEvent(
                run.run_id, run.agent_id, 3, ev.RunCompleted(run.output, run.usage, 0.0, duration)
            )
            return
        raise _error_of(run)

    # -- the turn itself ----------------------------------------------------------------

    async def _turn(
        self,
        active: _ActiveRun,
        agent: Agent,
        reservation: Reservation,
        context: _TurnContext,
        queue: EventChannel,
    ) -> None:
        emit = context.emit
        run = active.run
        immediate = reservation.immediate
        tenant = active.tenant
        user_message = Message(Role.USER, run.input, run_id=run.run_id)
        started = time.monotonic()
        output_parts: list[str] = []
        usage = Usage()
        recorded = False
        first_delta_s: float | None = None
        self._observer.run_started()
        gate = StartGate(self._store, tenant, run, user_message if immediate else None, emit)
        try:
            if immediate:
                # The run's first write goes to the writer thread while the model request
                # is prepared and sent; the gate is waited for before the first event.
                gate.submit()
            else:
                await gate.wait()
            async with reservation.hold(run.run_id):
                if not immediate:
                    now = time.time()
                    await self._store.mark_running(tenant, run.run_id, now, user_message)
                    active.run = run = replace(run, status=RunStatus.RUNNING, start_time=now)
                    started = time.monotonic()
                    # The agent may have been changed or deleted while the run waited.
                    current = await self._store.get_agent(tenant, agent.agent_id)
                    if current is None:
                        raise FailedPreconditionError(
                            f"agent '{agent.agent_id}' was deleted",
                            reason="AGENT_DELETED",
                            metadata={"agent_id": agent.agent_id},
                        )
                    agent = current
                output, usage, first_delta, steps = await self._model_loop(
                    tenant, agent, run, context, output_parts, gate
                )
                ttfd = (first_delta - started) * 1000 if first_delta else 0.0
                first_delta_s = ttfd / 1000 if first_delta else None
                final = Message(Role.ASSISTANT, output, run_id=run.run_id)
                await gate.wait()
                end = time.time()
                stored = await self._store.finish_run(
                    tenant,
                    run.run_id,
                    status=RunStatus.COMPLETED,
                    output=output,
                    usage=usage,
                    error_reason="",
                    error_message="",
                    end_time=end,
                    messages=[*steps, final],
                    agent_id=run.agent_id,
                    session_id=run.session_id,
                )
                recorded = True
                active.run = replace(
                    run, status=RunStatus.COMPLETED, output=output, usage=usage, end_time=end
                )
                emit(ev.MessageCompleted(stored[-1] if stored else final))
                emit(ev.RunCompleted(output, usage, ttfd, (time.monotonic() - started) * 1000))
                queue.put(_DONE)
        except asyncio.CancelledError:
            await gate.settle()
            if not recorded:
                # A server stop is not the client's doing: such runs read INTERRUPTED,
                # like runs found unfinished after a crash.
                stopped = active.cancel_reason == "RUN_INTERRUPTED"
                await self._record_end(
                    active,
                    RunStatus.INTERRUPTED if stopped else RunStatus.CANCELLED,
                    "".join(output_parts),
                    usage,
                    active.cancel_reason,
                    active.cancel_message,
                )
            emit(ev.RunCancelled(active.cancel_reason, active.cancel_message))
            queue.put(_DONE)
            raise
        except Exception as error:
            if isinstance(error, OrchestratorError):
                reason, message = error.reason, error.message
            else:
                log.exception("run %s failed unexpectedly", run.run_id)
                reason, message = "INTERNAL_ERROR", "internal error"
            await gate.settle()
            if not recorded:
                await self._record_end(
                    active, RunStatus.FAILED, "".join(output_parts), usage, reason, message
                )
            queue.put(error)
        finally:
            self._observer.run_finished(
                active.run.status,
                active.run.error_reason,
                time.monotonic() - started,
                first_delta_s,
                usage,
            )
            reservation.release()
            self._active.pop(run.run_id, None)
            if run.request_id:
                self._by_request.pop((tenant, run.agent_id, run.request_id), None)
            if not active.done.done():
                active.done.set_result(active.run)

    async def _record_end(
        self,
        active: _ActiveRun,
        status: RunStatus,
        partial: str,
        usage: Usage,
        reason: str,
        message: str,
    ) -> None:
        run = active.run
        end = time.time()
        active.run = replace(
            run,
            status=status,
            output=partial,
            usage=usage,
            error_reason=reason,
            error_message=message,
            end_time=end,
        )
        try:
            await record_outcome(
                self._store,
                active.tenant,
                run,
                status=status,
                output=partial,
                usage=usage,
                reason=reason,
                message=message,
                end_time=end,
            )
        except Exception:
            log.exception("could not record the end of run %s", run.run_id)

    async def _model_loop(
        self,
        tenant: str,
        agent: Agent,
        run: Run,
        context: _TurnContext,
        output_parts: list[str],
        gate: StartGate,
    ) -> tuple[str, Usage, float, list[Message]]:
        """Call the model, run the tools it asks for, and repeat until it answers.

        Returns the answer, the usage, when the first delta arrived, and the intermediate
        messages (assistant tool calls and tool results) to store before the answer.
        """
        spec = agent.spec
        model = self._models.resolve(spec.model.provider)
        limit = spec.memory.max_messages or DEFAULT_MAX_MESSAGES
        history = await self._store.load_history(tenant, agent.agent_id, run.session_id, limit)
        if gate.user_message is not None:
            # The run's own write may or may not be visible yet: take the stored history
            # without it and add the user message here, so the window is the same either way.
            history = [m for m in history if m.run_id != run.run_id] + [gate.user_message]
        messages = to_chat_messages(spec.system_message, window(history, limit))
        schemas = context.tools.schemas()
        max_calls = (
            context.request.max_model_calls or spec.max_model_calls or self._default_max_model_calls
        )
        usage = Usage()
        first_delta = 0.0
        steps: list[Message] = []
        for call_number in range(1, max_calls + 1):
            output_parts.clear()
            end: ModelTurnEnd | None = None
            async for item in model.stream(
                spec.model, messages, tools=schemas, timeout=_remaining(context.deadline)
            ):
                if not gate.opened:
                    await gate.wait()
                if isinstance(item, str):
                    output_parts.append(item)
                    context.emit(ev.TextDelta(item))
                    if not first_delta:
                        first_delta = time.monotonic()
                        # Let the caller send the first delta now rather than after the
                        # rest of what the model sent in the same packet is parsed.
                        await asyncio.sleep(0)
                else:
                    end = item
            assert end is not None
            usage = usage + end.usage
            text = "".join(output_parts)
            if not end.tool_calls:
                return text, usage, first_delta, steps
            if call_number == max_calls:
                raise ResourceExhaustedError(
                    f"the model was still calling tools after {max_calls} model calls",
                    reason="MODEL_CALL_LIMIT",
                    metadata={"limit": str(max_calls)},
                )
            asking = Message(Role.ASSISTANT, text, tool_calls=end.tool_calls, run_id=run.run_id)
            context.emit(ev.MessageCompleted(asking))

            async def ask(callee: str, message: str) -> str:
                return await self._ask_agent(tenant, agent, run, context, callee, message)

            results = await context.tools.execute(end.tool_calls, context.emit, ask, run.run_id)
            steps += [asking, *results]
            messages += to_chat_messages("", [asking, *results])
        raise AssertionError("unreachable: the loop returns or raises")

    def _turn_tools(
        self, agent: Agent, request: TurnRequest, bridge: ClientToolBridge | None
    ) -> TurnTools:
        """The tools of one turn: the agent's server tools and callable agents, plus the
        client's tools for this turn."""
        tools = TurnTools(bridge=bridge)
        for name in agent.spec.tools:
            tool = self._tools.get(name)
            if tool is None:
                log.warning(
                    "agent %s names tool %s, which is no longer registered", agent.agent_id, name
                )
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
            for client_tool in parse_client_tools(request.client_tools, taken):
                tools.client[client_tool.name] = client_tool
        if request.client_tool_timeout:
            tools.client_timeout = request.client_tool_timeout
        return tools

    async def _ask_agent(
        self,
        tenant: str,
        caller: Agent,
        run: Run,
        context: _TurnContext,
        callee: str,
        message: str,
    ) -> str:
        """Run `callee` as a child run and return its answer (the caller's tool result).
        Its events reach the caller's stream tagged with its own agent and run ids."""
        chain = context.request.call_chain or (caller.agent_id,)
        if callee in chain:
            raise ToolError(
                f"AGENT_CALL_CYCLE: '{callee}' is already in the call chain "
                f"{' -> '.join((*chain, callee))}"
            )
        if len(chain) > self._max_agent_depth:
            raise ToolError(
                f"AGENT_CALL_DEPTH_EXCEEDED: agents may call each other at most "
                f"{self._max_agent_depth} levels deep"
            )
        request = TurnRequest(
            agent_id=callee,
            message=message,
            # The callee keeps one conversation per calling agent.
            session_id=f"from-{caller.agent_id}"[:63],
            wait_if_busy=True,
            parent_run_id=run.run_id,
            call_chain=(*chain, callee),
        )
        output = ""
        try:
            async for event in self.execute(tenant, request, deadline=context.deadline):
                context.forward(event)
                if isinstance(event.body, ev.RunCompleted):
                    output = event.body.output
        except OrchestratorError as error:
            raise ToolError(f"agent '{callee}' failed: {error.reason}: {error.message}") from None
        return output

    # -- queries and control ------------------------------------------------------------

    async def cancel(self, tenant: str, run_id: str) -> Run:
        """Cancel a queued or running run; a finished run is returned unchanged."""
        external = self._external.get(run_id)
        if external is not None and external[0] == tenant:
            external[1].cancel()
            await asyncio.gather(external[1], return_exceptions=True)
            return await self.get(tenant, run_id)
        active = self._active.get(run_id)
        if active is not None and active.tenant == tenant and active.task is not None:
            active.cancel_message = "the run was cancelled by CancelRun"
            active.task.cancel()
            return await asyncio.shield(active.done)
        return await self.get(tenant, run_id)

    def track(self, run_id: str, tenant: str, task: asyncio.Task[None]) -> None:
        """Make a run executed by `task` outside the engine cancellable with CancelRun."""
        self._external[run_id] = (tenant, task)
        task.add_done_callback(lambda _: self._external.pop(run_id, None))

    def cancel_for_stream(self, run_id: str, message: str, reason: str = "RUN_CANCELLED") -> None:
        """Cancel a run its caller owns (a cancel message on its stream, a team's member
        timeout), recording `reason`."""
        active = self._active.get(run_id)
        if active is not None and active.task is not None:
            active.cancel_reason = reason
            active.cancel_message = message
            active.task.cancel()

    async def get(self, tenant: str, run_id: str) -> Run:
        """One run, or RUN_NOT_FOUND."""
        run = await self._store.get_run(tenant, run_id)
        if run is None:
            raise NotFoundError(
                f"run '{run_id[:80]}' not found",
                reason="RUN_NOT_FOUND",
                metadata={"run_id": run_id[:80]},
            )
        return run

    async def list(
        self,
        tenant: str,
        *,
        agent_id: str = "",
        session_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Run]:
        """Runs newest first, optionally of one agent and session."""
        limit = check_page_size(page_size)
        if session_id and not agent_id:
            raise InvalidArgumentError.for_field("session_id", "requires agent_id")
        scope = f"runs:{tenant}:{agent_id}:{session_id}"
        key = self._tokens.parse(scope, page_token)
        after = (float(key[0]), str(key[1])) if key else None
        runs = await self._store.list_runs(
            tenant, agent_id=agent_id, session_id=session_id, after=after, limit=limit + 1
        )
        return self._tokens.page(scope, runs, limit, lambda r: [r.create_time, r.run_id])

    def busy_run(self, tenant: str, agent_id: str, session_id: str) -> str:
        """The run holding a session in this process, or ""."""
        return self._locks.busy((tenant, agent_id, session_id))

    def begin_shutdown(self) -> None:
        """The server is stopping: runs whose callers are cut off from now on are recorded
        INTERRUPTED (the server's doing), not CANCELLED."""
        self._stopping = True

    async def shutdown(self) -> None:
        """Cancel every run in flight (server stop) and wait for their outcomes."""
        self._stopping = True
        tasks = [a.task for a in self._active.values() if a.task is not None]
        for active in self._active.values():
            active.cancel_reason = "RUN_INTERRUPTED"
            active.cancel_message = "the server is stopping"
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _TurnContext:
    """What a turn needs besides its run: the request, its tools and where events go."""

    request: TurnRequest
    tools: TurnTools
    emit: Emit
    forward: Callable[[object], None]
    deadline: float | None


class _NoTools:
    def get(self, name: str) -> ServerTool | None:
        return None

    def all(self) -> list[ServerTool]:
        return []


def _remaining(deadline: float | None) -> float | None:
    """Seconds left before the caller's deadline (None without one)."""
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceededError("the caller's deadline passed", reason="DEADLINE_EXCEEDED")
    return remaining


async def record_outcome(
    store: Store,
    tenant: str,
    run: Run,
    *,
    status: RunStatus,
    output: str,
    usage: Usage,
    reason: str,
    message: str,
    end_time: float | None = None,
) -> None:
    """Write how a run ended (no messages), even while its task is being cancelled, again
    and again: the write runs on regardless, and a cancelled wait still waits for it."""
    write = asyncio.ensure_future(
        store.finish_run(
            tenant,
            run.run_id,
            status=status,
            output=output,
            usage=usage,
            error_reason=reason,
            error_message=message,
            end_time=time.time() if end_time is None else end_time,
            messages=[],
            agent_id=run.agent_id,
            session_id=run.session_id,
        )
    )
    try:
        await asyncio.shield(write)
    except asyncio.CancelledError:
        await asyncio.gather(write, return_exceptions=True)
        raise


def _error_of(run: Run) -> OrchestratorError:
    """The error a replay of a failed, cancelled or interrupted run reports."""
    return error_for_reason(
        run.error_reason or "INTERNAL_ERROR", run.error_message or "the run failed"
    )
