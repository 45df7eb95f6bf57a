"""BusyPolicy INTERRUPT: the runs of a session in flight are cancelled for a newer turn.

Each is cancelled with reason RUN_SUPERSEDED and a message naming the run that
interrupts it (its partial output is kept, as for any cancel), here or on the replica
that executes it, and the new turn starts once their outcomes are recorded.
"""

from __future__ import annotations

import asyncio

from .active_runs import ActiveRuns
from .coordination_port import Coordination
from .peers import cancel_elsewhere, superseded
from .store_port import Store
from .types import Run, RunQuery

# Runs of the session looked at in the store (newest first): its running run and the
# runs queued behind it are its newest.
_SCAN = 100


async def supersede(
    active: ActiveRuns,
    store: Store,
    coordination: Coordination,
    session: tuple[str, str, str],
    owner: str,
    by_run_id: str,
) -> None:
    """Cancel the runs in flight of `session` (tenant, agent, session id) that belong to
    `owner` (the session's owner as the new turn's admission read it: a run of another
    principal, who claimed a new session a moment earlier, is not this caller's to
    cancel) for run `by_run_id`, and wait for their outcomes."""
    tenant, agent_id, session_id = session
    reason, message = superseded(by_run_id)
    local = [a for a in active.in_session(tenant, agent_id, session_id) if a.run.owner == owner]
    for run in local:
        run.cancel(reason, message)
    elsewhere: list[Run] = []
    if coordination.shared:
        known = {a.run.run_id for a in local}
        stored = await store.list_runs(tenant, RunQuery(_SCAN, agent_id, session_id))
        elsewhere = [
            r
            for r in stored
            if not r.status.is_final and r.run_id not in known and r.owner == owner
        ]
    await asyncio.gather(
        *(asyncio.shield(a.done) for a in local),
        *(
            cancel_elsewhere(store, coordination, tenant, r, superseded_by=by_run_id)
            for r in elsewhere
        ),
    )
