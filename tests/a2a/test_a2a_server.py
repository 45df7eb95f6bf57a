"""A2A (issue 17): the agents served over `lf.a2a.v1.A2AService` on the server's gRPC port,
driven by a2a-sdk's own client (card from the HTTP endpoint, gRPC transport): send,
stream, get, list, cancel, subscribe after the stream went away; errors in the A2A
domain; and the same tenants and owners as the native API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.types import a2a_pb2, a2a_pb2_grpc
from grpc_status import rpc_status

from helpers import LiveServer, start_live_server
from orchestrator.v1 import agent_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin, DevModelServer
from orchestrator_server.a2a_setup import CardServer, start_card_server

A2A = "a2a-protocol.org"  # the ErrorInfo domain of A2A errors


@dataclass
class A2AServer:
    live: LiveServer
    cards: CardServer

    @property
    def card_base(self) -> str:
        return f"http://127.0.0.1:{self.cards.port}"

    async def client(self, agent_id: str) -> Client:
        config = ClientConfig(
            grpc_channel_factory=grpc.aio.insecure_channel,
            supported_protocol_bindings=["GRPC"],
            streaming=True,
        )
        return await ClientFactory(config).create_from_url(f"{self.card_base}/agents/{agent_id}")

    def stub(self) -> a2a_pb2_grpc.A2AServiceStub:
        return a2a_pb2_grpc.A2AServiceStub(self.live.channel)


async def served(devmodel: DevModelServer, db: Path, **overrides: Any) -> A2AServer:
    live = await start_live_server(db, devmodel.base_url, **overrides)
    app = live.app
    auth = app.settings.auth.enabled
    cards = await start_card_server("127.0.0.1:0", app.agents, app.access.gate, live.address, auth)
    return A2AServer(live, cards)


@pytest.fixture
async def a2a(devmodel: DevModelServer, tmp_path: Path) -> AsyncIterator[A2AServer]:
    server = await served(devmodel, tmp_path / "a2a.db")
    try:
        yield server
    finally:
        await server.cards.stop()
        await server.live.stop()


async def make_agent(live: LiveServer, agent_id: str, **kwargs: Any) -> None:
    agent = agent_pb2.Agent(agent_id=agent_id, **kwargs)
    await live.stub.CreateAgent(pb.CreateAgentRequest(agent=agent))


def message(text: str, context_id: str = "", **kwargs: Any) -> a2a_pb2.SendMessageRequest:
    parts = [a2a_pb2.Part(text=text)]
    msg = a2a_pb2.Message(
        message_id=f"m-{text}", role=a2a_pb2.ROLE_USER, parts=parts, context_id=context_id
    )
    return a2a_pb2.SendMessageRequest(message=msg, **kwargs)


def answer_of(events: list[a2a_pb2.StreamResponse]) -> str:
    return "".join(
        part.text
        for e in events
        if e.HasField("artifact_update")
        for part in e.artifact_update.artifact.parts
    )


def error_of(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    from google.rpc import error_details_pb2

    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return error.code(), info.domain, info.reason
    raise AssertionError(f"no ErrorInfo in {status}")


async def test_the_card_describes_the_agent_and_its_grpc_interface(a2a: A2AServer) -> None:
    await make_agent(a2a.live, "helper", description="Answers questions.", labels={"team": "qa"})
    async with httpx.AsyncClient() as http:
        card = (await http.get(f"{a2a.card_base}/agents/helper/.well-known/agent-card.json")).json()
        missing = await http.get(f"{a2a.card_base}/agents/nobody/.well-known/agent-card.json")
        no_default = await http.get(f"{a2a.card_base}/.well-known/agent-card.json")
    assert card["name"] == "helper" and card["description"] == "Answers questions."
    [interface] = card["supportedInterfaces"]
    assert interface == {
        "url": a2a.live.address,
        "protocolBinding": "GRPC",
        "tenant": "helper",
        "protocolVersion": "1.0",
    }
    capabilities = {"streaming": True, "pushNotifications": False, "extendedAgentCard": False}
    assert card["capabilities"] == capabilities
    assert card["skills"][0]["tags"] == ["team=qa"]
    assert "securitySchemes" not in card  # authentication is off on this server
    assert missing.status_code == 404 and missing.json()["error"] == "AGENT_NOT_FOUND"
    assert no_default.status_code == 404 and no_default.json()["error"] == "NO_DEFAULT_AGENT"


async def test_stream_get_and_list_a_task(a2a: A2AServer, admin: DevModelAdmin) -> None:
    await make_agent(a2a.live, "helper")
    client = await a2a.client("helper")
    events = [e async for e in client.send_message(message("hello there"))]
    first = events[0]
    assert first.HasField("task")
    task = first.task
    assert task.status.state == a2a_pb2.TASK_STATE_WORKING
    assert task.context_id.startswith("ctx-")  # a new context for a message without one
    assert task.history[0].parts[0].text == "hello there"
    assert answer_of(events) == "Echo: hello there"
    updates = [e.artifact_update for e in events if e.HasField("artifact_update")]
    assert not updates[0].append and all(u.append for u in updates[1:])
    assert updates[-1].last_chunk and not any(u.last_chunk for u in updates[:-1])
    assert events[-1].status_update.status.state == a2a_pb2.TASK_STATE_COMPLETED
    # The task is the run: GetTask and the native GetRun agree.
    got = await client.get_task(a2a_pb2.GetTaskRequest(id=task.id))
    assert got.status.state == a2a_pb2.TASK_STATE_COMPLETED
    assert got.artifacts[0].parts[0].text == "Echo: hello there"
    run = (await a2a.live.stub.GetRun(pb.GetRunRequest(run_id=task.id))).run
    assert run.agent_id == "helper" and run.session_id == task.context_id
    # A second message in the same context continues the conversation.
    more = [e async for e in client.send_message(message("and more", context_id=task.context_id))]
    assert answer_of(more) == "Echo: and more"
    prompt = (await admin.requests())[-1]["body"]["messages"]
    assert [m["content"] for m in prompt[-3:]] == ["hello there", "Echo: hello there", "and more"]
    listed = await client.list_tasks(a2a_pb2.ListTasksRequest(context_id=task.context_id))
    assert [t.id for t in listed.tasks] == [more[0].task.id, task.id]
    await client.close()


async def test_cancel_and_subscribe_after_the_stream_went_away(
    a2a: A2AServer, admin: DevModelAdmin
) -> None:
    await make_agent(a2a.live, "slow")
    await admin.set_rules([{"reply": {"text": "one two three four", "latency_ms": 1500}}])
    client = await a2a.client("slow")
    stream = client.send_message(message("take your time"))
    task = (await anext(stream)).task
    await stream.aclose()  # the caller goes away; the task goes on
    resumed = client.subscribe(a2a_pb2.SubscribeToTaskRequest(id=task.id))
    events = [e async for e in resumed]
    assert events[0].task.id == task.id  # a snapshot first
    assert answer_of(events) == "one two three four"
    assert events[-1].status_update.status.state == a2a_pb2.TASK_STATE_COMPLETED
    # Cancel a running task; a finished one cannot be.
    stream = client.send_message(message("never mind"))
    second = (await anext(stream)).task
    cancelled = await client.cancel_task(a2a_pb2.CancelTaskRequest(id=second.id))
    assert cancelled.status.state == a2a_pb2.TASK_STATE_CANCELED
    rest = [e async for e in stream]
    assert rest[-1].status_update.status.state == a2a_pb2.TASK_STATE_CANCELED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await a2a.stub().CancelTask(a2a_pb2.CancelTaskRequest(tenant="slow", id=task.id))
    assert error_of(caught.value) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "a2a-protocol.org",
        "TASK_NOT_CANCELABLE",
    )
    await client.close()


async def test_errors_are_in_the_a2a_domain(a2a: A2AServer) -> None:
    await make_agent(a2a.live, "helper")
    stub = a2a.stub()
    unsupported = grpc.StatusCode.FAILED_PRECONDITION
    cases = [
        (stub.GetTask(a2a_pb2.GetTaskRequest(tenant="helper", id="run_nope")),
         (grpc.StatusCode.NOT_FOUND, A2A, "TASK_NOT_FOUND")),
        (stub.CreateTaskPushNotificationConfig(a2a_pb2.TaskPushNotificationConfig()),
         (unsupported, A2A, "PUSH_NOTIFICATION_NOT_SUPPORTED")),
        (stub.GetExtendedAgentCard(a2a_pb2.GetExtendedAgentCardRequest()),
         (unsupported, A2A, "EXTENDED_AGENT_CARD_NOT_CONFIGURED")),
    ]  # fmt: skip
    for call, expected in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert error_of(caught.value) == expected
    old = (("a2a-version", "0.3"),)  # a version this server does not speak
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SendMessage(message("hi", tenant="helper"), metadata=old)
    assert error_of(caught.value) == (unsupported, A2A, "VERSION_NOT_SUPPORTED")
    file_part = a2a_pb2.Message(
        message_id="m", role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part(raw=b"\x00")]
    )
    bad = [
        a2a_pb2.SendMessageRequest(tenant="helper", message=file_part),
        message("hi", context_id="9f8e-Not-A-Session", tenant="helper"),
        a2a_pb2.SendMessageRequest(tenant="helper", message=a2a_pb2.Message(message_id="m")),
        message("hi", tenant="no_such_agent"),
    ]
    found = []
    for request in bad:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SendMessage(request)
        found.append(error_of(caught.value))
    assert found == [
        (grpc.StatusCode.INVALID_ARGUMENT, "a2a-protocol.org", "CONTENT_TYPE_NOT_SUPPORTED"),
        (grpc.StatusCode.INVALID_ARGUMENT, "a2a-protocol.org", "INVALID_PARAMS"),
        (grpc.StatusCode.INVALID_ARGUMENT, "a2a-protocol.org", "INVALID_PARAMS"),
        (grpc.StatusCode.NOT_FOUND, "orchestrator.v1", "AGENT_NOT_FOUND"),
    ]


async def test_tenants_and_owners_are_those_of_the_native_api(
    devmodel: DevModelServer, admin: DevModelAdmin, tmp_path: Path
) -> None:
    from access_helpers import key_identity

    from orchestrator_server.api.auth.config import AuthConfig

    server = await served(devmodel, tmp_path / "auth.db", auth=AuthConfig(enabled=True))
    live = server.live
    try:
        owner = await key_identity(live, "acme", "admin")
        runner = await key_identity(live, "acme", "runner")
        outsider = await key_identity(live, "globex", "admin")
        agent = agent_pb2.Agent(agent_id="helper")
        await owner.stub.CreateAgent(pb.CreateAgentRequest(agent=agent), **owner.kw())
        stub = server.stub()
        await admin.set_rules([{"reply": {"text": "slowly", "latency_ms": 3000}}])
        stream = stub.SendStreamingMessage(message("mine", tenant="helper"), **owner.kw())
        task = (await stream.read()).task
        for who in (outsider, runner):  # another tenant; another principal's session
            calls = [
                stub.GetTask(a2a_pb2.GetTaskRequest(tenant="helper", id=task.id), **who.kw()),
                stub.CancelTask(a2a_pb2.CancelTaskRequest(tenant="helper", id=task.id), **who.kw()),
            ]
            for call in calls:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call
                assert error_of(caught.value) == (grpc.StatusCode.NOT_FOUND, A2A, "TASK_NOT_FOUND")
            subscribe = stub.SubscribeToTask(
                a2a_pb2.SubscribeToTaskRequest(tenant="helper", id=task.id), **who.kw()
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await subscribe.read()
            assert error_of(caught.value) == (grpc.StatusCode.NOT_FOUND, A2A, "TASK_NOT_FOUND")
            listed = await stub.ListTasks(a2a_pb2.ListTasksRequest(tenant="helper"), **who.kw())
            assert task.id not in str(listed)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetTask(a2a_pb2.GetTaskRequest(id=task.id))  # no credentials
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # The owner still sees and cancels it.
        mine = await stub.CancelTask(a2a_pb2.CancelTaskRequest(id=task.id), **owner.kw())
        assert mine.status.state == a2a_pb2.TASK_STATE_CANCELED
        # The trail has the runner's refused cancel and the owner's, with the task's id.
        from orchestrator.v1 import access_pb2

        trail = await owner.stub.ListAuditEvents(
            access_pb2.ListAuditEventsRequest(method="CancelTask"), **owner.kw()
        )
        seen = {(e.principal, e.resource, e.outcome) for e in trail.events}
        assert (runner.principal, f"runs/{task.id}", "NOT_FOUND") in seen
        assert (owner.principal, f"runs/{task.id}", "OK") in seen
        stream.cancel()
        card_url = f"{server.card_base}/agents/helper/.well-known/agent-card.json"
        async with httpx.AsyncClient() as http:
            anonymous = await http.get(card_url)
            foreign = await http.get(card_url, headers=dict(outsider.metadata))
            card = await http.get(card_url, headers=dict(owner.metadata))
        assert anonymous.status_code == 401
        assert foreign.status_code == 404
        assert card.json()["securitySchemes"] == {
            "bearer": {
                "httpAuthSecurityScheme": {
                    "scheme": "Bearer",
                    "bearerFormat": "an API key of the tenant, or a JWT",
                }
            }
        }
    finally:
        await server.cards.stop()
        await live.stop()


async def test_send_message_answers_once_done_or_at_once(
    a2a: A2AServer, admin: DevModelAdmin
) -> None:
    await make_agent(a2a.live, "helper")
    stub = a2a.stub()
    done = (await stub.SendMessage(message("hi", tenant="helper"))).task
    assert done.status.state == a2a_pb2.TASK_STATE_COMPLETED
    assert done.artifacts[0].parts[0].text == "Echo: hi"
    assert [m.role for m in done.history] == [a2a_pb2.ROLE_USER, a2a_pb2.ROLE_AGENT]
    await admin.set_rules([{"reply": {"text": "later", "latency_ms": 800}}])
    config = a2a_pb2.SendMessageConfiguration(return_immediately=True)
    # The caller's deadline ends the call, not the task it left running.
    early = (
        await stub.SendMessage(message("bg", tenant="helper", configuration=config), timeout=0.5)
    ).task
    assert early.status.state == a2a_pb2.TASK_STATE_WORKING
    # It went on without its caller: follow it to its end.
    followed = stub.SubscribeToTask(a2a_pb2.SubscribeToTaskRequest(tenant="helper", id=early.id))
    events = [event async for event in followed]
    assert events[-1].status_update.status.state == a2a_pb2.TASK_STATE_COMPLETED
    # A finished task: GetTask, not a subscription.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubscribeToTask(
            a2a_pb2.SubscribeToTaskRequest(tenant="helper", id=done.id)
        ).read()
    assert error_of(caught.value) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        A2A,
        "UNSUPPORTED_OPERATION",
    )
    completed = await stub.ListTasks(
        a2a_pb2.ListTasksRequest(
            tenant="helper", status=a2a_pb2.TASK_STATE_COMPLETED, include_artifacts=True
        )
    )
    assert {t.id for t in completed.tasks} == {done.id, early.id}
    assert all(t.artifacts for t in completed.tasks)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetTask(a2a_pb2.GetTaskRequest(tenant="helper", id=done.id, history_length=-1))
    assert error_of(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, A2A, "INVALID_PARAMS")


def test_cards_are_not_served_beyond_loopback_without_authentication(tmp_path: Path) -> None:
    from helpers import dev_settings
    from orchestrator_server.access_setup import check_exposure

    settings = dev_settings(tmp_path / "x.db", "http://127.0.0.1:9/v1", a2a_address="0.0.0.0:8080")
    with pytest.raises(ValueError, match=r"would listen on 0\.0\.0\.0:8080 without authentication"):
        check_exposure(settings)
    check_exposure(
        dev_settings(tmp_path / "x.db", "http://127.0.0.1:9/v1", a2a_address="127.0.0.1:0")
    )
