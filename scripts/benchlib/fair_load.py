"""The fairness section's load: one tenant's Run streams, in a process of their own.

    python -m scripts.benchlib.fair_load --address HOST:PORT --tenant T --agent A
        --streams N --message M [--variants V] [--channels C] [--opening K]
        [--max-hold-s S] [--timeout S] [--tag T]

Opens N Run streams spread over C channels (each its own TCP connection); each runs turns
back to back, in a new session each, until SIGTERM (or --max-hold-s), which cancels them
all. While streams are still being opened, a stream whose first turn has completed waits;
once every stream has had the RunStarted of its first turn (the ramp) and the waiting ones
have started their next, every stream has a turn in flight (running, or queued for a
provider slot). Prints two lines on stdout: `FAIRLOAD_HELD {json}` at that point, and
`FAIRLOAD_DONE {json}` once all streams have ended; both carry time.monotonic() instants,
which compare across processes on one machine.

It runs apart from the bench so that the other tenant's timing, taken in the bench's own
event loop, does not wait behind the callbacks of thousands of streams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from orchestrator.v1 import orchestrator_service_pb2_grpc, run_pb2

if TYPE_CHECKING:
    from orchestrator.v1.orchestrator_service_pb2_grpc import OrchestratorServiceAsyncStub

# Streams sent but not yet started, at most: the gRPC core of the server queues calls its
# Python loop has not picked up yet, and cancels them past 1,000 queued (soft limit, at
# random up to the hard limit of 3,000: grpc.server.max_pending_requests) or after 30 s
# queued (grpc.server_max_unrequested_time_in_server); 5,000 streams sent at once came
# back ~30% CANCELLED that way. The ramp is still as fast as the server starts turns.
OPENING = 500
HELD_PREFIX = "FAIRLOAD_HELD"
DONE_PREFIX = "FAIRLOAD_DONE"
# Each channel its own connection: without a local subchannel pool, channels to one
# address with the same arguments share one TCP connection.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


@dataclass
class Tally:
    """What the streams did so far."""

    streams: int
    began: float = field(default_factory=time.monotonic)
    opened: int = 0  # streams whose first turn started
    paused: int = 0  # streams without a turn in flight since their first one completed
    turns: int = 0  # turns completed
    held_at: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # the first error of each code
    ramped: asyncio.Event = field(default_factory=asyncio.Event)  # every stream opened
    held: asyncio.Event = field(default_factory=asyncio.Event)  # and has a turn in flight
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def opened_one(self) -> None:
        self.opened += 1
        self.check()

    def resumed(self) -> None:
        self.paused -= 1
        self.check()

    def failed(self, error: BaseException) -> None:
        code = (
            error.code().name if isinstance(error, grpc.aio.AioRpcError) else type(error).__name__
        )
        self.errors[code] += 1
        self.examples.setdefault(code, repr(error)[:500])
        self.check()

    def check(self) -> None:
        """Ramped once every stream has started its first turn (or failed); held once,
        besides, the streams paused by the ramp have started their next turn."""
        if self.opened + sum(self.errors.values()) >= self.streams:
            self.ramped.set()
            if self.paused <= 0 and not self.held.is_set():
                self.held_at = time.monotonic()
                self.held.set()

    def report(self) -> dict[str, Any]:
        return {
            "streams": self.streams,
            "opened": self.opened,
            "paused": self.paused,
            "turns": self.turns,
            "errors": dict(self.errors),
            "examples": self.examples,
            "began": self.began,
            "held_at": self.held_at,
            "now": time.monotonic(),
        }


def start(args: argparse.Namespace, i: int, turn: int) -> run_pb2.RunRequest:
    """A turn in a session of its own (the history, sent with every call, stays short),
    its message naming one of `--variants` at random (the dev model's rules give them
    different latencies)."""
    message = args.message.format(variant=random.randrange(args.variants))
    return run_pb2.RunRequest(
        start=run_pb2.StartTurn(
            agent_id=args.agent, session_id=f"load-{args.tag}-{i}-{turn}", message=message
        )
    )


async def hold_stream(
    stub: OrchestratorServiceAsyncStub,
    args: argparse.Namespace,
    i: int,
    tally: Tally,
    opening: asyncio.Semaphore,
) -> None:
    """One stream: turns back to back until the load stops (which cancels the task)."""
    turn = 0
    opened = resuming = False  # first turn started; a next turn is on its way
    await opening.acquire()
    call = stub.Run(metadata=(("x-tenant-id", args.tenant),), timeout=args.timeout)
    try:
        await call.write(start(args, i, turn))
        while isinstance(event := await call.read(), run_pb2.RunEvent):  # else EOF
            kind = event.WhichOneof("event")
            if kind == "run_started" and not opened:
                opened = True
                opening.release()
                tally.opened_one()
            elif kind == "run_started" and resuming:
                resuming = False
                tally.resumed()
            elif kind == "run_completed":
                tally.turns += 1
                if tally.stop.is_set():
                    await call.done_writing()
                    continue
                if not tally.ramped.is_set():
                    # Until every stream is open, one that is open waits: when the server
                    # cannot keep up with the turns, the streams still to come would not
                    # be picked up (gRPC cancels a call left unaccepted for 30 s).
                    resuming = True
                    tally.paused += 1
                    await tally.ramped.wait()
                turn += 1
                await call.write(start(args, i, turn))
        if not tally.stop.is_set():
            tally.failed(RuntimeError("the server ended the stream"))
    except grpc.aio.AioRpcError as error:
        if not (tally.stop.is_set() and error.code() == grpc.StatusCode.CANCELLED):
            tally.failed(error)
    finally:
        if not opened:
            opening.release()
        if resuming:
            tally.resumed()


async def stop_after(tally: Tally, max_hold_s: float) -> None:
    """Stop on SIGTERM, or `max_hold_s` after the load is held at the latest."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, tally.stop.set)
    await tally.held.wait()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tally.stop.wait(), max_hold_s)
    tally.stop.set()


async def load(args: argparse.Namespace) -> None:
    """Ramp, hold, stop; the two report lines."""
    channels = [
        grpc.aio.insecure_channel(args.address, options=CHANNEL_OPTIONS)
        for _ in range(args.channels)
    ]
    stubs: list[OrchestratorServiceAsyncStub] = [
        orchestrator_service_pb2_grpc.OrchestratorServiceStub(c) for c in channels
    ]
    # Connect first, so that the ramp measures streams rather than connection set-up.
    await asyncio.gather(*(c.channel_ready() for c in channels))
    tally = Tally(args.streams)
    opening = asyncio.Semaphore(args.opening)
    tasks = [
        asyncio.create_task(hold_stream(stubs[i % len(stubs)], args, i, tally, opening))
        for i in range(args.streams)
    ]
    stopper = asyncio.create_task(stop_after(tally, args.max_hold_s))
    await tally.held.wait()
    print(f"{HELD_PREFIX} {json.dumps(tally.report())}", flush=True)
    await stopper
    # Cancelling the calls ends the turns queued for the provider at once, where
    # half-closing would wait for thousands of them to run.
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"{DONE_PREFIX} {json.dumps(tally.report())}", flush=True)
    await asyncio.gather(*(c.close() for c in channels))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--message", required=True, help="may hold {variant}")
    parser.add_argument(
        "--variants", type=int, default=1, help="{variant} in --message: 0 to N-1 at random"
    )
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument(
        "--opening", type=int, default=OPENING, help="streams awaiting their RunStarted at once"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="deadline of each stream")
    parser.add_argument("--max-hold-s", type=float, default=120.0, help="stop by then at most")
    parser.add_argument("--tag", default="0", help="makes the session ids unique per load")
    return parser.parse_args()


def main() -> None:
    import uvloop

    uvloop.run(load(parse_args()))


if __name__ == "__main__":
    main()
