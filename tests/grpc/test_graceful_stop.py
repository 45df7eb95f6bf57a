"""A graceful stop ends every stream with a reason: runs in flight are interrupted before
the end of grace (a RunCancelled event, then UNAVAILABLE / RUN_INTERRUPTED), and open
streams start no new turn (UNAVAILABLE / SERVER_STOPPING)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from test_runs import make_agent

from helpers import LiveServer, drain, error_info, settled, start
from orchestrator.v1 import run_pb2
from orchestrator_devmodel import DevModelAdmin
from orchestrator_server.server import graceful_stop


async def test_a_run_cut_off_by_a_stop_ends_its_stream_with_a_reason(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await admin.set_rules([{"match": {"contains": "forever"}, "reply": {"stall": True}}])
    await make_agent(live, "stopper")
    call = live.stub.Run()
    await call.write(start("forever", "stopper"))
    run_id = (await call.read()).run_id
    stopping = asyncio.create_task(graceful_stop(live.app, live.server, 0.5))
    events: list[run_pb2.RunEvent] = []
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        while (event := await call.read()) is not grpc.aio.EOF:
            events.append(event)
    await stopping
    assert events[-1].WhichOneof("event") == "run_cancelled"
    assert events[-1].run_cancelled.reason == "RUN_INTERRUPTED"
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(ended.value).reason == "RUN_INTERRUPTED"
    run = await live.app.run_records.get("default", run_id)
    assert run.status.value == "interrupted"


async def test_an_open_stream_starts_no_turn_once_the_stop_began(
    live: LiveServer, admin: DevModelAdmin
) -> None:
    await make_agent(live, "idle")
    call = live.stub.Run()
    await call.write(start("hello", "idle"))
    while (await call.read()).WhichOneof("event") != "run_completed":
        pass
    live.app.runs.active.begin_shutdown()  # the first thing a graceful stop does
    await call.write(start("one more", "idle"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await drain(call)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(refused.value).reason == "SERVER_STOPPING"
    await graceful_stop(live.app, live.server, 1.0)
    runs = await live.app.run_records.list("default", agent_id="idle")
    assert len(runs.items) == 1


async def test_an_idle_open_stream_is_ended_with_a_reason_by_the_stop(live: LiveServer) -> None:
    """A client keeping a stream open between turns learns why it ended, instead of the
    transport cutting it at the end of grace."""
    await make_agent(live, "between")
    call = live.stub.Run()
    await call.write(start("hello", "between"))
    while (await call.read()).WhichOneof("event") != "run_completed":
        pass
    await assert_the_stop_ends_it_with_a_reason(live, call)


async def test_a_stream_that_sent_nothing_yet_is_ended_with_a_reason_by_the_stop(
    live: LiveServer,
) -> None:
    call = live.stub.Run()
    await call.wait_for_connection()
    # The server has the stream once it counts it open.
    await settled(lambda: live.app.runs.active._streams._total == 1, step_seconds=0.005)
    await assert_the_stop_ends_it_with_a_reason(live, call)


async def assert_the_stop_ends_it_with_a_reason(live: LiveServer, call: Any) -> None:
    """A graceful stop ends the open stream `call` with UNAVAILABLE / SERVER_STOPPING."""
    stopping = asyncio.create_task(graceful_stop(live.app, live.server, 0.5))
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await drain(call)
    await stopping
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(ended.value).reason == "SERVER_STOPPING"
