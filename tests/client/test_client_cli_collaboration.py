"""`orchestrator team ...` and `orchestrator pipeline run` as real subprocesses."""

from __future__ import annotations

import asyncio
import re

from test_client_cli import cli

from helpers import LiveServer
from orchestrator import AsyncOrchestrator
from orchestrator_devmodel import DevModelAdmin

UNAVAILABLE_NO_RETRY = {"error": {"status": 503, "message": "down", "should_retry": False}}


async def test_team_commands(live: LiveServer, admin: DevModelAdmin) -> None:
    address = live.address
    async with AsyncOrchestrator(address, timeout=30) as client:
        for agent_id in ("scout", "analyst", "critic", "director"):
            await client.create_agent(agent_id, system_message=f"I am {agent_id}.")
    await admin.set_rules(
        [{"match": {"system_contains": "I am critic."}, "reply": UNAVAILABLE_NO_RETRY}]
    )

    created = await cli(
        address, "team", "create", "crew", "scout", "analyst", "critic",
        "--coordinator", "director", "--description", "the crew",
    )  # fmt: skip
    assert created.code == 0, created.err
    assert "members:         scout, analyst, critic" in created.out.splitlines()

    duplicate, listed, got, missing = await asyncio.gather(
        cli(address, "team", "create", "crew", "scout"),
        cli(address, "team", "list"),
        cli(address, "team", "get", "crew", "--json"),
        cli(address, "team", "run", "ghost", "task"),
    )
    assert duplicate.code == 4 and duplicate.err.startswith("error: TEAM_ALREADY_EXISTS: ")
    assert listed.out.splitlines()[1].split() == [
        "crew",
        "scout,analyst,critic",
        "director",
        "the",
        "crew",
    ]
    team = got.json()
    assert isinstance(team, dict)
    assert team["members"] == ["scout", "analyst", "critic"]
    assert missing.code == 3 and missing.err.startswith("error: TEAM_NOT_FOUND: ")

    ran = await cli(address, "team", "run", "crew", "map the coast")
    assert ran.code == 0, ran.err
    progress = ran.err.splitlines()
    assert progress[0].startswith("team crew: run_")
    for label in ("[member 1 scout]", "[member 2 analyst]", "[coordinator director]"):
        assert f"{label} started" in progress
        assert any(
            re.fullmatch(rf"{re.escape(label)} completed \(\d+\.\d\d s\)", p) for p in progress
        )
    assert any(p.startswith("[member 3 critic] failed: MODEL_UNAVAILABLE: ") for p in progress), (
        progress
    )
    # The coordinator's line comes after every member's.
    assert progress.index("[coordinator director] started") > max(
        i for i, p in enumerate(progress) if p.startswith("[member ")
    )
    assert ran.out.startswith(
        "Echo: Synthesize the following team outputs for task 'map the coast'"
    )
    assert "=== analyst ===\nEcho: Task for analyst: map the coast" in ran.out
    assert "=== critic ===\n[failed: MODEL_UNAVAILABLE]" in ran.out

    as_json = await cli(address, "team", "run", "crew", "again", "--json")
    assert as_json.code == 0, as_json.err
    events = as_json.json_lines()
    assert events[0]["type"] == "started" and events[0]["team_id"] == "crew"
    assert events[-1]["type"] == "completed"
    inner = [e for e in events if e["type"] == "run_event"]
    assert {e["event"]["type"] for e in inner} >= {"run_started", "text_delta", "run_completed"}  # type: ignore[index]
    finished = [e for e in events if e["type"] == "participant_finished"]
    assert len(finished) == 4
    assert as_json.err == ""

    in_use = await cli(address, "agents", "delete", "critic")
    assert in_use.code == 6 and in_use.err.startswith("error: AGENT_IN_USE: ")
    updated = await cli(address, "team", "update", "crew", "--member", "scout", "--coordinator", "")
    assert updated.code == 0, updated.err
    assert "coordinator:     (none)" in updated.out.splitlines()
    assert (await cli(address, "agents", "delete", "critic")).code == 0
    gone = await cli(address, "team", "delete", "crew")
    assert (gone.code, gone.out) == (0, "deleted team crew\n")


async def test_pipeline_run_command(live: LiveServer, admin: DevModelAdmin) -> None:
    address = live.address
    async with AsyncOrchestrator(address, timeout=30) as client:
        for agent_id in ("research", "summary"):
            await client.create_agent(agent_id, system_message=f"I am {agent_id}.")

    ran = await cli(
        address, "pipeline", "run",
        "--step", "research=Find facts about {input}",
        "--step", "summary=Summarize: {previous} (a=b)",
        "tides",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert ran.out == "Echo: Summarize: Echo: Find facts about tides (a=b)\n"
    progress = ran.err.splitlines()
    assert progress[0].startswith("pipeline: run_")
    assert progress[1:3] == ["[step 1 research] started", progress[2]]
    assert re.fullmatch(r"\[step 1 research\] completed \(\d+\.\d\d s\)", progress[2])
    assert progress[3] == "[step 2 summary] started"
    prompts = [r["body"]["messages"][-1]["content"] for r in await admin.requests()]
    assert prompts == ["Find facts about tides", "Summarize: Echo: Find facts about tides (a=b)"]

    as_json = await cli(
        address, "pipeline", "run", "--step", "research", "--step", "summary", "x", "--json"
    )
    events = as_json.json_lines()
    assert [e["type"] for e in events if e["type"] != "run_event"] == [
        "started",
        "participant_started",
        "participant_finished",
        "participant_started",
        "participant_finished",
        "completed",
    ]
    assert events[-1]["output"] == "Echo: Echo: x"

    await admin.set_rules(
        [{"match": {"system_contains": "I am summary."}, "reply": UNAVAILABLE_NO_RETRY}]
    )
    failed = await cli(address, "pipeline", "run", "--step", "research", "--step", "summary", "y")
    assert failed.code == 5
    assert failed.out == ""
    lines = failed.err.splitlines()
    assert lines[-2].startswith("[step 2 summary] failed: MODEL_UNAVAILABLE: ")
    assert lines[-1].startswith("error: MODEL_UNAVAILABLE: ")
    usage = await cli(address, "pipeline", "run", "x")
    assert usage.code == 2 and "--step" in usage.err
