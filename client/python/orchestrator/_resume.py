"""Resuming a turn after a dropped connection (a balancer restart, a flaky network).

A turn started with `resume=True` (the default) asks the server to keep its run for
RESUME_WINDOW_SECONDS after the connection drops, and carries a request id. When the
connection fails (UNAVAILABLE, INTERNAL or UNKNOWN without an ErrorInfo reason: gRPC's
transport, not the service, whose errors all carry one):
- before the run's RunStarted arrived, the start is sent again with the same request id
  (the server runs it once: a repeat follows or replays the run it started);
- after, the run is followed (FollowRun) from the last sequence number seen, so every
  event arrives exactly once; a client-tool call the run still waits for is sent again
  and answered with the result already computed, if there is one.
Attempts back off from 50 ms to 2 s, at most ATTEMPTS in a row without an event between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from ._calls import _RunCall
from .errors import OrchestratorError

RESUME_WINDOW_SECONDS = 30.0
ATTEMPTS = 8
FIRST_DELAY = 0.05
MAX_DELAY = 2.0


# Status codes a broken connection shows up as (gRPC's own, without the ErrorInfo
# reason every error of the service carries): an idle stream cut under a chat reports
# INTERNAL or UNKNOWN when it is next used.
_CONNECTION_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


def transient(error: BaseException) -> bool:
    """Whether a failed read is the connection's, not the service's answer."""
    return (
        isinstance(error, OrchestratorError)
        and error.code in _CONNECTION_CODES
        and not error.reason
    )


@dataclass
class Resumption:
    """What a turn needs to resume: a FollowRun call, and CancelRun for `aclose`."""

    follow: Callable[[str, int], _RunCall]
    cancel_run: Callable[[str], Awaitable[object]]
    attempts: int = 0

    async def pause(self, error: BaseException) -> None:
        """Wait before the next attempt; raise `error` when attempts ran out."""
        self.attempts += 1
        if self.attempts > ATTEMPTS:
            raise error
        await asyncio.sleep(min(FIRST_DELAY * 2 ** (self.attempts - 1), MAX_DELAY))

    def succeeded(self) -> None:
        """An event arrived: the connection works again."""
        self.attempts = 0
