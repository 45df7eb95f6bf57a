"""`orchestrator serve --workers N`: N server processes on one port.

Each worker is a whole server (its own event loop, on its own core) and a replica of the
shared PostgreSQL store in every sense: they share nothing but the database. They all
bind the same address with SO_REUSEPORT (gRPC's default on Linux), and the kernel spreads
incoming connections over them; a client spreads its calls only if it opens several
connections (or a balancer does). The supervisor forwards SIGTERM/SIGINT, so every worker
stops gracefully, and starts a worker again if one dies.

With SQLite, one process owns the file: several workers are refused.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

from .config import Settings
from .store_setup import is_postgres

log = logging.getLogger("orchestrator")
_RESTART_DELAY_SECONDS = 1.0


def check_workers(settings: Settings) -> None:
    """ValueError when several workers cannot serve this configuration."""
    if settings.workers <= 1:
        return
    if not is_postgres(settings.db):
        raise ValueError(
            "--workers > 1 needs PostgreSQL (--db postgresql://...): with SQLite one process "
            "owns the database file; run one worker, or use PostgreSQL"
        )
    if settings.address.rsplit(":", 1)[-1] == "0":
        raise ValueError("--workers > 1 needs a fixed port: every worker binds the same one")


def _worker_argv(argv: Sequence[str]) -> list[str]:
    """The command line of a worker: the supervisor's, without --workers."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return [sys.executable, "-m", "orchestrator_server.cli", *out]


def _worker_env(settings: Settings, index: int) -> dict[str, str]:
    env = dict(os.environ, ORCHESTRATOR_WORKERS="1", ORCHESTRATOR_WORKER_INDEX=str(index))
    if settings.metrics_address:
        # One /metrics per worker: the configured port, then the next ones.
        host, _, port = settings.metrics_address.rpartition(":")
        env["ORCHESTRATOR_METRICS_ADDRESS"] = f"{host}:{int(port) + index}"
    return env


def supervise(settings: Settings, argv: Sequence[str]) -> int:
    """Run `settings.workers` workers until SIGTERM/SIGINT; the exit code."""
    command = _worker_argv(argv)
    stopping = threading.Event()
    workers: dict[int, subprocess.Popen[bytes]] = {}

    def start(index: int) -> None:
        workers[index] = subprocess.Popen(command, env=_worker_env(settings, index))

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for index in range(settings.workers):
        start(index)
    log.info("supervising %d workers on %s", settings.workers, settings.address)
    failed = False
    while workers:
        for index, proc in list(workers.items()):
            try:
                code = proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            del workers[index]
            if stopping.is_set():
                failed = failed or code != 0
                continue
            log.error("worker %d exited with %s; starting it again", index, code)
            stopping.wait(_RESTART_DELAY_SECONDS)
            if not stopping.is_set():
                start(index)
    return 1 if failed else 0
