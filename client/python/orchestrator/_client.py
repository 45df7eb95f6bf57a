"""`AsyncOrchestrator`: the asyncio client, shaped like the original in-process Orchestrator.

Its calls are written once, grouped by resource: agents (`_agents`), runs, chats and
sessions (`_runs`), teams and pipelines (`_teams`), over the channel plumbing of
`_connection`. The blocking `Orchestrator` (`_sync`) is derived from this class.
"""

from __future__ import annotations

from ._access import AccessCalls
from ._agents import AgentCalls
from ._collaboration import collect_pipeline, collect_team
from ._connection import Metadata
from ._runs import RunCalls, cancelled_error
from ._teams import TeamCalls
from ._updates import UNSET, _Unset
from ._usage import UsageCalls

__all__ = [
    "UNSET",
    "AsyncOrchestrator",
    "Metadata",
    "_Unset",
    "cancelled_error",
    "collect_pipeline",
    "collect_team",
]


class AsyncOrchestrator(AgentCalls, RunCalls, TeamCalls, AccessCalls, UsageCalls):
    """An asyncio client of orchestrator.v1.OrchestratorService.

    `tenant` is sent as `x-tenant-id` with every call, `metadata` too; `token` (an API
    key or a JWT; default: the ORCHESTRATOR_TOKEN variable) as `authorization: Bearer`;
    `credentials` makes the channel TLS (`tls_credentials(...)` builds them from PEM
    files, with a client certificate for mutual TLS); `timeout` is the default deadline
    in seconds of every call (runs included, chats excepted); `retry_unavailable`
    retries idempotent calls that failed with UNAVAILABLE (the server restarting, a
    dropped connection). Use it as
    `async with AsyncOrchestrator(...) as client`, or `close()` it.
    """
