"""Reporting: reads that cost the same whatever the profile count, and what timelines cost.

Workload: the five examples published on an engine with a real SQLite file, a
seeded stream of Segment-like messages over N profiles (``bench/runtime.py``'s
stream), the clock moving so waits, re-checks and exits fire.

Measured, each against a baseline in the same run:

- journey counts (``Reporting.journey``), kept as users move, against a
  brute-force recount that scans every profile's state;
- the first page of users at a step, a profile, and a profile's timeline
  (indexed SQLite reads);
- ingest throughput with the timeline recorded, against the same engine with
  recording switched off (a no-op ``record``): what writing timelines costs;
- the timeline's size: entries per message and bytes per entry on disk.

Run from the repository root:  .venv/bin/python bench/reporting.py
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
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
from bench.runtime import START, open_engine  # noqa: E402
from bench.workload import segment_messages  # noqa: E402
from journeys_engine import Engine  # noqa: E402
from journeys_engine.runtime.space import SpaceRuntime  # noqa: E402
from journeys_engine.testing import FakeClock  # noqa: E402

JOURNEY = "cart-abandonment"


async def fill(path: Path, stream: list[dict[str, Any]], batch: int, step_ms: int) -> Engine:
    """An engine on ``path`` after the whole stream, still open."""
    clock = FakeClock(START)
    engine = await open_engine(clock, path)
    for i in range(0, len(stream), batch):
        await engine.ingest("default", stream[i : i + batch])
        clock.advance(step_ms)
        await engine.fire_due()
    await engine.settle()
    return engine


async def ingest_rate(stream: list[dict[str, Any]], batch: int, step_ms: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        engine = await fill(Path(tmp) / "journeys.db", stream, batch, step_ms)
        elapsed = time.perf_counter() - started
        await engine.close()
    return len(stream) / elapsed


def recount(engine: Engine) -> tuple[int, int]:
    """The baseline: in-progress runs and current members per step, by scanning profiles."""
    in_progress = members = 0
    for actor in engine.runtime.space("default").actors.values():
        state = actor.journeys.get(JOURNEY)
        if state is not None and state.run is not None:
            in_progress += 1
            members += len(state.run.joined)
    return in_progress, members


async def median_us(call: Callable[[], Awaitable[object]], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


async def reads(
    stream: list[dict[str, Any]], batch: int, step_ms: int, repeats: int
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journeys.db"
        engine = await fill(path, stream, batch, step_ms)
        reporting = engine.reporting
        report = await reporting.journey("default", JOURNEY)
        busiest = max(report.steps, key=lambda s: s.members).step_id
        user = stream[0]["userId"]

        async def scan() -> object:
            return recount(engine)

        found = {
            "counts": await median_us(lambda: reporting.journey("default", JOURNEY), repeats),
            "recount": await median_us(scan, max(3, repeats // 20)),
            "users": await median_us(
                lambda: reporting.step_users("default", JOURNEY, busiest), repeats
            ),
            "profile": await median_us(lambda: reporting.profile("default", user_id=user), repeats),
            "timeline": await median_us(
                lambda: reporting.timeline("default", user_id=user), repeats
            ),
            "profiles": len(engine.runtime.space("default").actors),
            "members": sum(s.members for s in report.steps),
        }
        await engine.close()
        with sqlite3.connect(path) as db:
            (rows,) = db.execute("SELECT count(*) FROM timeline").fetchone()
            (payload,) = db.execute(
                "SELECT sum(length(cause) + coalesce(length(detail), 0) + length(actor_id) "
                "+ length(journey_id) + length(kind) + coalesce(length(step_id), 0) + 24) "
                "FROM timeline"
            ).fetchone()
            pages = db.execute(
                "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'timeline%'"
            ).fetchone()
        found["entries"] = rows
        found["entry_bytes"] = payload / max(1, rows)
        found["disk_bytes"] = (pages[0] or 0) / max(1, rows) if pages else 0.0
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=200, help="calls per read measured")
    args = parser.parse_args()
    stream = segment_messages(args.profiles, args.messages, seed=5)
    step_ms = 10 * 86_400_000 * args.batch // max(1, args.messages)

    with_timeline, without = [], []
    record = SpaceRuntime.record
    for _ in range(args.runs):
        with_timeline.append(asyncio.run(ingest_rate(stream, args.batch, step_ms)))
        SpaceRuntime.record = lambda *_, **__: None  # type: ignore[method-assign]
        try:
            without.append(asyncio.run(ingest_rate(stream, args.batch, step_ms)))
        finally:
            SpaceRuntime.record = record  # type: ignore[method-assign]
    found = asyncio.run(reads(stream, args.batch, step_ms, args.repeats))

    print(describe())
    print(
        f"{args.messages:,} messages over {args.profiles:,} profiles, batches of {args.batch}, "
        f"5 examples published, SQLite file; {args.runs} runs"
    )
    w, w_lo, w_hi = median_range(with_timeline)
    n, n_lo, n_hi = median_range(without)
    print(f"ingest -> applied, timelines on:   {w:9,.0f} msg/s (min {w_lo:,.0f}, max {w_hi:,.0f})")
    print(f"ingest -> applied, timelines off:  {n:9,.0f} msg/s (min {n_lo:,.0f}, max {n_hi:,.0f})")
    print(f"ratio on / off:                    {w / n:9.2f}")
    entries = found["entries"]
    print(
        f"timeline: {entries:,.0f} entries, {entries / args.messages:.2f} per message, "
        f"{found['entry_bytes']:.0f} B per entry stored, "
        f"{found['disk_bytes']:.0f} B per entry on disk with its indexes"
    )
    print(
        f"reads ({found['profiles']:,.0f} profiles, {found['members']:,.0f} runs at "
        f"{JOURNEY}'s steps; medians of {args.repeats} calls):"
    )
    counts, scan = found["counts"], found["recount"]
    print(f"  journey counts (kept):            {counts:9,.0f} us")
    ratio = f"({scan / counts:,.2f}x the kept counts)"
    print(f"  recount by scanning profiles:     {scan:9,.0f} us  {ratio}")
    print(f"  first page of users at a step:    {found['users']:9,.0f} us")
    print(f"  a profile:                        {found['profile']:9,.0f} us")
    print(f"  a profile's timeline:             {found['timeline']:9,.0f} us")


if __name__ == "__main__":
    main()
