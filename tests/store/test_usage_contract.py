"""Usage accounting in every store (issue 16): a run's end adds its runs, model calls and
tokens to its agent's hour in the same transaction; listings sum hours into days,
filter by agent and range, and page newest period first without gaps or repeats."""

from __future__ import annotations

import dataclasses
import random

from test_store_contract import a_run, spec, store  # noqa: F401 - the fixture

from orchestrator_server.core.store_port import Store
from orchestrator_server.core.types import Message, NewAgent, Role, Run, RunStatus, Usage
from orchestrator_server.core.usage import DAY, HOUR, UsageQuery, UsageRow

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, a day boundary


async def end_run(target: Store, tenant: str, run: Run, usage: Usage, end: float) -> None:
    await target.begin_run(tenant, run, Message(Role.USER, run.input, run_id=run.run_id))
    final = dataclasses.replace(run, status=RunStatus.COMPLETED, usage=usage, end_time=end)
    await target.finish_run(tenant, final, [Message(Role.ASSISTANT, "ok", run_id=run.run_id)])


async def every_row(target: Store, tenant: str, query: UsageQuery) -> list[UsageRow]:
    rows: list[UsageRow] = []
    while True:
        page = await target.list_usage(tenant, query)
        rows += page
        if len(page) < query.limit:
            return rows
        query = dataclasses.replace(query, after=(page[-1].period_start, page[-1].agent_id))


async def test_run_ends_add_up_per_agent_and_period(store: Store) -> None:  # noqa: F811
    for agent_id in ("a1", "a2"):
        await store.create_agent("t", NewAgent(agent_id, spec(), False, False))
    await store.create_agent("other", NewAgent("a1", spec(), False, False))
    ends = [
        ("a1", T0 + 10, Usage(10, 1, 1)),
        ("a1", T0 + 20, Usage(20, 2, 2)),  # the same hour
        ("a1", T0 + HOUR + 5, Usage(30, 3, 1)),  # the next hour, the same day
        ("a2", T0 + 30, Usage(40, 4, 3)),
        ("a1", T0 + DAY + 1, Usage(50, 5, 1)),  # the next day
    ]
    for i, (agent_id, end, usage) in enumerate(ends):
        await end_run(store, "t", a_run(f"r{i}", agent_id, f"s{i}", create_time=end), usage, end)
    await end_run(store, "other", a_run("x", "a1", "s", create_time=T0), Usage(99, 9, 9), T0 + 1)

    hours = await store.list_usage("t", UsageQuery(T0, T0 + 2 * DAY, HOUR, 100))
    assert hours == [
        UsageRow("a1", T0 + DAY, 1, 1, 50, 5),
        UsageRow("a1", T0 + HOUR, 1, 1, 30, 3),
        UsageRow("a1", T0, 2, 3, 30, 3),
        UsageRow("a2", T0, 1, 3, 40, 4),
    ]
    days = await store.list_usage("t", UsageQuery(T0, T0 + 2 * DAY, DAY, 100))
    assert days == [
        UsageRow("a1", T0 + DAY, 1, 1, 50, 5),
        UsageRow("a1", T0, 3, 4, 60, 6),
        UsageRow("a2", T0, 1, 3, 40, 4),
    ]
    only_a2 = await store.list_usage("t", UsageQuery(T0, T0 + 2 * DAY, DAY, 100, "a2"))
    assert only_a2 == [UsageRow("a2", T0, 1, 3, 40, 4)]
    first_day = await store.list_usage("t", UsageQuery(T0, T0 + DAY, DAY, 100))
    assert [row.period_start for row in first_day] == [T0, T0]
    assert await store.list_usage("t", UsageQuery(T0 + 3 * DAY, T0 + 4 * DAY, DAY, 100)) == []
    assert await store.list_usage("other", UsageQuery(T0, T0 + DAY, DAY, 100)) == [
        UsageRow("a1", T0, 1, 9, 99, 9)
    ]


async def test_pages_cover_every_row_once(store: Store) -> None:  # noqa: F811
    agents = [f"agent-{i:02d}" for i in range(7)]
    for agent_id in agents:
        await store.create_agent("t", NewAgent(agent_id, spec(), False, False))
    chosen = random.Random(7)
    expected: dict[tuple[int, str], int] = {}
    for i in range(40):
        agent_id, hour = chosen.choice(agents), chosen.randrange(6)
        end = T0 + hour * HOUR + 1
        await end_run(store, "t", a_run(f"r{i}", agent_id, f"s{i}", create_time=end), Usage(i), end)
        expected[(T0 + hour * HOUR, agent_id)] = expected.get((T0 + hour * HOUR, agent_id), 0) + i
    rows = await every_row(store, "t", UsageQuery(T0, T0 + DAY, HOUR, 4))
    assert [(r.period_start, r.agent_id) for r in rows] == sorted(
        expected, key=lambda key: (-key[0], key[1])
    )
    assert {(r.period_start, r.agent_id): r.prompt_tokens for r in rows} == expected
    assert sum(r.runs for r in rows) == 40


async def test_parent_records_are_not_counted_and_failed_runs_are(store: Store) -> None:  # noqa: F811
    await store.create_agent("t", NewAgent("a1", spec(), False, False))
    parent = a_run("team-run", "", "team-run", create_time=T0)
    await store.begin_run("t", parent, None)
    done = dataclasses.replace(parent, status=RunStatus.COMPLETED, usage=Usage(5, 5), end_time=T0)
    await store.finish_run("t", done, [])
    assert await store.list_usage("t", UsageQuery(T0, T0 + DAY, DAY, 10)) == []
    run = a_run("r1", "a1", "s1", create_time=T0)
    await store.begin_run("t", run, Message(Role.USER, "hi", run_id="r1"))
    ended = dataclasses.replace(run, status=RunStatus.CANCELLED, usage=Usage(7, 7), end_time=T0)
    await store.finish_run("t", ended, [])  # a run that did not complete counts
    assert await store.list_usage("t", UsageQuery(T0, T0 + DAY, DAY, 10)) == [
        UsageRow("a1", T0, 1, 0, 7, 7)
    ]


async def test_a_run_deleted_before_its_end_is_still_counted(store: Store) -> None:  # noqa: F811
    """Deleting an agent while its run goes on must not make the run's usage vanish."""
    await store.create_agent("t", NewAgent("short-lived", spec(), False, False))
    run = a_run("r1", "short-lived", "s1", create_time=T0)
    await store.begin_run("t", run, Message(Role.USER, "hi", run_id="r1"))
    await store.delete_agent("t", "short-lived", expected_revision=None)
    ended = dataclasses.replace(run, status=RunStatus.CANCELLED, usage=Usage(9, 9, 1), end_time=T0)
    await store.finish_run("t", ended, [])
    assert await store.get_run("t", "r1") is None
    assert await store.list_usage("t", UsageQuery(T0, T0 + DAY, DAY, 10)) == [
        UsageRow("short-lived", T0, 1, 1, 9, 9)
    ]
