"""Snapshot writes: rows/s through the engine's store against raw sqlite3, and the loop's stalls.

Workload: N real profiles (20,000) made by the engine from ``bench/runtime.py``'s
stream (the five example journeys published, two messages per profile; ~1.3 KB
of JSON each), on a fresh SQLite file (WAL, ``synchronous=NORMAL``). Their
snapshot rows are written again and again, in units of the engine's size (250
profiles):

- ``DurableStore.commit`` of ready-made units (snapshot rows and step rosters,
  the applied-position floor, in one transaction each);
- the engine's own flush: the profiles marked changed, units taken (the
  snapshots encoded as JSON, on the event loop) and committed; a task sleeping
  1 ms in a loop records the loop's stalls meanwhile.

Baseline, in the same run, alternating with the engine: raw ``sqlite3``
``executemany`` of the same rows (``INSERT OR REPLACE`` into the same schema in
a file of its own), one unit per transaction (``bench/durability.py``'s
``flush_figures``); for the stalls, the same ticker on an idle loop.

Run from the repository root:  .venv/bin/python bench/snapshots.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.durability import Ticker, flush_figures  # noqa: E402
from bench.figures import Figure, percentile  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.scale import WORKDIR, report  # noqa: E402
from journeys_engine.runtime.runtime import UNIT_ACTORS  # noqa: E402


async def idle_gaps(seconds: float) -> list[float]:
    ticker = Ticker()
    ticker.start()
    await asyncio.sleep(seconds)
    return await ticker.stop()


def measure(quick: bool, workdir: Path) -> list[Figure]:
    profiles, runs = (1_000, 3) if quick else (20_000, 3)
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        found = asyncio.run(flush_figures(Path(tmp), profiles, runs))
    idle = asyncio.run(idle_gaps(0.5 if quick else 1.0))
    raw = f"raw sqlite3 executemany of the same rows, {UNIT_ACTORS} per transaction"
    rows = f"{found['rows']:,} profiles ({found['snapshot_bytes']:,.0f} B of JSON each)"
    store = Figure(
        name=f"snapshot writes, DurableStore.commit, units of {UNIT_ACTORS}: {rows}",
        unit="rows/s",
        values=found["store"],
        baseline=raw,
        baseline_values=found["raw"],
        higher_is_better=True,
        guard=0.1,  # measured ~0.6
    )
    flush = Figure(
        name="snapshot writes, engine flush (JSON encoding on the loop + commit)",
        unit="rows/s",
        values=found["engine"],
        baseline=raw,
        baseline_values=found["raw"],
        higher_is_better=True,
        guard=0.03,  # measured ~0.2
    )
    # One value per run would hide the tail: the p99 of each run's ticks.
    per_run = len(found["gaps"]) // runs
    gaps = [
        percentile(found["gaps"][i * per_run : (i + 1) * per_run], 0.99) * 1e3 for i in range(runs)
    ]
    stall = Figure(
        name="event-loop stall p99 during engine flushes (1 ms ticker)",
        unit="ms",
        values=gaps,
        baseline="the same ticker on an idle loop, p99",
        baseline_values=[percentile(idle, 0.99) * 1e3],
        higher_is_better=False,
        note=(
            f"max {max(found['gaps']) * 1e3:,.1f} ms; longest calls (collections apart): "
            f"{found['longest']}"
        ),
    )
    return [store, flush, stall]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes (CI)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="scratch files go here")
    args = parser.parse_args()
    print(describe(), flush=True)
    report(measure(args.quick, args.workdir), args.quick)


if __name__ == "__main__":
    main()
