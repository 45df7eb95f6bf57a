"""Test helpers: start a real orchestrator server, read rich errors, drive Run streams."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc
from orchestrator.v1 import run_pb2
from orchestrator_devmodel.net import free_port as free_port  # re-exported for tests
from orchestrator_server.config import Settings
from orchestrator_server.models.openai_chat import ProviderConfig
from orchestrator_server.server import App, build_server, create_app
from orchestrator_server.tracing import Tracing

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class LiveServer:
    """A running orchestrator and a channel + stub connected to it."""

    app: App
    server: grpc.aio.Server
    address: str
    channel: grpc.aio.Channel
    stub: pb_grpc.OrchestratorServiceStub
    extra_channels: list[grpc.aio.Channel] = field(default_factory=list)

    def new_stub(self) -> pb_grpc.OrchestratorServiceStub:
        """A stub on a separate connection (for "from another connection" cases)."""
        channel = grpc.aio.insecure_channel(self.address)
        self.extra_channels.append(channel)
        return pb_grpc.OrchestratorServiceStub(channel)

    async def stop(self) -> None:
        """Close channels, stop the server and release the core."""
        for channel in [self.channel, *self.extra_channels]:
            await channel.close()
        await self.server.stop(0)
        await self.app.close()


def dev_settings(db: Path, model_url: str, **overrides: Any) -> Settings:
    """Settings for a test server using the development model at `model_url`."""
    provider = ProviderConfig(
        name="dev", base_url=model_url, default_model="dev-echo", max_retries=2
    )
    values: dict[str, Any] = {
        "address": "127.0.0.1:0",
        "db": str(db),
        "providers": (provider,),
        "default_provider": "dev",
        "dev_model": "off",
    }
    values.update(overrides)
    return Settings(**values)


async def start_live_server(
    db: Path, model_url: str, tracing: Tracing | None = None, **overrides: Any
) -> LiveServer:
    """Start an orchestrator server in this process on an ephemeral port."""
    app = await create_app(dev_settings(db, model_url, **overrides), tracing)
    server, port = build_server(app)
    await server.start()
    address = f"127.0.0.1:{port}"
    channel = grpc.aio.insecure_channel(address)
    return LiveServer(app, server, address, channel, pb_grpc.OrchestratorServiceStub(channel))


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo detail of a rich error status (fails the test if absent)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status in {error!r}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {status}")


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    """The fields named by a BadRequest detail."""
    status: status_pb2.Status | None = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


def _details(error: grpc.aio.AioRpcError) -> list[Any]:
    status: status_pb2.Status | None = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status in {error!r}"
    return list(status.details)


def quota_subjects(error: grpc.aio.AioRpcError) -> list[str]:
    """The subjects of the QuotaFailure detail of an error."""
    failures = [
        error_details_pb2.QuotaFailure.FromString(d.value)
        for d in _details(error)
        if d.Is(error_details_pb2.QuotaFailure.DESCRIPTOR)
    ]
    return [v.subject for failure in failures for v in failure.violations]


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay of an error in seconds, if it has one."""
    for detail in _details(error):
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo.FromString(detail.value)
            return float(info.retry_delay.ToTimedelta().total_seconds())
    return None


def start(message: str, agent_id: str = "", **kwargs: Any) -> run_pb2.RunRequest:
    """A RunRequest that starts a turn."""
    return run_pb2.RunRequest(start=run_pb2.StartTurn(agent_id=agent_id, message=message, **kwargs))


async def requests_of(*items: run_pb2.RunRequest) -> AsyncIterator[run_pb2.RunRequest]:
    """A request stream that sends `items` and half-closes."""
    for item in items:
        yield item


async def run_turn(
    stub: pb_grpc.OrchestratorServiceStub,
    message: str,
    agent_id: str = "",
    timeout: float | None = 30,
    **kwargs: Any,
) -> list[run_pb2.RunEvent]:
    """Run one turn on a new stream and return all its events."""
    call = stub.Run(requests_of(start(message, agent_id, **kwargs)), timeout=timeout)
    return [event async for event in call]


def text_of(events: Sequence[run_pb2.RunEvent]) -> str:
    """The concatenated text deltas."""
    return "".join(e.text_delta.text for e in events if e.WhichOneof("event") == "text_delta")


def final_of(events: Sequence[run_pb2.RunEvent]) -> run_pb2.RunCompleted:
    """The run_completed event (fails if absent)."""
    for event in events:
        if event.WhichOneof("event") == "run_completed":
            return event.run_completed
    raise AssertionError("no run_completed event")


@dataclass
class ServerProcess:
    """`orchestrator serve` as a subprocess (for restart, SIGKILL and CLI tests)."""

    db: Path | str
    model_url: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] | None = None  # extra environment (e.g. ORCHESTRATOR_LEASE_SECONDS)
    log_path: Path | None = None  # where its log goes (a pipe nobody reads could fill)
    extra_args: tuple[str, ...] = ()  # more `serve` flags (e.g. --workers 2)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ)
        env["ORCHESTRATOR_PROVIDERS"] = (
            f'[{{"name": "dev", "base_url": "{self.model_url}", "default_model": "dev-echo"}}]'
        )
        env["ORCHESTRATOR_DEV_MODEL"] = "off"
        env.update(self.env or {})
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "orchestrator_server.cli",
                "serve",
                "--address",
                self.address,
                "--db",
                str(self.db),
                "--grace",
                "2",
                *self.extra_args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log if log is not None else subprocess.PIPE,
        )
        if log is not None:
            log.close()  # the child has its own descriptor

    async def wait_serving(self, timeout: float = 20) -> None:
        """Poll the health service until it answers SERVING."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.proc is not None and self.proc.poll() is None, "server exited"
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("server did not become SERVING")
                # Polling a health endpoint of another process: there is no event to await.
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


async def drain(call: Any) -> list[run_pb2.RunEvent]:
    """Read the rest of a Run call that was read with read() (the two styles can't mix)."""
    events: list[run_pb2.RunEvent] = []
    while (event := await call.read()) is not grpc.aio.EOF:
        events.append(event)
    return events


@asynccontextmanager
async def other_callbacks() -> AsyncIterator[list[int]]:
    """A task that counts its turns on the event loop while the body runs: whether the
    body gave the loop back (and how often). Yields a one-item list with the count."""
    ticks = [0]
    stop = asyncio.Event()

    async def count() -> None:
        while not stop.is_set():
            ticks[0] += 1
            await asyncio.sleep(0)

    counting = asyncio.create_task(count())
    await asyncio.sleep(0)  # the counter runs before the body starts
    ticks[0] = 0
    try:
        yield ticks
    finally:
        stop.set()
        await counting


async def settled(condition: Callable[[], bool], *, step_seconds: float = 0.0) -> None:
    """Let other tasks run until `condition` holds: 1,000 loop steps at most, each
    `step_seconds` long (0 for work on this loop alone; a few ms when it waits for
    gRPC's own threads)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(step_seconds)
    raise AssertionError("the condition never held")


@dataclass
class PeakMemory:
    """The most memory Python held at once while a `peak_memory()` block ran."""

    bytes: int = 0


@contextmanager
def peak_memory() -> Iterator[PeakMemory]:
    """Trace this process's allocations for the body (the server runs in it too)."""
    peak = PeakMemory()
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
