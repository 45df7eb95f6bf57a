"""The audit trail: every mutating call, every run start and every authentication or
authorization failure, kept in the store for the tenant's admins and, if the operator
wants, written to the log as JSON lines.

Records are written in batches by one task: a call does not wait for its record's
transaction, only for room in a bounded buffer (so a flood of calls slows down rather
than losing records or growing memory without bound). A batch is stored up to
BATCH_WINDOW_S after its first record (at once when a batch is full, or when someone
lists the trail here: a listing includes every record of this process's calls that
ended before it). Other replicas of a shared store cannot be hurried: a listing waits
OTHER_REPLICAS_WAIT_S, time for their batches of the calls that ended before it to be
stored (a write slower than that shows in the next listing). As before, records still in
the buffer when the process is killed are lost: those of the last BATCH_WINDOW_S at
most, besides any waiting for a store that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict

from .access import Caller, current_caller
from .access_port import AccessStore, AuditEvent, AuditQuery
from .errors import InvalidArgumentError, OrchestratorError, UnavailableError
from .pagination import PageTokens, scope_of
from .types import Page

# While the store is unavailable a batch is retried every second, for up to a minute.
STORE_RETRIES = 60
RETRY_SECONDS = 1.0
log = logging.getLogger("orchestrator.audit")
BATCH = 500
# How long a batch waits for more records. The records of calls close together go out in
# one transaction, and the write of a run's start record (on the store's writer thread)
# no longer competes with the run's own model request for the interpreter: ~0.15-0.2 ms
# of the first delta at c=1.
BATCH_WINDOW_S = 0.01
# How long a listing waits for the records before it to be stored (the store may be down).
LIST_WAITS_S = 2.0
# With a store shared by replicas: how long a listing waits for theirs (see above). A
# batch is stored ~1-2 ms after its window; the rest is room for a replica whose loop or
# database is busy (30 ms missed 1 call in a few hundred under the test suite's load).
# Listings are an operator's occasional reads: 0.1 s is not felt.
OTHER_REPLICAS_WAIT_S = 0.1
PRUNE_INTERVAL = 3600.0


def _plain_outcome(error: BaseException | None) -> tuple[str, str]:
    """OK, or the error's class and reason (the API layer passes status code names)."""
    if error is None:
        return "OK", ""
    if isinstance(error, OrchestratorError):
        return type(error).__name__, error.reason.value
    return type(error).__name__, ""


class AuditTrail:
    """Buffers audit events, writes them in batches, lists and prunes them."""

    def __init__(
        self,
        store: AccessStore,
        tokens: PageTokens,
        *,
        retention_days: float = 90.0,
        to_log: bool = False,
        max_buffered: int = 10_000,
        clock: Callable[[], float] = time.time,
        outcome_of: Callable[[BaseException | None], tuple[str, str]] = _plain_outcome,
        shared: bool = False,
    ) -> None:
        self._outcome_of = outcome_of
        self._shared = shared
        self._store = store
        self._tokens = tokens
        self._retention = retention_days * 86400.0
        self._to_log = to_log
        self._buffer: asyncio.Queue[AuditEvent] = asyncio.Queue(max_buffered)
        self._clock = clock
        self._writer: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        # Records queued, and records the writer is done with (stored or given up).
        self._recorded = 0
        self._written = 0
        self._hurry = asyncio.Event()  # a listing waits: store the batch now
        self._batch_done = asyncio.Event()  # replaced after each batch

    def start(self) -> None:
        """Start the batch writer and the retention pruner."""
        self._writer = asyncio.create_task(self._write_batches(), name="audit writer")
        self._pruner = asyncio.create_task(self._prune_periodically(), name="audit pruner")

    async def record_call(
        self,
        method: str,
        resource: str,
        error: BaseException | None,
        caller: Caller | None = None,
    ) -> None:
        """Record a call that ended with `error` (None: success), of `caller` (default:
        the current caller)."""
        caller = caller or current_caller()
        outcome, reason = self._outcome_of(error)
        await self.record(
            AuditEvent(
                tenant=caller.tenant,
                time=self._clock(),
                principal=caller.principal,
                method=method,
                resource=resource,
                outcome=outcome,
                reason=reason,
                peer=caller.peer,
                authentication=caller.authentication,
            )
        )

    async def record(self, event: AuditEvent) -> None:
        """Queue an event (waiting for room when the buffer is full)."""
        if self._to_log:
            log.info("%s", json.dumps(asdict(event), separators=(",", ":")))
        await self._buffer.put(event)
        self._recorded += 1

    async def flush(self) -> None:
        """Wait until every queued event is stored."""
        self._hurry.set()
        await self._buffer.join()

    async def close(self) -> None:
        """Store what is queued, then stop."""
        if self._writer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self.flush()
        for task in (self._writer, self._pruner):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _write_batches(self) -> None:
        while True:
            batch = [await self._buffer.get()]
            if self._buffer.qsize() < BATCH - 1:  # a full batch goes out at once
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(BATCH_WINDOW_S):
                        await self._hurry.wait()
            self._hurry.clear()
            while len(batch) < BATCH and not self._buffer.empty():
                batch.append(self._buffer.get_nowait())
            try:
                await self._store_batch(batch)
            except Exception:
                log.exception("could not store %d audit events", len(batch))
            finally:
                for _ in batch:
                    self._buffer.task_done()
                self._written += len(batch)
                done, self._batch_done = self._batch_done, asyncio.Event()
                done.set()

    async def _caught_up(self) -> None:
        """Until every record queued here before now is stored (at most LIST_WAITS_S),
        and, with a shared store, other replicas' batches had time to be."""
        target = self._recorded
        loop = asyncio.get_running_loop()
        others_stored = loop.time() + (OTHER_REPLICAS_WAIT_S if self._shared else 0.0)
        if self._writer is not None and not self._writer.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LIST_WAITS_S):
                    while self._written < target:
                        self._hurry.set()
                        await self._batch_done.wait()
        if (left := others_stored - loop.time()) > 0:
            await asyncio.sleep(left)

    async def _store_batch(self, batch: list[AuditEvent]) -> None:
        """Store a batch, retrying while the store is unavailable (a database restart):
        the buffer holds later events meanwhile, and audited calls wait for room in it."""
        for attempt in range(STORE_RETRIES):
            try:
                await self._store.append_audit(batch)
                return
            except UnavailableError:
                if attempt == 0:
                    log.warning("the store is unavailable; %d audit events wait", len(batch))
                await asyncio.sleep(RETRY_SECONDS)
        log.error("dropped %d audit events: the store stayed unavailable", len(batch))

    async def _prune_periodically(self) -> None:
        while True:
            await self.prune()
            await asyncio.sleep(PRUNE_INTERVAL)

    async def prune(self) -> int:
        """Delete events older than the retention period, a batch at a time."""
        before = self._clock() - self._retention
        total = 0
        while (deleted := await self._store.prune_audit(before, 1000)) > 0:
            total += deleted
        return total

    async def list(
        self,
        tenant: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        start_time: float | None = None,
        end_time: float | None = None,
        principal: str = "",
        method: str = "",
    ) -> Page[AuditEvent]:
        """A page of the tenant's events, newest first, filtered."""
        for name, value in (("principal", principal), ("method", method)):
            if len(value) > 512:
                raise InvalidArgumentError.for_field(name, "must be at most 512 characters")
        scope = scope_of("audit", tenant, start_time or 0, end_time or 0, principal, method)

        def fetch(after: list[str | int | float] | None, limit: int) -> Awaitable[list[AuditEvent]]:
            query = AuditQuery(
                limit,
                before=int(after[0]) if after else None,
                start_time=start_time,
                end_time=end_time,
                principal=principal,
                method=method,
            )
            return self._store.list_audit(tenant, query)

        await self._caught_up()
        return await self._tokens.fetch_page(
            scope, page_size, page_token, fetch, lambda e: [e.sequence]
        )
