"""Agent2Agent (A2A v1.0): `lf.a2a.v1.A2AService` on the server's gRPC port, behind the
same access gate as `OrchestratorService`, and the agents' cards over HTTP.

Cards are served when `a2a_address` is set, one per agent at
`http://<a2a_address>/agents/<agent_id>/.well-known/agent-card.json` (and the tenant's
default agent's at `/.well-known/agent-card.json`), to callers the native API would let
read the agent (same credentials: `authorization`, `x-tenant-id`; NOT_FOUND as 404 for an
agent the caller may not see). A card's gRPC interface names the agent in its `tenant`
field, which an A2A client sends with every request.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
import uvicorn
from a2a.server.request_handlers.grpc_handler import GrpcHandler
from a2a.types import a2a_pb2
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, PROTOCOL_VERSION_CURRENT
from google.protobuf import json_format

from .api.a2a_handler import A2ARequestHandler
from .api.access_gate import AccessGate
from .api.error_mapping import status_code_for
from .api.handlers import generic_handler
from .core.agents import AgentRegistry
from .core.errors import OrchestratorError
from .core.types import Agent
from .tracing import OtelTracer

log = logging.getLogger("orchestrator.a2a")
SERVER_VERSION = "0.1.0"
CARD_CONNECTIONS = 256
_HTTP_STATUS = {
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 404,  # no default agent: no card
    grpc.StatusCode.UNAVAILABLE: 503,
}
A2A_SERVICE = a2a_pb2.DESCRIPTOR.services_by_name["A2AService"]
CARD_METHOD = "GetAgentCard"  # the card's entry in the permission table
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def a2a_grpc_handler(
    handler: A2ARequestHandler, gate: AccessGate, max_response: int, tracer: OtelTracer | None
) -> grpc.GenericRpcHandler:
    """Every method of A2AService: a2a-sdk's GrpcHandler over our request handler, each
    call admitted by the access gate first."""
    return generic_handler(A2A_SERVICE, GrpcHandler(handler), gate, max_response, tracer)


def agent_card(agent: Agent, grpc_url: str, authenticated: bool) -> a2a_pb2.AgentCard:
    """The card of one agent: its gRPC interface (the agent in `tenant`), what it says
    of itself, and the security actually enforced."""
    spec = agent.spec
    description = spec.description or f"The agent '{agent.agent_id}'."
    card = a2a_pb2.AgentCard(
        name=agent.agent_id,
        description=description,
        supported_interfaces=[
            a2a_pb2.AgentInterface(
                url=grpc_url,
                protocol_binding="GRPC",
                tenant=agent.agent_id,
                protocol_version=PROTOCOL_VERSION_CURRENT,
            )
        ],
        version=SERVER_VERSION,
        capabilities=a2a_pb2.AgentCapabilities(
            streaming=True, push_notifications=False, extended_agent_card=False
        ),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            a2a_pb2.AgentSkill(
                id=agent.agent_id,
                name=agent.agent_id,
                description=description,
                tags=[f"{k}={v}" for k, v in sorted(spec.labels.items())] or ["agent"],
            )
        ],
    )
    if authenticated:
        scheme = a2a_pb2.HTTPAuthSecurityScheme(
            scheme="Bearer", bearer_format="an API key of the tenant, or a JWT"
        )
        card.security_schemes["bearer"].http_auth_security_scheme.CopyFrom(scheme)
        card.security_requirements.add().schemes["bearer"].CopyFrom(a2a_pb2.StringList())
    return card


class _HttpCall:
    """What the access gate reads of a call, for an HTTP request."""

    def __init__(self, headers: Sequence[tuple[str, str]], peer: str) -> None:
        self._headers = tuple(headers)
        self._peer = peer

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._headers

    def auth_context(self) -> Mapping[str, Any]:
        return {}


class AgentCards:
    """The ASGI app serving agent cards."""

    def __init__(
        self, agents: AgentRegistry, gate: AccessGate, grpc_url: str, authenticated: bool
    ) -> None:
        self._agents = agents
        self._gate = gate
        self._grpc_url = grpc_url
        self._authenticated = authenticated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if scope["method"] != "GET" or not path.endswith(AGENT_CARD_WELL_KNOWN_PATH):
            await _respond(send, 404, {"error": "not found"})
            return
        prefix = path.removesuffix(AGENT_CARD_WELL_KNOWN_PATH)
        agent_id = prefix.removeprefix("/agents/") if prefix.startswith("/agents/") else ""
        if prefix and not agent_id:
            await _respond(send, 404, {"error": "not found"})
            return
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        client = scope.get("client") or ("", 0)
        call = _HttpCall(headers, f"ipv4:{client[0]}:{client[1]}")
        try:
            caller = await self._gate.admit(CARD_METHOD, None, call)  # type: ignore[arg-type]
            agent = await self._card_agent(caller.tenant, agent_id)
        except OrchestratorError as error:
            status = _HTTP_STATUS.get(status_code_for(error), 500)
            await _respond(send, status, {"error": error.reason.value, "message": error.message})
            return
        except Exception:
            log.exception("could not serve the card of agent '%s'", agent_id[:80])
            await _respond(send, 500, {"error": "INTERNAL_ERROR", "message": "internal error"})
            return
        card = agent_card(agent, self._grpc_url, self._authenticated)
        await _respond(send, 200, json_format.MessageToDict(card))

    async def _card_agent(self, tenant: str, agent_id: str) -> Agent:
        """The agent a card path names; the default agent for the bare well-known path."""
        if agent_id:
            return await self._agents.get(tenant, agent_id)
        return await self._agents.get_default(tenant)


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class CardServer:
    """uvicorn serving AgentCards on a pre-bound socket (port 0 works; no signal
    handlers or logging setup of its own)."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        address: str,
        tls: tuple[str, str] | None = None,
    ) -> None:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, int(port)), family=family)
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            app,
            http="httptools",
            ws="none",
            lifespan="off",
            access_log=False,
            log_config=None,
            log_level="warning",
            server_header=False,
            timeout_graceful_shutdown=2,
            # Bounded: past this many connections new requests get 503 (cards are small
            # and fetched rarely; an exposed endpoint belongs behind a proxy anyway).
            limit_concurrency=CARD_CONNECTIONS,
            backlog=CARD_CONNECTIONS,
            timeout_keep_alive=5,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        config.load()
        self._server = uvicorn.Server(config)
        # Server._serve() normally makes this; startup() needs it.
        self._server.lifespan = config.lifespan_class(config)

    async def start(self) -> None:
        """Accept connections."""
        try:
            await self._server.startup(sockets=[self._socket])
        except BaseException:
            self._socket.close()
            raise

    async def stop(self) -> None:
        """Close every connection and the listening socket."""
        self._server.should_exit = True
        await self._server.shutdown(sockets=[self._socket])


async def start_card_server(
    address: str,
    agents: AgentRegistry,
    gate: AccessGate,
    grpc_url: str,
    authenticated: bool,
    tls: tuple[str, str] | None = None,
) -> CardServer:
    """The agent cards' HTTP server (HTTPS with the gRPC port's certificate), listening."""
    server = CardServer(AgentCards(agents, gate, grpc_url, authenticated), address, tls)
    await server.start()
    scheme = "https" if tls else "http"
    host = address.rpartition(":")[0]
    path = f"/agents/<agent_id>{AGENT_CARD_WELL_KNOWN_PATH}"
    log.info("A2A agent cards on %s://%s:%d%s", scheme, host, server.port, path)
    return server
