"""Sequential collaboration: research_agent -> analysis_agent -> summary_agent.

First as in the original, one `run` per hop with each answer pasted into the next
prompt (three round trips); then the same chain as ONE server-side pipeline call, whose
templates say where the previous step's output goes. With the same agents and prompts
both end with the same summary.

    python examples/sequential_research.py
"""

from __future__ import annotations

import asyncio
import os
import sys

from orchestrator import AsyncOrchestrator, OrchestratorError

ADDRESS = os.environ.get("ORCHESTRATOR_ADDRESS", "127.0.0.1:50051")
TENANT = "example-sequential"

AGENTS = {
    "research_agent": "You are a research assistant who finds relevant information.",
    "analysis_agent": "You analyze information and identify what matters most.",
    "summary_agent": "You write concise summaries.",
}
TOPIC = "Find information about climate change mitigation strategies"
ANALYZE = "Analyze this information and identify the most promising strategies: "
SUMMARIZE = "Create a concise summary of these strategies: "


async def client_side(orchestrator: AsyncOrchestrator) -> str:
    # Research agent finds information
    research_response = await orchestrator.run(agent_id="research_agent", message=TOPIC)
    # Analysis agent analyzes the information
    analysis_response = await orchestrator.run(
        agent_id="analysis_agent", message=f"{ANALYZE}{research_response}"
    )
    # Summary agent creates a final summary
    summary_response = await orchestrator.run(
        agent_id="summary_agent", message=f"{SUMMARIZE}{analysis_response}"
    )
    return summary_response


async def server_side(orchestrator: AsyncOrchestrator) -> str:
    # `{input}` is the pipeline's input, `{previous}` the previous step's answer.
    result = await orchestrator.run_pipeline(
        [
            ("research_agent", "{input}"),
            ("analysis_agent", ANALYZE + "{previous}"),
            ("summary_agent", SUMMARIZE + "{previous}"),
        ],
        input=TOPIC,
    )
    print(f"pipeline run {result.run_id}:")
    for step in result.steps:
        who = step.participant
        print(f"  step {who.index} {who.agent_id} ({step.status}, run {step.run_id}):")
        print(f"    {step.output}")
    return result.output


async def main() -> None:
    async with AsyncOrchestrator(ADDRESS, tenant=TENANT, timeout=120) as orchestrator:
        for agent_id, system_message in AGENTS.items():
            await orchestrator.get_or_create_agent(agent_id, system_message=system_message)

        by_client = await client_side(orchestrator)
        print(f"client-side hops, summary:\n  {by_client}\n")
        by_server = await server_side(orchestrator)
        print(f"\npipeline, summary:\n  {by_server}\n")
        print(f"same summary both ways: {by_client == by_server}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except OrchestratorError as error:
        sys.exit(f"error: {error!r}")
