"""TaskStream.handed_over: the work waits until its consumer has sent what it emitted
(came back for more), at most for its limit."""

from __future__ import annotations

import asyncio
import time

from orchestrator_server.core.task_stream import Emit, TaskStream


async def test_the_work_resumes_once_the_consumer_has_sent_everything_it_emitted() -> None:
    log: list[str] = []
    took_first = asyncio.Event()
    sent = asyncio.get_running_loop().create_future()

    async def work(emit: Emit[str]) -> None:
        emit("a")
        emit("b")
        await stream.handed_over(30)
        log.append("work resumed")

    stream: TaskStream[str] = TaskStream(work, name="work")

    async def consume() -> None:
        async for item in stream.events():
            log.append(f"took {item}")
            took_first.set()
            await sent  # the consumer's send of the item (a gRPC write)
            log.append(f"sent {item}")

    consumer = asyncio.create_task(consume())
    await took_first.wait()
    assert log == ["took a"]  # the work still waits: "a" is being sent, "b" not taken
    sent.set_result(None)
    await asyncio.wait_for(consumer, 5)
    assert log == ["took a", "sent a", "took b", "sent b", "work resumed"]


async def test_a_consumer_that_does_not_come_back_holds_the_work_only_for_the_limit() -> None:
    resumed = asyncio.Event()

    async def work(emit: Emit[str]) -> None:
        emit("a")
        await stream.handed_over(0.01)
        resumed.set()

    stream: TaskStream[str] = TaskStream(work, name="work")
    items = stream.events()
    assert await anext(items) == "a"  # taken, and never sent: the consumer stays away
    await asyncio.wait_for(resumed.wait(), 5)
    await items.aclose()
    assert stream.task.done()


async def test_a_cancelled_wait_leaves_the_stream_usable() -> None:
    waits: list[asyncio.Future[None]] = []
    waiting = asyncio.Event()

    async def work(emit: Emit[str]) -> None:
        emit("a")
        waits.append(asyncio.ensure_future(stream.handed_over(30)))
        waiting.set()
        try:
            await waits[0]
        except asyncio.CancelledError:
            emit("after cancel")
            await stream.handed_over(30)  # a fresh wait works as the first did
            emit("done")

    stream: TaskStream[str] = TaskStream(work, name="work")
    await waiting.wait()
    waits[0].cancel()  # as a CancelRun would, before the consumer came
    seen = [item async for item in stream.events()]
    assert seen == ["a", "after cancel", "done"]


async def test_an_ended_wait_does_not_clear_a_later_waiters_slot() -> None:
    second_waited: list[float] = []
    started = asyncio.Event()

    async def work(emit: Emit[str]) -> None:
        emit("a")
        first = asyncio.ensure_future(stream.handed_over(30))
        await asyncio.sleep(0)  # the first wait holds the slot
        emit("b")

        async def second() -> None:
            t0 = time.monotonic()
            await stream.handed_over(1.0)
            second_waited.append(time.monotonic() - t0)

        later = asyncio.ensure_future(second())
        await asyncio.sleep(0)  # the second wait has replaced the slot
        first.cancel()  # its finally sets the slot to None: the second's future is lost
        started.set()
        await asyncio.gather(first, later, return_exceptions=True)

    stream: TaskStream[str] = TaskStream(work, name="work")
    await started.wait()
    assert [item async for item in stream.events()] == ["a", "b"]
    assert second_waited[0] < 0.5, second_waited
