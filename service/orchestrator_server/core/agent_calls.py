"""Agents called as tools: the callee runs as a child run of the caller's turn, in a
session it keeps for its caller, and its events reach the caller's stream tagged with
their own agent and run ids."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Protocol

from . import events as ev
from .access import ANONYMOUS, SYSTEM, current_caller
from .active_runs import ActiveRun
from .client_tools import ToolError
from .errors import OrchestratorError, Reason
from .model_loop import AgentCallBudget, AskAgent, TurnContext
from .task_stream import Emit
from .types import Agent, TurnRequest


class Execute(Protocol):
    """RunEngine.execute, as a child run calls it."""

    def __call__(
        self,
        tenant: str,
        request: TurnRequest,
        *,
        deadline: float | None = None,
        agent_calls: AgentCallBudget | None = None,
    ) -> AsyncGenerator[ev.RunEvent, None]: ...


def child_session_id(caller_agent_id: str, principal: str) -> str:
    """The session an agent called as a tool keeps for its caller: one conversation per
    calling agent and principal (a conversation shared by two principals would show each
    the other's questions). Calls without identity keep the name they always had."""
    if principal in ("", ANONYMOUS, SYSTEM.principal):
        return f"from-{caller_agent_id}"[:63]
    digest = hashlib.sha256(principal.encode()).hexdigest()[:12]
    return f"from-{caller_agent_id[:44]}-{digest}"


class AgentCalls:
    """Builds each turn's agent-as-tool callback."""

    def __init__(self, execute: Execute, max_depth: int) -> None:
        self._execute = execute
        self._max_depth = max_depth

    def caller(
        self, caller: Agent, active: ActiveRun, context: TurnContext, forward: Emit[object]
    ) -> AskAgent:
        """The agent-as-tool callback of one turn."""

        async def ask(callee: str, message: str) -> str:
            chain = context.request.call_chain or (caller.agent_id,)
            self._check_call_chain(chain, callee)
            if not context.agent_calls.take():
                raise ToolError(
                    f"not run: this message already asked {context.agent_calls.limit} "
                    "agents (the limit per turn, at every depth together)"
                )
            request = TurnRequest(
                agent_id=callee,
                message=message,
                session_id=child_session_id(caller.agent_id, current_caller().principal),
                wait_if_busy=True,
                parent_run_id=active.run.run_id,
                call_chain=(*chain, callee),
            )
            output = ""
            try:
                events = self._execute(
                    active.tenant,
                    request,
                    deadline=context.deadline,
                    agent_calls=context.agent_calls,
                )
                async with aclosing(events) as items:
                    async for event in items:
                        forward(event)
                        if isinstance(event.body, ev.RunCompleted):
                            output = event.body.output
            except OrchestratorError as error:
                raise ToolError(
                    f"agent '{callee}' failed: {error.reason}: {error.message}"
                ) from None
            return output

        return ask

    def _check_call_chain(self, chain: tuple[str, ...], callee: str) -> None:
        if callee in chain:
            raise ToolError(
                f"{Reason.AGENT_CALL_CYCLE}: '{callee}' is already in the call chain "
                f"{' -> '.join((*chain, callee))}"
            )
        if len(chain) > self._max_depth:
            raise ToolError(
                f"{Reason.AGENT_CALL_DEPTH_EXCEEDED}: agents may call each other at most "
                f"{self._max_depth} levels deep"
            )
