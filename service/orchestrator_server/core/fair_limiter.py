"""Fair sharing of a limited resource (a provider's concurrent calls) among tenants.

A plain semaphore admits waiters first come, first served: a tenant with 10,000 turns
queued ahead of another tenant's one turn makes it wait for all of them. Here waiters
queue per key (the tenant), and a freed slot goes to the waiting key that holds the
fewest slots (among equals, in turn): a tenant arriving while another holds every slot
gets the very next one, and with N tenants waiting each gets its share whatever the
length of the others' queues. Within one key, waiters are admitted in arrival order.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairLimiter:
    """At most `limit` holders at once, admitted by key: fewest held first."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._free = limit
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._held: dict[str, int] = {}

    @property
    def waiting(self) -> int:
        """How many wait for a slot."""
        return sum(len(queue) for queue in self._waiting.values())

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        """Hold one slot for the body; waits for its key's turn when none is free."""
        await self._acquire(key)
        try:
            yield
        finally:
            self._release(key)

    async def _acquire(self, key: str) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            self._held[key] = self._held.get(key, 0) + 1
            return
        admitted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(admitted)
        try:
            await admitted
        except asyncio.CancelledError:
            if admitted.done() and not admitted.cancelled():
                self._release(key)  # admitted just as it was cancelled: pass the slot on
            else:
                self._forget(key, admitted)
            raise

    def _forget(self, key: str, admitted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is not None and admitted in queue:
            queue.remove(admitted)
            if not queue:
                del self._waiting[key]

    def _release(self, key: str) -> None:
        """`key` gives a slot back: to the waiting key holding the fewest, or free it."""
        held = self._held[key] - 1
        if held:
            self._held[key] = held
        else:
            del self._held[key]
        while self._waiting:
            # min() keeps the first of equals: the rotation order breaks ties.
            next_key = min(self._waiting, key=lambda k: self._held.get(k, 0))
            queue = self._waiting[next_key]
            admitted = queue.popleft()
            if queue:
                self._waiting.move_to_end(next_key)  # its next waiter comes after the others'
            else:
                del self._waiting[next_key]
            if not admitted.done():
                self._held[next_key] = self._held.get(next_key, 0) + 1
                admitted.set_result(None)
                return
        self._free += 1
