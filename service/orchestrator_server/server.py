"""Composition root: wires the store, the core and the servicers into a grpc.aio server.

`build_server()` is a pure factory (tests start it on port 0); `serve()` owns the process:
signals, graceful stop, the health status and the bundled development model server.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from orchestrator.v1 import orchestrator_service_pb2, orchestrator_service_pb2_grpc

from .a2a_setup import A2A_SERVICE, a2a_grpc_handler
from .access_setup import Access, build_access, check_exposure
from .api.a2a_handler import A2ARequestHandler
from .api.a2a_remote import RemoteAgents, parse_remote_agents
from .api.access_servicer import AccessRpcs
from .api.agents_servicer import AgentRpcs
from .api.collaboration_servicer import CollaborationRpcs
from .api.handlers import generic_handler
from .api.runs_servicer import RunRpcs
from .api.usage_servicer import UsageRpcs
from .config import Settings
from .core.active_runs import RunLimits
from .core.agents import AgentRegistry
from .core.collaboration import Collaborations
from .core.conversations import Conversations
from .core.follow import RunFollowing
from .core.journal import Journal
from .core.pagination import PageTokens
from .core.pipelines import PipelineRunner
from .core.run_records import RunRecords
from .core.runs import RunEngine
from .core.team_runs import TeamRunner
from .core.teams import TeamRegistry
from .core.usage import UsageReports
from .dev_model_setup import start_dev_model
from .lifecycle import graceful_stop, serve_cards, watch_store
from .loop_monitor import LoopLagMonitor
from .metrics import ServerMetrics
from .models.catalog import ProviderCatalog
from .store_setup import Stores, open_stores
from .tools.builtins import builtin_tools
from .tools.plugins import plugin_tools
from .tools.registry import ToolRegistry
from .tracing import Tracing, tracing_from_env

if TYPE_CHECKING:
    from .tools.mcp_tools import McpToolHub

log = logging.getLogger("orchestrator")
SERVICE_DESCRIPTOR = orchestrator_service_pb2.DESCRIPTOR.services_by_name["OrchestratorService"]
SERVICE_NAME = SERVICE_DESCRIPTOR.full_name


class OrchestratorServicer(
    AgentRpcs,
    RunRpcs,
    CollaborationRpcs,
    AccessRpcs,
    UsageRpcs,
    orchestrator_service_pb2_grpc.OrchestratorServiceServicer,
):
    """Every RPC of orchestrator.v1.OrchestratorService."""

    def __init__(self, app: App) -> None:
        AgentRpcs.__init__(self, app.agents)
        RunRpcs.__init__(
            self,
            app.runs,
            app.run_records,
            app.following,
            app.conversations,
            app.tools,
            app.settings.max_pending_turns,
        )
        CollaborationRpcs.__init__(self, app.teams, app.pipelines, app.team_runs)
        AccessRpcs.__init__(self, app.access.api_keys, app.access.audit)
        UsageRpcs.__init__(self, app.usage)


@dataclass
class App:
    """The running core: store, registries and engine (no gRPC inside)."""

    settings: Settings
    stores: Stores
    catalog: ProviderCatalog
    agents: AgentRegistry
    runs: RunEngine
    run_records: RunRecords
    journal: Journal
    following: RunFollowing
    conversations: Conversations
    tools: ToolRegistry
    teams: TeamRegistry
    pipelines: PipelineRunner
    team_runs: TeamRunner
    mcp: McpToolHub | None
    metrics: ServerMetrics
    loop_monitor: LoopLagMonitor
    access: Access
    usage: UsageReports
    remote_agents: RemoteAgents
    tracing: Tracing | None = None

    async def close(self) -> None:
        """Stop runs in flight, then release the model clients and the store."""
        await self.runs.active.shutdown()
        await self.following.close()
        await self.journal.close()  # the ends of the runs just stopped
        await self.access.audit.close()
        await self.loop_monitor.stop()
        self.metrics.close()
        if self.mcp is not None:
            await self.mcp.close()
        await self.remote_agents.close()
        await self.catalog.close()
        await self.stores.close()
        if self.tracing is not None:
            await self.tracing.close()


async def start_tools(settings: Settings) -> tuple[ToolRegistry, McpToolHub | None, RemoteAgents]:
    """The server's tools: built-ins, plugins, those of the configured MCP servers and
    the configured remote A2A agents."""
    tools = ToolRegistry()
    tools.register_all(builtin_tools())
    # Scanning installed distributions' entry points reads hundreds of files: off the loop.
    tools.register_all(await asyncio.to_thread(plugin_tools))
    remote = RemoteAgents(parse_remote_agents(settings.a2a_agents))
    tools.register_all(remote.tools())
    return tools, await start_mcp(settings, tools) if settings.mcp_servers else None, remote


async def start_mcp(settings: Settings, tools: ToolRegistry) -> McpToolHub:
    """Start the configured MCP servers and register their tools (also those of servers
    that come up later)."""
    # The mcp package takes ~0.5 s to import; servers without MCP never pay for it.
    from .tools.mcp_tools import McpToolHub, parse_mcp_servers

    hub = McpToolHub(parse_mcp_servers(settings.mcp_servers))
    await hub.start()
    tools.register_all(hub.tools())

    def sync_tools() -> None:
        added = tools.add_missing(hub.tools())
        if added:
            log.info("registered %d tools of an MCP server that came up", added)

    hub.add_listener(sync_tools)
    return hub


def run_limits(settings: Settings) -> RunLimits:
    """What may be in flight at once, as configured."""
    return RunLimits(
        settings.max_runs,
        settings.max_runs_per_tenant,
        settings.max_streams,
        settings.max_streams_per_tenant,
        settings.max_queued_runs,
        settings.max_queued_runs_per_tenant,
    )


def start_journal(settings: Settings, stores: Stores) -> Journal:
    """The journal of run events on the store, as configured, with its writer running."""
    journal = Journal(
        stores.journal,
        flush_seconds=settings.journal_flush_ms / 1000,
        retention_seconds=settings.journal_retention_hours * 3600,
        max_bytes=settings.journal_max_mb << 20,
    )
    journal.start()
    return journal


async def create_app(settings: Settings, tracing: Tracing | None = None) -> App:
    """Open the store and build the core around it (traced when `tracing` is given)."""
    stores = await open_stores(settings)
    store = stores.store
    tokens = PageTokens(await store.page_token_secret(), settings.max_page_bytes)
    catalog = ProviderCatalog(list(settings.providers), settings.default_provider)
    metrics = ServerMetrics()
    monitor = LoopLagMonitor(metrics.loop_lag.observe)
    monitor.start()
    tools, mcp, remote_agents = await start_tools(settings)
    shared = stores.coordination.shared
    access = await build_access(settings, stores.access, tokens, catalog, shared=shared)
    agents = AgentRegistry(store, tokens, unknown_tools=tools.unknown, policy=access.policies)
    journal = start_journal(settings, stores)
    runs = RunEngine(
        store,
        agents,
        catalog,
        tools=tools,
        default_max_model_calls=settings.default_max_model_calls,
        max_output_chars=settings.max_output_chars,
        max_agent_depth=settings.max_agent_depth,
        max_agent_calls=settings.max_agent_calls_per_turn,
        limits=run_limits(settings),
        model_tokens_per_minute=settings.model_tokens_per_minute_per_tenant,
        observer=metrics,
        policy=access.policies,
        audit=access.audit,
        coordination=stores.coordination,
        journal=journal,
        tracer=tracing.tracer if tracing else None,
    )
    conversations = Conversations(store, agents, runs, tokens)
    teams = TeamRegistry(store, tokens)
    collaborations = Collaborations(store, runs)
    pipelines = PipelineRunner(agents, collaborations)
    team_runs = TeamRunner(teams, collaborations)
    records = RunRecords(store, tokens, runs.active, stores.coordination)
    return App(
        settings,
        stores,
        catalog,
        agents,
        runs,
        records,
        journal,
        RunFollowing(journal, records, stores.coordination, runs.active),
        conversations,
        tools,
        teams,
        pipelines,
        team_runs,
        mcp,
        metrics,
        monitor,
        access,
        UsageReports(store, tokens),
        remote_agents,
        tracing,
    )


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    """Channel arguments: message size limits and keepalive for long-lived streams."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_response_bytes),
        # Long idle Run streams: ping the client every 60 s, and let clients ping every
        # 10 s without a GOAWAY (the defaults are 2 h and 5 min).
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS (or mutual TLS) credentials from the configured PEM files; None = plaintext."""
    if not settings.tls_cert_file:
        return None
    key = Path(settings.tls_key_file).read_bytes()
    chain = Path(settings.tls_cert_file).read_bytes()
    client_ca = (
        Path(settings.tls_client_ca_file).read_bytes() if settings.tls_client_ca_file else None
    )
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def build_server(app: App, health: HealthServicer | None = None) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server with the service, health and reflection; returns it and its port."""
    check_exposure(app.settings)
    server = grpc.aio.server(options=server_options(app.settings))
    servicer = OrchestratorServicer(app)
    max_response = app.settings.max_response_bytes
    server.add_generic_rpc_handlers(
        (
            generic_handler(
                SERVICE_DESCRIPTOR,
                servicer,
                app.access.gate,
                max_response,
                app.tracing.tracer if app.tracing else None,
            ),
        )
    )
    health = health or HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            A2A_SERVICE.full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    a2a = A2ARequestHandler(app.runs, app.run_records, app.following)
    tracer = app.tracing.tracer if app.tracing else None
    server.add_generic_rpc_handlers((a2a_grpc_handler(a2a, app.access.gate, max_response, tracer),))
    credentials = server_credentials(app.settings)
    if credentials is None:
        port = server.add_insecure_port(app.settings.address)
    else:
        port = server.add_secure_port(app.settings.address, credentials)
    if port == 0:
        raise OSError(f"could not bind {app.settings.address}")
    return server, port


async def _warm_up(app: App) -> None:
    await asyncio.to_thread(importlib.import_module, "jsonschema")
    await app.catalog.warm_up()
    # What start-up allocated (modules, the agent cache's first entries) lives as long as
    # the process: out of the collector's generations, full collections stop walking it,
    # which shortens the pauses they impose on the event loop.
    gc.freeze()


async def serve(settings: Settings) -> None:
    """Run the server until SIGTERM/SIGINT, then stop gracefully."""
    settings, dev_process = await start_dev_model(settings)
    app = await create_app(settings, tracing_from_env())
    health = HealthServicer()
    server, port = build_server(app, health)
    await server.start()
    if settings.metrics_address:
        metrics_port = app.metrics.serve(settings.metrics_address)
        log.info(
            "Prometheus metrics on %s:%d/metrics",
            settings.metrics_address.rpartition(":")[0],
            metrics_port,
        )
    cards = await serve_cards(app, port)
    await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    watch_store(app, health)
    # Modules and model clients the first run needs but start-up does not: prepare them
    # now, off the loop, so that SERVING is not delayed and the first run does not pay.
    warm_up = asyncio.create_task(_warm_up(app), name="warm up run modules and model clients")
    host = settings.address.rsplit(":", 1)[0]
    log.info(
        "orchestrator listening on %s:%d (db=%s, providers=%s, default provider=%s)",
        host,
        port,
        settings.db,
        ",".join(app.catalog.names()) or "none",
        settings.default_provider or "none",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    warm_up.cancel()
    log.info(
        "stopping: refusing new calls, %.0f s grace for calls in flight", settings.grace_seconds
    )
    await health.enter_graceful_shutdown()
    await graceful_stop(app, server, settings.grace_seconds)
    if cards is not None:
        await cards.stop()
    await app.close()
    if dev_process is not None:
        await dev_process.astop()
    log.info("stopped")
