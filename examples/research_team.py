"""Agent teams: data_collector, analyst and writer work on one task, research_director
synthesizes their outputs (the original `AgentTeam`).

The original ran the members one after another in the client. Here the team is stored
in the service and `run_team` is one call: the server sends the task to all members in
parallel, then gives the coordinator a synthesis message that lists each member's output
under "=== agent ===".

    python examples/research_team.py
"""

from __future__ import annotations

import asyncio
import os
import sys

from orchestrator import AsyncOrchestrator, OrchestratorError

ADDRESS = os.environ.get("ORCHESTRATOR_ADDRESS", "127.0.0.1:50051")
TENANT = "example-team"

MEMBERS = {
    "data_collector": "You collect relevant facts and figures.",
    "analyst": "You analyze data and draw conclusions.",
    "writer": "You write clear reports.",
}
COORDINATOR = ("research_director", "You direct research and synthesize your team's work.")
TASK = "Research the impact of artificial intelligence on healthcare"


async def main() -> None:
    async with AsyncOrchestrator(ADDRESS, tenant=TENANT, timeout=120) as orchestrator:
        for agent_id, system_message in [*MEMBERS.items(), COORDINATOR]:
            await orchestrator.get_or_create_agent(agent_id, system_message=system_message)
        # Create a research team (kept by the server; running the example again reuses it)
        await orchestrator.create_team(
            "research_team",
            members=list(MEMBERS),
            coordinator=COORDINATOR[0],
            description="Research Team",
            if_not_exists=True,
        )

        # Run a team task
        result = await orchestrator.run_team("research_team", TASK)
        for member in result.members:
            print(f"[{member.participant.agent_id}] {member.status}: {member.output}")
        print(f"\n[{COORDINATOR[0]}] synthesis:\n{result.output}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except OrchestratorError as error:
        sys.exit(f"error: {error!r}")
