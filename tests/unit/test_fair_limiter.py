"""A provider's call slots are shared fairly among tenants (issue 12: a tenant with
thousands of turns queued must not delay another tenant's turn beyond its fair share)."""

from __future__ import annotations

import asyncio

import pytest

from helpers import settled
from orchestrator_server.core.fair_limiter import FairLimiter


async def test_a_second_tenant_waits_for_one_turn_of_the_first_not_its_whole_queue() -> None:
    limiter = FairLimiter(1)
    order: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with limiter.slot("a"):
            await release.wait()

    async def waiter(key: str, name: str) -> None:
        async with limiter.slot(key):
            order.append(name)

    tasks = [asyncio.create_task(holder())]
    await settled(lambda: limiter.waiting == 0 and not release.is_set())
    tasks += [asyncio.create_task(waiter("a", f"a{i}")) for i in range(100)]
    await settled(lambda: limiter.waiting == 100)
    tasks.append(asyncio.create_task(waiter("b", "b0")))
    await settled(lambda: limiter.waiting == 101)
    release.set()
    await asyncio.gather(*tasks)
    assert order.index("b0") == 1  # after one of the hundred turns queued before it
    assert [n for n in order if n.startswith("a")] == [f"a{i}" for i in range(100)]


async def test_a_cancelled_waiter_gives_up_its_place_and_slots_are_not_lost() -> None:
    limiter = FairLimiter(2)
    held = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot("a"):
            await held.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await settled(lambda: limiter._free == 0)
    waiter = asyncio.create_task(hold())
    await settled(lambda: limiter.waiting == 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.waiting == 0
    held.set()
    await asyncio.gather(*holders)
    assert limiter._free == 2
    async with limiter.slot("c"), limiter.slot("d"):
        assert limiter._free == 0


async def test_a_newcomer_gets_the_next_slot_freed_by_a_tenant_holding_several() -> None:
    limiter = FairLimiter(2)
    order: list[str] = []
    releases = [asyncio.Event(), asyncio.Event()]

    async def holder(i: int) -> None:
        async with limiter.slot("a"):
            await releases[i].wait()

    async def waiter(key: str, name: str) -> None:
        async with limiter.slot(key):
            order.append(name)

    tasks = [asyncio.create_task(holder(i)) for i in range(2)]
    await settled(lambda: limiter._free == 0)
    tasks += [asyncio.create_task(waiter("a", f"a{i}")) for i in range(5)]
    await settled(lambda: limiter.waiting == 5)
    tasks.append(asyncio.create_task(waiter("b", "b0")))
    await settled(lambda: limiter.waiting == 6)
    releases[0].set()  # "a" still holds one slot, "b" none: the freed slot is b's
    await settled(lambda: "b0" in order)
    assert order[0] == "b0"
    releases[1].set()
    await asyncio.gather(*tasks)
    assert order[1:] == [f"a{i}" for i in range(5)]
