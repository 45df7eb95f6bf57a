"""Teams and pipelines through the typed client (async and blocking) against a live server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from helpers import LiveServer
from orchestrator import (
    AgentInUse,
    AsyncOrchestrator,
    CollaborationCompleted,
    CollaborationStarted,
    EtagMismatch,
    ModelUnavailable,
    Orchestrator,
    ParticipantEvent,
    ParticipantFinished,
    ParticipantRole,
    ParticipantStarted,
    PipelineStep,
    RunCompleted,
    RunStarted,
    RunStatus,
    TeamAlreadyExists,
    TeamNotFound,
    TextDelta,
)
from orchestrator_devmodel import DevModelAdmin

UNAVAILABLE_NO_RETRY = {"error": {"status": 503, "message": "down", "should_retry": False}}


async def make_agents(client: AsyncOrchestrator, *agent_ids: str) -> None:
    """Agents whose system message is `I am <id>.` (so rules and prompts can tell them apart)."""
    for agent_id in agent_ids:
        await client.create_agent(agent_id, system_message=f"I am {agent_id}.")


async def prompts_by_system(admin: DevModelAdmin) -> dict[str, list[str]]:
    """The last user message of every recorded model request, grouped by system message."""
    grouped: dict[str, list[str]] = {}
    for request in await admin.requests():
        messages: list[dict[str, Any]] = request["body"]["messages"]
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        grouped.setdefault(system, []).append(str(messages[-1]["content"]))
    return grouped


# -- teams --------------------------------------------------------------------------------


async def test_team_crud(client: AsyncOrchestrator) -> None:
    await make_agents(client, "a", "b", "c", "boss")
    created = await client.create_team(
        "crew", ["a", "b"], coordinator="boss", description="the crew", max_concurrency=2
    )
    assert created.team_id == "crew"
    assert created.members == ("a", "b")
    assert created.coordinator == "boss"
    assert created.max_concurrency == 2
    assert created.etag
    assert created.create_time is not None
    # Defaults are filled in by the server.
    assert created.member_template
    assert created.member_timeout_seconds > 0

    with pytest.raises(TeamAlreadyExists):
        await client.create_team("crew", ["c"])
    same = await client.create_team("crew", ["c"], if_not_exists=True)
    assert same.members == ("a", "b")

    await client.create_team("alpha", ["c"])
    assert [team.team_id for team in await client.list_teams()] == ["alpha", "crew"]
    assert (await client.get_team("crew")) == created
    assert await client.has_team("crew")
    assert not await client.has_team("nobody")

    updated = await client.update_team(
        "crew", members=["a", "b", "c"], coordinator=None, member_template="Do {task}, {agent}"
    )
    assert updated.members == ("a", "b", "c")
    assert updated.coordinator == ""
    assert updated.member_template == "Do {task}, {agent}"
    assert updated.description == "the crew"  # untouched
    assert updated.etag != created.etag
    with pytest.raises(EtagMismatch):
        await client.update_team("crew", etag=created.etag, description="stale")

    # An agent a team uses cannot be deleted.
    with pytest.raises(AgentInUse) as caught:
        await client.delete_agent("c")
    assert "crew" in str(caught.value) or "alpha" in str(caught.value)

    with pytest.raises(EtagMismatch):
        await client.delete_team("crew", etag=created.etag)
    await client.delete_team("crew", etag=updated.etag)
    with pytest.raises(TeamNotFound):
        await client.get_team("crew")
    with pytest.raises(TeamNotFound):
        await client.run_team("crew", "anything")


async def test_run_team_with_eight_members_and_a_coordinator(
    client: AsyncOrchestrator, admin: DevModelAdmin
) -> None:
    members = [f"m{i}" for i in range(8)]
    await make_agents(client, *members, "director")
    await client.create_team("research", members, coordinator="director")

    result = await client.run_team("research", "study tides")

    assert result.team_id == "research"
    assert [r.participant.agent_id for r in result.members] == members
    assert [r.participant.index for r in result.members] == list(range(8))
    assert all(r.ok and r.status is RunStatus.COMPLETED for r in result.members)
    assert result.member("m3").output == "Echo: Task for m3: study tides"
    assert result.coordinator is not None
    assert result.coordinator.participant.role is ParticipantRole.COORDINATOR
    assert result.output == result.coordinator.output
    for member in members:
        assert f"=== {member} ===\nEcho: Task for {member}: study tides" in result.output
    assert result.usage.completion_tokens == sum(
        r.usage.completion_tokens for r in (*result.members, result.coordinator)
    )
    prompts = await prompts_by_system(admin)
    assert prompts["I am m5."] == ["Task for m5: study tides"]
    assert prompts["I am director."][0].startswith(
        "Synthesize the following team outputs for task 'study tides'"
    )

    run = await client.get_run(result.run_id)
    assert run.agent_id == ""
    assert run.status is RunStatus.COMPLETED
    child = await client.get_run(result.member("m0").run_id)
    assert child.parent_run_id == result.run_id
    assert child.session_id == result.session_id


async def test_stream_team_yields_typed_events(
    client: AsyncOrchestrator, admin: DevModelAdmin
) -> None:
    await make_agents(client, "writer", "critic", "editor")
    await admin.set_rules(
        [{"match": {"system_contains": "I am critic."}, "reply": UNAVAILABLE_NO_RETRY}]
    )
    await client.create_team(
        "desk", ["writer", "critic"], coordinator="editor", member_template="{agent}: {task}"
    )

    async with client.stream_team("desk", "a poem") as stream:
        events = [event async for event in stream]
    assert isinstance(events[0], CollaborationStarted)
    assert events[0].team_id == "desk"
    assert events[0].participant_count == 2
    assert stream.run_id == events[0].run_id
    assert isinstance(events[-1], CollaborationCompleted)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))

    started = [e for e in events if isinstance(e, ParticipantStarted)]
    assert {(e.participant.role, e.participant.agent_id, e.message) for e in started} >= {
        (ParticipantRole.MEMBER, "writer", "writer: a poem"),
        (ParticipantRole.MEMBER, "critic", "critic: a poem"),
    }
    assert started[-1].participant.role is ParticipantRole.COORDINATOR
    writer_events = [
        e.event
        for e in events
        if isinstance(e, ParticipantEvent) and e.participant.agent_id == "writer"
    ]
    assert isinstance(writer_events[0], RunStarted)
    assert any(isinstance(e, TextDelta) for e in writer_events)
    assert isinstance(writer_events[-1], RunCompleted)
    assert writer_events[-1].output == "Echo: writer: a poem"

    finished = {
        e.participant.agent_id: e.result for e in events if isinstance(e, ParticipantFinished)
    }
    assert finished["writer"].ok
    assert finished["critic"].status is RunStatus.FAILED
    assert finished["critic"].error_reason == "MODEL_UNAVAILABLE"
    assert finished["editor"].ok
    # The coordinator still synthesized, and was told the critic failed.
    assert "[failed: MODEL_UNAVAILABLE]" in events[-1].output


async def test_team_without_coordinator_and_blocking_client(live: LiveServer) -> None:
    def scenario() -> None:
        with Orchestrator(live.address, timeout=30) as client:
            client.create_agent("x")
            client.create_agent("y")
            team = client.create_team("pair", ["x", "y"])
            assert client.list_teams() == [team]
            result = client.run_team("pair", "go")
            assert result.coordinator is None
            assert [r.output for r in result.members] == [
                "Echo: Task for x: go",
                "Echo: Task for y: go",
            ]
            assert result.output == (
                "=== x ===\nEcho: Task for x: go\n\n=== y ===\nEcho: Task for y: go\n\n"
            )
            with client.stream_team("pair", "again") as stream:
                kinds = [type(e).__name__ for e in stream]
            assert kinds[0] == "CollaborationStarted"
            assert kinds[-1] == "CollaborationCompleted"
            assert stream.run_id
            updated = client.update_team("pair", members=["y"])
            assert updated.members == ("y",)
            client.delete_team("pair")
            assert not client.has_team("pair")

    await asyncio.to_thread(scenario)


# -- pipelines ----------------------------------------------------------------------------


async def test_run_pipeline_fills_templates(
    client: AsyncOrchestrator, admin: DevModelAdmin
) -> None:
    await make_agents(client, "research", "analysis", "summary")
    result = await client.run_pipeline(
        [
            ("research", "Find information about {input}"),
            PipelineStep("analysis", "Analyze this information: {previous} (topic: {input})"),
            "summary",
        ],
        input="tides",
    )
    first = "Find information about tides"
    second = f"Analyze this information: Echo: {first} (topic: tides)"
    third = f"Echo: {second}"
    prompts = await prompts_by_system(admin)
    assert prompts["I am research."] == [first]
    assert prompts["I am analysis."] == [second]
    assert prompts["I am summary."] == [third]
    assert result.output == f"Echo: {third}"
    assert [s.participant.agent_id for s in result.steps] == ["research", "analysis", "summary"]
    assert [s.participant.role for s in result.steps] == [ParticipantRole.STEP] * 3
    assert all(s.ok for s in result.steps)
    assert result.session_id
    for step in result.steps:
        assert (await client.get_run(step.run_id)).parent_run_id == result.run_id


async def test_stream_pipeline_and_a_failing_step(
    client: AsyncOrchestrator, admin: DevModelAdmin
) -> None:
    await make_agents(client, "first", "second", "third")
    async with client.stream_pipeline(["first", "second"], "hello") as stream:
        events = [event async for event in stream]
    steps = [(e.participant.index, type(e).__name__) for e in events[1:-1]]
    assert steps[0] == (0, "ParticipantStarted")
    assert steps[-1] == (1, "ParticipantFinished")
    assert [i for i, _ in steps] == sorted(i for i, _ in steps)

    await admin.set_rules(
        [{"match": {"system_contains": "I am second."}, "reply": UNAVAILABLE_NO_RETRY}]
    )
    seen: list[Any] = []
    with pytest.raises(ModelUnavailable) as caught:
        async with client.stream_pipeline(["first", "second", "third"], "x") as stream:
            async for event in stream:
                seen.append(event)
    assert caught.value.metadata["step"] == "1"
    assert caught.value.metadata["agent_id"] == "second"
    assert caught.value.metadata["pipeline_run_id"] == stream.run_id
    finished = [e.result for e in seen if isinstance(e, ParticipantFinished)]
    assert [(r.participant.index, r.status) for r in finished] == [
        (0, RunStatus.COMPLETED),
        (1, RunStatus.FAILED),
    ]
    with pytest.raises(ModelUnavailable):
        await client.run_pipeline(["first", "second", "third"], "x")
    assert "I am third." not in await prompts_by_system(admin)


async def test_pipeline_with_the_blocking_client(live: LiveServer, admin: DevModelAdmin) -> None:
    def scenario() -> str:
        with Orchestrator(live.address, timeout=30) as client:
            client.create_agent("only")
            result = client.run_pipeline([("only", "Say {input}")], "hi", session_id="s1")
            assert [s.output for s in result.steps] == [result.output]
            with client.stream_pipeline([PipelineStep("only")], "again") as stream:
                events = list(stream)
            assert isinstance(events[-1], CollaborationCompleted)
            return result.output

    assert await asyncio.to_thread(scenario) == "Echo: Say hi"
    assert [r["body"]["messages"][-1]["content"] for r in await admin.requests()] == [
        "Say hi",
        "again",
    ]
