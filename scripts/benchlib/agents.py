"""Section agents: CreateAgent, GetAgent and ListAgents at 16 in flight.

Compared with the bare unary echo of the limits section. Each figure uses its own tenant
so that the agents CreateAgent adds do not change what ListAgents pages through.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from orchestrator.v1 import agent_pb2, orchestrator_service_pb2

from .config import OP_TIMEOUT, SYSTEM
from .driver import Case, Counters, Op, bounded_gather
from .servers import Child

if TYPE_CHECKING:
    from orchestrator.v1.orchestrator_service_pb2_grpc import OrchestratorServiceAsyncStub

LISTED_AGENTS = 1000  # what GetAgent and ListAgents read
LIST_TENANT = "bench-list"
IN_FLIGHT = 16
Metadata = tuple[tuple[str, str], ...]


def tenant(name: str) -> tuple[tuple[str, str]]:
    """The call metadata selecting a tenant."""
    return (("x-tenant-id", name),)


LIST_METADATA = tenant(LIST_TENANT)
CREATE_METADATA = tenant("bench-create")


async def create_agent(
    stub: OrchestratorServiceAsyncStub,
    agent_id: str,
    tenant_name: str = "default",
    metadata: Metadata = (),
) -> None:
    """Create the agent unless it exists (sections reuse agents between repeats)."""
    await stub.CreateAgent(
        orchestrator_service_pb2.CreateAgentRequest(
            agent=agent_pb2.Agent(agent_id=agent_id, system_message=SYSTEM),
            if_not_exists=True,
        ),
        metadata=(*tenant(tenant_name), *metadata),
        timeout=OP_TIMEOUT,
    )


def create_op(stub: OrchestratorServiceAsyncStub) -> Op:
    """CreateAgent of a new agent every call."""
    ids = Counters()

    async def create(_: int) -> tuple[float, int]:
        await stub.CreateAgent(
            orchestrator_service_pb2.CreateAgentRequest(
                agent=agent_pb2.Agent(agent_id=f"c{ids.take()}", system_message=SYSTEM)
            ),
            metadata=CREATE_METADATA,
            timeout=OP_TIMEOUT,
        )
        return 0.0, 0

    return create


def get_op(stub: OrchestratorServiceAsyncStub, metadata: Metadata = LIST_METADATA) -> Op:
    """GetAgent of a random listed agent (seeded: every run reads the same ones)."""
    rng = random.Random(8)

    async def get(_: int) -> tuple[float, int]:
        await stub.GetAgent(
            orchestrator_service_pb2.GetAgentRequest(
                agent_id=f"agent-{rng.randrange(LISTED_AGENTS):05d}"
            ),
            metadata=metadata,
            timeout=OP_TIMEOUT,
        )
        return 0.0, 0

    return get


def list_op(stub: OrchestratorServiceAsyncStub) -> Op:
    """ListAgents, 100 a page; each worker walks the pages, starting over at the end."""
    tokens: dict[int, str] = {}

    async def list_page(worker: int) -> tuple[float, int]:
        reply = await stub.ListAgents(
            orchestrator_service_pb2.ListAgentsRequest(
                page_size=100, page_token=tokens.get(worker, "")
            ),
            metadata=LIST_METADATA,
            timeout=OP_TIMEOUT,
        )
        tokens[worker] = reply.next_page_token
        return 0.0, len(reply.agents)

    return list_page


async def list_agents_made(stub: OrchestratorServiceAsyncStub, metadata: Metadata = ()) -> None:
    """The agents GetAgent and ListAgents read."""
    print(f"creating {LISTED_AGENTS} agents for GetAgent/ListAgents ...", flush=True)

    async def make(i: int) -> None:
        await create_agent(stub, f"agent-{i:05d}", LIST_TENANT, metadata)

    await bounded_gather(LISTED_AGENTS, IN_FLIGHT, make)


async def api_key_case(
    stub: OrchestratorServiceAsyncStub, secret: str, procs: dict[str, Child]
) -> Case:
    """GetAgent on a server with authentication on, each call carrying an API key."""
    metadata = (*LIST_METADATA, ("authorization", f"Bearer {secret}"))
    await list_agents_made(stub, metadata[1:])
    label = "GetAgent with an API key, 16 in flight"
    op = get_op(stub, metadata)
    return Case("agents.get_c16_api_key", "agents", label, "QPS", IN_FLIGHT, op, procs)


async def agent_cases(stub: OrchestratorServiceAsyncStub, procs: dict[str, Child]) -> list[Case]:
    """CreateAgent, GetAgent and ListAgents at 16 in flight (separate tenants)."""
    await list_agents_made(stub)
    figures = (
        ("agents.create_c16", "CreateAgent, 16 in flight", create_op(stub)),
        ("agents.get_c16", "GetAgent, 16 in flight", get_op(stub)),
        ("agents.list_c16", "ListAgents (100/page of 1000), 16 in flight", list_op(stub)),
    )
    return [Case(key, "agents", label, "QPS", IN_FLIGHT, op, procs) for key, label, op in figures]
