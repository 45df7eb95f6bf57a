"""Large texts stay readable (issue 12): after several 1 MB turns, the default pages of
ListRuns and ListMessages still fit a client's default 4 MiB limit and reach every item."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from helpers import LiveServer, error_info, peak_memory, run_turn, start, start_live_server
from orchestrator.v1 import agent_pb2, run_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin, DevModelProcess


async def test_listings_of_megabyte_turns_page_by_size(watched: LiveServer) -> None:
    await watched.stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="big")))
    for i in range(6):
        events = await run_turn(watched.stub, f"{i} " + "x" * 900_000, "big")
        assert events[-1].WhichOneof("event") == "run_completed"
    run_ids: list[str] = []
    token = ""
    while True:
        page = await watched.stub.ListRuns(pb.ListRunsRequest(agent_id="big", page_token=token))
        run_ids += [r.run_id for r in page.runs]
        if not (token := page.next_page_token):
            break
    assert len(set(run_ids)) == 6
    messages = 0
    token = ""
    while True:
        request = pb.ListMessagesRequest(agent_id="big", page_token=token)
        listed = await watched.stub.ListMessages(request)
        messages += len(listed.messages)
        if not (token := listed.next_page_token):
            break
    assert messages == 12


async def test_a_response_over_the_send_limit_is_a_clear_error(
    devmodel: DevModelProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = await start_live_server(
        tmp_path / "small.db", devmodel.base_url, max_response_bytes=64 * 1024
    )
    try:
        await live.stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="echo")))
        # Input and echoed output fit one message each, but not together in the record.
        events = await run_turn(live.stub, "w" * 40_000, "echo")
        run_id = events[0].run_id
        with pytest.raises(grpc.aio.AioRpcError) as too_large:
            await live.stub.GetRun(pb.GetRunRequest(run_id=run_id))
        assert too_large.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info = error_info(too_large.value)
        assert info.reason == "RESPONSE_TOO_LARGE" and info.metadata["limit"] == "65536"
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await live.stop()


async def test_megabyte_starts_written_without_reading_do_not_pile_up(
    watched: LiveServer, admin: DevModelAdmin
) -> None:
    """Abuse: a stream keeps a turn running and writes 1 MB starts without reading. The
    server holds at most the pending-start limit of them, then ends the stream (before,
    an unbounded queue grew by the whole of what was written: ~2 GB for 2,000)."""
    await admin.set_rules([{"match": {"contains": "forever"}, "reply": {"stall": True}}])
    await watched.stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="slow")))
    call = watched.stub.Run()
    await call.write(start("forever", "slow"))
    await call.read()
    big = start("x" * 1_000_000, "slow")  # one request object: the client allocates it once
    with peak_memory() as memory:
        # One start more than may wait (writing past the end of the call would fail
        # locally and hide the status the server sent).
        for _ in range(watched.app.settings.max_pending_turns + 1):
            await call.write(big)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while await call.read() is not grpc.aio.EOF:
                pass
    assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(ended.value).reason == "TOO_MANY_PENDING_TURNS"
    # The waiting starts' text (33 MB at most) and nothing more is held at once.
    assert memory.bytes < 50 * 1024 * 1024


async def test_a_response_streaming_endless_tool_calls_ends_the_turn(
    watched: LiveServer, admin: DevModelAdmin
) -> None:
    """Abuse: a model (or a hostile provider) streams thousands of tool calls; they are
    not assembled without bound: the turn fails with MODEL_OUTPUT_LIMIT."""
    calls = [{"name": "calculator", "arguments": {"expression": "1"}} for _ in range(1001)]
    await admin.set_rules([{"match": {"contains": "flood"}, "reply": {"tool_calls": calls}}])
    agent = agent_pb2.Agent(agent_id="flooded", tools=["calculator"])
    await watched.stub.CreateAgent(pb.CreateAgentRequest(agent=agent))
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await run_turn(watched.stub, "flood", "flooded")
    assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(failed.value)
    assert info.reason == "MODEL_OUTPUT_LIMIT" and info.metadata["limit"] == "1000000"
    listed = await watched.stub.ListRuns(pb.ListRunsRequest(agent_id="flooded"))
    assert [run_pb2.RunStatus.Name(r.status) for r in listed.runs] == ["RUN_STATUS_FAILED"]
