"""The cross-tenant matrix: every RPC of the service, against every kind of resource of
a victim, called by a principal of another tenant (naming the victim's tenant, and acting
in its own) and by another runner of the victim's tenant for the victim's sessions and
runs. Nothing may succeed, and nothing may answer differently for a real resource than
for one that does not exist (an existence leak)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from access_helpers import Identity, auth_server, code_of, key_identity

from helpers import final_of, requests_of, start
from orchestrator.v1 import access_pb2, agent_pb2, collaboration_pb2, usage_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelServer
from orchestrator_server.server import SERVICE_DESCRIPTOR

Ids = dict[str, str]
Call = Callable[[Identity, Ids], Any]


def _run(who: Identity, ids: Ids) -> Any:
    request = start("hi", ids["agent"], session_id=ids["session"])
    return who.stub.Run(requests_of(request), **who.kw(timeout=10))


# Every RPC, called on the resources named by `ids` (the victim's, or ids that exist
# nowhere). Listing calls are checked for the victim's data separately.
CALLS: dict[str, Call] = {
    "CreateAgent": lambda w, i: w.stub.CreateAgent(
        pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id=i["agent"]), if_not_exists=True),
        **w.kw(),
    ),
    "GetAgent": lambda w, i: w.stub.GetAgent(pb.GetAgentRequest(agent_id=i["agent"]), **w.kw()),
    "ListAgents": lambda w, i: w.stub.ListAgents(pb.ListAgentsRequest(), **w.kw()),
    "UpdateAgent": lambda w, i: w.stub.UpdateAgent(
        pb.UpdateAgentRequest(
            agent=agent_pb2.Agent(agent_id=i["agent"], system_message="planted"),
            update_mask={"paths": ["system_message"]},
        ),
        **w.kw(),
    ),
    "DeleteAgent": lambda w, i: w.stub.DeleteAgent(
        pb.DeleteAgentRequest(agent_id=i["agent"]), **w.kw()
    ),
    "SetDefaultAgent": lambda w, i: w.stub.SetDefaultAgent(
        pb.SetDefaultAgentRequest(agent_id=i["agent"]), **w.kw()
    ),
    "GetDefaultAgent": lambda w, i: w.stub.GetDefaultAgent(pb.GetDefaultAgentRequest(), **w.kw()),
    "Run": _run,
    "GetRun": lambda w, i: w.stub.GetRun(pb.GetRunRequest(run_id=i["run"]), **w.kw()),
    "ListRuns": lambda w, i: w.stub.ListRuns(
        pb.ListRunsRequest(agent_id=i["agent"], session_id=i["session"]), **w.kw()
    ),
    "CancelRun": lambda w, i: w.stub.CancelRun(pb.CancelRunRequest(run_id=i["run"]), **w.kw()),
    "FollowRun": lambda w, i: w.stub.FollowRun(
        requests_of(pb.FollowRunRequest(start=pb.FollowStart(run_id=i["run"]))),
        **w.kw(timeout=10),
    ),
    "ListSessions": lambda w, i: w.stub.ListSessions(
        pb.ListSessionsRequest(agent_id=i["agent"]), **w.kw()
    ),
    "ListMessages": lambda w, i: w.stub.ListMessages(
        pb.ListMessagesRequest(agent_id=i["agent"], session_id=i["session"]), **w.kw()
    ),
    "DeleteSession": lambda w, i: w.stub.DeleteSession(
        pb.DeleteSessionRequest(agent_id=i["agent"], session_id=i["session"]), **w.kw()
    ),
    "ListTools": lambda w, i: w.stub.ListTools(pb.ListToolsRequest(), **w.kw()),
    "CreateTeam": lambda w, i: w.stub.CreateTeam(
        pb.CreateTeamRequest(
            team=collaboration_pb2.Team(team_id=i["team"], members=[i["agent"]]),
            if_not_exists=True,
        ),
        **w.kw(),
    ),
    "GetTeam": lambda w, i: w.stub.GetTeam(pb.GetTeamRequest(team_id=i["team"]), **w.kw()),
    "ListTeams": lambda w, i: w.stub.ListTeams(pb.ListTeamsRequest(), **w.kw()),
    "UpdateTeam": lambda w, i: w.stub.UpdateTeam(
        pb.UpdateTeamRequest(
            team=collaboration_pb2.Team(team_id=i["team"], description="planted"),
            update_mask={"paths": ["description"]},
        ),
        **w.kw(),
    ),
    "DeleteTeam": lambda w, i: w.stub.DeleteTeam(pb.DeleteTeamRequest(team_id=i["team"]), **w.kw()),
    "RunPipeline": lambda w, i: w.stub.RunPipeline(
        collaboration_pb2.RunPipelineRequest(
            steps=[collaboration_pb2.PipelineStep(agent_id=i["agent"])],
            input="x",
            session_id=i["session"],
        ),
        **w.kw(timeout=10),
    ),
    "RunTeam": lambda w, i: w.stub.RunTeam(
        collaboration_pb2.RunTeamRequest(team_id=i["team"], task="x"), **w.kw(timeout=10)
    ),
    "CreateApiKey": lambda w, i: w.stub.CreateApiKey(
        access_pb2.CreateApiKeyRequest(api_key=access_pb2.ApiKey(roles=["admin"])), **w.kw()
    ),
    "ListApiKeys": lambda w, i: w.stub.ListApiKeys(access_pb2.ListApiKeysRequest(), **w.kw()),
    "RevokeApiKey": lambda w, i: w.stub.RevokeApiKey(
        access_pb2.RevokeApiKeyRequest(key_id=i["key"]), **w.kw()
    ),
    "ListAuditEvents": lambda w, i: w.stub.ListAuditEvents(
        access_pb2.ListAuditEventsRequest(), **w.kw()
    ),
    "ListUsage": lambda w, i: w.stub.ListUsage(
        usage_pb2.ListUsageRequest(agent_id=i["agent"]), **w.kw()
    ),
}
FAKE: Ids = {
    "agent": "no_such_agent",
    "team": "no_such_team",
    "run": "run_000000000000000000000000",
    "session": "no-such-session",
    "key": "0123456789abcdef",
}


def test_the_matrix_covers_every_rpc() -> None:
    assert set(CALLS) == {m.name for m in SERVICE_DESCRIPTOR.methods}


async def _victim(victim: Identity, victim_key: str) -> Ids:
    """The victim's agent, team, session, run and key."""
    agent = agent_pb2.Agent(agent_id="secret_agent", system_message="the victim's prompt")
    await victim.stub.CreateAgent(pb.CreateAgentRequest(agent=agent), **victim.kw())
    team = collaboration_pb2.Team(team_id="secret_team", members=["secret_agent"])
    await victim.stub.CreateTeam(pb.CreateTeamRequest(team=team), **victim.kw())
    request = start("private words", "secret_agent", session_id="private")
    events = [e async for e in victim.stub.Run(requests_of(request), **victim.kw())]
    assert final_of(events).output
    return {
        "agent": "secret_agent",
        "team": "secret_team",
        "run": events[0].run_id,
        "session": "private",
        "key": victim_key,
    }


def _leaks(name: str, result: Any, ids: Ids) -> bool:
    """Whether a listing's response shows any of the victim's resources."""
    text = str(result)
    if name == "ListAuditEvents":
        # The attacker's own trail names the ids it tried; the victim's would name acme.
        return 'tenant: "acme"' in text
    return any(value in text for value in ids.values()) or "private words" in text


async def _outcome(call: Call, who: Identity, ids: Ids) -> tuple[grpc.StatusCode, str, Any]:
    made = call(who, ids)
    if hasattr(made, "__aiter__"):
        code, reason = await code_of(made)
        return code, reason, None
    try:
        result = await made
    except grpc.aio.AioRpcError:
        code, reason = await code_of(call(who, ids))
        return code, reason, None
    return grpc.StatusCode.OK, "", result


async def _attack(attacker: Identity, ids: Ids) -> list[str]:
    """Every RPC on the victim's ids and on fake ones: what succeeded or leaked."""
    findings = []
    # Get-or-create runs last: in its own tenant it makes the attacker an agent and a team
    # of the victim's ids, which are the attacker's own from then on.
    for name, call in sorted(CALLS.items(), key=lambda item: item[0].startswith("Create")):
        real = await _outcome(call, attacker, ids)
        if real[0] == grpc.StatusCode.OK and name in ("CreateAgent", "CreateTeam"):
            # get-or-create: the attacker's own new resource is fine if it is not the victim's
            if "the victim's prompt" in str(real[2]) or "created: false" in str(real[2]):
                findings.append(f"{name}: returned the victim's resource")
            continue
        fake = await _outcome(call, attacker, FAKE)
        if real[0] == grpc.StatusCode.OK and _leaks(name, real[2], ids):
            findings.append(f"{name}: succeeded on the victim's resource")
        if real[:2] != fake[:2]:
            findings.append(f"{name}: {real[:2]} for the real resource, {fake[:2]} for none")
    return findings


async def test_another_tenant_gets_nothing_and_learns_nothing(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    async with auth_server(tmp_path, devmodel.base_url) as live:
        victim = await key_identity(live, "acme", "admin")
        spare = await key_identity(live, "acme", "viewer")
        ids = await _victim(victim, spare.principal.removeprefix("apikey:"))
        naming = await key_identity(live, "globex", "admin")
        naming.metadata = (*naming.metadata, ("x-tenant-id", "acme"))
        in_own = await key_identity(live, "globex", "admin")
        assert await _attack(naming, ids) == []
        assert await _attack(in_own, ids) == []
        # The victim's things are unchanged.
        got = await victim.stub.GetAgent(pb.GetAgentRequest(agent_id="secret_agent"), **victim.kw())
        assert got.agent.system_message == "the victim's prompt"
        keys = await victim.stub.ListApiKeys(access_pb2.ListApiKeysRequest(), **victim.kw())
        assert all(not k.HasField("revoke_time") for k in keys.api_keys)


SESSION_RPCS = ("GetRun", "ListRuns", "CancelRun", "ListSessions", "ListMessages", "DeleteSession")


async def test_another_runner_of_the_tenant_does_not_see_a_session(
    devmodel: DevModelServer, tmp_path: Path
) -> None:
    async with auth_server(tmp_path, devmodel.base_url) as live:
        owner = await key_identity(live, "acme", "admin")
        ids = await _victim(owner, "0123456789abcdef")
        alice = await key_identity(live, "acme", "runner")
        alice_ids = await _victim_session(alice, ids)
        findings = []
        for name in SESSION_RPCS:
            real = await _outcome(CALLS[name], alice, ids)
            fake = await _outcome(CALLS[name], alice, {**ids, **FAKE, "agent": ids["agent"]})
            if real[0] == grpc.StatusCode.OK and _leaks(name, real[2], {"s": "private"}):
                findings.append(f"{name}: showed the other principal's session")
            if real[:2] != fake[:2]:
                findings.append(f"{name}: {real[:2]} vs {fake[:2]}")
        assert findings == []
        # Her own session is hers; starting a turn in the other's is refused.
        code, reason = await code_of(_run(alice, ids))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")
        sessions = await alice.stub.ListSessions(
            pb.ListSessionsRequest(agent_id=ids["agent"]), **alice.kw()
        )
        assert [(s.session_id, s.owner) for s in sessions.sessions] == [
            (alice_ids["session"], alice.principal)
        ]
        # The tenant's admin sees both sessions, with their owners.
        every = await owner.stub.ListSessions(
            pb.ListSessionsRequest(agent_id=ids["agent"]), **owner.kw()
        )
        assert {s.owner for s in every.sessions} == {owner.principal, alice.principal}


async def _victim_session(who: Identity, ids: Ids) -> Ids:
    request = start("mine", ids["agent"], session_id="alices")
    events = [e async for e in who.stub.Run(requests_of(request), **who.kw())]
    return {**ids, "session": "alices", "run": events[0].run_id}
