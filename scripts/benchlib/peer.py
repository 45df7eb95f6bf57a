"""Section peer: the OpenAI Agents SDK, in process, against the same dev model server.

`Runner.run_streamed` without memory and with `SQLiteSession`, c=32: what an application
gets without the orchestrator.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from .config import QUESTION, SYSTEM, TOKENS
from .driver import Case, FirstDelta, Op, Setup, cases_of
from .servers import Child, model_client

SDK_WORKERS = 64  # sessions opened per repeat; more than any case's concurrency


def sdk_ops(client: AsyncOpenAI, db_path: Path) -> tuple[Op, Op, Setup]:
    """The Agents SDK: Runner.run_streamed without memory, and with SQLiteSession (one
    session per worker and repeat, like the orchestrator's "worker" sessions)."""
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        SQLiteSession,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    model = OpenAIChatCompletionsModel(model="dev-echo", openai_client=client)
    agent: Any = Agent(name="bench", instructions=SYSTEM, model=model)
    sessions: dict[int, Any] = {}

    async def setup(repeat: int) -> None:
        for session in sessions.values():
            session.close()
        sessions.clear()
        for worker in range(SDK_WORKERS):
            sessions[worker] = SQLiteSession(f"w{worker}-r{repeat + 1}", db_path)

    async def turn(session: Any) -> tuple[float, int]:
        delta = FirstDelta()
        result = Runner.run_streamed(agent, QUESTION, session=session)
        async for event in result.stream_events():
            if event.type == "raw_response_event" and event.data.type == (
                "response.output_text.delta"
            ):
                delta.add(1)
        return delta.result(TOKENS)

    async def plain(_: int) -> tuple[float, int]:
        return await turn(None)

    async def with_session(worker: int) -> tuple[float, int]:
        return await turn(sessions[worker])

    return plain, with_session, setup


def peer_cases(
    stack: contextlib.AsyncExitStack, model: Child, model_url: str, work: Path
) -> list[Case]:
    """The SDK cases; its own OpenAI client, sessions in work/sdk_sessions.db."""
    plain, with_session, setup = sdk_ops(model_client(stack, model_url), work / "sdk_sessions.db")
    procs = {"devmodel": model}
    no_memory = [("peer.sdk_c32", "Agents SDK run_streamed, no memory, c=32", 32)]
    sqlite = [("peer.sdk_sqlite_c32", "Agents SDK run_streamed + SQLiteSession, c=32", 32)]
    return [
        *cases_of("peer", "runs/s", plain, procs, no_memory),
        *cases_of("peer", "runs/s", with_session, procs, sqlite, setup),
    ]
