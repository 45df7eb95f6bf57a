"""Section runs: `Run` through the orchestrator, with persisted memory.

A fresh session per run (c=1 and c=32) and one session per worker whose history grows
(c=32); runs/s, tokens/s and the time to first delta, measured client-side from sending
the start to the first delta, next to the server's own figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.v1 import run_pb2

from .config import OP_TIMEOUT, QUESTION, TOKENS
from .driver import Case, Counters, FirstDelta, Op, Setup, one
from .servers import Child

if TYPE_CHECKING:
    from orchestrator.v1.orchestrator_service_pb2_grpc import OrchestratorServiceAsyncStub

AGENT_ID = "bench-agent"
# The server's default memory window (messages of history sent with each turn).
WINDOW_MESSAGES = 50


def start_turn(agent_id: str, session_id: str) -> run_pb2.RunRequest:
    return run_pb2.RunRequest(
        start=run_pb2.StartTurn(agent_id=agent_id, session_id=session_id, message=QUESTION)
    )


async def run_turn(
    stub: OrchestratorServiceAsyncStub,
    agent_id: str,
    session_id: str,
    wait_s: float,
    server_ttfd: list[float] | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
) -> tuple[float, int]:
    """One turn on its own Run stream: (seconds to the first text delta, tokens); the
    server's own time to first delta (RunCompleted) is appended to `server_ttfd`.

    Tokens are counted in the text, not as messages: the server sends deltas that queued
    up while the stream was busy as one message."""
    delta = FirstDelta()
    completed = False
    requests = one(start_turn(agent_id, session_id))
    async for event in stub.Run(requests, timeout=wait_s, metadata=metadata):
        kind = event.WhichOneof("event")
        if kind == "text_delta":
            delta.add(len(event.text_delta.text.split()))
        elif kind == "run_completed":
            completed = True
            if server_ttfd is not None:
                server_ttfd.append(event.run_completed.time_to_first_delta_ms)
    assert completed, "no run_completed"
    return delta.result(TOKENS)


def run_op(
    stub: OrchestratorServiceAsyncStub,
    agent_id: str,
    sessions: str,
    collect: dict[str, list[float]],
    metadata: tuple[tuple[str, str], ...] = (),
) -> tuple[Op, Setup]:
    """A Run turn; `sessions` = "fresh" (a new session per run), "worker" (one session
    per worker and repeat, so the history grows and is sent with every call) or "window"
    (one session whose memory window is full: every turn sends 50 earlier messages)."""
    ids = Counters()
    state = {"repeat": 0}

    async def setup(repeat: int) -> None:
        state["repeat"] = repeat + 1
        if sessions == "window" and repeat < 0:  # filled once, before the warm-up
            for _ in range(WINDOW_MESSAGES // 2):
                await run_turn(stub, agent_id, "window", OP_TIMEOUT, metadata=metadata)

    async def op(worker: int) -> tuple[float, int]:
        if sessions == "window":
            session = "window"
        elif sessions == "fresh":
            session = f"f{ids.take()}"
        else:
            session = f"w{worker}-r{state['repeat']}"
        return await run_turn(stub, agent_id, session, OP_TIMEOUT, server_ttfd, metadata)

    server_ttfd = collect.setdefault("server_first_ms", [])
    return op, setup


RUN_VARIANTS = (
    ("runs.fresh_c1", "orchestrated Run, new session each, c=1", 1, "fresh"),
    ("runs.fresh_c32", "orchestrated Run, new session each, c=32", 32, "fresh"),
    ("runs.memory_c32", "orchestrated Run, session per worker (memory), c=32", 32, "worker"),
    ("runs.window_c1", "orchestrated Run, full 50-message window, c=1", 1, "window"),
)


# The same on PostgreSQL: the figures the store's targets compare with the SQLite ones.
PG_RUN_VARIANTS = (
    ("runs.pg_fresh_c1", "orchestrated Run on PostgreSQL, new session each, c=1", 1, "fresh"),
    ("runs.pg_memory_c32", "orchestrated Run on PostgreSQL, session per worker, c=32", 32,
     "worker"),
    ("runs.pg_window_c1", "orchestrated Run on PostgreSQL, full 50-message window, c=1", 1,
     "window"),
)  # fmt: skip


def runs_cases(
    stub: OrchestratorServiceAsyncStub,
    orchestrator: Child,
    model: Child,
    variants: tuple[tuple[str, str, int, str], ...] = RUN_VARIANTS,
) -> list[Case]:
    """The Run cases (the agent `AGENT_ID` must exist); the CPU of the orchestrator and of
    the model server is charged to them."""
    # Keyed by the servers' own names: the CPU meter also counts every other live server
    # under its name, which must not overwrite the one measured.
    procs = {orchestrator.name: orchestrator, model.name: model}
    cases = []
    for key, label, concurrency, sessions in variants:
        # Each case collects its own server-side figures.
        collect: dict[str, list[float]] = {}
        op, setup = run_op(stub, AGENT_ID, sessions, collect)
        cases.append(Case(key, "runs", label, "runs/s", concurrency, op, procs, setup, collect))
    return cases


async def authenticated_run_case(
    stub: OrchestratorServiceAsyncStub,
    orchestrator: Child,
    model: Child,
    metadata: tuple[tuple[str, str], ...],
) -> Case:
    """Run c=32 with memory on a server with authentication on, each call with an API
    key (the agent `AGENT_ID` must exist in the key's tenant)."""
    collect: dict[str, list[float]] = {}
    op, setup = run_op(stub, AGENT_ID, "worker", collect, metadata)
    label = "orchestrated Run with an API key, session per worker, c=32"
    procs = {orchestrator.name: orchestrator, model.name: model}
    return Case("runs.memory_c32_api_key", "runs", label, "runs/s", 32, op, procs, setup, collect)
