"""A stdio transport for MCP servers that keeps hold of the child process.

The SDK's `stdio_client` hides the process; supervision needs its pid, its exit code and
the tail of its stderr (for the log line that reports a crash), and a signal the moment
its stdout ends. The wire handling follows the SDK: newline-delimited JSON-RPC on
stdin/stdout, the child in its own process group, and on exit: close stdin, wait, then
SIGTERM/SIGKILL the whole group, every wait bounded, inside a cancellation shield.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types
from anyio.abc import Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from anyio.streams.text import TextReceiveStream
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

from .mcp_config import McpServerConfig

log = logging.getLogger(__name__)

_EXIT_GRACE_SECONDS = 2.0  # after stdin closes, before SIGTERM
_KILL_GRACE_SECONDS = 2.0  # after SIGTERM, before SIGKILL
_POLL_SECONDS = 0.01
_STDERR_TAIL_LINES = 20


@dataclass(slots=True)
class StdioProcess:
    """What the supervisor can see of the child."""

    pid: int
    process: Process
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=_STDERR_TAIL_LINES))

    @property
    def returncode(self) -> int | None:
        """The exit status once the child has exited (negative: killed by that signal)."""
        return self.process.returncode

    async def wait_exit(self, within: float) -> int | None:
        """The exit status, polling up to `within` seconds (not `process.wait()`, which also waits
        for pipe EOF that an inherited pipe in a grandchild can hold off)."""
        with anyio.move_on_after(within):
            while self.process.returncode is None:  # noqa: ASYNC110 - no event to wait on
                await anyio.sleep(_POLL_SECONDS)
        return self.process.returncode


Streams = tuple[
    MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]
]


async def _lines(stream: Any) -> AsyncIterator[str]:
    """The lines of a child's byte stream, decoded leniently."""
    buffer = ""
    async for chunk in TextReceiveStream(stream, errors="replace"):
        lines = (buffer + chunk).split("\n")
        buffer = lines.pop()
        for line in lines:
            yield line


class _Pipes:
    """The three pipes of one child: JSON-RPC lines from stdout to the session, stderr
    into the tail kept for crash reports, and the session's messages to stdin."""

    def __init__(self, name: str, child: StdioProcess, on_lost: Callable[[], None]) -> None:
        self.name = name
        self.child = child
        self.process = child.process
        self._on_lost = on_lost
        self._lost_reported = False
        self.read_send, self.read_recv = anyio.create_memory_object_stream[
            SessionMessage | Exception
        ](0)
        self.write_send, self.write_recv = anyio.create_memory_object_stream[SessionMessage](0)

    def lost(self) -> None:
        """Report the child's death once."""
        if not self._lost_reported:
            self._lost_reported = True
            self._on_lost()

    def _parse(self, line: str) -> SessionMessage | Exception:
        try:
            return SessionMessage(
                mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
            )
        except ValueError as error:
            log.warning("MCP server %r wrote a line that is not JSON-RPC: %.200s", self.name, line)
            return error

    async def stdout_reader(self) -> None:
        """Deliver stdout's messages; once the session stops reading, keep draining so
        the child never blocks on a full pipe."""
        assert self.process.stdout is not None
        delivering = True
        try:
            async for line in _lines(self.process.stdout):
                if not delivering or not line.strip():
                    continue
                try:
                    await self.read_send.send(self._parse(line))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    delivering = False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass
        finally:
            self.read_send.close()
            self.lost()

    async def stderr_reader(self) -> None:
        """Keep the tail of stderr for the log line that reports a crash."""
        assert self.process.stderr is not None
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async for line in _lines(self.process.stderr):
                self.child.stderr_tail.append(line)
                log.debug("MCP server %r stderr: %s", self.name, line)

    async def stdin_writer(self) -> None:
        """Write the session's messages as lines to stdin."""
        assert self.process.stdin is not None
        try:
            async with self.write_recv:
                async for message in self.write_recv:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await self.process.stdin.send((data + "\n").encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            self.lost()  # the child closed its stdin: it is gone or going


@asynccontextmanager
async def stdio_transport(
    config: McpServerConfig, on_lost: Callable[[], None]
) -> AsyncIterator[
    tuple[
        MemoryObjectReceiveStream[SessionMessage | Exception],
        MemoryObjectSendStream[SessionMessage],
        StdioProcess,
    ]
]:
    """Spawn the server; yield (read stream, write stream, process). `on_lost` is called
    (once) when the child's stdout ends or its stdin breaks, i.e. when it has died."""
    assert config.command is not None
    process = await anyio.open_process(
        [config.command, *config.args],
        env=get_default_environment() | dict(config.env),
        cwd=config.cwd,
        start_new_session=True,  # its own process group, so the whole tree can be killed
    )
    # No awaits until the task group is entered, or a cancellation here would leak the child.
    child = StdioProcess(pid=process.pid, process=process)
    pipes = _Pipes(config.name, child, on_lost)
    async with anyio.create_task_group() as group:
        group.start_soon(pipes.stdout_reader)
        group.start_soon(pipes.stderr_reader)
        group.start_soon(pipes.stdin_writer)
        try:
            yield pipes.read_recv, pipes.write_send, child
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(child, config.name)
                pipes.read_recv.close()
                pipes.write_send.close()
            group.cancel_scope.cancel()


async def _stop(child: StdioProcess, name: str) -> None:
    try:
        await _stop_gracefully(child, name)
    except BaseException:
        # A native task.cancel() can reach into the shield (e.g. the event loop shutting
        # down with the hub never closed): kill the group without awaiting anything.
        _kill_group(child)
        raise


def _kill_group(child: StdioProcess) -> None:
    if child.returncode is None and sys.platform != "win32":
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)


async def _stop_gracefully(child: StdioProcess, name: str) -> None:
    process = child.process
    if process.stdin is not None:
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdin.aclose()
    if await child.wait_exit(_EXIT_GRACE_SECONDS) is None:
        log.info(
            "MCP server %r (pid %d) did not exit after stdin closed; terminating it",
            name,
            child.pid,
        )
        if sys.platform != "win32":
            from mcp.os.posix.utilities import terminate_posix_process_tree

            await terminate_posix_process_tree(process, _KILL_GRACE_SECONDS)
        else:  # pragma: no cover - the service runs on POSIX
            process.kill()
        if await child.wait_exit(_KILL_GRACE_SECONDS) is None:
            log.error("MCP server %r (pid %d) survived SIGKILL; abandoning it", name, child.pid)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stream.aclose()
