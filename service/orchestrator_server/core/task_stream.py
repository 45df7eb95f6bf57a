"""One primitive for "run this work in its own task and stream what it emits".

Turns, pipelines and team runs all execute in a task of their own and hand their events
to one consumer through a channel: a cancel (a cancel message, `CancelRun` from another
connection, a member timeout) can then stop the work without stopping the consumer's
stream, and parallel participants can emit from several tasks at once. When the consumer
goes away first (disconnect, deadline, server stop), the work is cancelled and waited
for, so that its outcome is recorded before the consumer's call returns.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
Emit = Callable[[T], None]


class _End:
    """The work finished (normally, by error, or cancelled)."""


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class EventChannel(Generic[T]):
    """Items on their way from the work to the consumer: put() never waits, take_all()
    hands over everything pending at once (one wake-up for a burst of deltas)."""

    def __init__(self) -> None:
        self._items: deque[T | _End | _Failure] = deque()
        self._ready = asyncio.Event()

    def put(self, item: T | _End | _Failure) -> None:
        """Queue one item for the consumer."""
        self._items.append(item)
        self._ready.set()

    async def take_all(self) -> list[T | _End | _Failure]:
        """Wait for at least one item; return and remove all pending ones."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self.take_now()

    def empty(self) -> bool:
        """Whether nothing is pending."""
        return not self._items

    def take_now(self) -> list[T | _End | _Failure]:
        """Return and remove every pending item, without waiting."""
        items = list(self._items)
        self._items.clear()
        return items


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _keep_all(items: list[T | _End | _Failure]) -> list[T | _End | _Failure]:
    return items


class TaskStream(Generic[T]):
    """`work(emit)` running in its own task; iterate `events()` to receive what it emits.

    The work's exception is raised to the consumer after the items emitted before it.
    If the work ends by cancellation while the consumer still listens (CancelRun), the
    consumer gets `cancelled_error()` when given, else a plain end of the stream (a turn
    emits its own RunCancelled event first).
    """

    def __init__(
        self,
        work: Callable[[Emit[T]], Awaitable[None]],
        *,
        name: str,
        cancelled_error: Callable[[], Exception] | None = None,
        merge: Callable[[list[T | _End | _Failure]], list[T | _End | _Failure]] = _keep_all,
    ) -> None:
        self._channel: EventChannel[T] = EventChannel()
        # Items taken from the channel and not yet handed over: a consumer that leaves
        # mid-burst leaves the rest here for the next one (a detached run's drain).
        self._backlog: deque[T | _End | _Failure] = deque()
        self._cancelled_error = cancelled_error
        self._merge = merge
        self._started = False
        self._cancel_when_started = False
        # Resolved when the consumer comes back for more with nothing left (see
        # handed_over).
        self._caught_up: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] = asyncio.create_task(self._main(work), name=name)

    def cancel(self) -> None:
        """Cancel the work. A task cancelled before its first step would never run its
        own cleanup (nor record an outcome), so a cancel that comes that early is
        delivered once the work has begun."""
        if self._started:
            self.task.cancel()
        else:
            self._cancel_when_started = True

    async def handed_over(self, limit: float) -> None:
        """Wait (at most `limit` seconds) until the consumer has taken every item emitted
        so far and come back for the next one: a consumer that sends each item before it
        asks for the next (a gRPC stream) has then sent them.

        For the work to call after its first delta: the rest of a burst the model sent
        in the same packet is parsed afterwards, so the delta's send does not wait for
        that (nor for the completion of an earlier send, which the event loop reports
        only when the work yields). The limit keeps a consumer that stopped reading from
        holding the work."""
        loop = asyncio.get_running_loop()
        caught_up = self._caught_up = loop.create_future()
        timer = loop.call_later(limit, _resolve, caught_up)
        try:
            await caught_up
        finally:
            timer.cancel()
            if self._caught_up is caught_up:
                self._caught_up = None

    async def _main(self, work: Callable[[Emit[T]], Awaitable[None]]) -> None:
        put = self._channel.put
        self._started = True
        if self._cancel_when_started:
            self.task.cancel()  # raised at the work's first await, inside its own handling
        try:
            await work(put)
        except asyncio.CancelledError:
            if self._cancelled_error is not None:
                put(_Failure(self._cancelled_error()))
            raise
        except Exception as error:
            put(_Failure(error))
        finally:
            put(_End())

    async def events(
        self, on_abandon: Callable[[], bool | None] | None = None
    ) -> AsyncGenerator[T, None]:
        """The work's items in order. If the consumer stops first, `on_abandon()` runs:
        unless it returns True (someone else will drain the stream: call `events()`
        again), the work is then cancelled and waited for."""
        backlog = self._backlog
        try:
            while True:
                if not backlog:
                    if self._caught_up is not None and self._channel.empty():
                        _resolve(self._caught_up)
                    backlog.extend(self._merge(await self._channel.take_all()))
                item = backlog.popleft()
                if isinstance(item, _End):
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            if not self.task.done():
                keep_running = on_abandon() if on_abandon is not None else False
                if not keep_running:
                    await self.stop()

    def leftovers(self) -> tuple[list[T], BaseException | None]:
        """After the work ended: the items nobody took, and its error (None: it ended
        normally or by cancellation)."""
        self._backlog.extend(self._channel.take_now())
        items: list[T] = []
        error: BaseException | None = None
        while self._backlog:
            item = self._backlog.popleft()
            if isinstance(item, _End):
                break
            if isinstance(item, _Failure):
                error = item.error
            else:
                items.append(item)
        return items, error

    async def stop(self) -> None:
        """Cancel the work and wait until it has finished (its outcome recorded)."""
        self.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
