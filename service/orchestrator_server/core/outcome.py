"""Recording how a run ended: exactly once, whatever is cancelled when.

Every run (a turn, a pipeline, a team run) ends with one outcome written to the store:
COMPLETED with its messages, or FAILED / CANCELLED / INTERRUPTED with what it had
produced. The write survives the cancellation of the task that makes it (a second
CancelRun, the caller going away while the end is being written): it runs on in its own
future, and a cancelled wait still waits for it before re-raising.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

from .store_port import Store
from .types import Message, Run, RunStatus, Usage

log = logging.getLogger(__name__)


class OutcomeRecorder:
    """Writes the end of one run once; `run` is the record as last known."""

    def __init__(self, store: Store, tenant: str, run: Run) -> None:
        self._store = store
        self.tenant = tenant
        self.run = run
        self.recorded = False

    async def completed(
        self, output: str, usage: Usage, messages: Sequence[Message] = ()
    ) -> list[Message]:
        """Record success with the turn's messages; the messages as stored."""
        final = self._final(RunStatus.COMPLETED, output, usage, "", "")
        stored = await self._write(final, messages)
        self.recorded = True
        self.run = final
        return stored

    async def ended(
        self,
        status: RunStatus,
        reason: str,
        message: str,
        *,
        output: str = "",
        usage: Usage | None = None,
    ) -> None:
        """Record a failure or cancellation, unless an outcome is recorded already. A
        failing write is logged, not raised: the caller is already handling an error."""
        if self.recorded:
            return
        self.recorded = True
        self.run = self._final(status, output, usage or Usage(), reason, message)
        try:
            await self._write(self.run, ())
        except Exception:
            log.exception("could not record the end of run %s", self.run.run_id)

    def _final(
        self, status: RunStatus, output: str, usage: Usage, reason: str, message: str
    ) -> Run:
        """The run's record as it ends now."""
        return replace(
            self.run,
            status=status,
            output=output,
            usage=usage,
            error_reason=reason,
            error_message=message,
            end_time=time.time(),
        )

    async def _write(self, final: Run, messages: Sequence[Message]) -> list[Message]:
        write = asyncio.ensure_future(self._store.finish_run(self.tenant, final, messages))
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            await asyncio.gather(write, return_exceptions=True)
            if not write.cancelled() and write.exception() is None:
                # Written after all: a cancel arriving now must not record a second end.
                self.recorded = True
            raise
