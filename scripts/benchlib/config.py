"""Where the bench writes, what every section asks the model, and how long it measures."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from openai.types.chat import ChatCompletionMessageParam

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench-results"
LOGS = RESULTS / "logs"
WORK = RESULTS / "work"  # databases of this run, recreated by every run
PY = sys.executable
ECHO_SERVER = ROOT / "scripts" / "bench_echo_server.py"
SECTIONS = (
    "limits",
    "runs",
    "peer",
    "agents",
    "scale",
    "replicas",
    "follow",
    "team",
    "fairness",
    "tracing",
)

TOKENS = 20  # tokens per model answer, and messages per bare gRPC stream
SYSTEM = "You are a benchmark agent."
QUESTION = "Benchmark question, please answer."
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": QUESTION},
]
OP_TIMEOUT = 30.0  # seconds; every single call is bounded
ECHO_REQUEST = b"\n\x0bbench-agent" + b"\x00" * 16  # about a GetAgentRequest
NO_MODEL_URL = "http://127.0.0.1:9/v1"  # for servers that never call their model


@dataclass
class Mode:
    """How long and how often to measure."""

    duration: float
    repeats: int
    warmup: float
    scale_agents: int
    scale_messages: int
    streams: int
    serving_repeats: int
    list_pages: int
    fair_streams: int  # tenant A's streams in the fairness section
    fair_repeats: int  # each ramps A's streams up again (~1 min a repeat on 2 cores)
    fair_turns: int  # tenant B's turns per phase


# The fairness section keeps its 5,000 streams in quick mode too: that is its target.
FULL = Mode(2.0, 5, 1.0, 100_000, 1_000_000, 1000, 3, 200, 5000, 2, 40)
QUICK = Mode(1.0, 2, 0.3, 100_000, 1_000_000, 1000, 2, 50, 5000, 1, 30)
