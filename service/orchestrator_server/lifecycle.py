"""The server process's life around the app: health that follows the store, the A2A
cards' HTTP server, and a graceful stop that records the runs it cuts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from .a2a_setup import CardServer, start_card_server

if TYPE_CHECKING:
    from .server import App

SERVICE_NAME = "orchestrator.v1.OrchestratorService"
log = logging.getLogger("orchestrator")
_WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 - recognised, not bound


async def graceful_stop(app: App, server: grpc.aio.Server, grace: float) -> None:
    """Refuse new calls and new turns, let runs in flight finish within `grace`, then
    interrupt the rest a moment before the end of grace: their records read INTERRUPTED
    and their streams end with a RunCancelled event and UNAVAILABLE / RUN_INTERRUPTED,
    instead of being cut by the transport without a reason."""
    app.runs.active.begin_shutdown()
    stopping = asyncio.create_task(server.stop(grace), name="grpc server stop")
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(grace - min(1.0, grace * 0.2), 0.0)):
            await app.runs.active.idle()
    await app.runs.active.shutdown()
    await stopping


def watch_store(app: App, health: HealthServicer) -> None:
    """Health follows the store: NOT_SERVING while the database cannot be reached (a
    balancer sends calls elsewhere), SERVING again when it returns."""
    pending: set[asyncio.Task[None]] = set()

    async def report(available: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if available
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        if app.runs.active.stopping:
            return  # a stopping server stays NOT_SERVING
        await health.set(SERVICE_NAME, status)
        await health.set("", status)

    def changed(available: bool) -> None:
        task = asyncio.ensure_future(report(available))
        pending.add(task)
        task.add_done_callback(pending.discard)

    app.stores.watch_availability(changed)


async def serve_cards(app: App, port: int) -> CardServer | None:
    """The A2A agent cards' HTTP server, if configured."""
    settings = app.settings
    # Every worker binds the gRPC port (SO_REUSEPORT); the cards are served by the first.
    if not settings.a2a_address or os.environ.get("ORCHESTRATOR_WORKER_INDEX", "0") != "0":
        return None
    host = settings.address.rpartition(":")[0]
    if not settings.a2a_grpc_url and host.strip("[]") in _WILDCARDS:
        log.warning(
            "the A2A cards name %s:%d as the gRPC address: set ORCHESTRATOR_A2A_GRPC_URL to "
            "the address callers reach",
            host,
            port,
        )
    grpc_url = settings.a2a_grpc_url or f"{host}:{port}"
    gate, auth = app.access.gate, app.settings.auth.enabled
    tls = (settings.tls_cert_file, settings.tls_key_file) if settings.tls_cert_file else None
    return await start_card_server(settings.a2a_address, app.agents, gate, grpc_url, auth, tls)
