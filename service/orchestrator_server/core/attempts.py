"""The attempts at one turn: a turn whose start was guessed (Store.guess_turn_start)
and found stale by its write (StaleStart) is started again, once, from a read (see
RunEngine.execute); what may be guessed, and how a retry that launched nothing ends the
run its first attempt counted."""

from __future__ import annotations

from dataclasses import dataclass

from .active_runs import ActiveRun
from .errors import OrchestratorError, Reason
from .model_loop import AgentCallBudget
from .observer import RunReport
from .tool_calls import ClientToolBridge
from .types import RunStatus, TurnRequest, Usage


@dataclass(slots=True)
class Attempt:
    """What each attempt at one turn starts from (see RunEngine.execute), and whether it
    launched the turn."""

    tenant: str
    request: TurnRequest
    session_id: str
    deadline: float | None
    bridge: ClientToolBridge | None
    agent_calls: AgentCallBudget | None
    launched: bool = False
    first: ActiveRun | None = None  # the first attempt's run


def may_guess(request: TurnRequest) -> bool:
    """Whether a turn's start may be guessed: not when it would interrupt another turn
    (its session exists), nor when anything but this call may consume its first attempt
    (a repeat of its request id follows it; a detached run has no caller to retry it)."""
    detachable = request.continue_on_disconnect or request.resume_window > 0
    return not (request.interrupt_if_busy or request.request_id or detachable)


def not_launched(error: BaseException | None) -> RunReport:
    """How a turn ended whose retry (after a StaleStart) launched nothing."""
    if error is None:
        return RunReport(RunStatus.COMPLETED, "", 0.0, None, Usage())
    if isinstance(error, OrchestratorError):
        return RunReport(RunStatus.FAILED, error.reason, 0.0, None, Usage())
    return RunReport(RunStatus.CANCELLED, Reason.RUN_CANCELLED, 0.0, None, Usage())
