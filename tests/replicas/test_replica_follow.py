"""Following runs across replicas (issue 15): a run executed by one replica is followed
live from the others through the journal and the store's doorbell; a detached run
outlives its caller's SIGKILL and is followed to its end from another replica; INTERRUPT
reaches the replica that runs the session's turn."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from replica_helpers import Replicas, create_agent

from helpers import drain, final_of, requests_of, run_turn, start, text_of
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc
from orchestrator.v1 import run_pb2
from orchestrator_devmodel import DevModelAdmin

WORDS = " ".join(f"w{i}" for i in range(40))
SLOW = {"match": {"contains": "slow"}, "reply": {"tokens_per_second": 40, "text": WORDS}}
ROOT = Path(__file__).resolve().parents[2]


async def follow(
    stub: pb_grpc.OrchestratorServiceStub, run_id: str, after: int = 0
) -> list[run_pb2.RunEvent]:
    start_follow = pb.FollowRunRequest(start=pb.FollowStart(run_id=run_id, after_sequence=after))
    return [e async for e in stub.FollowRun(requests_of(start_follow), timeout=30)]


def wire(events: list[run_pb2.RunEvent]) -> list[bytes]:
    return [e.SerializeToString(deterministic=True) for e in events]


async def test_a_run_is_followed_live_from_the_other_replicas(
    replicas: Replicas, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        call = stubs[0].Run(requests_of(start("slow story")), timeout=30)
        started = await call.read()
        followers = [
            asyncio.create_task(follow(stubs[1], started.run_id)),
            asyncio.create_task(follow(stubs[2], started.run_id, 2)),
        ]
        rest = await drain(call)
        everything = [started, *rest]
        from_one, from_two = await asyncio.gather(*followers)
        assert wire(from_one) == wire(everything)
        assert wire(from_two) == wire(everything[2:])


CALLER = textwrap.dedent(
    """
    import asyncio, sys
    import grpc
    from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc, run_pb2

    async def main(address):
        async def starts():
            yield run_pb2.RunRequest(start=run_pb2.StartTurn(
                message="slow story", on_disconnect=run_pb2.DISCONNECT_POLICY_CONTINUE))
            await asyncio.Event().wait()  # keep the stream open until killed
        channel = grpc.aio.insecure_channel(address)
        call = pb_grpc.OrchestratorServiceStub(channel).Run(starts())
        for _ in range(3):
            event = await call.read()
        print(event.run_id, event.sequence, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_a_detached_run_outlives_its_callers_sigkill(
    replicas: Replicas, admin: DevModelAdmin, tmp_path: Path
) -> None:
    await admin.set_rules([SLOW])
    script = tmp_path / "caller.py"
    script.write_text(CALLER)
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        env = {**os.environ, "PYTHONPATH": str(ROOT / "client" / "python")}
        caller = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            replicas.addresses[0],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert caller.stdout is not None
        line = await asyncio.wait_for(caller.stdout.readline(), 20)
        run_id, seen = line.decode().split()
        caller.send_signal(signal.SIGKILL)
        await caller.wait()
        rest = await follow(stubs[1], run_id, int(seen))
        assert rest[0].sequence == int(seen) + 1
        record = (await stubs[2].GetRun(pb.GetRunRequest(run_id=run_id))).run
        assert record.status == run_pb2.RUN_STATUS_COMPLETED
        assert final_of(rest).output == record.output == WORDS
        whole = await follow(stubs[2], run_id)
        assert text_of(whole) == WORDS
        assert [e.sequence for e in whole] == list(range(1, len(whole) + 1))


async def test_interrupt_reaches_the_replica_running_the_session(
    replicas: Replicas, admin: DevModelAdmin
) -> None:
    await admin.set_rules([SLOW])
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        first = stubs[0].Run(requests_of(start("slow story", session_id="chat")), timeout=30)
        started = await first.read()
        fields: dict[str, Any] = {"session_id": "chat"}
        second = await run_turn(
            stubs[1], "never mind", busy_policy=run_pb2.BUSY_POLICY_INTERRUPT, **fields
        )
        assert final_of(second).output == "Echo: never mind"
        ended = await drain(first)
        assert ended[-1].run_cancelled.reason == "RUN_SUPERSEDED"
        assert ended[-1].run_cancelled.message == f"interrupted by run {second[0].run_id}"
        record = (await stubs[2].GetRun(pb.GetRunRequest(run_id=started.run_id))).run
        assert record.error_reason == "RUN_SUPERSEDED"


async def test_a_follower_on_another_replica_keeps_a_resumable_run(
    replicas: Replicas, admin: DevModelAdmin
) -> None:
    slower = {"match": {"contains": "slow"}, "reply": {"tokens_per_second": 10, "text": WORDS}}
    await admin.set_rules([slower])
    async with replicas.channels() as stubs:
        await create_agent(stubs[0])
        call = stubs[0].Run(requests_of(start("slow story", resume_window_seconds=1)), timeout=30)
        started = await call.read()
        call.cancel()  # the connection drops; the caller comes back through replica 1
        rest = await follow(stubs[1], started.run_id, started.sequence)
        record = (await stubs[2].GetRun(pb.GetRunRequest(run_id=started.run_id))).run
        assert record.status == run_pb2.RUN_STATUS_COMPLETED  # kept for 4 s by the follower
        assert text_of(rest) == record.output == WORDS
