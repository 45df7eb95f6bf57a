"""Throughput check of the dev model server: streamed AsyncOpenAI calls per second.

Starts `python -m orchestrator_devmodel --default-tokens 20 --no-record` as
a subprocess and drives it with `--concurrency` workers for `--duration` seconds, each
call streaming a 20-token answer to the end. Prints calls/s, latency percentiles and the
server's CPU use per call (the client is usually the bottleneck, not the server).

    .venv/bin/python scripts/bench_devmodel.py [--concurrency 32] [--duration 5] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from orchestrator_devmodel import DevModelConfig, DevModelProcess

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Benchmark question, please answer."}
]


async def worker(
    client: AsyncOpenAI, deadline: float, latencies: list[float], tokens: list[int]
) -> None:
    """Issue streamed calls back to back until `deadline`."""
    while time.monotonic() < deadline:
        started = time.monotonic()
        stream = await client.chat.completions.create(
            model="devmodel",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        count = 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
        latencies.append(time.monotonic() - started)
        tokens.append(count)


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process, if psutil (bench extra) is installed."""
    try:
        import psutil
    except ImportError:
        return None
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def run(concurrency: int, duration: float) -> None:
    """Start the server, warm up, measure, print the figures."""
    config = DevModelConfig(default_tokens=20, record=False)
    async with DevModelProcess(config) as server:
        pid = server.pid
        assert pid is not None
        async with AsyncOpenAI(base_url=server.base_url, api_key="bench", max_retries=0) as client:
            # Warm-up: open the pooled connections and import lazy client code paths.
            await asyncio.gather(
                *(worker(client, time.monotonic() + 0.5, [], []) for _ in range(concurrency))
            )
            latencies: list[float] = []
            tokens: list[int] = []
            cpu_before = cpu_seconds(pid)
            started = time.monotonic()
            await asyncio.gather(
                *(worker(client, started + duration, latencies, tokens) for _ in range(concurrency))
            )
            elapsed = time.monotonic() - started
            cpu_after = cpu_seconds(pid)
    calls = len(latencies)
    assert set(tokens) == {20}, f"unexpected token counts: {sorted(set(tokens))}"
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"concurrency={concurrency} duration={elapsed:.2f}s calls={calls} cpus={os.cpu_count()}")
    print(f"calls/s: {calls / elapsed:.1f}")
    print(
        f"latency ms: p50={quantiles[49] * 1000:.1f} p90={quantiles[89] * 1000:.1f} "
        f"p99={quantiles[98] * 1000:.1f}"
    )
    if cpu_before is not None and cpu_after is not None:
        used = cpu_after - cpu_before
        print(
            f"server CPU: {used / elapsed * 100:.0f}% of one core, {used / calls * 1e6:.0f} us/call"
        )


def main() -> None:
    """Parse flags and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--uvloop", action="store_true", help="run the client on uvloop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(args.concurrency, args.duration))
    else:
        asyncio.run(run(args.concurrency, args.duration))


if __name__ == "__main__":
    main()
