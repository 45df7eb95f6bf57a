"""Running the dev model server: in the current event loop, or as a subprocess.

`DevModelServer` drives uvicorn's `Server.startup`/`shutdown` directly on a pre-bound
socket instead of `serve()`: port 0 then works, nothing touches the caller's signal
handlers or logging, and `stop()` does not wait for uvicorn's 0.1 s main-loop tick.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import IO, Self

import uvicorn

from .app import DevModelApp
from .config import ADMIN_TOKEN_ENV, DevModelConfig

LISTENING_PREFIX = "DEVMODEL_LISTENING "
"""The CLI prints this plus the base URL (with `/v1`) once it accepts connections."""

# Longer than clients' idle-connection expiry (httpx: 5 s), so the client always closes
# an idle keep-alive connection first; otherwise a request sent just as the server closes
# it fails with a connection error, which flakes tests running with max_retries=0.
_KEEP_ALIVE_S = 120
# Only reached if a response ignores abort(): bounded so stop() cannot hang.
_GRACEFUL_SHUTDOWN_S = 2


def base_url_for(host: str, port: int) -> str:
    """`http://host:port/v1`, bracketing IPv6 literals."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class DevModelServer:
    """The dev model server running in the current event loop."""

    def __init__(self, config: DevModelConfig | None = None) -> None:
        self.config = config or DevModelConfig()
        self.app = DevModelApp(self.config)
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (`http://host:port/v1`); valid after `start()`."""
        if self._server is None:
            raise RuntimeError("DevModelServer is not started")
        return base_url_for(self.config.host, self.port)

    async def start(self) -> str:
        """Bind, start accepting connections and return the base URL (with `/v1`)."""
        if self._server is not None:
            raise RuntimeError("DevModelServer already started")
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.create_server((self.config.host, self.config.port), family=family)
        config = uvicorn.Config(
            self.app,
            http="httptools",
            ws="none",
            lifespan="off",
            interface="asgi3",
            access_log=False,
            log_config=None,
            log_level=self.config.log_level,
            proxy_headers=False,
            server_header=False,
            date_header=False,
            timeout_keep_alive=_KEEP_ALIVE_S,
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        )
        config.load()
        server = uvicorn.Server(config)
        # Server._serve() normally creates this; startup() needs it.
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        self._server, self._socket = server, sock
        self.port = sock.getsockname()[1]
        return self.base_url

    async def stop(self) -> None:
        """Cut in-flight responses, close every connection and the listening socket."""
        server, sock = self._server, self._socket
        if server is None:
            return
        self._server = self._socket = None
        self.app.abort()
        server.should_exit = True
        await server.shutdown(sockets=[sock] if sock is not None else None)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class DevModelProcess:
    """The dev model server as a subprocess (`python -m orchestrator_devmodel`).

    Its CPU use is then separate from the caller's, which benchmarks need. Inline
    `config.rules` are written to a temporary rules file.
    """

    def __init__(
        self,
        config: DevModelConfig | None = None,
        *,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 15.0,
        stderr: int | IO[bytes] | None = None,
    ) -> None:
        self.config = config or DevModelConfig()
        self._python = python
        self._env = dict(env) if env is not None else None
        self._startup_timeout = startup_timeout
        self._stderr = stderr
        self._proc: subprocess.Popen[bytes] | None = None
        self._rules_path: str | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """The base URL printed by the child; valid after `start()`."""
        if self._base_url is None:
            raise RuntimeError("DevModelProcess is not started")
        return self._base_url

    @property
    def pid(self) -> int | None:
        """The child's pid, None when not running."""
        return None if self._proc is None else self._proc.pid

    def argv(self, rules_file: str | None = None) -> list[str]:
        """The child's command line (`rules_file` holds the inline `config.rules`)."""
        argv = [self._python, "-m", "orchestrator_devmodel", *self.config.to_argv()]
        if rules_file is not None:
            argv += ["--rules-file", rules_file]
        return argv

    def start(self) -> str:
        """Spawn the child, wait for its LISTENING line and return the base URL."""
        if self._proc is not None:
            raise RuntimeError("DevModelProcess already started")
        if self.config.rules and self.config.rules_file is not None:
            raise ValueError("DevModelProcess takes config.rules or config.rules_file, not both")
        if self.config.rules:
            fd, self._rules_path = tempfile.mkstemp(prefix="devmodel-rules-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(list(self.config.rules), handle)
        env = self._env
        if self.config.admin_token is not None:
            env = {
                **(env if env is not None else os.environ),
                ADMIN_TOKEN_ENV: self.config.admin_token,
            }
        self._proc = subprocess.Popen(
            self.argv(self._rules_path),
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            bufsize=0,
        )
        try:
            self._base_url = self._read_listening_line(self._proc)
        except BaseException:
            self.stop()
            raise
        return self._base_url

    def _read_listening_line(self, proc: subprocess.Popen[bytes]) -> str:
        assert proc.stdout is not None
        deadline = time.monotonic() + self._startup_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"devmodel did not start within {self._startup_timeout}s")
                if not selector.select(remaining):
                    continue
                data = os.read(proc.stdout.fileno(), 4096)
                if not data:
                    raise RuntimeError(f"devmodel exited during startup (code {proc.wait()})")
                buffer += data
        line = buffer.split(b"\n", 1)[0].decode().strip()
        if not line.startswith(LISTENING_PREFIX):
            raise RuntimeError(f"unexpected devmodel output: {line!r}")
        return line.removeprefix(LISTENING_PREFIX)

    def stop(self, kill_after: float = 10.0) -> int | None:
        """SIGTERM the child and wait for it (SIGKILL after `kill_after` s); its exit code."""
        proc, self._proc, self._base_url = self._proc, None, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(kill_after)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            code = proc.returncode
            if proc.stdout is not None:
                proc.stdout.close()
        if self._rules_path is not None:
            os.unlink(self._rules_path)
            self._rules_path = None
        return code

    async def astart(self) -> str:
        """`start()` without blocking the event loop."""
        return await asyncio.to_thread(self.start)

    async def astop(self, kill_after: float = 10.0) -> int | None:
        """`stop()` without blocking the event loop."""
        return await asyncio.to_thread(self.stop, kill_after)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()


async def serve_until_signalled(config: DevModelConfig) -> None:
    """CLI body: start, print the LISTENING line, stop cleanly on SIGTERM/SIGINT."""
    server = DevModelServer(config)
    url = await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(LISTENING_PREFIX + url, flush=True)  # noqa: T201 - the startup handshake
    try:
        await stop.wait()
    finally:
        await server.stop()
