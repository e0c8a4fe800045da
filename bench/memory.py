"""Memory at scale: RSS per resident idle profile, and a server holding 1M passivated profiles.

Workload: the kept profile file of ``bench/scale.py`` (1,000,000 profiles cloned
from 2,000 real ones that went through the five example journeys, each with a
pending wake-up; snapshots ~1.6 KB of JSON).

1. RSS per resident idle profile: in a child process of its own, the engine is
   opened on the file and every profile is made resident through the engine's
   activation path (each snapshot row parsed by ``Actor.from_data`` with the
   space's condition index, then ``Space.activate``, which puts it in memory and
   its wake-up in the wheel, as ``Engine._activate`` does), 50,000 rows a slice
   read straight from the file, with the collector frozen between slices (the
   profiles are long-lived; a full collection over millions of them would be
   most of the time otherwise). The figure is the RSS slope from 100,000 to
   1,000,000 resident profiles: the values are the slopes of the nine 100k
   steps. Then ``passivate(0)`` drops them all, and the RSS left is reported.
   Baseline, in the same run, in a child of its own: a ``dict`` of plain
   ``__slots__`` objects (an id and three ints) keyed by the same ids, the same
   slope.
2. Server RSS holding 1,000,000 passivated profiles: ``journeys serve
   --manual-clock`` on the file (auth on), after its first acknowledged ingest
   over gRPC; baseline: the same server on an empty database.

Run from the repository root:  .venv/bin/python bench/memory.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench  # noqa: E402, F401, I001  (first: the project's folders importable)

from journeys_client import JourneysClient  # noqa: E402

from bench.figures import Figure  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.runtime import rss_bytes  # noqa: E402
from bench.scale import (  # noqa: E402
    SPACE,
    WORKDIR,
    child,
    discard_wal,
    finish_child,
    profile_db,
    report,
    warm,
)
from bench.servers import start_engine  # noqa: E402
from journeys_engine import Engine  # noqa: E402
from journeys_engine.runtime.actor import Actor  # noqa: E402
from journeys_engine.testing import FakeClock  # noqa: E402

SCRIPT = Path(__file__).resolve()
PER_PROFILE_TARGET = 500.0  # B
SERVER_TARGET_MB = 300.0
STEPS = 10  # RSS read at every tenth of the profiles


def trim_heap() -> None:
    """Gives free heap pages back to the OS (glibc), as a long-running server's
    allocator eventually would."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


async def resident(path: Path, now: int, profiles: int) -> dict[str, Any]:
    """(child) Every profile made resident from its snapshot, RSS at each tenth."""
    engine = await Engine.open(path, clock=FakeClock(now))
    await engine.ready()
    space = engine.runtime.space(SPACE)
    index = space.conditions.index
    loads = json.loads
    step = profiles // STEPS
    slice_ = min(50_000, step)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    select = (
        "SELECT rowid, position, wake_at, data FROM actors "
        "WHERE space_id = ? AND rowid > ? ORDER BY rowid LIMIT ?"
    )
    gc.collect()
    gc.freeze()
    rss = [rss_bytes()]
    counts = [0]
    garbage = 0
    last = -1
    began = time.perf_counter()
    while len(space.actors) < profiles:
        gc.disable()
        rows = db.execute(select, (SPACE, last, slice_)).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        found = []
        for _, position, wake, data in rows:
            actor = Actor.from_data(loads(data), index)  # as DurableStore.load_actors
            actor.position = int(position)
            found.append((actor, wake))
        mark = space.loading()
        space.activate(found, now, mark)  # as Engine._activate
        space.loaded(mark)
        del rows, found
        garbage += gc.collect()  # this slice's objects only: the rest are frozen
        gc.freeze()
        gc.enable()
        if len(space.actors) % step == 0:
            rss.append(rss_bytes())
            counts.append(len(space.actors))
    seconds = time.perf_counter() - began
    db.close()
    gc.unfreeze()
    engine.clock.advance(1)  # type: ignore[attr-defined]
    began = time.perf_counter()
    dropped = await engine.passivate(0)
    passivate_s = time.perf_counter() - began
    gc.collect()
    passivated = rss_bytes()
    trim_heap()
    return {
        "counts": counts,
        "rss": rss,
        "seconds": seconds,
        "garbage": garbage,
        "dropped": dropped,
        "passivate_s": passivate_s,
        "passivated": passivated,
        "trimmed": rss_bytes(),
    }


class Plain:
    """The baseline's object: an id and three ints."""

    __slots__ = ("id", "position", "touched", "wake_at")

    def __init__(self, id_: str, position: int, wake_at: int, touched: int) -> None:
        self.id = id_
        self.position = position
        self.wake_at = wake_at
        self.touched = touched


def plain(profiles: int) -> dict[str, Any]:
    """(child) The baseline: a dict of plain ``__slots__`` objects keyed by id."""
    step = profiles // STEPS
    table: dict[str, Plain] = {}
    gc.collect()
    rss = [rss_bytes()]
    counts = [0]
    for i in range(profiles):
        key = f"u:c{i:07d}"
        table[key] = Plain(key, i, 1_767_225_600_000 + i, 1_767_225_600_000)
        if (i + 1) % step == 0:
            rss.append(rss_bytes())
            counts.append(i + 1)
    return {"counts": counts, "rss": rss}


def slopes(found: dict[str, Any]) -> list[float]:
    """RSS per entry of each step after the first tenth (100k -> 1M in tenths)."""
    counts, rss = found["counts"], found["rss"]
    return [(rss[i + 1] - rss[i]) / (counts[i + 1] - counts[i]) for i in range(1, len(counts) - 1)]


async def first_ack(target: str, token: str) -> float:
    async with JourneysClient(target, timeout=120, token=token) as client:
        began = time.perf_counter()
        ack = await client.ingest([{"type": "track", "userId": "c0000001", "event": "Page Viewed"}])
        assert ack.accepted == 1
        return time.perf_counter() - began


def server_rss(path: Path) -> float:
    """``journeys serve`` on the file: its RSS (MB) after the first acknowledged
    ingest; killed (as a crash) so that what it wrote stays out of a kept file."""
    server, secrets = start_engine(path)
    try:
        asyncio.run(first_ack(server.target, secrets.ingest))
        time.sleep(0.5)  # (the ingested message applied)
        return server.rss_mb()
    finally:
        server.process.kill()
        server.process.communicate(timeout=60)


def measure(quick: bool, workdir: Path) -> list[Figure]:
    profiles, templates, servers = (5_000, 100, 1) if quick else (1_000_000, 2_000, 3)
    built = profile_db(workdir, profiles, templates)
    warm(built.path)
    # (at least 100k entries: a smaller dict's steps are a few pages, and its resizes show)
    entries = max(profiles, 100_000)
    base = child(SCRIPT, "plain", str(entries))
    found = child(SCRIPT, "resident", str(built.path), str(built.now), str(profiles))
    discard_wal(built.path, built.record)
    counts, rss = found["counts"], found["rss"]
    first, last = counts[1], counts[-1]
    overall = (rss[-1] - rss[1]) / (last - first)
    per_profile = Figure(
        name=(
            f"RSS per resident idle profile (slope {first:,} → {last:,} resident, "
            "activated from snapshots)"
        ),
        unit="B",
        values=slopes(found),
        target=f"≤ {PER_PROFILE_TARGET:,.0f} B",
        baseline=f"dict of {entries:,} __slots__ objects by id, slope per entry",
        baseline_values=slopes(base),
        higher_is_better=False,
        # Measured ~0.02 (a profile is ~7 KB against ~150 B).
        guard=0.003,
        note=(
            f"values: the slope of each {counts[2] - counts[1]:,}-profile step, overall "
            f"{overall:,.0f} B; activation {last / found['seconds']:,.0f} profiles/s "
            f"({found['garbage']:,} objects of cyclic garbage collected); "
            f"after passivate(0) of {found['dropped']:,} ({found['passivate_s']:.1f} s) "
            f"{(found['passivated'] - rss[0]) / max(1, found['dropped']):,.0f} B per profile "
            f"still held above the engine before activation, "
            f"{(found['trimmed'] - rss[0]) / max(1, found['dropped']):,.0f} B after "
            f"malloc_trim; file {built.describe()}"
        ),
    )
    per_profile.met = per_profile.median <= PER_PROFILE_TARGET
    held, empty = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(servers):
            held.append(server_rss(built.path))
            discard_wal(built.path, built.record)
            empty.append(server_rss(Path(tmp) / f"empty-{run}.db"))
    server = Figure(
        name=f"server RSS holding {profiles:,} passivated profiles (journeys serve, first ack)",
        unit="MB",
        values=held,
        target=f"< {SERVER_TARGET_MB:,.0f} MB",
        baseline="the same server on an empty database",
        baseline_values=empty,
        higher_is_better=False,
        guard=0.2,  # measured ~0.9: the profiles on disk add little
        note="a fresh server per run, auth on, manual clock at the file's build instant",
    )
    server.met = server.median < SERVER_TARGET_MB
    return [per_profile, server]


def run_child(argv: list[str]) -> None:
    kind, rest = argv[0], argv[1:]
    match kind:
        case "resident":
            found = asyncio.run(resident(Path(rest[0]), int(rest[1]), int(rest[2])))
        case "plain":
            found = plain(int(rest[0]))
        case _:
            raise SystemExit(f"unknown child {kind!r}")
    finish_child(found)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        run_child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes (CI)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="kept scale files")
    args = parser.parse_args()
    print(describe(), flush=True)
    report(measure(args.quick, args.workdir), args.quick)


if __name__ == "__main__":
    main()
