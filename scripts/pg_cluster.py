"""A throwaway PostgreSQL cluster for tests and benchmarks, from the installed binaries.

PostgreSQL's programs are looked up in `ORCHESTRATOR_PG_BIN`, then on PATH, then in
Debian's /usr/lib/postgresql/<version>/bin. `initdb` and `postgres` refuse to run as
root: as root they run as the `postgres` system user, in a directory it owns. The
cluster listens on 127.0.0.1 only, trusts local connections, and runs with fsync off
(a test cluster loses nothing worth keeping). `stop()` removes it.

To use a PostgreSQL that runs elsewhere instead, set ORCHESTRATOR_TEST_POSTGRES_URL to
a URL whose user may create databases; tests then create their databases there.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

_USER = "app"


def _bin_dir() -> Path:
    configured = os.environ.get("ORCHESTRATOR_PG_BIN")
    if configured:
        return Path(configured)
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if not found:
        raise RuntimeError(
            "PostgreSQL's programs were not found: install postgresql (Debian: postgresql-15) "
            "or set ORCHESTRATOR_PG_BIN, or point ORCHESTRATOR_TEST_POSTGRES_URL at a server"
        )
    return Path(found[0]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """A PostgreSQL server in a temporary directory on a free loopback port."""

    def __init__(self, *, max_connections: int = 300) -> None:
        self._bin = _bin_dir()
        self._as_root = os.geteuid() == 0
        self.directory = Path(tempfile.mkdtemp(prefix="orchestrator-pg-"))
        self.port = _free_port()
        self._max_connections = max_connections
        self.url = f"postgresql://{_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self._bin / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> PostgresCluster:
        """initdb (once) and start the server; returns self."""
        data = self.directory / "data"
        if self._as_root:
            shutil.chown(self.directory, "postgres", "postgres")
        if not data.exists():
            self._run("initdb", "-D", str(data), "-A", "trust", "-U", _USER, "-E", "UTF8")
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            f"-c fsync=off -c max_connections={self._max_connections} -c shared_buffers=128MB"
        )
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.directory / "log"),
                  "-w", "start")  # fmt: skip
        return self

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (start() starts it again)."""
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", mode, "-w", "stop")

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop_server("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


def database_url(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url`."""
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


_databases = itertools.count(1)


async def create_database(server_url: str) -> str:
    """Create a fresh, empty database on the server; its URL."""
    import asyncpg

    name = f"t{os.getpid()}_{next(_databases)}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return database_url(server_url, name)
