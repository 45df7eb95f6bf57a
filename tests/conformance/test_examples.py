"""The Go and TypeScript example programs, run against the test's orchestrator.

Each creates an agent, lists agents and streams one turn; the dev model answers
"Echo: <message>", so the streamed deltas and the final output are known. The binaries
come from `make conformance-build`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conformance.conftest import Servers

ROOT = Path(__file__).resolve().parents[2]

ANSWER = "Echo: Say hello in five words."
EXAMPLES = {
    "go": ([str(ROOT / "client/go/.bin/agents")], "go_example_agent"),
    "typescript": (["node", str(ROOT / "client/ts/dist/examples/agents.js")], "ts_example_agent"),
}


def run_example(servers: Servers, command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run an example program against the test's orchestrator; fail if it is not built."""
    if not os.path.exists(command[-1]):
        pytest.fail(f"missing {command[-1]}: run `make conformance-build` first")
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "ORCHESTRATOR_ADDRESS": servers.address,
            "ORCHESTRATOR_TOKEN": servers.tokens["default"],
        },
    )
    print(done.stdout)
    print(done.stderr)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("language", sorted(EXAMPLES))
def test_example_prints_the_streamed_answer(servers: Servers, language: str) -> None:
    command, agent_id = EXAMPLES[language]
    out = run_example(servers, command).stdout
    assert f"agent {agent_id}" in out
    assert f"- {agent_id}:" in out
    assert "started (RUN_STATUS_RUNNING)" in out
    # The deltas are printed as they arrive, then the final output on its own line.
    assert f"{ANSWER}\noutput: {ANSWER}\n" in out


FOLLOW_EXAMPLES = {
    "go": [str(ROOT / "client/go/.bin/follow")],
    "typescript": ["node", str(ROOT / "client/ts/dist/examples/follow.js")],
}


@pytest.mark.parametrize("language", sorted(FOLLOW_EXAMPLES))
def test_follow_example_resumes_a_dropped_run(servers: Servers, language: str) -> None:
    out = run_example(servers, FOLLOW_EXAMPLES[language]).stdout
    lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert "dropped the stream after sequence 2" in out
    # Nothing lost and nothing repeated across the drop.
    assert lines["before"] + lines["after"] == lines["output"] == "Echo: Tell me a short story."
