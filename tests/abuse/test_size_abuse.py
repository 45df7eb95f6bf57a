"""Large texts stay readable (issue 12): after several 1 MB turns, the default pages of
ListRuns and ListMessages still fit a client's default 4 MiB limit and reach every item."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from helpers import LiveServer, error_info, run_turn, start_live_server
from orchestrator.v1 import agent_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelServer


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
    devmodel: DevModelServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
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
