"""The modules of `make bench` (scripts/bench.py is the entry point).

config      paths, the request every section sends, FULL/QUICK measuring modes
results     figures (samples per repeat), targets, medians and percentiles
servers     the server subprocesses under test and the clients that talk to them
driver      the load driver: timed measurements at a concurrency, interleaved rounds
limits      bare gRPC and bare OpenAI-client figures (the stack's limits)
runs        orchestrated Run turns
peer        the OpenAI Agents SDK in process
agents      CreateAgent / GetAgent / ListAgents
throughput  limits, runs, peer and agents measured side by side
profiling   py-spy of the orchestrator, summarised per operation
scale_db    the cached 100k-agent / 1M-message database
scale       start-up, list latency, memory and 1,000 streams on that database
team        RunTeam fan-out
fairness    a tenant's first delta while another holds 5,000 streams on the provider
fair_load   that other tenant's streams, run as a subprocess
tracing     tracing off vs the previous build, tracing on vs off
targets     the performance targets, as ratios measured in the same run
report      the printed table and results.json
chart       bench.png
cli         the command line
"""

from __future__ import annotations

import os

# The environment as the bench was started, before the line below changes it: a server
# subprocess keeps GRPC_ENABLE_FORK_SUPPORT only when the user set it.
INHERITED_ENV = frozenset(os.environ)

# The load generator forks server subprocesses while gRPC is active; gRPC's fork handlers
# are not needed for fork+exec and only print warnings. This must run before any module
# of the package imports grpc, hence here.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
