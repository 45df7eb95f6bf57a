"""Prometheus metrics: runs by outcome, tokens and first-delta latency."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest

from helpers import LiveServer, run_turn
from orchestrator.v1 import agent_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator_devmodel import DevModelAdmin


def sample(text: str, name: str) -> float:
    """The value of one exposition line `name value` (labels included in `name`)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


async def test_metrics_count_runs_and_tokens(live: LiveServer, admin: DevModelAdmin) -> None:
    port = live.app.metrics.serve("127.0.0.1:0")
    await live.stub.CreateAgent(pb.CreateAgentRequest(agent=agent_pb2.Agent(agent_id="m")))
    for i in range(3):
        await run_turn(live.stub, "one two three", "m", session_id=f"s{i}")
    await admin.set_rules([{"reply": {"error": {"status": 500}}}])
    with pytest.raises(grpc.aio.AioRpcError):
        await run_turn(live.stub, "fails", "m")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())

    text = await asyncio.to_thread(scrape)
    assert sample(text, "orchestrator_runs_started_total") == 4
    assert sample(text, 'orchestrator_runs_finished_total{reason="OK",status="completed"}') == 3
    assert (
        sample(text, 'orchestrator_runs_finished_total{reason="MODEL_UNAVAILABLE",status="failed"}')
        == 1
    )
    assert sample(text, "orchestrator_runs_in_flight") == 0
    # "Echo: one two three" is 4 tokens, three times.
    assert sample(text, 'orchestrator_model_tokens_total{kind="completion"}') == 12
    assert sample(text, "orchestrator_time_to_first_delta_seconds_count") == 3
