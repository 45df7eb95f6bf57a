"""Agent communication: brainstorm -> critic -> synthesis (the original "Agent Communication").

Three agents talk to each other through the orchestrator: each answer becomes part of
the next agent's message. Run it against a server (`make run`):

    python examples/brainstorm_critic_synthesis.py
"""

from __future__ import annotations

import asyncio
import os
import sys

from orchestrator import AsyncOrchestrator, OrchestratorError

ADDRESS = os.environ.get("ORCHESTRATOR_ADDRESS", "127.0.0.1:50051")
TENANT = "example-brainstorm"  # keeps this example's agents apart from the others'

AGENTS = {
    "brainstorm_agent": "You generate many creative, practical ideas.",
    "critic_agent": "You critically evaluate proposals and rank them.",
    "synthesis_agent": "You turn evaluated ideas into concrete implementation plans.",
}


async def agent_collaboration(orchestrator: AsyncOrchestrator) -> str:
    # First agent generates ideas
    ideas = await orchestrator.run(
        agent_id="brainstorm_agent",
        message="Generate 5 innovative solutions for reducing urban traffic congestion",
    )
    print(f"[brainstorm_agent] {ideas}\n")

    # Second agent evaluates the ideas
    evaluation = await orchestrator.run(
        agent_id="critic_agent",
        message="Critically evaluate these solutions, ranking them from most to least "
        f"promising: {ideas}",
    )
    print(f"[critic_agent] {evaluation}\n")

    # Third agent synthesizes a comprehensive plan
    plan = await orchestrator.run(
        agent_id="synthesis_agent",
        message="Based on these evaluations, create a detailed implementation plan for "
        f"the top 2 solutions: {evaluation}",
    )
    return plan


async def main() -> None:
    async with AsyncOrchestrator(ADDRESS, tenant=TENANT, timeout=120) as orchestrator:
        for agent_id, system_message in AGENTS.items():
            # get-or-create: running the example again reuses the agents.
            await orchestrator.get_or_create_agent(agent_id, system_message=system_message)
        plan = await agent_collaboration(orchestrator)
        print(f"[synthesis_agent] plan:\n{plan}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except OrchestratorError as error:
        sys.exit(f"error: {error!r}")
