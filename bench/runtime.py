"""In-process throughput of the engine core: the five examples published, many profiles.

Workload: the five example journeys published (winback with its entry on events
since publish), their destinations, audience and computed trait; the
messages of ``bench/workload.py`` (the examples' events, noise events no
condition uses, identify calls) over N profiles, sent in batches through
``Engine.ingest`` while a manual clock moves forward, so waits, re-checks and
exits fire along the way. Outputs are counted, not kept. The baseline in the
same run is the same messages parsed and routed to shards with a no-op apply:
what the engine costs above moving messages through its own queues.

Also reported: µs per message of the synchronous core alone (``Runtime.apply``),
RSS per resident profile (the slope between two profile counts), and where the
time goes (cProfile, top functions).

Run from the repository root:  .venv/bin/python bench/runtime.py
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import io
import os
import pstats
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(ROOT),
    str(ROOT / "server"),
    str(ROOT / "clients" / "python"),
    str(ROOT / "protos"),
]

from bench.machine import describe, median_range  # noqa: E402
from bench.workload import EXAMPLES, segment_messages  # noqa: E402
from journeys_engine import Engine, EngineSettings, Move, Unit  # noqa: E402
from journeys_engine.messages import Message, parse_message  # noqa: E402
from journeys_engine.model import EntryStep  # noqa: E402
from journeys_engine.runtime.identity import Logged, resolve  # noqa: E402
from journeys_engine.runtime.router import Batch, Router  # noqa: E402
from journeys_engine.testing import FakeClock  # noqa: E402
from tests.helpers.examples import load_example  # noqa: E402

START = 1_767_225_600_000


class CountingSink:
    """Counts outputs instead of keeping them."""

    def __init__(self) -> None:
        self.outputs = 0

    async def commit(self, unit: Unit) -> None:
        self.outputs += len(unit.outputs)


async def open_engine(clock: FakeClock, path: str | Path = ":memory:") -> Engine:
    """An engine with the five examples published (winback's entry on events since publish)."""
    sink = CountingSink()
    engine = await Engine.open(path, clock=clock, sink=sink, settings=EngineSettings())
    for name in EXAMPLES:
        await load_example(engine, name)
    stored = await engine.journeys.get("default", "winback")
    await engine.journeys.update(
        "default",
        dataclasses.replace(
            stored,
            steps=tuple(
                dataclasses.replace(s, use_historical_data=False) if isinstance(s, EntryStep) else s
                for s in stored.steps
            ),
        ),
    )
    for name in EXAMPLES:
        await engine.journeys.move("default", name, Move.PUBLISH)
    return engine


async def run_engine(stream: list[dict[str, Any]], batch: int, step_ms: int) -> tuple[float, int]:
    clock = FakeClock(START)
    engine = await open_engine(clock)
    started = time.perf_counter()
    for i in range(0, len(stream), batch):
        await engine.ingest("default", stream[i : i + batch])
        clock.advance(step_ms)
        await engine.fire_due()
    await engine.settle()
    elapsed = time.perf_counter() - started
    assert isinstance(engine.sink, CountingSink)
    outputs = engine.sink.outputs
    await engine.close()
    return len(stream) / elapsed, outputs


async def run_baseline(stream: list[dict[str, Any]], batch: int) -> float:
    async def apply(_: Batch) -> None:
        return None

    router = Router(apply)
    router.start()
    started = time.perf_counter()
    position = 0
    for i in range(0, len(stream), batch):
        parsed = []
        for raw in stream[i : i + batch]:
            position += 1
            parsed.append(logged(position, parse_message(raw, received_at=START)))
        await router.put("default", parsed)
    await router.settle()
    elapsed = time.perf_counter() - started
    await router.close()
    return len(stream) / elapsed


async def core_us_per_message(stream: list[dict[str, Any]], profile: bool) -> tuple[float, str]:
    clock = FakeClock(START)
    engine = await open_engine(clock)
    parsed = [
        logged(i + 1, parse_message(raw, received_at=START + i)) for i, raw in enumerate(stream)
    ]
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    for i in range(0, len(parsed), 1000):
        engine.runtime.apply("default", parsed[i : i + 1000])
        engine.runtime.take_units()
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    await engine.close()
    report = ""
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        report = "\n".join(
            line for line in out.getvalue().splitlines() if "/" in line or "ncalls" in line
        )
    return elapsed / len(parsed) * 1e6, report


def logged(position: int, message: Message) -> Logged:
    """A message as the store logs it (the streams here link no identities)."""
    return Logged(position, resolve(message, lambda _: None)[0], message)


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def bytes_per_profile(small: int, large: int) -> tuple[float, float]:
    """(RSS slope, traced Python heap slope) as one engine goes from ``small`` to ``large``
    resident profiles, one message each."""
    clock = FakeClock(START)
    engine = await open_engine(clock)
    stream = segment_messages(
        large, large, seed=11
    )  # one message per profile: each becomes resident
    parsed = [logged(i + 1, parse_message(raw, received_at=START)) for i, raw in enumerate(stream)]

    def apply(part: list[Any]) -> tuple[int, int]:
        for i in range(0, len(part), 2000):
            engine.runtime.apply("default", part[i : i + 2000])
            engine.runtime.take_units()
        gc.collect()
        return rss_bytes(), tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    rss_low, heap_low = apply(parsed[:small])
    rss_high, heap_high = apply(parsed[small:])
    tracemalloc.stop()
    await engine.close()
    span = large - small
    return (rss_high - rss_low) / span, (heap_high - heap_low) / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    stream = segment_messages(args.profiles, args.messages, seed=5)
    # The clock covers ten days over the run, so one-hour and multi-day waits fire.
    step_ms = 10 * 86_400_000 * args.batch // max(1, args.messages)
    engine_rates, baseline_rates, outputs = [], [], 0
    for _ in range(args.runs):
        rate, outputs = asyncio.run(run_engine(stream, args.batch, step_ms))
        engine_rates.append(rate)
        baseline_rates.append(asyncio.run(run_baseline(stream, args.batch)))
    core = [asyncio.run(core_us_per_message(stream, False))[0] for _ in range(args.runs)]
    _, profile = asyncio.run(core_us_per_message(stream[: args.messages // 4], True))
    rss_slope, heap_slope = asyncio.run(bytes_per_profile(args.profiles // 4, args.profiles))

    print(describe())
    print(
        f"{args.messages:,} messages over {args.profiles:,} profiles, batches of {args.batch}, "
        f"5 examples published, {outputs:,} destination calls; {args.runs} runs"
    )
    e, e_lo, e_hi = median_range(engine_rates)
    b, b_lo, b_hi = median_range(baseline_rates)
    c, c_lo, c_hi = median_range(core)
    print(f"engine (ingest -> applied):   {e:10,.0f} msg/s (min {e_lo:,.0f}, max {e_hi:,.0f})")
    print(f"baseline (parse + shards):    {b:10,.0f} msg/s (min {b_lo:,.0f}, max {b_hi:,.0f})")
    print(f"ratio engine / baseline:      {e / b:10.2f}")
    print(f"synchronous core:             {c:10.1f} us/msg (min {c_lo:.1f}, max {c_hi:.1f})")
    slope = f"{args.profiles // 4:,} -> {args.profiles:,} profiles"
    print(f"RSS per resident profile:     {rss_slope:10,.0f} B (slope {slope})")
    print(f"Python heap per profile:      {heap_slope:10,.0f} B (tracemalloc, same slope)")
    print("where the core's time goes (cProfile, by own time):")
    print(profile)


if __name__ == "__main__":
    main()
