"""`make bench`: the orchestrator against the limits of its stack and against its peer.

Everything runs on this machine in one invocation; every server under test is a
subprocess (the echo server, the development model server, `orchestrator serve`), the
load generator and the in-process peer (the OpenAI Agents SDK) run here. Each figure is
the median over `--repeats` measurements of `--duration` seconds, taken in interleaved
rounds (A B C, A B C, ...) so that a noisy neighbour hits every figure alike; compare
the ratios, which are measured in the same run.

Sections (`--only a,b`):
  limits  bare grpc.aio bidi stream (1 request -> 20 messages), bare unary echo, bare
          openai AsyncOpenAI streaming calls (20 tokens) to the dev model server;
  runs    `Run` through the orchestrator with persisted memory: a fresh session per run
          and one session per worker (history grows), c=1 and c=32; runs/s, tokens/s,
          time to first delta (client-side, from sending the start to the first delta);
  peer    OpenAI Agents SDK `Runner.run_streamed` in process, with and without
          `SQLiteSession`, c=32;
  agents  CreateAgent / GetAgent / ListAgents QPS at 16 in flight vs the bare unary echo;
  scale   100k agents + 1M messages (generated once, cached in bench-results/): start to
          SERVING, ListAgents page p50, idle RSS; 1,000 concurrent Run streams at 1 s
          model latency;
  team    RunTeam fan-out (8 members at 200 ms) -- skipped while the RPC does not exist;
  fairness  tenant B's time to first delta (p50, p99) alone and while tenant A holds 5,000
          Run streams on the same provider (its default max_concurrency; A's model calls
          2.5-7.5 s, `--fair-latency-ms` sets their mean; B's immediate); A's streams
          come from a subprocess;
  tracing the previous build, this build with tracing off and with tracing on (OTLP to a
          local collector): Run c=32 with memory, GetAgent c=16.

    .venv/bin/python scripts/bench.py [--quick] [--only runs,peer] [--profile]
        [--fair-latency-ms 5000]

Writes bench-results/results.json, bench-results/bench.png (copied to docs/bench.png
by a full run of every section), server logs in bench-results/logs/, and with
`--profile` py-spy profiles of the orchestrator (bench-results/profile-*.txt).

The code is in scripts/benchlib/ (its __init__ lists the modules); this file only runs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `make bench` runs this file as a script, so only scripts/ is on sys.path; the repository
# root makes the modules importable as scripts.benchlib, the name mypy checks them under.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from scripts.benchlib.cli import main

if __name__ == "__main__":
    sys.exit(main(__doc__.splitlines()[0] if __doc__ else None))
