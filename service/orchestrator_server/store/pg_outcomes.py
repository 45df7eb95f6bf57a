"""Ends of runs the database could not take when they happened (it was unreachable).

They are kept, at most MAX_UNRECORDED, and written when it is back: the heartbeat
flushes them, and the runs stay covered by this replica's lease meanwhile (no peer marks
them). A later end of the same run replaces the kept one. An end that cannot be written
as it was is written without its messages, as INTERRUPTED: a run must not stay RUNNING.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from ..core.errors import Reason, UnavailableError
from ..core.store_port import RunFencedError
from ..core.types import Message, Run, RunStatus

log = logging.getLogger(__name__)
MAX_UNRECORDED = 10_000
# Writes one end: (tenant, run, messages) -> the messages as stored.
WriteEnd = Callable[[str, Run, Sequence[Message]], Awaitable[list[Message]]]


class UnrecordedEnds:
    """Ends kept while the database was unreachable, by (tenant, run id)."""

    def __init__(self, write: WriteEnd) -> None:
        self._write = write
        self._ends: dict[tuple[str, str], tuple[Run, tuple[Message, ...]]] = {}

    async def write(self, tenant: str, run: Run, messages: Sequence[Message]) -> list[Message]:
        """Write an end; keep it if the database is unreachable (and raise that)."""
        key = (tenant, run.run_id)
        self._ends.pop(key, None)
        try:
            return await self._write(tenant, run, messages)
        except UnavailableError:
            if len(self._ends) >= MAX_UNRECORDED:
                log.error("dropping the unrecorded end of run %s: too many", run.run_id)
            else:
                self._ends[key] = (run, tuple(messages))
            raise

    async def flush(self) -> None:
        """Write the kept ends, oldest first; stop while the database is unreachable."""
        for key, (run, messages) in list(self._ends.items()):
            try:
                await self._write(key[0], run, messages)
            except RunFencedError:
                pass  # a peer's reaper recorded it INTERRUPTED meanwhile
            except UnavailableError:
                return  # next heartbeat
            except Exception as error:
                log.error("the end of run %s could not be written (%r)", run.run_id, error)
                bare = replace(
                    run,
                    status=RunStatus.INTERRUPTED,
                    error_reason=Reason.RUN_INTERRUPTED,
                    error_message="its end could not be recorded",
                )
                with contextlib.suppress(Exception):
                    await self._write(key[0], bare, ())
            self._ends.pop(key, None)
