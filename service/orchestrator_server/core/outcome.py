"""Recording how a run ended: exactly once, whatever is cancelled when.

Every run (a turn, a pipeline, a team run) ends with one outcome written to the store:
COMPLETED with its messages, or FAILED / CANCELLED / INTERRUPTED with what it had
produced. The write survives the cancellation of the task that makes it (a second
CancelRun, the caller going away while the end is being written): it runs on in its own
future, and a cancelled wait still waits for it before re-raising.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import replace

from .errors import OrchestratorError, Reason, UnavailableError
from .store_port import RunFencedError, Store
from .types import Message, Run, RunStatus, Usage

log = logging.getLogger(__name__)


class OutcomeRecorder:
    """Writes the end of one run once; `run` is the record as last known."""

    def __init__(self, store: Store, tenant: str, run: Run) -> None:
        self._store = store
        self.tenant = tenant
        self.run = run
        self.recorded = False
        self.stored: list[Message] = []  # the messages of a COMPLETED run, as stored

    async def completed(
        self, output: str, usage: Usage, messages: Sequence[Message] = ()
    ) -> list[Message]:
        """Record success with the turn's messages; the messages as stored."""
        return await self._write(self._final(RunStatus.COMPLETED, output, usage, "", ""), messages)

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
        except UnavailableError as error:
            log.warning("could not record the end of run %s: %s", self.run.run_id, error)
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
        """Write `final`; once it is written (even while the caller is being cancelled)
        it is the run's record, and no second outcome will be written."""
        write = asyncio.ensure_future(self._store.finish_run(self.tenant, final, messages))
        write.add_done_callback(lambda done: self._written(final, done))
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            await asyncio.gather(write, return_exceptions=True)
            raise
        except RunFencedError:
            self.recorded = True  # by a peer, which marked it INTERRUPTED
            raise UnavailableError(
                "the run was interrupted: the replica running it lost its lease",
                reason=Reason.RUN_INTERRUPTED,
                metadata={"run_id": final.run_id},
            ) from None

    def _written(self, final: Run, write: asyncio.Future[list[Message]]) -> None:
        if not write.cancelled() and write.exception() is None:
            self.recorded = True
            self.run = final
            self.stored = write.result()


async def despite_cancels(cleanup: Awaitable[None]) -> None:
    """Run `cleanup` to its end even if the calling task is cancelled again (and again)
    meanwhile: a run's outcome must be written and announced however often its task is
    cancelled. The extra cancels are absorbed; the caller re-raises what it handles."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    task.result()


def failure_of(error: Exception, what: str) -> tuple[Reason, str]:
    """The reason and message recorded when `what` (a run) failed with `error`; details
    of unexpected errors go to the log only."""
    if isinstance(error, OrchestratorError):
        return error.reason, error.message
    log.error("%s failed unexpectedly", what, exc_info=error)
    return Reason.INTERNAL_ERROR, "internal error"
