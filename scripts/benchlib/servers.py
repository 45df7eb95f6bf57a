"""The servers under test, each a subprocess, and the clients the bench talks to them with.

Servers log to bench-results/logs/NAME.log. Every server is registered in `CHILDREN` so
that the load driver can charge the CPU time of all of them to each measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import psutil
from grpc_health.v1 import health_pb2
from openai import AsyncOpenAI

from orchestrator.v1 import orchestrator_service_pb2_grpc
from orchestrator_devmodel.net import free_port

from . import INHERITED_ENV
from .config import ECHO_SERVER, LOGS, OP_TIMEOUT, PY, ROOT, TOKENS

if TYPE_CHECKING:
    from orchestrator.v1.orchestrator_service_pb2_grpc import OrchestratorServiceAsyncStub


@dataclass
class Child:
    """A server subprocess."""

    name: str
    proc: asyncio.subprocess.Process
    started: float  # time.perf_counter() just before the exec

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        try:
            times = psutil.Process(self.pid).cpu_times()
        except psutil.Error:
            return float("nan")
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return float(psutil.Process(self.pid).memory_info().rss) / 2**20

    def listening_port(self) -> int:
        """The TCP port the server listens on (for a server started on a port it chose)."""
        for conn in psutil.Process(self.pid).net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN:
                return int(conn.laddr.port)
        raise RuntimeError("server listens on no port")


CHILDREN: list[Child] = []


def child_env(env: dict[str, str] | None) -> dict[str, str]:
    """The environment of a subprocess: without the fork-support switch the bench set for
    itself (unless the user set it too)."""
    env = dict(env if env is not None else os.environ)
    if (
        env.get("GRPC_ENABLE_FORK_SUPPORT") == "false"
        and "GRPC_ENABLE_FORK_SUPPORT" not in INHERITED_ENV
    ):
        del env["GRPC_ENABLE_FORK_SUPPORT"]
    return env


async def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    ready_prefix: str | None = None,
    wait_s: float = 60.0,
) -> tuple[Child, str]:
    """Start a subprocess (stderr to bench-results/logs/NAME.log); with `ready_prefix`,
    wait for the stdout line starting with it and return the rest of that line."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / f"{name}.log").open("ab") as log:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE if ready_prefix else asyncio.subprocess.DEVNULL,
            stderr=log,
            env=child_env(env),
            cwd=ROOT,
            start_new_session=True,  # a Ctrl-C on the bench does not hit the servers first
        )
    child = Child(name, proc, started)
    CHILDREN.append(child)
    if ready_prefix is None:
        return child, ""
    ready = await read_ready_line(proc, ready_prefix, wait_s)
    if ready is None:
        await stop(child)
        raise RuntimeError(f"{name} did not report '{ready_prefix}' (see {LOGS / name}.log)")
    return child, ready


async def read_ready_line(
    proc: asyncio.subprocess.Process, prefix: str, wait_s: float
) -> str | None:
    """The rest of the first stdout line starting with `prefix`; None if the process
    ends its output or takes longer than `wait_s`."""
    assert proc.stdout is not None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait_s):
            for _ in range(1000):
                line = (await proc.stdout.readline()).decode()
                if not line:
                    break
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()
    return None


async def stop(child: Child, wait_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if child.proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        child.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(child.proc.wait(), wait_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.proc.kill()
        await child.proc.wait()


async def start_devmodel(
    stack: contextlib.AsyncExitStack,
    name: str,
    latency_ms: float,
    *,
    tokens_per_second: float = 0.0,
    record: bool = False,
) -> tuple[Child, str]:
    """The dev model server (20-token answers, no recording unless `record`, tokens
    unpaced unless `tokens_per_second`); returns it and its URL."""
    argv = [PY, "-m", "orchestrator_devmodel", "--port", "0"]
    argv += ["--default-tokens", str(TOKENS), *([] if record else ["--no-record"])]
    if latency_ms:
        argv += ["--latency-ms", str(latency_ms)]
    if tokens_per_second:
        argv += ["--tokens-per-second", str(tokens_per_second)]
    child, url = await spawn(name, argv, ready_prefix="DEVMODEL_LISTENING")
    stack.push_async_callback(stop, child)
    return child, url


async def start_echo(stack: contextlib.AsyncExitStack, model_url: str = "") -> tuple[Child, str]:
    """The bare generic-handler grpc.aio server (with its Proxy to `model_url`, if given);
    returns it and its address."""
    proxy = ["--model-url", model_url] if model_url else []
    child, address = await spawn(
        "echo",
        [PY, str(ECHO_SERVER), "--port", "0", "--messages", str(TOKENS), *proxy],
        ready_prefix="ECHO_LISTENING",
    )
    stack.push_async_callback(stop, child)
    return child, address


def orchestrator_env(model_url: str, max_concurrency: int | None = None) -> dict[str, str]:
    """Environment pointing the orchestrator at a dev model server only."""
    provider: dict[str, Any] = {"name": "dev", "base_url": model_url, "default_model": "dev-echo"}
    if max_concurrency is not None:
        provider["max_concurrency"] = max_concurrency
    env = dict(os.environ)
    env["ORCHESTRATOR_PROVIDERS"] = json.dumps([provider])
    env["ORCHESTRATOR_DEV_MODEL"] = "off"
    # The bench's load comes from one tenant: room for the 1,000-stream case and more.
    env["ORCHESTRATOR_MAX_RUNS_PER_TENANT"] = "5000"
    env["ORCHESTRATOR_MAX_STREAMS_PER_TENANT"] = "10000"
    # ... and for what it creates and spends: the agents of the CreateAgent loop, the
    # messages and tokens of every run (the bench measures speed, not quotas).
    env["ORCHESTRATOR_MAX_AGENTS_PER_TENANT"] = str(10**9)
    env["ORCHESTRATOR_MAX_STORED_BYTES_PER_TENANT"] = str(2**62)
    env["ORCHESTRATOR_MODEL_TOKENS_PER_MINUTE_PER_TENANT"] = str(10**12)
    env.pop("ORCHESTRATOR_CONFIG", None)
    return env


async def start_orchestrator(
    name: str,
    db: Path | str,
    env: dict[str, str],
    *,
    wait_s: float = 60.0,
    extra_argv: Sequence[str] = (),
) -> tuple[Child, str, float]:
    """`orchestrator serve` on a free port; returns it, its address and the seconds from
    the exec to the health service answering SERVING."""
    # The server takes its address on the command line, so the port is chosen up front.
    address = f"127.0.0.1:{free_port()}"
    argv = [PY, "-m", "orchestrator_server.cli", "serve", "--address", address]
    argv += ["--db", str(db), "--grace", "2", "--log-level", "WARNING", *extra_argv]
    child, _ = await spawn(name, argv, env=env)
    try:
        serving = await wait_serving(child, address, wait_s)
    except BaseException:
        await stop(child)
        raise
    return child, address, serving


async def health_check(channel: grpc.aio.Channel, wait_s: float) -> int:
    """The overall health status (generic call: the health stub's typing is sync-only)."""
    check: grpc.aio.UnaryUnaryMultiCallable[
        health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    ] = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    reply = await check(health_pb2.HealthCheckRequest(), timeout=wait_s)
    return int(reply.status)


async def wait_listening(child: Child, address: str, deadline: float) -> None:
    """Poll the port until it accepts connections (or the deadline passes)."""
    host, port = address.rsplit(":", 1)
    while time.monotonic() < deadline:
        if child.proc.returncode is not None:
            raise RuntimeError(f"{child.name} exited (see {LOGS / child.name}.log)")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 0.5)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.005)
            continue
        writer.close()
        return


async def wait_serving(child: Child, address: str, wait_s: float) -> float:
    """Poll the port, then the health service, until SERVING; seconds since the exec."""
    deadline = time.monotonic() + wait_s
    # Polling the port first keeps the health calls from waiting on connection backoff.
    await wait_listening(child, address, deadline)
    async with grpc.aio.insecure_channel(address) as channel:
        while time.monotonic() < deadline:
            try:
                if await health_check(channel, 1.0) == health_pb2.HealthCheckResponse.SERVING:
                    return time.perf_counter() - child.started
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.005)
    raise RuntimeError(f"{child.name} not SERVING within {wait_s} s")


def orchestrator_stub(
    stack: contextlib.AsyncExitStack, address: str
) -> OrchestratorServiceAsyncStub:
    """A stub on its own channel, closed with the stack."""
    channel = grpc.aio.insecure_channel(address)
    stack.push_async_callback(channel.close)
    stub: OrchestratorServiceAsyncStub = orchestrator_service_pb2_grpc.OrchestratorServiceStub(
        channel
    )
    return stub


def create_api_key(db: Path, tenant: str) -> str:
    """An admin API key of `tenant` in the database file, made the operator's way."""
    argv = [PY, "-m", "orchestrator_server.cli", "create-api-key", "--db", str(db)]
    argv += ["--tenant", tenant, "--role", "admin"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip()


async def start_postgres(stack: contextlib.AsyncExitStack) -> str:
    """A throwaway PostgreSQL cluster (scripts/pg_cluster.py), removed with the stack; its
    server URL. Its processes are not children of the bench: their CPU shows as foreign."""
    from scripts.pg_cluster import PostgresCluster

    cluster = await asyncio.to_thread(PostgresCluster().start)
    stack.push_async_callback(asyncio.to_thread, cluster.stop)
    return cluster.url


async def serve_orchestrator(
    stack: contextlib.AsyncExitStack,
    name: str,
    db: Path | str,
    model_url: str,
    extra_env: dict[str, str] | None = None,
) -> tuple[Child, OrchestratorServiceAsyncStub]:
    """An orchestrator on `db` calling the dev model at `model_url`, and a stub for it;
    both closed with the stack."""
    env = {**orchestrator_env(model_url), **(extra_env or {})}
    orch, address, _ = await start_orchestrator(name, db, env)
    stack.push_async_callback(stop, orch)
    return orch, orchestrator_stub(stack, address)


def model_client(stack: contextlib.AsyncExitStack, base_url: str) -> AsyncOpenAI:
    """An OpenAI client for the dev model server, closed with the stack. No retries: a
    failed call should fail the measurement, not be hidden in its latency."""
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=OP_TIMEOUT)
    stack.push_async_callback(client.close)
    return client
