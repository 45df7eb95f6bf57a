"""Large texts stay readable (issue 12): after several 1 MB turns, the default pages of
ListRuns and ListMessages still fit a client's default 4 MiB limit and reach every item."""

from __future__ import annotations

from helpers import LiveServer, run_turn
from orchestrator.v1 import agent_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb


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
