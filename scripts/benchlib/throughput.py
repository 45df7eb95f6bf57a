"""Sections limits, runs, peer and agents, measured together.

Their servers (echo, dev model, orchestrator) run side by side for the whole time and
the cases are measured in interleaved rounds, so that each ratio compares figures taken
under the same conditions.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
from pathlib import Path

from scripts.pg_cluster import create_database

from .agents import LIST_METADATA, LIST_TENANT, agent_cases, api_key_case, create_agent
from .config import NO_MODEL_URL, WORK, Mode
from .driver import Case, run_rounds
from .limits import echo_cases, openai_cases
from .peer import peer_cases
from .profiling import profile_case
from .results import Results
from .runs import AGENT_ID, PG_RUN_VARIANTS, authenticated_run_case, runs_cases
from .servers import (
    Child,
    create_api_key,
    serve_orchestrator,
    start_devmodel,
    start_postgres,
)

# The order cases are measured in within a round, and reported in.
CASE_ORDER = [
    "limits.grpc_stream_c1",
    "limits.grpc_stream_c32",
    "limits.grpc_unary_c16",
    "limits.openai_c1",
    "limits.openai_c32",
    "limits.proxy_c1",
    "runs.fresh_c1",
    "runs.fresh_c32",
    "runs.memory_c32",
    "runs.memory_c32_api_key",
    "runs.window_c1",
    "runs.pg_fresh_c1",
    "runs.pg_memory_c32",
    "runs.pg_window_c1",
    "peer.sdk_c32",
    "peer.sdk_sqlite_c32",
    "agents.create_c16",
    "agents.get_c16",
    "agents.get_c16_api_key",
    "agents.list_c16",
]

# (section, case key, profile name) of the cases `--profile` profiles, in this order.
PROFILED = (
    ("runs", "runs.memory_c32", "runs-c32-memory"),
    ("runs", "runs.fresh_c32", "runs-c32-fresh"),
    ("agents", "agents.create_c16", "create-c16"),
    ("agents", "agents.get_c16", "get-c16"),
)


async def orchestrator_cases(
    stack: contextlib.AsyncExitStack,
    selected: set[str],
    work: Path,
    model: Child | None,
    model_url: str,
) -> list[Case]:
    """The runs and agents cases, on one orchestrator."""
    db = work / "bench.db"
    orch, stub = await serve_orchestrator(stack, "orchestrator", db, model_url or NO_MODEL_URL)
    cases: list[Case] = []
    if "runs" in selected:
        assert model is not None
        await create_agent(stub, AGENT_ID)
        cases += runs_cases(stub, orch, model)
        pg_url = await create_database(await start_postgres(stack))
        pg_orch, pg_stub = await serve_orchestrator(stack, "orchestrator-pg", pg_url, model_url)
        await create_agent(pg_stub, AGENT_ID)
        cases += runs_cases(pg_stub, pg_orch, model, PG_RUN_VARIANTS)
    if selected & {"runs", "agents"}:
        cases += await authenticated_cases(stack, selected, work, model, model_url)
    if "agents" in selected:
        cases += await agent_cases(stub, {"orchestrator": orch})
    return cases


async def authenticated_cases(
    stack: contextlib.AsyncExitStack,
    selected: set[str],
    work: Path,
    model: Child | None,
    model_url: str,
) -> list[Case]:
    """GetAgent and Run on a second orchestrator with authentication on (an API key per
    call)."""
    db = work / "bench-auth.db"
    secret = create_api_key(db, LIST_TENANT)
    orch, stub = await serve_orchestrator(
        stack, "orchestrator-auth", db, model_url or NO_MODEL_URL, {"ORCHESTRATOR_AUTH": "on"}
    )
    cases: list[Case] = []
    if "agents" in selected:
        cases.append(await api_key_case(stub, secret, {"orchestrator-auth": orch}))
    if "runs" in selected:
        assert model is not None
        key = (("authorization", f"Bearer {secret}"),)
        await create_agent(stub, AGENT_ID, LIST_TENANT, key)
        cases.append(await authenticated_run_case(stub, orch, model, (*LIST_METADATA, *key)))
    return cases


async def selected_cases(
    stack: contextlib.AsyncExitStack, selected: set[str], work: Path
) -> list[Case]:
    """Start the servers the selected sections need; their cases, in CASE_ORDER."""
    cases: list[Case] = []
    model: Child | None = None
    model_url = ""
    if selected & {"limits", "runs", "peer"}:
        model, model_url = await start_devmodel(stack, "devmodel", 0)
    if selected & {"limits", "agents"}:
        cases += await echo_cases(stack, selected, model_url)
    if "limits" in selected:
        assert model is not None
        cases += openai_cases(stack, model, model_url)
    if selected & {"runs", "agents"}:
        cases += await orchestrator_cases(stack, selected, work, model, model_url)
    if "peer" in selected:
        assert model is not None
        cases += peer_cases(stack, model, model_url, work)
    order = {k: i for i, k in enumerate(CASE_ORDER)}
    cases.sort(key=lambda c: order.get(c.key, 99))
    return cases


async def throughput_sections(
    selected: set[str], mode: Mode, results: Results, args: argparse.Namespace
) -> None:
    """Sections limits, runs, peer and agents: their servers run side by side and the
    cases are measured in interleaved rounds."""
    async with contextlib.AsyncExitStack() as stack:
        shutil.rmtree(WORK, ignore_errors=True)
        WORK.mkdir(parents=True)
        cases = await selected_cases(stack, selected, WORK)
        print(
            f"measuring {len(cases)} cases: {mode.repeats} x {mode.duration:g} s each, interleaved",
            flush=True,
        )
        await run_rounds(cases, results, mode)
        if args.profile:
            by_key = {case.key: case for case in cases}
            for section, key, name in PROFILED:
                if section in selected:
                    await profile_case(by_key[key], name, results, mode)
