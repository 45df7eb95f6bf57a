"""`LoopThread`: the private event loop a blocking client drives its asyncio client on.

One daemon thread per client runs the loop; every blocking call submits a coroutine to
it and waits. That keeps a single implementation of the protocol (streams, chats,
errors) and lets a blocking client be used from any thread. A wait interrupted by Ctrl-C
(or any exception in the waiting thread) cancels its coroutine, so a run stops on the
server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="orchestrator-client", daemon=True
        )
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and wait for its result."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("the blocking client cannot be called from its own loop")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        """Cancel what still runs on the loop, stop it and join its thread."""
        if self.loop.is_closed():
            return
        # Like asyncio.run's teardown: a stream's request generator may still wait on
        # its queue, and must be closed while the loop can still run its cleanup.
        asyncio.run_coroutine_threadsafe(_drain_loop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _drain_loop() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
