"""Section team: RunTeam fan-out, 8 members and a coordinator, every model call 200 ms.

Written against the planned API (CreateTeam(team{team_id, members, coordinator}),
RunTeam(RunTeamRequest{team_id, task}) -> stream of events) and compared with one
member's Run at the same model latency; skipped with a message while the stub lacks the
RPC or the server answers UNIMPLEMENTED. The stub is used untyped for that reason.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

import grpc

from orchestrator.v1 import orchestrator_service_pb2, orchestrator_service_pb2_grpc

from .agents import create_agent
from .config import OP_TIMEOUT, QUESTION, WORK, Mode
from .results import Results
from .runs import run_turn
from .scale_db import remove_db
from .servers import serve_orchestrator, start_devmodel

if TYPE_CHECKING:
    from orchestrator.v1.orchestrator_service_pb2_grpc import OrchestratorServiceAsyncStub

NOT_AVAILABLE = "RunTeam not available in this build"
LATENCY_MS = 200.0
MEMBERS = 8
TEAM_ID = "bench-team"
MEMBER_IDS = [f"member-{i}" for i in range(MEMBERS)]


def collaboration_messages() -> ModuleType:
    """The module holding Team / RunTeamRequest (collaboration_pb2 once it exists)."""
    try:
        return importlib.import_module("orchestrator.v1.collaboration_pb2")
    except ImportError:
        return orchestrator_service_pb2


def team_api_present(collab: ModuleType) -> bool:
    """Whether the generated stub and messages have CreateTeam and RunTeam."""
    stub_class: Any = orchestrator_service_pb2_grpc.OrchestratorServiceStub
    # A stub needs a channel to exist; nothing is ever sent on this one.
    with grpc.insecure_channel("127.0.0.1:9") as probe_channel:
        probe = stub_class(probe_channel)
        present = hasattr(probe, "RunTeam") and hasattr(probe, "CreateTeam")
    return present and hasattr(collab, "RunTeamRequest") and hasattr(collab, "Team")


def skip(results: Results, message: str) -> None:
    results.skipped["team"] = message
    print(f"  skipped: {message}", flush=True)


async def create_team(stub: Any, collab: ModuleType) -> bool:
    """The members, the coordinator and the team; False if the server lacks CreateTeam."""
    for agent_id in [*MEMBER_IDS, "coordinator"]:
        await create_agent(stub, agent_id)
    team = collab.Team(team_id=TEAM_ID, members=MEMBER_IDS, coordinator="coordinator")
    try:
        await stub.CreateTeam(
            orchestrator_service_pb2.CreateTeamRequest(team=team), timeout=OP_TIMEOUT
        )
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        return False
    return True


async def time_team_run(stub: Any, collab: ModuleType) -> float:
    """Seconds for one RunTeam, to its last event (or its reply, if it is unary)."""
    began = time.perf_counter()
    call = stub.RunTeam(collab.RunTeamRequest(team_id=TEAM_ID, task=QUESTION), timeout=OP_TIMEOUT)
    if hasattr(call, "__aiter__"):
        async for _event in call:
            pass
    else:
        await call
    return time.perf_counter() - began


async def time_member_run(stub: OrchestratorServiceAsyncStub, i: int) -> float:
    """Seconds for one member's Run, in a new session."""
    began = time.perf_counter()
    await run_turn(stub, "member-0", f"single-{i}", OP_TIMEOUT)
    return time.perf_counter() - began


async def team_section(mode: Mode, results: Results) -> None:
    """RunTeam against one member's Run, both at 200 ms model latency."""
    collab = collaboration_messages()
    if not team_api_present(collab):
        skip(results, NOT_AVAILABLE)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        _, model_url = await start_devmodel(stack, "devmodel-200ms", LATENCY_MS)
        db = WORK / "team.db"
        remove_db(db)
        _, stub = await serve_orchestrator(stack, "team", db, model_url)
        if not await create_team(stub, collab):
            skip(results, NOT_AVAILABLE + " (the server answers UNIMPLEMENTED)")
            return
        await time_team_run(stub, collab)  # warm-up
        await time_member_run(stub, 0)
        fig = results.figure(
            "team.fanout_s",
            "team",
            f"RunTeam, {MEMBERS} members + coordinator at {LATENCY_MS:.0f} ms",
            "s",
        )
        single = results.figure(
            "team.member_s", "team", f"one member's Run at {LATENCY_MS:.0f} ms", "s"
        )
        for repeat in range(mode.repeats):
            fig.samples.append(await time_team_run(stub, collab))
            single.samples.append(await time_member_run(stub, repeat + 1))
        print(f"  RunTeam: {fig.value:.3f} s; one member {single.value:.3f} s", flush=True)
