"""The shared conformance scenario, run by the Python, Go, TypeScript and grpcurl runners.

All four run at once against one orchestrator (conftest.py), each with its own agent-id
prefix and tenant. The Go binary and the compiled TypeScript come from
`make conformance-build`. Every runner's step lines are printed, so they show in the
report of a failure (and with `pytest -s` or `-rA`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conformance.conftest import Servers

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "conformance" / "scenario.json"

GO_RUNNER = ROOT / "client/go/.bin/conformance"
TS_RUNNER = ROOT / "client/ts/dist/conformance/runner.js"
BUILD_HINT = "missing {}: run `make conformance-build` (Go runner + tsc) first"


def runner_commands(address: str) -> dict[str, list[str]]:
    for built in (GO_RUNNER, TS_RUNNER):
        if not built.exists():
            pytest.fail(BUILD_HINT.format(built.relative_to(ROOT)))
    return {
        "python": [
            sys.executable,
            "-m",
            "conformance.run_python",
            "--address",
            address,
            "--prefix",
            "py",
        ],
        "go": [str(GO_RUNNER), "-address", address, "-prefix", "go"],
        "typescript": ["node", str(TS_RUNNER), "--address", address, "--prefix", "ts"],
        "grpcurl": [
            sys.executable,
            "-m",
            "conformance.run_grpcurl",
            "--address",
            address,
            "--prefix",
            "curl",
        ],
    }


TENANT_OF = {
    "python": "conformance-py",
    "go": "conformance-go",
    "typescript": "conformance-ts",
    "grpcurl": "conformance-curl",
}


def test_scenario_passes_in_every_client(servers: Servers) -> None:
    run_every_client(servers)


def run_every_client(servers: Servers) -> None:
    """Run the four runners at once against `servers`; fail with their output."""
    started = time.monotonic()
    procs = {
        name: subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "ORCHESTRATOR_TOKEN": servers.tokens[TENANT_OF[name]]},
        )
        for name, command in runner_commands(servers.address).items()
    }
    results: dict[str, tuple[int, str]] = {}
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            out += "\n(timed out)"
        results[name] = (proc.returncode, out)
    elapsed = time.monotonic() - started

    for name, (code, out) in results.items():
        print(f"===== {name} runner: exit {code}")
        print(out.rstrip())
    print(f"===== all runners: {elapsed:.1f} s")
    failed = [name for name, (code, _) in results.items() if code != 0]
    assert not failed, f"runners failed: {failed}\norchestrator log:\n{servers.log_tail()}"
    for name, (_, out) in results.items():
        lines = [line for line in out.splitlines() if line.strip()]
        assert lines, f"{name} printed no step lines"
        assert all(line.startswith(("PASS ", "SKIP ")) for line in lines), (name, out)
    # grpcurl runs every unary step and the one batchable streamed turn.
    assert "PASS run-default-agent-streamed" in results["grpcurl"][1]


def test_scenario_is_well_formed() -> None:
    """Step names are unique and each step is a unary call or a Run script."""
    data = json.loads(SCENARIO.read_text())
    names = [step["name"] for step in data["steps"]]
    assert len(names) == len(set(names))
    for step in data["steps"]:
        assert ("script" in step) != ("request" in step), step["name"]
        if "script" in step:
            assert step["rpc"] == "Run"
