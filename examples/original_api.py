"""The original "Using the Orchestrator" snippets, against the service.

Only the imports and the construction line differ from the original documentation:
`Orchestrator` is the service's blocking client (its `run` may still be awaited, as the
original was), `Model` stands in for `OpenAIModel`, and the web search tool is replaced
by the built-in `current_time` server tool (the service has no web search tool; naming
any server tool is the same call). Added: a reset at the start, so that the program can
run again, and a few prints that show what each management call did.

    python examples/original_api.py
"""

from __future__ import annotations

import asyncio
import os
import sys

from orchestrator import BufferMemory, Orchestrator, OrchestratorError, ServerTool
from orchestrator import Model as OpenAIModel

ADDRESS = os.environ.get("ORCHESTRATOR_ADDRESS", "127.0.0.1:50051")


def WebSearchTool() -> ServerTool:  # the stand-in for src.tools.web_search.WebSearchTool
    return ServerTool("current_time")


async def main() -> None:
    # Create a new orchestrator (a client of the service; the original: Orchestrator())
    orchestrator = Orchestrator(ADDRESS, tenant="example-original-api", timeout=60)

    # (Not in the original: start from an empty tenant so the example can run again.)
    for leftover in orchestrator.list_agents():
        orchestrator.delete_agent(leftover)

    # Create an agent with the orchestrator
    orchestrator.create_agent(
        agent_id="research_agent",
        model=OpenAIModel(model="gpt-4o"),
        buffer_memory=BufferMemory(),
        tools=[WebSearchTool()],
        system_message="You are a research assistant specialized in finding and "
        "summarizing information.",
        set_as_default=True,
    )

    # Create another agent
    orchestrator.create_agent(
        agent_id="coding_agent",
        model=OpenAIModel(model="gpt-4o"),
        buffer_memory=BufferMemory(),
        tools=[],
        system_message="You are a coding assistant specialized in Python programming.",
    )

    # Send a message to a specific agent
    response = await orchestrator.run(
        agent_id="research_agent",
        message="What are the latest developments in quantum computing?",
    )
    print(response)

    # Send a message to the default agent
    response = await orchestrator.run(message="Explain the concept of quantum entanglement")
    print(response)

    # Get a list of all agents
    agents = orchestrator.list_agents()
    print(f"Available agents: {agents}")

    # Check if an agent exists
    if orchestrator.has_agent("research_agent"):
        print("Research agent exists")

    # Get a reference to an agent
    agent = orchestrator.get_agent("research_agent")
    print(f"research_agent: tools={list(agent.tools)} default={agent.is_default}")

    # Delete an agent
    orchestrator.delete_agent("coding_agent")
    print(f"Available agents after delete: {orchestrator.list_agents()}")

    # Set a different default agent
    orchestrator.set_default_agent("research_agent")
    print(f"Default agent: {orchestrator.get_default_agent().agent_id}")

    orchestrator.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except OrchestratorError as error:
        sys.exit(f"error: {error!r}")
