"""The real `orchestrator` console script as a subprocess against the live server.

The live server runs in this test's event loop, so the subprocesses are driven with
asyncio (never a blocking wait) to keep the loop serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers import LiveServer
from orchestrator import AsyncOrchestrator, RunStatus
from orchestrator_devmodel import DevModelAdmin

SCRIPT = Path(sys.executable).with_name("orchestrator")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "orchestrator_server.cli"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)

    def json_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.splitlines()]


async def cli(address: str, *args: str, stdin: str | None = None) -> Result:
    """Run one command to completion."""
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        "--address",
        address,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    out, err = await asyncio.wait_for(
        proc.communicate(stdin.encode() if stdin is not None else None), 30
    )
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def start(address: str, *args: str) -> asyncio.subprocess.Process:
    """Start a long-running command (run, chat) with pipes on all three streams."""
    return await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        "--address",
        address,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )


async def read_until(stream: asyncio.StreamReader | None, text: str) -> str:
    """Read until `text` has appeared; return everything read."""
    assert stream is not None
    seen = ""
    while text not in seen:
        chunk = await asyncio.wait_for(stream.read(4096), 20)
        assert chunk, f"stream ended before {text!r}; got {seen!r}"
        seen += chunk.decode()
    return seen


async def test_agent_management_and_exit_codes(live: LiveServer) -> None:
    # Each command is a new process (~1.5 s of imports), so independent ones run together.
    address = live.address
    created = await cli(
        address,
        "agents", "create", "helper", "--model", "gpt-4o", "--temperature", "0.5",
        "--system", "Be brief.", "--label", "team=blue", "--tool", "calculator",
        "--default", "--json",
    )  # fmt: skip
    assert created.code == 0, created.err
    agent = created.json()
    assert isinstance(agent, dict)
    assert agent["agent_id"] == "helper" and agent["is_default"] is True
    assert agent["model"]["model"] == "gpt-4o" and agent["model"]["temperature"] == 0.5
    assert agent["labels"] == {"team": "blue"} and agent["tools"] == ["calculator"]

    duplicate, missing, invalid, unreachable, second, help_text = await asyncio.gather(
        cli(address, "agents", "create", "helper"),
        cli(address, "agents", "get", "missing"),
        cli(address, "agents", "create", "Bad Id"),
        cli("127.0.0.1:1", "agents", "list", "--timeout", "5"),
        cli(address, "agents", "create", "second", "--description", "two"),
        cli(address, "run"),
    )
    assert duplicate.code == 4
    assert duplicate.err == "error: AGENT_ALREADY_EXISTS: agent 'helper' already exists\n"
    assert (missing.code, missing.out) == (3, "")
    assert missing.err == "error: AGENT_NOT_FOUND: agent 'missing' not found\n"
    assert invalid.code == 2 and invalid.err.startswith("error: INVALID_AGENT_ID: ")
    assert len(invalid.err.splitlines()) == 1
    assert unreachable.code == 5 and unreachable.err.startswith("error: UNAVAILABLE: ")
    assert len(unreachable.err.splitlines()) == 1
    assert second.code == 0 and "description:     two" in second.out.splitlines()
    # A usage error: argparse's message and exit code 2.
    assert help_text.code == 2 and "usage: orchestrator run" in help_text.err

    listed, updated, default, stale = await asyncio.gather(
        cli(address, "agents", "list", "--json"),
        cli(
            address, "agents", "update", "helper", "--description", "new",
            "--temperature", "1", "--json",
        ),
        cli(address, "agents", "default"),
        cli(address, "agents", "update", "second", "--system", "x", "--etag", 'W/"7"'),
    )  # fmt: skip
    assert [a["agent_id"] for a in listed.json()] == ["helper", "second"]  # type: ignore[attr-defined, index]
    assert updated.code == 0, updated.err
    changed = updated.json()
    assert isinstance(changed, dict)
    assert changed["description"] == "new" and changed["system_message"] == "Be brief."
    assert changed["model"] == {**agent["model"], "temperature": 1.0}
    assert default.out == "helper\n"
    assert stale.code == 4 and stale.err.startswith("error: ETAG_MISMATCH: ")

    deleted = await cli(address, "agents", "delete", "second")
    assert deleted.out == "deleted agent second\n"
    async with AsyncOrchestrator(address) as client:
        assert await client.list_agents() == ["helper"]


async def test_run_prints_the_answer(live: LiveServer) -> None:
    async with AsyncOrchestrator(live.address) as client:
        await client.create_agent("echo", set_as_default=True)
    plain, default, as_json = await asyncio.gather(
        cli(live.address, "run", "echo", "hello world"),
        cli(live.address, "run", "-", "to the default", "--session", "s2"),
        cli(live.address, "run", "echo", "as json", "--json", "--session", "s3"),
    )
    assert (plain.code, plain.out, plain.err) == (0, "Echo: hello world\n", "")
    assert default.out == "Echo: to the default\n"
    events = as_json.json_lines()
    types = [e["type"] for e in events]
    assert types[0] == "run_started" and types[-2:] == ["message_completed", "run_completed"]
    assert set(types[1:-2]) == {"text_delta"}
    assert "".join(str(e["text"]) for e in events[1:-2]) == "Echo: as json"
    assert events[-1]["output"] == "Echo: as json"
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))


async def test_run_streams_tokens_and_ctrl_c_cancels(
    live: LiveServer, slow_admin: DevModelAdmin
) -> None:
    async with AsyncOrchestrator(live.address) as client:
        await client.create_agent("echo")
        proc = await start(live.address, "run", "echo", "answer slowly")
        # The first words arrive while the ~10 s answer is still being written.
        await read_until(proc.stdout, "w0 w1")
        assert proc.returncode is None
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 20) == 130
        assert proc.stderr is not None
        assert (await proc.stderr.read()).decode() == "interrupted\n"
        # Queued behind the interrupted run: starts only once that one has ended.
        await client.run("next", "echo", wait_if_busy=True, timeout=5)
        runs = await client.list_runs("echo")
        assert [r.status for r in runs] == [RunStatus.COMPLETED, RunStatus.CANCELLED]


async def test_chat_over_a_pipe(live: LiveServer) -> None:
    async with AsyncOrchestrator(live.address) as client:
        await client.create_agent("echo")
        chat, as_json = await asyncio.gather(
            cli(
                live.address,
                "chat",
                "echo",
                "--session",
                "talk",
                stdin="hello\n\nsecond\n/exit\nnever sent\n",
            ),
            cli(live.address, "chat", "echo", "--json", stdin="again\n"),
        )
        assert (chat.code, chat.out, chat.err) == (0, "Echo: hello\nEcho: second\n", "")
        messages = await client.list_messages("echo", "talk")
        assert [m.content for m in messages] == ["hello", "Echo: hello", "second", "Echo: second"]
        events = as_json.json_lines()
        assert [e["type"] for e in events][-1] == "run_completed"
        assert events[-1]["output"] == "Echo: again"


async def test_chat_ctrl_c_cancels_the_answer_not_the_chat(
    live: LiveServer, slow_admin: DevModelAdmin
) -> None:
    async with AsyncOrchestrator(live.address) as client:
        await client.create_agent("echo")
        proc = await start(live.address, "chat", "echo")
        assert proc.stdin is not None
        proc.stdin.write(b"answer slowly\n")
        await read_until(proc.stdout, "w0 w1")
        proc.send_signal(signal.SIGINT)
        cancelled = await read_until(proc.stderr, "\n")
        assert cancelled.startswith("[cancelled: RUN_CANCELLED")
        proc.stdin.write(b"still here?\n")
        await read_until(proc.stdout, "Echo: still here?\n")
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        statuses = [r.status for r in await client.list_runs("echo")]
        assert statuses == [RunStatus.COMPLETED, RunStatus.CANCELLED]


async def test_sessions_and_runs_commands(live: LiveServer) -> None:
    async with AsyncOrchestrator(live.address) as client:
        await client.create_agent("echo")
        await client.create_agent("echo2")
        await client.run("hi", "echo")
        await client.run("hi there", "echo", session_id="other")
        await client.run("bye", "echo2", session_id="third")
        run_id = (await client.list_runs("echo"))[0].run_id
    address = live.address
    sessions, messages, runs, got, cancelled, deleted, missing, no_default = await asyncio.gather(
        cli(address, "sessions", "list", "echo"),
        cli(address, "sessions", "messages", "echo", "other"),
        cli(address, "runs", "list", "--agent", "echo", "--json"),
        cli(address, "runs", "get", run_id, "--json"),
        cli(address, "runs", "cancel", run_id),
        cli(address, "sessions", "delete", "echo2", "third", "--json"),
        cli(address, "sessions", "delete", "echo", "never-used"),
        cli(address, "agents", "default"),
    )
    table = [line.split()[:2] for line in sessions.out.splitlines()]
    assert table == [["SESSION", "MESSAGES"], ["default", "2"], ["other", "2"]]
    assert messages.out == "[1] user: hi there\n[2] assistant: Echo: hi there\n"
    listed = runs.json()
    assert isinstance(listed, list) and [r["input"] for r in listed] == ["hi there", "hi"]
    assert got.json() == listed[0] and listed[0]["run_id"] == run_id
    # Cancelling a finished run changes nothing.
    assert "status:     completed" in cancelled.out.splitlines()
    assert deleted.json() == {"deleted_messages": 2}
    assert missing.code == 3 and missing.err.startswith("error: SESSION_NOT_FOUND: ")
    assert no_default.code == 6 and no_default.err.startswith("error: NO_DEFAULT_AGENT: ")


async def test_run_detach_then_runs_follow_from_another_process(
    live: LiveServer, slow_admin: DevModelAdmin
) -> None:
    async with AsyncOrchestrator(live.address) as client:
        await client.create_agent("echo")
        started = await cli(live.address, "run", "echo", "answer slowly", "--detach")
        assert started.code == 0, started.err
        run_id = started.out.strip()
        assert run_id.startswith("run_")
        # The first process is gone; the run goes on and is followed from a second.
        followed = await cli(live.address, "runs", "follow", run_id)
        assert followed.code == 0, followed.err
        run = await client.get_run(run_id)
        assert run.status is RunStatus.COMPLETED
        assert followed.out == run.output + "\n"
        tail = await cli(live.address, "runs", "follow", run_id, "--after", "3", "--json")
        sequences = [int(str(e["sequence"])) for e in tail.json_lines()]
        assert sequences[0] == 4 and sequences == list(range(4, 4 + len(sequences)))
        missing = await cli(live.address, "runs", "follow", "run_nope")
        assert missing.code != 0 and "RUN_NOT_FOUND" in missing.err


async def test_usage_command_and_client_agree_with_the_runs(live: LiveServer) -> None:
    async with AsyncOrchestrator(live.address) as client:
        await client.create_agent("echo")
        await client.create_agent("other")
        for message in ("one", "two"):
            await client.run(message, "echo")
        await client.run("three", "other")
        records = [record async for record in client.iter_usage(page_size=1)]
        runs = await client.list_runs()
    assert [(r.agent_id, r.runs) for r in records] == [("echo", 2), ("other", 1)]
    assert sum(r.total_tokens for r in records) == sum(run.usage.total_tokens for run in runs)
    assert sum(r.model_calls for r in records) == sum(run.usage.model_calls for run in runs) == 3
    table, hourly, only = await asyncio.gather(
        cli(live.address, "usage", "list"),
        cli(live.address, "usage", "list", "--hourly", "--json"),
        cli(live.address, "usage", "list", "--agent", "other", "--json"),
    )
    lines = [line.split() for line in table.out.splitlines()]
    assert lines[0][:3] == ["PERIOD", "AGENT", "RUNS"]
    assert [line[-6:-4] for line in lines[1:]] == [["echo", "2"], ["other", "1"], ["TOTAL", "3"]]
    assert [r["runs"] for r in hourly.json()] == [2, 1, 3]  # type: ignore[index, union-attr]
    assert [r["agent_id"] for r in only.json()] == ["other", "TOTAL"]  # type: ignore[index, union-attr]
