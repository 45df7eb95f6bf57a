"""MCP tool hub against real MCP servers: the fixture server as a stdio subprocess (and
once over streamable HTTP), started from configuration exactly as the server does."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from orchestrator_devmodel.net import free_port
from orchestrator_server.tools.mcp_tools import (
    McpServerConfig,
    McpServerUnavailable,
    McpToolError,
    McpToolHub,
    McpToolTimeout,
    parse_mcp_servers,
    tool_name,
)

pytestmark = pytest.mark.timeout(60)

SERVER = str(Path(__file__).resolve().parents[1] / "fixtures" / "mcp_echo_server.py")


def stdio_config(name: str = "echo", **extra: Any) -> McpServerConfig:
    return McpServerConfig.from_dict(
        {"name": name, "command": sys.executable, "args": [SERVER], **extra}
    )


def gone(pid: int) -> bool:
    """The process no longer exists (exited and reaped: no zombie either)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def server_pid(hub: McpToolHub, server: str) -> int:
    pid = int(await hub.call(server, "pid", {}))
    status = {s.name: s for s in hub.status()}[server]
    assert status.pid == pid
    return pid


async def _two_server_hub() -> AsyncIterator[McpToolHub]:
    hub = McpToolHub(
        [stdio_config("alpha"), stdio_config("beta", tool_timeout_seconds=1)],
        backoff_initial_seconds=1.0,
    )
    await hub.start()
    try:
        yield hub
    finally:
        await hub.close()


# Tests that leave the servers as they found them share one hub (starting a Python MCP
# server costs a second or more); the crash test gets its own.
shared_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared() -> AsyncIterator[McpToolHub]:
    async for hub in _two_server_hub():
        yield hub


@pytest.fixture
async def hub() -> AsyncIterator[McpToolHub]:
    async for hub in _two_server_hub():
        yield hub


@shared_loop
async def test_lists_tools_with_schemas(shared: McpToolHub) -> None:
    hub = shared
    tools = {t.name: t for t in hub.tools()}
    for server in ("alpha", "beta"):
        for name in ("echo", "add", "fail", "slow", "crash", "stamp", "pid"):
            assert f"{server}__{name}" in tools
    add = tools["alpha__add"]
    assert add.source == "mcp"
    assert add.source_name == "alpha"
    assert add.parameters["type"] == "object"
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert sorted(add.parameters["required"]) == ["a", "b"]
    assert add.description == "Add two integers."
    assert add.timeout_seconds == 30
    assert tools["beta__add"].timeout_seconds == 1
    assert add.is_available()
    assert add.openai_schema()["function"]["name"] == "alpha__add"


@shared_loop
async def test_calls_through_handlers(shared: McpToolHub) -> None:
    hub = shared
    tools = {t.name: t for t in hub.tools()}
    assert await tools["alpha__echo"].handler({"text": "hello\nworld"}) == "hello\nworld"
    assert await tools["beta__add"].handler({"a": 2, "b": 40}) == "42"
    stamp = json.loads(await tools["alpha__stamp"].handler({"label": "x"}))
    assert stamp["label"] == "x"
    assert stamp["end"] - stamp["start"] >= 0.19
    structured = await tools["alpha__structured"].handler({"name": "abc"})
    assert json.loads(structured) == {"name": "abc", "length": 3}


@shared_loop
async def test_parallel_calls_overlap(shared: McpToolHub) -> None:
    hub = shared
    tools = {t.name: t for t in hub.tools()}
    results = await asyncio.gather(
        *(tools["alpha__stamp"].handler({"label": str(i)}) for i in range(3))
    )
    stamps = [json.loads(r) for r in results]
    assert max(s["start"] for s in stamps) < min(s["end"] for s in stamps)


@shared_loop
async def test_error_result_and_bad_arguments_raise(shared: McpToolHub) -> None:
    hub = shared
    tools = {t.name: t for t in hub.tools()}
    with pytest.raises(McpToolError, match="boom"):
        await tools["alpha__fail"].handler({"message": "boom"})
    with pytest.raises(McpToolError, match="validation error"):
        await tools["alpha__add"].handler({"a": "x"})
    # The session survives tool errors.
    assert await tools["alpha__echo"].handler({"text": "still here"}) == "still here"


@shared_loop
async def test_timeout(shared: McpToolHub) -> None:
    hub = shared
    slow = next(t for t in hub.tools() if t.name == "beta__slow")
    started = time.monotonic()
    with pytest.raises(McpToolTimeout, match="timed out after 1 s") as caught:
        await slow.handler({"seconds": 10})
    assert isinstance(caught.value, TimeoutError)
    assert time.monotonic() - started < 3
    # A timed-out call leaves the server usable.
    assert hub.is_available("beta")
    assert await hub.call("beta", "echo", {"text": "ok"}) == "ok"


async def test_crash_is_reported_and_restarted(
    hub: McpToolHub, caplog: pytest.LogCaptureFixture
) -> None:
    tools = {t.name: t for t in hub.tools()}
    changes: list[int] = []
    hub.add_listener(lambda: changes.append(hub.version))
    old_pid = await server_pid(hub, "alpha")
    in_flight = asyncio.create_task(tools["alpha__slow"].handler({"seconds": 10}))
    await asyncio.sleep(0.2)
    caplog.set_level(logging.WARNING, logger="orchestrator_server.tools.mcp_tools")

    with pytest.raises(McpToolError, match="went away"):
        await tools["alpha__crash"].handler({})
    down_at = time.monotonic()
    with pytest.raises(McpToolError):
        await asyncio.wait_for(in_flight, 3)  # in flight when it died: an error, not a hang

    # Down: alpha's tools are unavailable and fail fast; beta is unaffected.
    assert not hub.is_available("alpha")
    assert not tools["alpha__echo"].is_available()
    started = time.monotonic()
    with pytest.raises(McpServerUnavailable, match="MCP server 'alpha' is unavailable; restarting"):
        await tools["alpha__echo"].handler({"text": "x"})
    assert time.monotonic() - started < 0.1
    assert tools["beta__echo"].is_available()
    assert await tools["beta__echo"].handler({"text": "beta"}) == "beta"

    # Restarted (backoff 1 s here), with the same ServerTool objects still working.
    await hub.wait_available("alpha", within=10)
    assert time.monotonic() - down_at >= 0.9  # the backoff was observed
    assert tools["alpha__echo"].is_available()
    assert await tools["alpha__echo"].handler({"text": "back"}) == "back"
    new_pid = await server_pid(hub, "alpha")
    assert new_pid != old_pid
    assert gone(old_pid)
    assert {s.name: s for s in hub.status()}["alpha"].restarts == 1
    assert len(changes) >= 2  # down, then up

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'alpha' went down" in w and "exited with code 3" in w for w in warnings), warnings


async def test_close_leaves_no_child_process() -> None:
    hub = McpToolHub([stdio_config("one"), stdio_config("two")])
    await hub.start()
    pids = [await server_pid(hub, "one"), await server_pid(hub, "two")]
    assert not any(gone(pid) for pid in pids)
    await hub.close()
    assert all(gone(pid) for pid in pids)
    assert not hub.is_available("one")
    with pytest.raises(McpServerUnavailable):
        await hub.call("one", "echo", {"text": "x"})
    await hub.close()  # idempotent


async def test_close_with_a_call_in_flight() -> None:
    hub = McpToolHub([stdio_config("one")])
    await hub.start()
    pid = await server_pid(hub, "one")
    call = asyncio.create_task(hub.call("one", "slow", {"seconds": 30}))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await hub.close()
    assert time.monotonic() - started < 8
    with pytest.raises(McpToolError):
        await asyncio.wait_for(call, 3)
    assert gone(pid)


async def test_startup_timeout_and_close_while_starting() -> None:
    """A server that never answers: start() gives up after its startup timeout, and
    close() ends the next attempt promptly, killing its process."""
    hang = McpServerConfig.from_dict(
        {
            "name": "hang",
            "command": sys.executable,
            "args": ["-c", "import time; time.sleep(60)"],
            "startup_timeout_seconds": 0.5,
        }
    )
    hub = McpToolHub([hang], backoff_initial_seconds=0.1)
    try:
        started = time.monotonic()
        await hub.start()
        assert time.monotonic() - started < 2
        assert not hub.is_available("hang")
        assert "startup timeout (0.5 s)" in (hub.status()[0].last_error or "")
        pid = hub.status()[0].pid  # the first attempt's process, being stopped, or the next
        assert pid is not None
    finally:
        started = time.monotonic()
        await hub.close()
    assert time.monotonic() - started < 5
    assert gone(pid)


async def test_server_down_at_startup_comes_up_later(tmp_path: Path) -> None:
    script = tmp_path / "late_server.py"
    config = McpServerConfig.from_dict(
        {"name": "late", "command": sys.executable, "args": [str(script)]}
    )
    hub = McpToolHub([config], backoff_initial_seconds=0.2)
    try:
        started = time.monotonic()
        await hub.start()  # does not fail, and does not wait for the broken server
        assert time.monotonic() - started < 5
        assert not hub.is_available("late")
        assert not [t for t in hub.tools() if t.source_name == "late"]
        assert {s.name: s for s in hub.status()}["late"].last_error

        version = hub.version
        came_up = asyncio.Event()
        hub.add_listener(lambda: hub.is_available("late") and came_up.set())
        await asyncio.to_thread(shutil.copyfile, SERVER, script)
        await asyncio.wait_for(came_up.wait(), 10)
        assert hub.version > version
        late_echo = next(t for t in hub.tools() if t.name == "late__echo")
        assert await late_echo.handler({"text": "finally"}) == "finally"
    finally:
        await hub.close()


async def test_env_and_cwd_reach_the_server(tmp_path: Path) -> None:
    hub = McpToolHub(
        [stdio_config("named", env={"MCP_ECHO_NAME": "custom-name"}, cwd=str(tmp_path))]
    )
    await hub.start()
    try:
        assert hub.is_available("named")
        assert await hub.call("named", "echo", {"text": "x"}) == "x"
    finally:
        await hub.close()


async def test_streamable_http_server() -> None:
    port = free_port()
    quiet = asyncio.subprocess.DEVNULL
    process = await asyncio.create_subprocess_exec(
        sys.executable, SERVER, "--http", str(port), stdout=quiet, stderr=quiet
    )
    hub = McpToolHub(
        [McpServerConfig.from_dict({"name": "web", "url": f"http://127.0.0.1:{port}/mcp"})],
        backoff_initial_seconds=0.2,
    )
    try:
        await hub.start()
        if not hub.is_available("web"):  # the server may take a moment to listen
            await hub.wait_available("web", within=10)
        tools = {t.name: t for t in hub.tools()}
        assert tools["web__add"].source_name == "web"
        assert await tools["web__add"].handler({"a": 1, "b": 2}) == "3"
        with pytest.raises(McpToolError, match="nope"):
            await tools["web__fail"].handler({"message": "nope"})
    finally:
        await hub.close()
        process.terminate()
        await process.wait()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "Bad-Name", "command": "x"}, "must match"),
        ({"name": "a" * 32, "command": "x"}, "must match"),
        ({"name": "ok"}, "exactly one of 'command'"),
        ({"name": "ok", "command": "x", "url": "http://h/mcp"}, "exactly one of 'command'"),
        ({"name": "ok", "url": "file:///etc/passwd"}, "http:// or https://"),
        ({"name": "ok", "url": "http://h/mcp", "args": ["a"]}, "only apply to a 'command'"),
        ({"name": "ok", "command": "x", "headers": {"a": "b"}}, "only applies to a 'url'"),
        ({"name": "ok", "command": "x", "args": "not-a-list"}, "'args' must be a list"),
        ({"name": "ok", "command": "x", "env": {"A": 1}}, "'env' must be a table"),
        ({"name": "ok", "command": "x", "tool_timeout_seconds": 0}, "tool_timeout_seconds"),
        ({"name": "ok", "command": "x", "startup_timeout_seconds": "5"}, "startup_timeout"),
        ({"name": "ok", "command": ""}, "non-empty"),
        ({"name": "ok", "command": "x", "comand": "typo"}, "unknown key"),
        ({"command": "x"}, "'name' is required"),
    ],
)
def test_bad_config_is_rejected(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        McpServerConfig.from_dict(entry)


def test_config_parsing() -> None:
    configs = parse_mcp_servers(
        [
            {"name": "files", "command": "python", "args": ["-m", "x"], "env": {"A": "1"}},
            {"name": "web", "url": "https://example.com/mcp", "tool_timeout_seconds": 5},
        ]
    )
    assert configs[0].transport == "stdio"
    assert configs[0].args == ("-m", "x")
    assert configs[0].tool_timeout_seconds == 30
    assert configs[0].startup_timeout_seconds == 15
    assert configs[1].transport == "http"
    assert configs[1].tool_timeout_seconds == 5
    with pytest.raises(ValueError, match="more than once"):
        parse_mcp_servers([{"name": "a", "command": "x"}, {"name": "a", "command": "y"}])
    with pytest.raises(ValueError, match="array"):
        parse_mcp_servers("nope")  # type: ignore[arg-type]


def test_tool_names_are_sanitised() -> None:
    assert tool_name("files", "read") == "files__read"
    assert tool_name("files", "read.file v2") == "files__read_file_v2"
    long = tool_name("files", "x" * 100)
    assert len(long) == 64
    assert long != tool_name("files", "x" * 99)
