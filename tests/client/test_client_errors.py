"""Each typed exception the service can be made to raise, and the reason -> class table."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from helpers import LiveServer, free_port
from orchestrator import (
    AgentAlreadyExists,
    AgentNotFound,
    AsyncOrchestrator,
    EtagMismatch,
    InvalidAgentId,
    InvalidArgument,
    InvalidPageSize,
    InvalidTenant,
    InvalidUpdateMask,
    Model,
    ModelUnavailable,
    NoDefaultAgent,
    NotFound,
    OrchestratorError,
    RunNotFound,
    RunStarted,
    SessionBusy,
    SessionNotFound,
    Unavailable,
    errors,
)
from orchestrator._channel import IDEMPOTENT_METHODS, service_config
from orchestrator.v1 import error_reason_pb2, orchestrator_service_pb2
from orchestrator_devmodel import DevModelAdmin


async def test_agent_not_found(client: AsyncOrchestrator) -> None:
    with pytest.raises(AgentNotFound) as raised:
        await client.get_agent("nobody")
    error = raised.value
    assert error.code is grpc.StatusCode.NOT_FOUND
    assert error.reason == "AGENT_NOT_FOUND"
    assert error.metadata == {"agent_id": "nobody"}
    assert str(error) == "AGENT_NOT_FOUND: agent 'nobody' not found"
    assert isinstance(error, NotFound) and isinstance(error, OrchestratorError)
    assert error.status is not None and error.status.code == code_pb2.NOT_FOUND
    for call in (
        client.delete_agent("nobody"),
        client.set_default_agent("nobody"),
        client.update_agent("nobody", description="x"),
        client.list_sessions("nobody"),
        client.run("hi", "nobody"),
    ):
        with pytest.raises(AgentNotFound):
            await call


async def test_agent_already_exists(client: AsyncOrchestrator) -> None:
    await client.create_agent("twin")
    with pytest.raises(AgentAlreadyExists) as raised:
        await client.create_agent("twin")
    assert raised.value.code is grpc.StatusCode.ALREADY_EXISTS
    assert raised.value.metadata["agent_id"] == "twin"


async def test_invalid_agent_id_names_the_field(client: AsyncOrchestrator) -> None:
    with pytest.raises(InvalidAgentId) as raised:
        await client.create_agent("Not Valid!")
    error = raised.value
    assert isinstance(error, InvalidArgument)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.field_violations] == ["agent.agent_id"]
    assert "lowercase" in error.field_violations[0].description


async def test_invalid_arguments(client: AsyncOrchestrator) -> None:
    await client.create_agent("echo")
    with pytest.raises(InvalidPageSize) as raised:
        await client.list_sessions("echo", page_size=5000)
    assert isinstance(raised.value, InvalidArgument)
    assert raised.value.metadata == {"max": "1000"}
    assert [v.field for v in raised.value.field_violations] == ["page_size"]
    with pytest.raises(InvalidArgument) as bad_temperature:
        await client.update_agent("echo", model=Model(temperature=9.0))
    assert bad_temperature.value.reason == "INVALID_ARGUMENT"
    assert [v.field for v in bad_temperature.value.field_violations] == ["agent.model.temperature"]
    with pytest.raises(InvalidUpdateMask):
        await client.update_agent("echo")  # no field given: an empty mask


async def test_etag_mismatch(client: AsyncOrchestrator) -> None:
    stale = await client.create_agent("versioned")
    await client.update_agent("versioned", description="changed")
    with pytest.raises(EtagMismatch) as raised:
        await client.update_agent("versioned", etag=stale.etag, description="lost update")
    assert raised.value.code is grpc.StatusCode.ABORTED
    with pytest.raises(EtagMismatch):
        await client.delete_agent("versioned", etag=stale.etag)
    assert (await client.get_agent("versioned")).description == "changed"


async def test_no_default_agent(client: AsyncOrchestrator) -> None:
    with pytest.raises(NoDefaultAgent) as raised:
        await client.get_default_agent()
    assert raised.value.code is grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(NoDefaultAgent):
        await client.run("to nobody")


async def test_session_busy(client: AsyncOrchestrator, admin: DevModelAdmin) -> None:
    await admin.set_rules(
        [{"match": {"contains": "slow"}, "reply": {"text": "ok", "latency_ms": 500}}]
    )
    await client.create_agent("echo")
    async with client.stream("slow one", "echo") as first:
        started = await anext(first)
        assert isinstance(started, RunStarted)
        # The session is held from the first turn's acceptance to its end.
        with pytest.raises(SessionBusy) as raised:
            await client.run("second", "echo")
        assert raised.value.metadata["active_run_id"] == started.run_id
        with pytest.raises(SessionBusy):
            await client.delete_session("echo")
        # Another session of the same agent is free.
        assert await client.run("elsewhere", "echo", session_id="other") == "Echo: elsewhere"
        assert [e async for e in first][-1].output == "ok"  # type: ignore[union-attr]


async def test_run_and_session_not_found(client: AsyncOrchestrator) -> None:
    with pytest.raises(RunNotFound) as raised:
        await client.get_run("run_missing")
    assert raised.value.metadata == {"run_id": "run_missing"}
    with pytest.raises(RunNotFound):
        await client.cancel_run("run_missing")
    await client.create_agent("echo")
    with pytest.raises(SessionNotFound):
        await client.delete_session("echo", "never-used")


async def test_model_unavailable(client: AsyncOrchestrator, admin: DevModelAdmin) -> None:
    await admin.set_rules([{"reply": {"error": {"status": 500, "should_retry": False}}}])
    await client.create_agent("echo")
    with pytest.raises(ModelUnavailable) as raised:
        await client.run("anything", "echo")
    assert raised.value.code is grpc.StatusCode.UNAVAILABLE
    assert isinstance(raised.value, Unavailable)
    run = (await client.list_runs("echo"))[0]
    assert run.error_reason == "MODEL_UNAVAILABLE"


async def test_invalid_tenant(live: LiveServer) -> None:
    async with AsyncOrchestrator(live.address, tenant="Bad Tenant!") as client:
        with pytest.raises(InvalidTenant):
            await client.list_agents()


async def test_unreachable_server_is_unavailable() -> None:
    port = free_port()  # nothing listens there: connections are refused
    async with AsyncOrchestrator(f"127.0.0.1:{port}", retry_unavailable=False) as client:
        with pytest.raises(Unavailable) as raised:
            await client.list_agents()
    assert raised.value.reason == ""  # the channel's own status carries no ErrorInfo
    assert raised.value.code is grpc.StatusCode.UNAVAILABLE


# -- the table, without a server ------------------------------------------------------------


class FakeCall(grpc.RpcError):
    """What grpc raises for a failed call: code, details and trailing metadata."""

    def __init__(self, code: grpc.StatusCode, message: str, *details: Any) -> None:
        self._code = code
        self._message = message
        packed = []
        for detail in details:
            any_detail = any_pb2.Any()
            any_detail.Pack(detail)
            packed.append(any_detail)
        status = status_pb2.Status(code=code.value[0], message=message, details=packed)
        self._trailers = (("grpc-status-details-bin", status.SerializeToString()),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> Any:
        return self._trailers


def test_every_reason_of_the_contract_has_a_class() -> None:
    reasons = {
        name
        for name in error_reason_pb2.ErrorReason.DESCRIPTOR.values_by_name
        if name != "ERROR_REASON_UNSPECIFIED"
    }
    # Reasons that only appear in results and tool error text, never in a status.
    not_statuses = {"AGENT_CALL_CYCLE", "AGENT_CALL_DEPTH_EXCEEDED", "MEMBER_TIMEOUT"}
    assert reasons - not_statuses <= set(errors.ERROR_BY_REASON)
    assert set(errors.ERROR_BY_REASON) <= reasons


def test_unknown_reason_falls_back_to_the_status_code() -> None:
    info = error_details_pb2.ErrorInfo(
        reason="SOMETHING_NEW", domain="orchestrator.v1", metadata={"k": "v"}
    )
    error = errors.from_rpc_error(FakeCall(grpc.StatusCode.NOT_FOUND, "gone", info))
    assert type(error) is errors.NotFound
    assert error.reason == "SOMETHING_NEW" and error.metadata == {"k": "v"}
    plain = errors.from_rpc_error(FakeCall(grpc.StatusCode.DATA_LOSS, "lost"))
    assert type(plain) is errors.InternalError and plain.message == "lost"


def test_error_info_of_another_domain_is_not_our_reason() -> None:
    info = error_details_pb2.ErrorInfo(reason="AGENT_NOT_FOUND", domain="example.com")
    error = errors.from_rpc_error(FakeCall(grpc.StatusCode.NOT_FOUND, "x", info))
    assert type(error) is errors.NotFound and error.reason == ""


def test_retry_config_names_real_methods() -> None:
    import json

    methods = orchestrator_service_pb2.DESCRIPTOR.services_by_name["OrchestratorService"].methods
    names = {m.name for m in methods}
    assert set(IDEMPOTENT_METHODS) <= names
    assert "CreateAgent" not in IDEMPOTENT_METHODS and "Run" not in IDEMPOTENT_METHODS
    config = json.loads(service_config(True))
    policy = config["methodConfig"][0]["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert json.loads(service_config(False)) == {"methodConfig": []}


def test_run_cancelled_by_deadline_is_deadline_exceeded() -> None:
    from orchestrator import DeadlineExceeded, RunCancelled
    from orchestrator._client import cancelled_error

    event = RunCancelled(
        run_id="r", sequence=3, agent_id="a", reason="DEADLINE_EXCEEDED", message="late"
    )
    error = cancelled_error(event)
    assert isinstance(error, DeadlineExceeded) and error.metadata == {"run_id": "r"}
    cancelled = cancelled_error(
        RunCancelled(run_id="r", sequence=3, agent_id="a", reason="RUN_CANCELLED")
    )
    assert isinstance(cancelled, errors.RunCancelledError)
