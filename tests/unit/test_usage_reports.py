"""UsageReports (core/usage.py) over the in-memory store: a listing without an end time
goes on from its page token after the clock crosses into a new period, and ranges are
aligned to whole periods."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator_server.core import usage as usage_module
from orchestrator_server.core.pagination import PageTokens
from orchestrator_server.core.types import (
    AgentSpec,
    Message,
    NewAgent,
    Role,
    Run,
    RunStatus,
    Usage,
)
from orchestrator_server.core.usage import DAY, HOUR, UsageReports
from orchestrator_server.store.memory import InMemoryStore

T0 = 1_767_225_600  # a UTC midnight


async def ended_run(store: InMemoryStore, run_id: str, agent_id: str, end: float) -> None:
    run = Run(run_id, agent_id, run_id, RunStatus.RUNNING, "hi", end)
    await store.begin_run("t", run, Message(Role.USER, "hi", run_id=run_id))
    final = dataclasses.replace(run, status=RunStatus.COMPLETED, usage=Usage(1, 1, 1), end_time=end)
    await store.finish_run("t", final, [])


async def test_a_listing_goes_on_across_an_hour_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    store = InMemoryStore()
    for agent_id in ("a", "b", "c"):
        await store.create_agent("t", NewAgent(agent_id, AgentSpec(), False, False))
        await ended_run(store, f"r-{agent_id}", agent_id, T0 + 10)
    reports = UsageReports(store, PageTokens(b"k" * 32))
    monkeypatch.setattr(usage_module.time, "time", lambda: T0 + HOUR - 1)
    first = await reports.list("t", period=HOUR, start=None, end=None, page_size=2)
    assert [r.agent_id for r in first.items] == ["a", "b"]
    monkeypatch.setattr(usage_module.time, "time", lambda: T0 + HOUR + 1)  # the next hour
    rest = await reports.list(
        "t", period=HOUR, start=None, end=None, page_size=2, page_token=first.next_page_token
    )
    assert [r.agent_id for r in rest.items] == ["c"] and not rest.next_page_token


async def test_ranges_are_whole_periods() -> None:
    store = InMemoryStore()
    await store.create_agent("t", NewAgent("a", AgentSpec(), False, False))
    await ended_run(store, "r1", "a", T0 + DAY - 1)  # the last second of the first day
    reports = UsageReports(store, PageTokens(b"k" * 32))
    # A range starting and ending inside the day lists the whole day.
    page = await reports.list("t", period=DAY, start=T0 + 5, end=T0 + 6)
    assert [(r.period_start, r.runs) for r in page.items] == [(T0, 1)]
    hourly = await reports.list("t", period=HOUR, start=T0 + 5, end=T0 + 6)
    assert hourly.items == []
