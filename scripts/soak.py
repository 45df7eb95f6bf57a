"""`make soak`: the orchestrator under sustained load, then under random cancels.

Phase 1 keeps `--streams` Run streams busy for `--seconds` (each runs turn after turn);
phase 2 starts `--cancels` turns (at most `--streams` at once) and cancels each at a
random point: before it starts, after its first event, after a few deltas (a `cancel`
message or the client leaving), or by a short deadline. Then every run must have ended
(none left QUEUED or RUNNING) and none FAILED (the model server never fails: a cancel
or a deadline recorded as a failure is a misreported outcome), no call may have failed
with anything but the cancellation it asked for, and the server's RSS may have grown by
less than 10 % from the end of phase 1's warm-up to the end. Exits non-zero otherwise.
`--postgres` runs it on a throwaway PostgreSQL cluster (every turn is a new session's
first: their starts are guessed, one per tenant at a time, the others read).

    .venv/bin/python scripts/soak.py [--seconds 60] [--streams 200] [--cancels 5000]
                                     [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

sys.path.append(str(Path(__file__).resolve().parent.parent))

from orchestrator.v1 import agent_pb2, run_pb2
from orchestrator.v1 import orchestrator_service_pb2 as pb
from scripts.benchlib.config import WORK
from scripts.benchlib.scale_db import remove_db
from scripts.benchlib.servers import (
    Child,
    orchestrator_env,
    orchestrator_stub,
    start_devmodel,
    start_orchestrator,
    start_postgres,
    stop,
)
from scripts.pg_cluster import create_database

if TYPE_CHECKING:
    from orchestrator.v1.orchestrator_service_pb2_grpc import (
        OrchestratorServiceAsyncStub as OrchestratorServiceStub,
    )

AGENT = "soak"
CALL_TIMEOUT = 30.0
OK_CODES = {grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}
MAX_RSS_GROWTH = 0.10
WAYS = ("before_start", "after_started", "cancel_message", "leave", "deadline")


def start(session: str) -> run_pb2.RunRequest:
    turn = run_pb2.StartTurn(agent_id=AGENT, session_id=session, message="soak question")
    return run_pb2.RunRequest(start=turn)


class Tally:
    """Outcomes by kind, and the unexpected ones with an example each."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def error(self, what: str) -> None:
        self.errors[what] += 1


async def full_turn(stub: OrchestratorServiceStub, session: str, tally: Tally) -> None:
    """One turn to its end on its own stream."""
    try:
        last = ""
        async for event in stub.Run(iter([start(session)]), timeout=CALL_TIMEOUT):
            last = event.WhichOneof("event") or ""
        tally.outcomes[last] += 1
        if last != "run_completed":
            tally.error(f"turn ended with {last}")
    except grpc.aio.AioRpcError as error:
        tally.error(f"{error.code().name}: {error.details()}")


async def busy_worker(
    stub: OrchestratorServiceStub, worker: int, until: float, tally: Tally
) -> None:
    turn = 0
    while time.monotonic() < until:
        await full_turn(stub, f"w{worker}-{turn}", tally)
        turn += 1


async def cancelled_turn(stub: OrchestratorServiceStub, n: int, tally: Tally) -> None:
    """One turn cancelled at a random point, in a random way."""
    way = random.choice(WAYS)
    timeout = random.uniform(0.0, 0.2) if way == "deadline" else CALL_TIMEOUT
    call = stub.Run(timeout=timeout)
    try:
        await call.write(start(f"c{n}"))
    except grpc.aio.AioRpcError:
        # The deadline passed before the start was sent: grpc reports the refused local
        # send as INTERNAL ("Internal error from Core"); the server saw no turn.
        tally.outcomes[f"{way}:unsent"] += 1
        return
    try:
        if way == "before_start":
            call.cancel()
        else:
            await _cancel_after_events(call, way, random.randint(0, 12))
        async for _ in _remaining(call):
            pass
        tally.outcomes[way] += 1
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if code in OK_CODES:
            tally.outcomes[f"{way}:{code.name}"] += 1
        else:
            tally.error(f"{way} {code.name}: {error.details()}")
    except asyncio.CancelledError:
        tally.outcomes[f"{way}:local"] += 1


async def _cancel_after_events(call: Any, way: str, deltas: int) -> None:
    seen = 0
    while True:
        event = await call.read()
        if event is grpc.aio.EOF:
            return
        kind = event.WhichOneof("event")
        if kind in ("run_completed", "run_failed", "run_cancelled"):
            await call.done_writing()
            return
        seen += kind == "text_delta"
        if way == "after_started" or (way != "deadline" and seen >= deltas):
            break
    if way == "cancel_message":
        run_id = event.run_id
        await call.write(run_pb2.RunRequest(cancel=run_pb2.CancelTurn(run_id=run_id)))
        await call.done_writing()
    else:
        call.cancel()


async def _remaining(call: Any) -> AsyncIterator[run_pb2.RunEvent]:
    while (event := await call.read()) is not grpc.aio.EOF:
        yield event


async def unfinished_runs(stub: OrchestratorServiceStub) -> Counter[str]:
    """Runs by status, paging through the tenant's runs."""
    statuses: Counter[str] = Counter()
    token = ""
    while True:
        page = await stub.ListRuns(pb.ListRunsRequest(page_size=1000, page_token=token))
        statuses.update(run_pb2.RunStatus.Name(r.status) for r in page.runs)
        if not (token := page.next_page_token):
            return statuses


async def settle(stub: OrchestratorServiceStub, wait_s: float = 15.0) -> Counter[str]:
    """Runs by status once none is left unfinished (or after `wait_s`)."""
    deadline = time.monotonic() + wait_s
    while True:
        statuses = await unfinished_runs(stub)
        open_ = statuses["RUN_STATUS_RUNNING"] + statuses["RUN_STATUS_QUEUED"]
        if not open_ or time.monotonic() > deadline:
            return statuses
        await asyncio.sleep(0.2)


async def soak(args: argparse.Namespace) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    db: Path | str = WORK / "soak.db"
    remove_db(Path(db))  # every soak starts from an empty database
    async with contextlib.AsyncExitStack() as stack:
        if args.postgres:  # a throwaway cluster and an empty database on it
            db = await create_database(await start_postgres(stack))
        # Answers streamed over ~50 ms, so that cancels land before, during and after them.
        _, url = await start_devmodel(stack, "soak-devmodel", 20, tokens_per_second=400)
        orch, address, _ = await start_orchestrator("soak", db, orchestrator_env(url, 256))
        stack.push_async_callback(stop, orch)
        stubs = [orchestrator_stub(stack, address) for _ in range(4)]  # 4 connections
        agent = agent_pb2.Agent(agent_id=AGENT)
        await stubs[0].CreateAgent(pb.CreateAgentRequest(agent=agent))
        return await _phases(stubs, orch, args)
    return 1


async def _phases(
    stubs: list[OrchestratorServiceStub], orch: Child, args: argparse.Namespace
) -> int:
    busy, cancels = Tally(), Tally()
    warmup = min(10.0, args.seconds / 3)
    until = time.monotonic() + args.seconds
    workers = [
        asyncio.create_task(busy_worker(stubs[i % len(stubs)], i, until, busy))
        for i in range(args.streams)
    ]
    await asyncio.sleep(warmup)
    rss_start = orch.rss_mb()
    await asyncio.gather(*workers)
    print(f"phase 1: {args.streams} streams for {args.seconds:.0f} s: {dict(busy.outcomes)}")
    limit = asyncio.Semaphore(args.streams)

    async def one(n: int) -> None:
        async with limit:
            await cancelled_turn(stubs[n % len(stubs)], n, cancels)

    await asyncio.gather(*(one(n) for n in range(args.cancels)))
    print(f"phase 2: {args.cancels} cancelled turns: {dict(sorted(cancels.outcomes.items()))}")
    statuses = await settle(stubs[0])
    gc.collect()
    await asyncio.sleep(1.0)
    rss_end = orch.rss_mb()
    return report(busy, cancels, statuses, rss_start, rss_end)


def report(
    busy: Tally, cancels: Tally, statuses: Counter[str], rss_start: float, rss_end: float
) -> int:
    errors = busy.errors + cancels.errors
    unfinished = statuses["RUN_STATUS_RUNNING"] + statuses["RUN_STATUS_QUEUED"]
    growth = rss_end / rss_start - 1
    print(f"runs by status: {dict(sorted(statuses.items()))}")
    print(f"errors: {sum(errors.values())} {dict(errors.most_common(5))}")
    print(f"runs left unfinished: {unfinished}")
    print(f"runs FAILED: {statuses['RUN_STATUS_FAILED']}")
    print(
        f"server RSS: {rss_start:.1f} MB after warm-up, {rss_end:.1f} MB at the end "
        f"({growth:+.1%}, limit +{MAX_RSS_GROWTH:.0%})"
    )
    misreported = statuses["RUN_STATUS_FAILED"]
    failed = bool(errors) or unfinished > 0 or misreported > 0 or growth >= MAX_RSS_GROWTH
    print("SOAK FAILED" if failed else "SOAK PASSED")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--cancels", type=int, default=5000)
    parser.add_argument(
        "--postgres", action="store_true", help="on a throwaway PostgreSQL, not SQLite"
    )
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
