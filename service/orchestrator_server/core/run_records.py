"""Run records as callers see them: GetRun, ListRuns and CancelRun."""

from __future__ import annotations

from collections.abc import Awaitable

from .access import sees_owner, visible_owner
from .active_runs import ActiveRuns
from .coordination_port import Coordination, LocalCoordination
from .errors import InvalidArgumentError, NotFoundError, Reason
from .pagination import PageTokens, scope_of, text_bytes
from .peers import cancel_elsewhere
from .store_port import Store
from .types import Page, Run, RunQuery


class RunRecords:
    """Reads run records and cancels runs in flight."""

    def __init__(
        self,
        store: Store,
        tokens: PageTokens,
        active: ActiveRuns,
        coordination: Coordination | None = None,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._active = active
        self._coordination = coordination or LocalCoordination()

    async def get(self, tenant: str, run_id: str) -> Run:
        """One run, or RUN_NOT_FOUND (also for a run of a session the caller may not
        see)."""
        run = await self._store.get_run(tenant, run_id)
        if run is None or not sees_owner(run.owner):
            raise NotFoundError(
                f"run '{run_id[:80]}' not found",
                reason=Reason.RUN_NOT_FOUND,
                metadata={"run_id": run_id[:80]},
            )
        return run

    async def cancel(self, tenant: str, run_id: str) -> Run:
        """Cancel a queued or running run and return its record once its outcome is
        written; a finished run is returned unchanged. A run another replica executes is
        cancelled there (through the store's doorbell)."""
        run = await self.get(tenant, run_id)
        if not await self._active.cancel(tenant, run_id):
            await cancel_elsewhere(self._store, self._coordination, tenant, run)
        return await self.get(tenant, run_id)

    async def list(
        self,
        tenant: str,
        *,
        agent_id: str = "",
        session_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Run]:
        """Runs newest first, optionally of one agent and session."""
        if session_id and not agent_id:
            raise InvalidArgumentError.for_field("session_id", "requires agent_id")

        def fetch(after: list[str | int | float] | None, limit: int) -> Awaitable[list[Run]]:
            key = (float(after[0]), str(after[1])) if after else None
            query = RunQuery(limit, agent_id, session_id, key, owner=visible_owner())
            return self._store.list_runs(tenant, query)

        scope = scope_of("runs", tenant, agent_id, session_id)
        return await self._tokens.fetch_page(
            scope,
            page_size,
            page_token,
            fetch,
            lambda r: [r.create_time, r.run_id],
            lambda r: text_bytes(r.input, r.output, r.error_message),
        )
