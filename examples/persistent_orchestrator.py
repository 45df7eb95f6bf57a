"""Persistence: agents, the default agent and conversations survive a server restart.

The original PersistentOrchestrator saved agent ids to a JSON file and recreated the
agents on start. The service stores agents (with their whole configuration), the
default agent and every conversation itself, so there is nothing to save or reload:

    python examples/persistent_orchestrator.py setup   # create the agents and a conversation
    # ... restart the server (same --db) ...
    python examples/persistent_orchestrator.py check   # everything is still there

`check` exits with status 1 if anything is missing.
"""

from __future__ import annotations

import os
import sys

from orchestrator import BufferMemory, NoDefaultAgent, Orchestrator, OrchestratorError

ADDRESS = os.environ.get("ORCHESTRATOR_ADDRESS", "127.0.0.1:50051")
TENANT = "example-persistent"

AGENTS = {
    "research_agent": "You are a research assistant.",
    "coding_agent": "You are a coding assistant specialized in Python programming.",
    "writer_agent": "You write clear, concise prose.",
}
DEFAULT_AGENT = "research_agent"
QUESTION = "Remember this: the launch is on Friday."


def setup(orchestrator: Orchestrator) -> int:
    for agent_id, system_message in AGENTS.items():
        orchestrator.get_or_create_agent(
            agent_id, system_message=system_message, buffer_memory=BufferMemory(20)
        )
        print(f"agent {agent_id} ready")
    orchestrator.set_default_agent(DEFAULT_AGENT)
    print(f"default agent: {DEFAULT_AGENT}")
    answer = orchestrator.run(QUESTION)  # no agent_id: the default agent answers
    print(f"[default] {answer}")
    print("setup done: restart the server, then run `persistent_orchestrator.py check`")
    return 0


def check(orchestrator: Orchestrator) -> int:
    problems: list[str] = []
    agents = orchestrator.list_agents()
    print(f"agents: {agents}")
    problems += [f"agent {a} is missing" for a in AGENTS if a not in agents]
    for agent_id in AGENTS:
        if agent_id in agents:
            agent = orchestrator.get_agent(agent_id)
            if agent.system_message != AGENTS[agent_id]:
                problems.append(f"agent {agent_id} lost its system message")
    try:
        default = orchestrator.get_default_agent().agent_id
    except NoDefaultAgent:
        default = "(none)"
    print(f"default agent: {default}")
    if default != DEFAULT_AGENT:
        problems.append(f"the default agent is {default}, not {DEFAULT_AGENT}")
    if DEFAULT_AGENT in agents:
        history = [m.content for m in orchestrator.list_messages(DEFAULT_AGENT)]
        print(f"{DEFAULT_AGENT} remembers {len(history)} messages, the first: {history[:1]}")
        if QUESTION not in history:
            problems.append(f"{DEFAULT_AGENT}'s conversation was lost")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if problems:
        return 1
    print(f"[default] {orchestrator.run('What did I tell you?')}")
    print("everything survived the restart")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("setup", "check"):
        print(f"usage: {argv[0]} setup|check", file=sys.stderr)
        return 2
    with Orchestrator(ADDRESS, tenant=TENANT, timeout=60) as orchestrator:
        return setup(orchestrator) if argv[1] == "setup" else check(orchestrator)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except OrchestratorError as error:
        sys.exit(f"error: {error!r}")
