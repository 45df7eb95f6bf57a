"""The original Orchestrator documentation's examples (original-orchestrator.md), verbatim.

Only the imports and the construction line differ from the original: the service's
client stands in for `src.core.orchestrator.Orchestrator`, `Model` for `OpenAIModel`, and
a server tool for `WebSearchTool` (the service has no web search tool; any server tool
name shows the same call). The top-level `await`s of the documentation live in one
coroutine so that a test can run them.
"""

# ruff: noqa: E501
# mypy: ignore-errors

from orchestrator import BufferMemory, Orchestrator, ServerTool
from orchestrator import Model as OpenAIModel


def WebSearchTool() -> ServerTool:
    return ServerTool("current_time")


async def original_examples(address: str) -> None:
    orchestrator = Orchestrator(address)  # was: Orchestrator()

    # Create an agent with the orchestrator
    orchestrator.create_agent(
        agent_id="research_agent",
        model=OpenAIModel(model="gpt-4o"),
        buffer_memory=BufferMemory(),
        tools=[WebSearchTool()],
        system_message="You are a research assistant specialized in finding and summarizing information.",
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
        agent_id="research_agent", message="What are the latest developments in quantum computing?"
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

    # Delete an agent
    orchestrator.delete_agent("coding_agent")

    # Set a different default agent
    orchestrator.set_default_agent("research_agent")

    async def get_specialized_agent(domain):
        # Check if a specialized agent exists
        agent_id = f"{domain}_specialist"

        if not orchestrator.has_agent(agent_id):
            # Create a new specialized agent
            system_message = f"You are an expert in {domain}. Provide detailed, accurate information about {domain} topics."

            orchestrator.create_agent(
                agent_id=agent_id,
                model=OpenAIModel(model="gpt-4o"),
                buffer_memory=BufferMemory(),
                system_message=system_message,
            )

        return agent_id

    # Use the function to get or create a specialized agent
    physics_agent_id = await get_specialized_agent("physics")
    response = await orchestrator.run(
        agent_id=physics_agent_id, message="Explain quantum field theory in simple terms"
    )
    print(response)
    print(agent.agent_id, orchestrator.list_agents())
