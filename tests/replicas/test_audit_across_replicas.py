"""The audit trail across replicas: a listing on one replica, right after an audited call
on another, includes that call (the listing waits for the other replicas' batch window)."""

from __future__ import annotations

from replica_helpers import Replicas

from orchestrator.v1 import access_pb2, agent_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb


async def test_a_listing_on_another_replica_includes_a_call_that_ended(replicas: Replicas) -> None:
    missing = []
    async with replicas.channels() as stubs:
        # Each replica's first write to a new database (its connection, its statements)
        # is slower than the window: warmed up, as in a replica that has been serving.
        for stub in stubs:
            await stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="warm")))
            await stub.DeleteAgent(pb.DeleteAgentRequest(agent_id="warm"))
            await stub.ListAuditEvents(access_pb2.ListAuditEventsRequest(page_size=1))
        for i in range(20):
            await stubs[0].CreateAgent(
                pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id=f"a{i}"))
            )
            page = await stubs[1].ListAuditEvents(
                access_pb2.ListAuditEventsRequest(method="CreateAgent", page_size=50)
            )
            if f"agents/a{i}" not in [e.resource for e in page.events]:
                missing.append(i)
    assert missing == [], f"{len(missing)}/20 listings missed the call just made: {missing}"
