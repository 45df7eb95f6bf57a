"""Remote A2A agents as tools: an agent that lists `a2a__<name>` in its tools may ask the
remote agent the operator configured under that name, over A2A (a2a-sdk's client, the
card's preferred transport: gRPC, JSON-RPC or HTTP+JSON, streaming where offered).

Agents come only from the operator's configuration, never from a client request:

    [[a2a_agents]]
    name = "billing"                       # [a-z][a-z0-9_]{0,30}
    card_url = "https://billing.internal"  # its card: <card_url>/.well-known/agent-card.json
    token_env = "BILLING_A2A_TOKEN"        # optional: a bearer token, from the environment
    timeout_seconds = 120                  # per call (default 120)
    description = "Answers billing."       # for the model (default: "Ask the remote agent ...")

The model sees the remote agent's answer (its artifacts' text, else its final message)
as the tool's result; a failed, rejected or cancelled remote task, an unreachable agent
or a timeout is a tool error the model sees. The remote task id ends the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import grpc
import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.client.errors import A2AClientError
from a2a.types import a2a_pb2

from ..core.client_tools import ToolError
from ..core.tool_port import ServerTool

NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
DEFAULT_TIMEOUT_SECONDS = 120.0
# What is kept of a remote answer (a tool's result is cut to 64 Ki characters later): a
# remote agent that streams without end cannot fill the server's memory.
MAX_ANSWER_CHARS = 128 * 1024
_KEYS = frozenset({"name", "card_url", "token_env", "timeout_seconds", "description"})
CANCEL_SECONDS = 5.0
_ENDED = {
    a2a_pb2.TASK_STATE_COMPLETED,
    a2a_pb2.TASK_STATE_FAILED,
    a2a_pb2.TASK_STATE_CANCELED,
    a2a_pb2.TASK_STATE_REJECTED,
}
_FAILED = {
    a2a_pb2.TASK_STATE_FAILED: "failed",
    a2a_pb2.TASK_STATE_REJECTED: "rejected the task",
    a2a_pb2.TASK_STATE_CANCELED: "cancelled the task",
    a2a_pb2.TASK_STATE_AUTH_REQUIRED: "asked for authentication",
    a2a_pb2.TASK_STATE_INPUT_REQUIRED: "asked for more input, which a tool call cannot give",
}
_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string", "description": "What to ask the agent"}},
    "required": ["message"],
}


@dataclass(frozen=True, slots=True)
class RemoteAgentConfig:
    """One remote A2A agent the operator lets agents ask."""

    name: str
    card_url: str
    token_env: str = ""
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    description: str = ""

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> RemoteAgentConfig:
        """Checked configuration; ValueError naming what is wrong."""
        unknown = set(entry) - _KEYS
        if unknown:
            raise ValueError(f"a2a_agents: unknown keys {sorted(unknown)}")
        name = str(entry.get("name", ""))
        if not NAME.fullmatch(name):
            raise ValueError(f"a2a_agents: name {name!r} must match {NAME.pattern}")
        url = str(entry.get("card_url", ""))
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ValueError(f"a2a_agents.{name}: card_url must be an http:// or https:// URL")
        timeout = float(entry.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
        if not 0 < timeout <= 3600:
            raise ValueError(f"a2a_agents.{name}: timeout_seconds must be in (0, 3600]")
        token_env = str(entry.get("token_env", ""))
        return cls(name, url.rstrip("/"), token_env, timeout, str(entry.get("description", "")))

    def token(self) -> str:
        """The bearer token from the environment ('' without one)."""
        return os.environ.get(self.token_env, "") if self.token_env else ""


def parse_remote_agents(entries: Sequence[Mapping[str, Any]]) -> list[RemoteAgentConfig]:
    """The configured remote agents; ValueError for a bad or repeated entry."""
    configs = [RemoteAgentConfig.from_dict(entry) for entry in entries]
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ValueError("a2a_agents: names must be unique")
    return configs


def _with_token(details: Any, token: str) -> Any:
    return details._replace(
        metadata=(*(details.metadata or ()), ("authorization", f"Bearer {token}"))
    )


class _UnaryBearer(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds `authorization: Bearer <token>` to a channel's unary calls (a channel files an
    interceptor under one kind of call only, hence one class per kind)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)


class _StreamBearer(grpc.aio.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to a channel's server-streaming calls."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)


class RemoteAgent:
    """One remote agent: its A2A client (made from its card on first use) and the tool
    that asks it. The token goes only to the card's own host: a card naming other hosts
    does not get them the operator's credential."""

    def __init__(self, config: RemoteAgentConfig) -> None:
        self.config = config
        self._token = config.token()
        card = urlsplit(config.card_url)
        self._host, self._secure = card.hostname or "", card.scheme == "https"
        hooks = {"request": [self._authorize]} if self._token else {}
        self._http = httpx.AsyncClient(timeout=config.timeout_seconds, event_hooks=hooks)
        self._client_config = ClientConfig(
            streaming=True,
            httpx_client=self._http,
            grpc_channel_factory=self._channel,
            supported_protocol_bindings=["GRPC", "JSONRPC", "HTTP+JSON"],
        )
        self._client: Client | None = None
        self._connecting = asyncio.Lock()

    async def _authorize(self, request: httpx.Request) -> None:
        if request.url.host == self._host:
            request.headers["authorization"] = f"Bearer {self._token}"

    def _channel(self, url: str) -> grpc.aio.Channel:
        """A channel to the card's gRPC interface: TLS when the card came over HTTPS, the
        token only for the card's host."""
        same_host = urlsplit(f"//{url}").hostname == self._host
        interceptors: list[grpc.aio.ClientInterceptor] = (
            [_UnaryBearer(self._token), _StreamBearer(self._token)]
            if self._token and same_host
            else []
        )
        if self._secure:
            credentials = grpc.ssl_channel_credentials()
            return grpc.aio.secure_channel(url, credentials, interceptors=interceptors)
        return grpc.aio.insecure_channel(url, interceptors=interceptors)

    def tool(self) -> ServerTool:
        """The tool `a2a__<name>`."""
        config = self.config
        return ServerTool(
            name=f"a2a__{config.name}",
            description=config.description or f"Ask the remote agent '{config.name}' (A2A).",
            parameters=_PARAMETERS,
            handler=self._ask,
            source="a2a",
            source_name=config.name,
            timeout_seconds=config.timeout_seconds,
        )

    async def _connect(self) -> Client:
        async with self._connecting:  # one client, however many calls arrive at once
            if self._client is None:
                try:
                    factory = ClientFactory(self._client_config)
                    self._client = await factory.create_from_url(self.config.card_url)
                except Exception as error:
                    raise ToolError(
                        f"the remote agent '{self.config.name}' cannot be reached: "
                        f"{type(error).__name__}"
                    ) from None
            return self._client

    async def _forget(self, client: Client) -> None:
        """Drop a client that failed (made again on the next call: the card may have
        changed)."""
        async with self._connecting:
            if self._client is client:
                self._client = None
        with contextlib.suppress(Exception):
            await client.close()

    async def _ask(self, arguments: dict[str, Any]) -> str:
        client = await self._connect()
        message = a2a_pb2.Message(
            message_id=uuid.uuid4().hex,
            role=a2a_pb2.ROLE_USER,
            parts=[a2a_pb2.Part(text=str(arguments.get("message", "")))],
        )
        answer = _Answer()
        try:
            # An async generator (typed as an iterator): closed at once when left early.
            events = cast(
                "AsyncGenerator[a2a_pb2.StreamResponse, None]",
                client.send_message(a2a_pb2.SendMessageRequest(message=message)),
            )
            async with aclosing(events):
                async for event in events:
                    answer.take(event)
                    if answer.chars > MAX_ANSWER_CHARS:
                        break  # enough: the rest would be cut from the tool's result anyway
        except (A2AClientError, grpc.aio.AioRpcError, httpx.HTTPError) as error:
            await self._forget(client)
            failure = f"the remote agent '{self.config.name}' failed: {error}"
            raise ToolError(failure[:500]) from None
        except asyncio.CancelledError:  # the tool's timeout, or the turn cancelled
            if answer.task_id and answer.state not in _ENDED:
                await _cancel_remote(client, answer.task_id)
            raise
        return answer.result(self.config.name)

    async def close(self) -> None:
        """Close the client and its connections."""
        if self._client is not None:
            await self._client.close()
        await self._http.aclose()


async def _cancel_remote(client: Client, task_id: str) -> None:
    """Ask the remote agent to cancel a task left behind (best effort, bounded)."""
    cancel = asyncio.ensure_future(client.cancel_task(a2a_pb2.CancelTaskRequest(id=task_id)))
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(cancel), CANCEL_SECONDS)


class _Answer:
    """What a remote task said: its artifacts' text, its final status."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.message = ""
        self.task_id = ""
        self.state: a2a_pb2.TaskState = a2a_pb2.TASK_STATE_UNSPECIFIED
        self.status_text = ""
        self._chars = 0

    @property
    def chars(self) -> int:
        """Characters kept so far."""
        return self._chars

    def _keep(self, texts: list[str]) -> None:
        self.texts += texts
        self._chars += sum(len(text) for text in texts)

    def take(self, event: a2a_pb2.StreamResponse) -> None:
        if event.HasField("task"):
            task = event.task
            self.task_id, self.state = task.id, task.status.state
            for artifact in task.artifacts:
                self._keep([p.text for p in artifact.parts if p.text])
        elif event.HasField("artifact_update"):
            self._keep([p.text for p in event.artifact_update.artifact.parts if p.text])
        elif event.HasField("status_update"):
            status = event.status_update.status
            self.state = status.state
            self.status_text = " ".join(p.text for p in status.message.parts if p.text)[:2000]
        elif event.HasField("message"):
            self.message = " ".join(p.text for p in event.message.parts if p.text)[
                :MAX_ANSWER_CHARS
            ]

    def result(self, name: str) -> str:
        if self.state in _FAILED:
            detail = f": {self.status_text}" if self.status_text else ""
            raise ToolError(f"the remote agent '{name}' {_FAILED[self.state]}{detail}")
        text = "".join(self.texts) or self.message
        # The task id first: the tool's result is cut to 64 Ki characters at its end.
        return f"[A2A task {self.task_id}]\n{text}" if self.task_id else text


class RemoteAgents:
    """Every configured remote agent."""

    def __init__(self, configs: Sequence[RemoteAgentConfig]) -> None:
        self.agents = [RemoteAgent(config) for config in configs]

    def tools(self) -> list[ServerTool]:
        """Their tools."""
        return [agent.tool() for agent in self.agents]

    async def close(self) -> None:
        """Close their clients."""
        for agent in self.agents:
            await agent.close()
