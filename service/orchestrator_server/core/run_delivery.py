"""How a run's events reach its caller and its followers, and what the caller leaving
means.

The caller's stream drains the run's task stream itself (no extra task on the hot path)
and every event it takes is numbered into the run's feed first, so followers see exactly
the sequence the caller saw. When the caller goes away:
- a run started with "continue on disconnect" is detached: a task of its own goes on
  draining the run into its feed (and so into the journal) until the run ends; the
  caller's deadline, if it had one, still ends the run;
- a run started with a resume window is detached the same way, but cancelled ("the
  client went away") once nobody has followed it for the window: the caller is expected
  back (FollowRun) after a dropped connection, a caller that died is not;
- any other run is cancelled, as before; what it emits while it stops (its RunCancelled)
  is still put into its feed, so its journal ends as the run did.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import cast

from . import events as ev
from .active_runs import ActiveRun, ActiveRuns, deadline_passed
from .errors import OrchestratorError, Reason
from .journal import Journal
from .run_feed import RunFeed
from .task_stream import TaskStream
from .tool_calls import ClientToolBridge
from .types import TurnRequest

log = logging.getLogger(__name__)


class Delivery:
    """The events of one run for its caller, numbered into its feed."""

    def __init__(
        self,
        active: ActiveRun,
        feed: RunFeed,
        *,
        detachable: Callable[[], bool],
        resume_window: float,
        on_abandon: Callable[[], None],
        keep: Callable[[asyncio.Task[None]], None],
        deadline: float | None = None,
    ) -> None:
        assert active.stream is not None
        self._active = active
        self._stream: TaskStream[object] = active.stream
        self._feed = feed
        self._detachable = detachable
        self._resume_window = resume_window
        self._on_abandon = on_abandon
        self._keep = keep
        self._deadline = deadline
        self.detached = False

    async def events(self) -> AsyncGenerator[ev.RunEvent, None]:
        """The run's events (and its child runs'), until it ends; raises its error."""
        try:
            async with aclosing(self._stream.events(on_abandon=self._abandon)) as items:
                async for item in items:
                    yield self._take(item)
        except (GeneratorExit, asyncio.CancelledError):
            if not self.detached:
                self._publish_leftovers()
            raise
        except BaseException as error:
            self._feed.finish(error)
            raise
        self._feed.finish()

    def _take(self, item: object) -> ev.RunEvent:
        """An item of the run's stream into its feed: its own event, numbered now, or a
        child run's (already numbered by its own run)."""
        if isinstance(item, ev.RunEvent):
            self._feed.publish_child(item)
            return item
        return self._feed.publish(cast(ev.EventBody, item))

    async def _leftovers_once_stopped(self) -> None:
        await asyncio.gather(asyncio.shield(self._stream.task), return_exceptions=True)
        self._publish_leftovers()

    def _abandon(self) -> bool:
        """The caller went away while the run goes on: detach it (True) or let it be
        cancelled (False)."""
        if not self._detachable():
            self._on_abandon()
            return False
        self.detached = True
        task = asyncio.create_task(self._drain(), name=f"detached {self._feed.run_id}")
        self._keep(task)
        if self._resume_window:
            self._feed.touched()  # the window starts now
            watch = asyncio.create_task(self._cancel_unless_followed(self._resume_window))
            task.add_done_callback(lambda _: watch.cancel())
        if self._deadline is not None:
            left = max(self._deadline - time.monotonic(), 0.0)
            handle = asyncio.get_running_loop().call_later(left, self._deadline_passed)
            task.add_done_callback(lambda _: handle.cancel())
        return True

    async def _cancel_unless_followed(self, window: float) -> None:
        """Cancel the detached run once nobody has followed it for `window` seconds."""
        feed = self._feed
        while not feed.ended:
            idle = 0.0 if feed.followers else time.monotonic() - feed.last_followed
            if idle >= window:
                self._active.cancel(Reason.RUN_CANCELLED, "the client went away")
                return
            await asyncio.sleep(min(window - idle, 1.0))

    def _deadline_passed(self) -> None:
        self._active.cancel(Reason.DEADLINE_EXCEEDED, "the caller's deadline passed")

    async def _drain(self) -> None:
        """Take the detached run's events into its feed until it ends."""
        try:
            async with aclosing(self._stream.events()) as items:
                async for item in items:
                    self._take(item)
        except asyncio.CancelledError:
            self._publish_leftovers()
            raise
        except OrchestratorError as error:
            self._feed.finish(error)
        except Exception as error:
            log.exception("detached run %s failed", self._feed.run_id)
            self._feed.finish(error)
        else:
            self._feed.finish()

    def _publish_leftovers(self) -> None:
        """The run was stopped without its caller: what it emitted while it stopped."""
        if not self._stream.task.done():
            # Cancelled again while it was stopping: its feed ends once it has stopped.
            self._keep(asyncio.create_task(self._leftovers_once_stopped()))
            return
        items, error = self._stream.leftovers()
        for item in items:
            self._take(item)
        self._feed.finish(error)


def open_delivery(
    journal: Journal,
    runs: ActiveRuns,
    active: ActiveRun,
    request: TurnRequest,
    deadline: float | None,
    bridge: ClientToolBridge | None,
) -> Delivery:
    """The run's feed (for followers and the journal) and its delivery to the caller,
    with what the caller leaving means for it (the request's disconnect policy)."""
    run = active.run
    feed = journal.open_feed(
        active.tenant, run.run_id, run.agent_id, run.session_id, run.parent_run_id
    )
    if bridge is not None:
        feed.waiting_calls, feed.deliver = bridge.waiting, bridge.deliver
    active.feed = feed

    def detachable() -> bool:
        return (
            (request.continue_on_disconnect or request.resume_window > 0)
            and not runs.stopping
            and not deadline_passed(deadline)
        )

    def abandoned() -> None:
        runs.abandoned(active, deadline_passed(deadline))

    return Delivery(
        active,
        feed,
        detachable=detachable,
        resume_window=0.0 if request.continue_on_disconnect else request.resume_window,
        on_abandon=abandoned,
        keep=runs.keep_detached,
        deadline=deadline,
    )
