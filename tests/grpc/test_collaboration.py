"""Pipelines, teams and team management through the real server (issue 5).

What the agents were asked is read from the requests the development model server
recorded; parallelism is shown by the model server's in-flight counter and by when the
member requests arrived relative to each other, never by wall-clock budgets.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from helpers import LiveServer, error_info, field_violations
from orchestrator.v1 import agent_pb2, collaboration_pb2, run_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin

Event = collaboration_pb2.CollaborationEvent
MEMBER = collaboration_pb2.PARTICIPANT_ROLE_MEMBER
COORDINATOR = collaboration_pb2.PARTICIPANT_ROLE_COORDINATOR
UNAVAILABLE_NO_RETRY = {"error": {"status": 503, "message": "down", "should_retry": False}}


async def make_agents(live: LiveServer, *agent_ids: str) -> None:
    """Agents whose system message is `I am <id>.` (so rules can target them)."""
    for agent_id in agent_ids:
        await live.stub.CreateAgent(
            pb.CreateAgentRequest(
                agent=agent_pb2.Agent(agent_id=agent_id, system_message=f"I am {agent_id}.")
            )
        )


def step(agent_id: str, template: str = "") -> collaboration_pb2.PipelineStep:
    return collaboration_pb2.PipelineStep(agent_id=agent_id, message_template=template)


def kind(event: Event) -> str:
    return str(event.WhichOneof("event"))


async def collect(call: Any) -> tuple[list[Event], grpc.aio.AioRpcError | None]:
    """Every event of a collaboration stream, and the error it ended with (if any)."""
    events: list[Event] = []
    try:
        async for event in call:
            events.append(event)
    except grpc.aio.AioRpcError as error:
        return events, error
    return events, None


async def prompts_by_system(admin: DevModelAdmin) -> dict[str, list[dict[str, Any]]]:
    """Recorded model requests grouped by their system message."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for request in await admin.requests():
        messages = request["body"]["messages"]
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        grouped.setdefault(system, []).append(request)
    return grouped


def last_user(request: dict[str, Any]) -> str:
    return str(request["body"]["messages"][-1]["content"])


# -- pipelines ------------------------------------------------------------------------


async def test_pipeline_fills_templates_and_links_runs(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await make_agents(live, "research", "analysis", "summary")
    call = live.stub.RunPipeline(
        collaboration_pb2.RunPipelineRequest(
            input="climate change mitigation",
            steps=[
                step("research", "Find information about {input}"),
                step("analysis", "Analyze this information: {previous} (topic: {input})"),
                step("summary", "Summarize {{briefly}}: {previous}"),
            ],
        ),
        timeout=30,
    )
    events, error = await collect(call)
    assert error is None

    prompts = await prompts_by_system(admin)
    first = "Find information about climate change mitigation"
    second = f"Analyze this information: Echo: {first} (topic: climate change mitigation)"
    third = f"Summarize {{briefly}}: Echo: {second}"
    assert [last_user(r) for r in prompts["I am research."]] == [first]
    assert [last_user(r) for r in prompts["I am analysis."]] == [second]
    assert [last_user(r) for r in prompts["I am summary."]] == [third]
    # Each step starts a fresh conversation: system message + its own prompt only.
    assert len(prompts["I am summary."][0]["body"]["messages"]) == 2

    # Stream shape: started, then per step started -> run events -> finished, then done.
    assert kind(events[0]) == "started"
    assert kind(events[-1]) == "completed"
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    pipeline_run_id = events[0].run_id
    assert {e.run_id for e in events} == {pipeline_run_id}
    assert events[0].started.participant_count == 3
    session = events[0].started.session_id
    steps = [(e.participant.index, kind(e)) for e in events[1:-1]]
    indexes = [i for i, _ in steps]
    assert indexes == sorted(indexes)  # steps never interleave
    for index, agent_id in enumerate(["research", "analysis", "summary"]):
        own = [e for e in events[1:-1] if e.participant.index == index]
        assert kind(own[0]) == "participant_started"
        assert kind(own[-1]) == "participant_finished"
        assert {e.participant.agent_id for e in own} == {agent_id}
        run_events = [e.run_event for e in own if kind(e) == "run_event"]
        assert run_events[0].WhichOneof("event") == "run_started"
        assert run_events[-1].WhichOneof("event") == "run_completed"
    assert events[1].participant_started.message == first
    completed = events[-1].completed
    assert completed.output == f"Echo: {third}"
    assert [r.participant.agent_id for r in completed.results] == [
        "research",
        "analysis",
        "summary",
    ]
    assert all(r.status == run_pb2.RUN_STATUS_COMPLETED for r in completed.results)
    assert completed.usage.completion_tokens == sum(
        r.usage.completion_tokens for r in completed.results
    )

    # Parent and child run records.
    parent = (await live.stub.GetRun(pb.GetRunRequest(run_id=pipeline_run_id))).run
    assert parent.status == run_pb2.RUN_STATUS_COMPLETED
    assert parent.agent_id == ""
    assert parent.parent_run_id == ""
    assert parent.input == "climate change mitigation"
    assert parent.output == completed.output
    for result in completed.results:
        child = (await live.stub.GetRun(pb.GetRunRequest(run_id=result.run_id))).run
        assert child.parent_run_id == pipeline_run_id
        assert child.session_id == session
        assert child.output == result.output
    listed = await live.stub.ListRuns(pb.ListRunsRequest())
    children = [r.run_id for r in listed.runs if r.parent_run_id == pipeline_run_id]
    assert sorted(children) == sorted(r.run_id for r in completed.results)
    assert pipeline_run_id in [r.run_id for r in listed.runs]


async def test_pipeline_step_failure_stops_the_pipeline(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await make_agents(live, "first", "second", "third")
    await admin.set_rules(
        [{"match": {"system_contains": "I am second."}, "reply": UNAVAILABLE_NO_RETRY}]
    )
    call = live.stub.RunPipeline(
        collaboration_pb2.RunPipelineRequest(
            input="x", steps=[step("first"), step("second"), step("third")]
        ),
        timeout=30,
    )
    events, error = await collect(call)
    assert error is not None
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    info = error_info(error)
    assert info.reason == "MODEL_UNAVAILABLE"
    pipeline_run_id = events[0].run_id
    assert info.metadata["step"] == "1"
    assert info.metadata["agent_id"] == "second"
    assert info.metadata["pipeline_run_id"] == pipeline_run_id

    # Step 2 is reported as failed; step 3 never started and never reached the model.
    finished = [e.participant_finished for e in events if kind(e) == "participant_finished"]
    assert [(f.participant.index, f.status) for f in finished] == [
        (0, run_pb2.RUN_STATUS_COMPLETED),
        (1, run_pb2.RUN_STATUS_FAILED),
    ]
    assert finished[1].error_reason == "MODEL_UNAVAILABLE"
    assert info.metadata["run_id"] == finished[1].run_id
    assert all(e.participant.index < 2 for e in events if e.HasField("participant"))
    assert "I am third." not in await prompts_by_system(admin)

    parent = (await live.stub.GetRun(pb.GetRunRequest(run_id=pipeline_run_id))).run
    assert parent.status == run_pb2.RUN_STATUS_FAILED
    assert parent.error_reason == "MODEL_UNAVAILABLE"
    failed = (await live.stub.GetRun(pb.GetRunRequest(run_id=finished[1].run_id))).run
    assert failed.status == run_pb2.RUN_STATUS_FAILED
    assert failed.parent_run_id == pipeline_run_id


@pytest.mark.parametrize(
    "template",
    ["{unknown}", "{0}", "{}", "{input.upper}", "{input[0]}", "{input!r}", "{input:>9}", "{x"],
)
async def test_pipeline_rejects_bad_templates_before_running(
    live: LiveServer, admin: DevModelAdmin, template: str
) -> None:
    await make_agents(live, "solo")
    call = live.stub.RunPipeline(
        collaboration_pb2.RunPipelineRequest(
            input="x", steps=[step("solo"), step("solo", template)]
        )
    )
    events, error = await collect(call)
    assert error is not None
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["steps[1].message_template"]
    assert events == []
    assert await admin.requests() == []
    assert not (await live.stub.ListRuns(pb.ListRunsRequest())).runs


async def test_pipeline_request_errors(live: LiveServer) -> None:
    await make_agents(live, "solo")
    _, error = await collect(
        live.stub.RunPipeline(
            collaboration_pb2.RunPipelineRequest(input="x", steps=[step("solo"), step("ghost")])
        )
    )
    assert error is not None
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "AGENT_NOT_FOUND"
    assert error_info(error).metadata["step"] == "1"
    for request, field in [
        (collaboration_pb2.RunPipelineRequest(input="x"), "steps"),
        (collaboration_pb2.RunPipelineRequest(steps=[step("solo")]), "input"),
        (
            collaboration_pb2.RunPipelineRequest(
                input="x", steps=[step("solo")], session_id="Bad Session"
            ),
            "session_id",
        ),
    ]:
        _, error = await collect(live.stub.RunPipeline(request))
        assert error is not None
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(error) == [field]


async def test_pipeline_in_a_named_session_builds_on_it(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await make_agents(live, "writer")
    for word in ["one", "two"]:
        _, error = await collect(
            live.stub.RunPipeline(
                collaboration_pb2.RunPipelineRequest(
                    input=word, steps=[step("writer")], session_id="notes"
                )
            )
        )
        assert error is None
    messages = (await admin.requests())[-1]["body"]["messages"]
    assert [m["content"] for m in messages[1:]] == ["one", "Echo: one", "two"]


# -- teams ----------------------------------------------------------------------------


def team(team_id: str, members: list[str], **kwargs: Any) -> collaboration_pb2.Team:
    return collaboration_pb2.Team(team_id=team_id, members=members, **kwargs)


async def create_team(live: LiveServer, team_id: str, members: list[str], **kwargs: Any) -> None:
    await live.stub.CreateTeam(pb.CreateTeamRequest(team=team(team_id, members, **kwargs)))


async def test_team_members_run_in_parallel_and_the_coordinator_synthesizes(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    members = [f"member{i}" for i in range(8)]
    await make_agents(live, *members, "director")
    await create_team(live, "research", members, coordinator="director")
    await admin.set_rules(
        [{"match": {"system_contains": "I am member"}, "reply": {"latency_ms": 200}}]
    )
    await admin.reset_stats()
    task = "Research the impact of AI on healthcare"
    events, error = await collect(live.stub.RunTeam(pb_run_team("research", task), timeout=30))
    assert error is None

    # All eight members were in flight at the model at once.
    assert (await admin.stats())["max_in_flight"] == 8
    prompts = await prompts_by_system(admin)
    arrivals = sorted(prompts[f"I am {m}."][0]["received_at"] for m in members)
    # Every member's request arrived before the first could have been answered.
    assert arrivals[-1] - arrivals[0] < 0.2
    for member in members:
        assert [last_user(r) for r in prompts[f"I am {member}."]] == [f"Task for {member}: {task}"]

    # The coordinator's prompt has the original's shape, members in team order.
    expected = f"Synthesize the following team outputs for task '{task}':\n\n" + "".join(
        f"=== {m} ===\nEcho: Task for {m}: {task}\n\n" for m in members
    )
    assert [last_user(r) for r in prompts["I am director."]] == [expected]

    # Ordering: started first, completed last; each member's events are bracketed by
    # its started/finished events; the coordinator starts after every member finished.
    assert kind(events[0]) == "started"
    assert events[0].started.team_id == "research"
    assert kind(events[-1]) == "completed"
    position = {id(e): i for i, e in enumerate(events)}
    member_finished = []
    for index, member in enumerate(members):
        own = [e for e in events if e.participant.role == MEMBER and e.participant.index == index]
        assert kind(own[0]) == "participant_started"
        assert kind(own[-1]) == "participant_finished"
        assert {e.participant.agent_id for e in own} == {member}
        member_finished.append(position[id(own[-1])])
    coordinator = [e for e in events if e.participant.role == COORDINATOR]
    assert kind(coordinator[0]) == "participant_started"
    assert coordinator[0].participant_started.message == expected
    assert position[id(coordinator[0])] > max(member_finished)
    # Members overlap on the stream too: the last member started before the first finished.
    starts = [
        position[id(e)]
        for e in events
        if e.participant.role == MEMBER and kind(e) == "participant_started"
    ]
    assert max(starts) < min(member_finished)

    completed = events[-1].completed
    assert completed.output == f"Echo: {expected}"
    assert [r.participant.agent_id for r in completed.results] == [*members, "director"]
    team_run_id = events[0].run_id
    parent = (await live.stub.GetRun(pb.GetRunRequest(run_id=team_run_id))).run
    assert parent.status == run_pb2.RUN_STATUS_COMPLETED
    assert parent.output == completed.output
    for result in completed.results:
        child = (await live.stub.GetRun(pb.GetRunRequest(run_id=result.run_id))).run
        assert child.parent_run_id == team_run_id
        assert child.session_id == team_run_id


def pb_run_team(team_id: str, task: str) -> collaboration_pb2.RunTeamRequest:
    return collaboration_pb2.RunTeamRequest(team_id=team_id, task=task)


async def test_failed_and_timed_out_members_are_reported_and_synthesized(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await make_agents(live, "steady", "broken", "slow", "boss")
    await create_team(
        live,
        "mixed",
        ["steady", "broken", "slow"],
        coordinator="boss",
        member_timeout_seconds=0.5,
    )
    await admin.set_rules(
        [
            {"match": {"system_contains": "I am broken."}, "reply": UNAVAILABLE_NO_RETRY},
            {"match": {"system_contains": "I am slow."}, "reply": {"latency_ms": 10_000}},
        ]
    )
    events, error = await collect(live.stub.RunTeam(pb_run_team("mixed", "T"), timeout=30))
    assert error is None

    finished = {
        e.participant.agent_id: e.participant_finished
        for e in events
        if kind(e) == "participant_finished"
    }
    assert finished["steady"].status == run_pb2.RUN_STATUS_COMPLETED
    assert finished["broken"].status == run_pb2.RUN_STATUS_FAILED
    assert finished["broken"].error_reason == "MODEL_UNAVAILABLE"
    assert finished["slow"].status == run_pb2.RUN_STATUS_CANCELLED
    assert finished["slow"].error_reason == "MEMBER_TIMEOUT"
    # The member's own run record says why it was cancelled.
    slow_run = await live.stub.GetRun(pb.GetRunRequest(run_id=finished["slow"].run_id))
    assert slow_run.run.status == run_pb2.RUN_STATUS_CANCELLED
    assert slow_run.run.error_reason == "MEMBER_TIMEOUT"

    prompts = await prompts_by_system(admin)
    assert [last_user(r) for r in prompts["I am boss."]] == [
        "Synthesize the following team outputs for task 'T':\n\n"
        "=== steady ===\nEcho: Task for steady: T\n\n"
        "=== broken ===\n[failed: MODEL_UNAVAILABLE]\n\n"
        "=== slow ===\n[timed out after 0.5 s]\n\n"
    ]
    assert events[-1].completed.results[-1].participant.role == COORDINATOR

    # The timed-out member's run record says why it was cancelled.
    slow = (await live.stub.GetRun(pb.GetRunRequest(run_id=finished["slow"].run_id))).run
    assert slow.status == run_pb2.RUN_STATUS_CANCELLED
    assert "member timeout" in slow.error_message


async def test_team_without_coordinator_returns_each_result(live: LiveServer) -> None:
    await make_agents(live, "alpha", "beta")
    await create_team(
        live, "pair", ["alpha", "beta"], synthesis_item_template="{agent}: {output}\n"
    )
    events, error = await collect(live.stub.RunTeam(pb_run_team("pair", "go")))
    assert error is None
    completed = events[-1].completed
    assert [(r.participant.agent_id, r.output) for r in completed.results] == [
        ("alpha", "Echo: Task for alpha: go"),
        ("beta", "Echo: Task for beta: go"),
    ]
    assert completed.output == "alpha: Echo: Task for alpha: go\nbeta: Echo: Task for beta: go\n"
    assert not [e for e in events if e.participant.role == COORDINATOR]


async def test_max_concurrency_bounds_members_in_flight(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    members = [f"worker{i}" for i in range(4)]
    await make_agents(live, *members)
    await create_team(live, "narrow", members, max_concurrency=2)
    await admin.set_rules([{"reply": {"latency_ms": 100}}])
    await admin.reset_stats()
    events, error = await collect(live.stub.RunTeam(pb_run_team("narrow", "T")))
    assert error is None
    assert (await admin.stats())["max_in_flight"] == 2
    assert len(events[-1].completed.results) == 4


async def wait_for_status(
    live: LiveServer, run_id: str, status: run_pb2.RunStatus.ValueType
) -> run_pb2.Run:
    """The run once it reached `status` (the server records a cancel just after the
    client's side closes, so this polls GetRun, bounded)."""
    for _ in range(300):
        run = (await live.stub.GetRun(pb.GetRunRequest(run_id=run_id))).run
        if run.status == status:
            return run
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} stayed {run.status}")


async def test_cancelling_a_team_run_cancels_its_members(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await make_agents(live, "left", "right")
    await create_team(live, "stuck", ["left", "right"])
    await admin.set_rules([{"reply": {"latency_ms": 10_000}}])
    call = live.stub.RunTeam(pb_run_team("stuck", "T"))
    member_runs: set[str] = set()
    team_run_id = ""
    async for event in call:
        team_run_id = event.run_id
        if kind(event) == "run_event" and event.run_event.WhichOneof("event") == "run_started":
            member_runs.add(event.run_event.run_id)
        if len(member_runs) == 2:
            break
    call.cancel()
    parent = await wait_for_status(live, team_run_id, run_pb2.RUN_STATUS_CANCELLED)
    assert parent.error_reason == "RUN_CANCELLED"
    for run_id in member_runs:
        await wait_for_status(live, run_id, run_pb2.RUN_STATUS_CANCELLED)


async def test_cancel_run_on_a_team_run_stops_it(live: LiveServer, admin: DevModelAdmin) -> None:
    await make_agents(live, "slow_a", "slow_b")
    await create_team(live, "halted", ["slow_a", "slow_b"])
    await admin.set_rules([{"reply": {"latency_ms": 10_000}}])
    call = live.stub.RunTeam(pb_run_team("halted", "T"))
    member_runs: set[str] = set()
    team_run_id = ""
    while len(member_runs) < 2:
        event = await call.read()
        team_run_id = event.run_id
        if kind(event) == "run_event" and event.run_event.WhichOneof("event") == "run_started":
            member_runs.add(event.run_event.run_id)
    # From another connection, with the parent run's id.
    reply = await live.new_stub().CancelRun(pb.CancelRunRequest(run_id=team_run_id))
    assert reply.run.status == run_pb2.RUN_STATUS_CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        while await call.read() is not grpc.aio.EOF:
            pass
    assert caught.value.code() == grpc.StatusCode.CANCELLED
    assert error_info(caught.value).reason == "RUN_CANCELLED"
    for run_id in member_runs:
        await wait_for_status(live, run_id, run_pb2.RUN_STATUS_CANCELLED)


async def test_team_whose_members_all_fail_does_not_synthesize(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await make_agents(live, "down", "boss")
    await create_team(live, "doomed", ["down"], coordinator="boss")
    await admin.set_rules(
        [{"match": {"system_contains": "I am down."}, "reply": UNAVAILABLE_NO_RETRY}]
    )
    events, error = await collect(live.stub.RunTeam(pb_run_team("doomed", "T")))
    assert error is not None
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    info = error_info(error)
    assert info.reason == "MODEL_UNAVAILABLE"
    assert info.metadata["agent_id"] == "down"
    assert info.metadata["team_run_id"] == events[0].run_id
    assert "I am boss." not in await prompts_by_system(admin)


# -- team management --------------------------------------------------------------------


async def expect(call: Any, code: grpc.StatusCode, reason: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value
    assert error_info(caught.value).reason == reason
    return caught.value


async def test_team_crud(live: LiveServer) -> None:
    stub = live.stub
    await make_agents(live, "a", "b", "c", "lead")
    created = await stub.CreateTeam(
        pb.CreateTeamRequest(team=team("team-b", ["a", "b"], coordinator="lead"))
    )
    assert created.created
    # Defaults are filled in, so a stored team shows what its runs use.
    assert created.team.member_template == "Task for {agent}: {task}"
    assert created.team.synthesis_template == (
        "Synthesize the following team outputs for task '{task}':\n\n{results}"
    )
    assert created.team.synthesis_item_template == "=== {agent} ===\n{output}\n\n"
    assert created.team.max_concurrency == 8
    assert created.team.member_timeout_seconds == 300
    assert created.team.etag
    got = await stub.GetTeam(pb.GetTeamRequest(team_id="team-b"))
    assert got.team == created.team

    again = await stub.CreateTeam(
        pb.CreateTeamRequest(team=team("team-b", ["c"]), if_not_exists=True)
    )
    assert not again.created
    assert list(again.team.members) == ["a", "b"]

    await stub.CreateTeam(pb.CreateTeamRequest(team=team("team-a", ["c"])))
    first = await stub.ListTeams(pb.ListTeamsRequest(page_size=1))
    assert [t.team_id for t in first.teams] == ["team-a"]
    assert first.next_page_token
    second = await stub.ListTeams(
        pb.ListTeamsRequest(page_size=1, page_token=first.next_page_token)
    )
    assert [t.team_id for t in second.teams] == ["team-b"]
    assert second.next_page_token == ""

    updated = await stub.UpdateTeam(
        pb.UpdateTeamRequest(
            team=team("team-b", ["a", "b", "c"], max_concurrency=2, member_template=""),
            update_mask=field_mask_pb2.FieldMask(
                paths=["members", "max_concurrency", "member_template"]
            ),
        )
    )
    assert list(updated.team.members) == ["a", "b", "c"]
    assert updated.team.max_concurrency == 2
    assert updated.team.coordinator == "lead"  # outside the mask
    assert updated.team.member_template == "Task for {agent}: {task}"  # back to default
    assert updated.team.etag != created.team.etag

    # A stale etag is refused; the current one works.
    await expect(
        stub.UpdateTeam(
            pb.UpdateTeamRequest(
                team=team("team-b", [], description="x", etag=created.team.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            )
        ),
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )
    await expect(
        stub.DeleteTeam(pb.DeleteTeamRequest(team_id="team-b", etag=created.team.etag)),
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )
    await stub.DeleteTeam(pb.DeleteTeamRequest(team_id="team-b", etag=updated.team.etag))
    await expect(
        stub.GetTeam(pb.GetTeamRequest(team_id="team-b")),
        grpc.StatusCode.NOT_FOUND,
        "TEAM_NOT_FOUND",
    )

    # Teams are tenant-scoped.
    other = await stub.ListTeams(pb.ListTeamsRequest(), metadata=(("x-tenant-id", "other"),))
    assert list(other.teams) == []


async def test_team_errors(live: LiveServer) -> None:
    stub = live.stub
    await make_agents(live, "a", "b", "lead")
    await create_team(live, "crew", ["a", "b"], coordinator="lead")
    await expect(
        stub.CreateTeam(pb.CreateTeamRequest(team=team("crew", ["a"]))),
        grpc.StatusCode.ALREADY_EXISTS,
        "TEAM_ALREADY_EXISTS",
    )
    await expect(
        stub.GetTeam(pb.GetTeamRequest(team_id="nobody")),
        grpc.StatusCode.NOT_FOUND,
        "TEAM_NOT_FOUND",
    )
    await expect(
        stub.DeleteTeam(pb.DeleteTeamRequest(team_id="nobody")),
        grpc.StatusCode.NOT_FOUND,
        "TEAM_NOT_FOUND",
    )
    _, error = await collect(stub.RunTeam(pb_run_team("nobody", "T")))
    assert error is not None
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "TEAM_NOT_FOUND"

    invalid = [
        (team("t", ["a", "ghost"]), "team.members[1]"),
        (team("t", ["a"], coordinator="ghost"), "team.coordinator"),
        (team("t", []), "team.members"),
        (team("t", ["a", "a"]), "team.members[1]"),
        (team("t", ["a"], member_template="{agent} {nope}"), "team.member_template"),
        (team("t", ["a"], synthesis_template="{results.x}"), "team.synthesis_template"),
        (team("t", ["a"], synthesis_item_template="{task}"), "team.synthesis_item_template"),
        (team("t", ["a"], max_concurrency=65), "team.max_concurrency"),
        (team("t", ["a"], member_timeout_seconds=-1), "team.member_timeout_seconds"),
        (team("Bad Id", ["a"]), "team.team_id"),
    ]
    for bad, field in invalid:
        error = await expect(
            stub.CreateTeam(pb.CreateTeamRequest(team=bad)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        )
        assert field_violations(error) == [field], bad
    error = await expect(
        stub.CreateTeam(pb.CreateTeamRequest(team=team("t", ["a", "ghost"]))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert error_info(error).metadata["agent_id"] == "ghost"
    await expect(
        stub.UpdateTeam(
            pb.UpdateTeamRequest(
                team=team("crew", ["a"]), update_mask=field_mask_pb2.FieldMask(paths=["etag"])
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_UPDATE_MASK",
    )
    await expect(
        stub.UpdateTeam(
            pb.UpdateTeamRequest(
                team=team("crew", ["a", "ghost"]),
                update_mask=field_mask_pb2.FieldMask(paths=["members"]),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )

    # An agent a team uses cannot be deleted, as a member or as the coordinator.
    for agent_id in ["b", "lead"]:
        error = await expect(
            stub.DeleteAgent(pb.DeleteAgentRequest(agent_id=agent_id)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "AGENT_IN_USE",
        )
        assert error_info(error).metadata["team_id"] == "crew"
    await stub.DeleteTeam(pb.DeleteTeamRequest(team_id="crew"))
    await stub.DeleteAgent(pb.DeleteAgentRequest(agent_id="lead"))
