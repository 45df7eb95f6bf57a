"""Remote A2A agents as tools (issue 17): an a2a-sdk server started by the test (its
own request handler, task store and executor) is the remote agent an agent of ours asks
through the tool `a2a__<name>`; its answer is the tool's result, its failure a tool error
the model sees, and the configured bearer token reaches it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from a2a.helpers.proto_helpers import new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler, GrpcHandler
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import a2a_pb2, a2a_pb2_grpc
from google.protobuf import json_format

from helpers import final_of, run_turn, start_live_server
from orchestrator.v1 import agent_pb2, tool_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin, DevModelServer
from orchestrator_server.a2a_setup import CardServer
from orchestrator_server.api.a2a_remote import parse_remote_agents

TOKEN = "remote-secret-token"


class Shouter(AgentExecutor):
    """The remote agent: answers in capitals, fails when asked to."""

    def __init__(self) -> None:
        self.seen_tokens: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        text = context.get_user_input()
        if "fail" in text:
            await updater.failed(updater.new_agent_message([a2a_pb2.Part(text="no can do")]))
            return
        await updater.add_artifact([a2a_pb2.Part(text=text.upper())], name="shout")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


class TokenCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        self.seen += [v for k, v in details.invocation_metadata if k == "authorization"]
        return await continuation(details)


@dataclass
class Remote:
    card_url: str
    tokens: list[str] = field(default_factory=list)


@pytest.fixture
async def remote() -> AsyncIterator[Remote]:
    tokens: list[str] = []
    server = grpc.aio.server(interceptors=[TokenCheck(tokens)])
    port = server.add_insecure_port("127.0.0.1:0")
    card = a2a_pb2.AgentCard(
        name="shouter",
        description="Shouts.",
        supported_interfaces=[
            a2a_pb2.AgentInterface(
                url=f"127.0.0.1:{port}", protocol_binding="GRPC", protocol_version="1.0"
            )
        ],
        version="1",
        capabilities=a2a_pb2.AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            a2a_pb2.AgentSkill(id="shout", name="shout", description="Shouts.", tags=["shout"])
        ],
    )
    handler = DefaultRequestHandler(Shouter(), InMemoryTaskStore(), card)
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), server)
    await server.start()
    body = json.dumps(json_format.MessageToDict(card)).encode()

    async def card_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    cards = CardServer(card_app, "127.0.0.1:0")
    await cards.start()
    try:
        yield Remote(f"http://127.0.0.1:{cards.port}", tokens)
    finally:
        await cards.stop()
        await server.stop(0)


async def test_an_agent_asks_a_remote_a2a_agent_as_a_tool(
    remote: Remote,
    devmodel: DevModelServer,
    admin: DevModelAdmin,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOUTER_TOKEN", TOKEN)
    entry = {"name": "shouter", "card_url": remote.card_url, "token_env": "SHOUTER_TOKEN"}
    live = await start_live_server(tmp_path / "remote.db", devmodel.base_url, a2a_agents=(entry,))
    try:
        listed = {t.name: t for t in (await live.stub.ListTools(pb.ListToolsRequest())).tools}
        assert listed["a2a__shouter"].source == tool_pb2.TOOL_SOURCE_A2A
        await admin.set_rules(
            [
                {"match": {"last_role": "tool"}, "reply": {"echo_tool_results": True}},
                {
                    "reply": {
                        "tool_calls": [{"name": "a2a__shouter", "arguments": {"message": "hello"}}]
                    }
                },
            ]
        )
        await live.stub.CreateAgent(
            pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="asker", tools=["a2a__shouter"]))
        )
        events = await run_turn(live.stub, "ask the shouter", "asker")
        [finished] = [e.tool_result for e in events if e.HasField("tool_result")]
        assert finished.output.startswith("[A2A task ") and not finished.error
        assert finished.output.endswith("]\nHELLO")
        assert final_of(events).output.endswith("HELLO")
        assert remote.tokens and set(remote.tokens) == {f"Bearer {TOKEN}"}
        # A remote failure is a tool error the model sees.
        await admin.set_rules(
            [
                {"match": {"last_role": "tool"}, "reply": {"echo_tool_results": True}},
                {
                    "reply": {
                        "tool_calls": [{"name": "a2a__shouter", "arguments": {"message": "fail"}}]
                    }
                },
            ]
        )
        events = await run_turn(live.stub, "make it fail", "asker")
        [finished] = [e.tool_result for e in events if e.HasField("tool_result")]
        assert finished.error == "the remote agent 'shouter' failed: no can do"
        sent = (await admin.requests())[-1]["body"]["messages"][-1]
        assert sent["role"] == "tool" and "no can do" in sent["content"]
    finally:
        await live.stop()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "Bad", "card_url": "http://x"}, "must match"),
        ({"name": "ok", "card_url": "file:///etc/passwd"}, "http:// or https://"),
        ({"name": "ok", "card_url": "http://x", "timeout_seconds": 0}, "timeout_seconds"),
        ({"name": "ok", "card_url": "http://x", "headers": {}}, "unknown keys"),
    ],
)
def test_bad_remote_agent_configuration_is_refused(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_remote_agents([entry])
    with pytest.raises(ValueError, match="unique"):
        parse_remote_agents([{"name": "a", "card_url": "http://x"}] * 2)


async def test_an_unreachable_remote_agent_is_a_tool_error(
    devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    from helpers import free_port

    entry = {"name": "gone", "card_url": f"http://127.0.0.1:{free_port()}"}
    live = await start_live_server(tmp_path / "gone.db", devmodel.base_url, a2a_agents=(entry,))
    try:
        await admin.set_rules(
            [
                {"match": {"last_role": "tool"}, "reply": {"echo_tool_results": True}},
                {"reply": {"tool_calls": [{"name": "a2a__gone", "arguments": {"message": "x"}}]}},
            ]
        )
        await live.stub.CreateAgent(
            pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="asker", tools=["a2a__gone"]))
        )
        events = await run_turn(live.stub, "ask", "asker")
        [finished] = [e.tool_result for e in events if e.HasField("tool_result")]
        assert finished.error.startswith("the remote agent 'gone' cannot be reached: ")
        assert final_of(events).output  # the turn went on: the model saw the error
    finally:
        await live.stop()
