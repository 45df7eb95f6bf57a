"""Every program in examples/ run against one real orchestrator server (a subprocess
using the development model, whose answer is "Echo: <last user message>"), with its
output checked. The persistent example's two phases straddle a server restart.

The examples are subprocesses started with asyncio: the development model serves from
this test's event loop, which must never be blocked while an example waits on it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from helpers import ROOT, ServerProcess, free_port
from orchestrator import AsyncOrchestrator, RunStatus
from orchestrator_devmodel import DevModelConfig, DevModelServer

EXAMPLES = ROOT / "examples"

# One development model and one orchestrator for the whole module.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(60)]


def echo(message: str) -> str:
    return f"Echo: {message}"


@dataclass
class Output:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


class Server:
    """`orchestrator serve` in a subprocess, restartable on the same database and port."""

    def __init__(self, db: Path, model_url: str) -> None:
        self.process = ServerProcess(db, model_url, free_port())
        self.log: list[bytes] = []

    @property
    def address(self) -> str:
        return self.process.address

    async def start(self) -> None:
        self.process.start()
        stderr = self.process.proc.stderr if self.process.proc else None
        assert stderr is not None
        # Keep reading the server's log so that a full pipe never blocks it.
        threading.Thread(target=lambda: self.log.extend(stderr), daemon=True).start()
        await self.process.wait_serving()

    async def restart(self) -> None:
        """SIGTERM (a graceful shutdown), then a new process on the same database."""
        returncode = await asyncio.to_thread(self.process.terminate)
        assert returncode == 0, b"".join(self.log).decode(errors="replace")
        await self.start()

    def stop(self) -> None:
        if self.process.proc is not None and self.process.proc.poll() is None:
            self.process.kill()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    model = DevModelServer(DevModelConfig())
    await model.start()
    server = Server(tmp_path_factory.mktemp("examples") / "orchestrator.db", model.base_url)
    try:
        await server.start()
        yield server
    finally:
        server.stop()
        await model.stop()


async def run_example(address: str, name: str, *args: str) -> Output:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / name),
        *args,
        cwd=ROOT,
        env={**os.environ, "ORCHESTRATOR_ADDRESS": address},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    output = Output(proc.returncode or 0, stdout.decode(), stderr.decode())
    print(f"$ {name} {' '.join(args)}\n{output}")  # shown by pytest when a test fails
    return output


async def run_ok(server: Server, name: str, *args: str) -> str:
    output = await run_example(server.address, name, *args)
    assert output.returncode == 0, str(output)
    return output.stdout


def tenant_client(server: Server, tenant: str) -> AsyncOrchestrator:
    return AsyncOrchestrator(server.address, tenant=tenant, timeout=10)


TESTED = {
    "sequential_research.py",
    "brainstorm_critic_synthesis.py",
    "dynamic_specialist.py",
    "research_team.py",
    "persistent_orchestrator.py",
    "original_api.py",
}


async def test_every_example_is_tested() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == TESTED


async def test_sequential_research(server: Server) -> None:
    out = await run_ok(server, "sequential_research.py")
    research = echo("Find information about climate change mitigation strategies")
    analysis = echo(
        f"Analyze this information and identify the most promising strategies: {research}"
    )
    summary = echo(f"Create a concise summary of these strategies: {analysis}")
    assert f"client-side hops, summary:\n  {summary}\n" in out
    assert f"pipeline, summary:\n  {summary}\n" in out
    assert "same summary both ways: True" in out
    for index, (agent, answer) in enumerate(
        [("research_agent", research), ("analysis_agent", analysis), ("summary_agent", summary)]
    ):
        assert f"step {index} {agent} (completed, run run_" in out
        assert f"\n    {answer}\n" in out

    # The pipeline is a run of its own, and each step a run whose parent it is.
    pipeline_run = out.split("pipeline run ", 1)[1].split(":", 1)[0]
    async with tenant_client(server, "example-sequential") as client:
        assert (await client.get_run(pipeline_run)).status is RunStatus.COMPLETED
        children = [r for r in await client.list_runs() if r.parent_run_id == pipeline_run]
        assert sorted(r.agent_id for r in children) == [
            "analysis_agent",
            "research_agent",
            "summary_agent",
        ]
        assert {r.output for r in children} == {research, analysis, summary}


async def test_brainstorm_critic_synthesis(server: Server) -> None:
    out = await run_ok(server, "brainstorm_critic_synthesis.py")
    ideas = echo("Generate 5 innovative solutions for reducing urban traffic congestion")
    evaluation = echo(
        "Critically evaluate these solutions, ranking them from most to least promising: " + ideas
    )
    plan = echo(
        "Based on these evaluations, create a detailed implementation plan for the top 2 "
        "solutions: " + evaluation
    )
    assert f"[brainstorm_agent] {ideas}\n" in out
    assert f"[critic_agent] {evaluation}\n" in out
    assert out.endswith(f"[synthesis_agent] plan:\n{plan}\n")


async def test_dynamic_specialist_is_created_once(server: Server) -> None:
    out = await run_ok(server, "dynamic_specialist.py")
    calls = [line for line in out.splitlines() if line.startswith("get_specialized_agent(")]
    assert len(calls) == 2
    assert calls[0] == calls[1]  # the same agent, with the same creation time
    assert calls[0].startswith("get_specialized_agent('physics') -> physics_specialist, created ")
    assert "agents: ['physics_specialist']" in out
    assert f"[physics_specialist] {echo('Explain quantum field theory in simple terms')}" in out

    # Asking again (another domain and the same one) creates only the new specialist.
    again = await run_ok(server, "dynamic_specialist.py", "physics", "What is a quark?")
    assert again.splitlines()[0] == calls[0]
    assert f"[physics_specialist] {echo('What is a quark?')}" in again
    await run_ok(server, "dynamic_specialist.py", "chemistry")
    async with tenant_client(server, "example-specialist") as client:
        assert await client.list_agents() == ["chemistry_specialist", "physics_specialist"]
        physics = await client.get_agent("physics_specialist")
        assert "expert in physics" in physics.system_message
        assert str(physics.create_time) in calls[0]


async def test_research_team(server: Server) -> None:
    out = await run_ok(server, "research_team.py")
    task = "Research the impact of artificial intelligence on healthcare"
    members = ["data_collector", "analyst", "writer"]
    for member in members:
        assert f"[{member}] completed: {echo(f'Task for {member}: {task}')}\n" in out
    synthesis = out.split("[research_director] synthesis:\n", 1)[1]
    assert synthesis.startswith(
        echo(f"Synthesize the following team outputs for task '{task}':\n\n")
    )
    blocks = [f"=== {m} ===\n{echo(f'Task for {m}: {task}')}\n\n" for m in members]
    assert "".join(blocks) in synthesis  # every member's block, in team order

    # The team is stored, and a second run reuses it.
    again = await run_ok(server, "research_team.py")
    assert again == out
    async with tenant_client(server, "example-team") as client:
        team = await client.get_team("research_team")
        assert team.members == tuple(members)
        assert team.coordinator == "research_director"


async def test_persistent_orchestrator_survives_a_restart(server: Server) -> None:
    # `check` really checks: before `setup` nothing is there.
    before = await run_example(server.address, "persistent_orchestrator.py", "check")
    assert before.returncode == 1, str(before)
    assert "PROBLEM: agent research_agent is missing" in before.stdout
    assert "PROBLEM: the default agent is (none), not research_agent" in before.stdout

    setup = await run_ok(server, "persistent_orchestrator.py", "setup")
    assert "default agent: research_agent" in setup
    assert f"[default] {echo('Remember this: the launch is on Friday.')}" in setup

    await server.restart()

    check = await run_ok(server, "persistent_orchestrator.py", "check")
    assert "agents: ['coding_agent', 'research_agent', 'writer_agent']" in check
    assert "default agent: research_agent" in check
    assert "research_agent remembers 2 messages" in check
    assert f"[default] {echo('What did I tell you?')}" in check
    assert "PROBLEM" not in check
    assert check.endswith("everything survived the restart\n")


async def test_original_api(server: Server) -> None:
    expected = [
        echo("What are the latest developments in quantum computing?"),
        echo("Explain the concept of quantum entanglement"),
        "Available agents: ['coding_agent', 'research_agent']",
        "Research agent exists",
        "research_agent: tools=['current_time'] default=True",
        "Available agents after delete: ['research_agent']",
        "Default agent: research_agent",
    ]
    assert (await run_ok(server, "original_api.py")).splitlines() == expected
    # It starts from an empty tenant, so it can run again.
    assert (await run_ok(server, "original_api.py")).splitlines() == expected


async def test_examples_fail_without_a_server() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    outputs = await asyncio.gather(
        *(
            run_example(address, name, *(["check"] if name.startswith("persistent") else []))
            for name in sorted(TESTED)
        )
    )
    for output in outputs:
        assert output.returncode != 0, str(output)
        assert "error: Unavailable" in output.stderr, str(output)
