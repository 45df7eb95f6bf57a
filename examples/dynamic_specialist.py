"""Dynamic agent creation: a domain specialist, created on first use.

The original checked `has_agent` and then created the agent, which races when two
requests ask for the same specialist at once. `get_or_create_agent` (CreateAgent with
`if_not_exists`) does both in one call on the server, so concurrent callers get the same
agent and it is created exactly once.

    python examples/dynamic_specialist.py [domain [question]]
"""

from __future__ import annotations

import asyncio
import os
import sys

from orchestrator import AsyncOrchestrator, BufferMemory, OrchestratorError

ADDRESS = os.environ.get("ORCHESTRATOR_ADDRESS", "127.0.0.1:50051")
TENANT = "example-specialist"


async def get_specialized_agent(orchestrator: AsyncOrchestrator, domain: str) -> str:
    agent_id = f"{domain}_specialist"
    agent = await orchestrator.get_or_create_agent(
        agent_id,
        buffer_memory=BufferMemory(),
        system_message=f"You are an expert in {domain}. Provide detailed, accurate "
        f"information about {domain} topics.",
    )
    print(f"get_specialized_agent({domain!r}) -> {agent.agent_id}, created {agent.create_time}")
    return agent.agent_id


async def main(domain: str, question: str) -> None:
    async with AsyncOrchestrator(ADDRESS, tenant=TENANT, timeout=60) as orchestrator:
        # Two callers ask for the same specialist at the same time: one agent is created.
        agent_ids = await asyncio.gather(
            get_specialized_agent(orchestrator, domain),
            get_specialized_agent(orchestrator, domain),
        )
        print(f"agents: {await orchestrator.list_agents()}")

        response = await orchestrator.run(agent_id=agent_ids[0], message=question)
        print(f"[{agent_ids[0]}] {response}")


if __name__ == "__main__":
    try:
        args = sys.argv[1:]
        domain = args[0] if args else "physics"
        question = " ".join(args[1:]) or "Explain quantum field theory in simple terms"
        asyncio.run(main(domain, question))
    except OrchestratorError as error:
        sys.exit(f"error: {error!r}")
