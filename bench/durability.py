"""Durability at scale: restart, warm-up, snapshot flushes, disk and memory per profile, timers.

Workload: a database of N profiles (default 1,000,000) each with a pending
wake-up spread over the next 30 days, the five example journeys published. It
is built fast: a few thousand real profiles go through the engine (the
``bench/runtime.py`` stream, the clock crossing two days), then their snapshot
rows and step rosters are cloned in SQL under distinct ids with distinct
wake-ups, and the originals are dropped (the journey counts stay the
originals'; nothing here reads them). Where a figure has a baseline, it is
measured in the same run:

1. restart: ``Engine.open`` to the first acknowledged ``ingest`` and to
   ``ready()``, in a fresh process each time; against the eager reload (every
   snapshot row read and parsed as JSON);
2. warm-up: every profile activated from its snapshot, in shuffled chunks of 500
   (``Engine._activate``), per 100k segment;
3. snapshot flush: rows/s through ``DurableStore.commit`` in units of 500
   changed profiles, against raw ``sqlite3`` ``executemany`` of the same rows, 500
   per transaction; the longest event-loop stall (a 1 ms ticker) while flushing
   and under a sustained ingest, against the idle loop, with the longest
   synchronous calls and garbage collections that explain them;
4. bytes per profile on disk (file + WAL after a checkpoint);
5. RSS per resident profile (slope over the warm-up), what ``passivate(0)``
   gives back, and the RSS of a process holding the N passivated profiles;
6. pending timers (default 10,000,000 stored wake-ups, minimal snapshots): RSS
   after open against the same count in a ``heapq``;
7. timer fire rate and lateness on the system clock, against ``heapq`` pushes
   and pops of the same count.

The figures measured with an engine process of their own (restart, warm-up,
the pending timers and their heapq) run in child processes of this script, so
their RSS is their own. Scratch databases go under ``--workdir`` and are
removed at the end unless ``--keep`` (the full run needs about 6 GB there).
``--only 37`` runs some figures (1, 2, 4 and 5 share the profile database).

Run from the repository root:  .venv/bin/python bench/durability.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import heapq
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
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
from bench.runtime import START, open_engine, rss_bytes  # noqa: E402
from bench.scale import (  # noqa: E402
    DAY_MS,
    SPACE,
    build_profiles,
    build_timers,
    remove_db,
    wake_at,
)
from bench.scale import create_db as _create  # noqa: E402
from bench.workload import segment_messages  # noqa: E402
from journeys_engine import Engine, EngineSettings, Move, Unit  # noqa: E402
from journeys_engine.model import (  # noqa: E402
    Condition,
    Destination,
    DestinationKind,
    EntryStep,
    EventMode,
    Journey,
    JourneySettings,
    SendToDestinationsStep,
    WaitDurationStep,
)
from journeys_engine.runtime.runtime import UNIT_ACTORS, ActorSnapshot  # noqa: E402
from journeys_engine.testing import FakeClock  # noqa: E402

WORKDIR = Path("/tmp/journeys-durability")
SCRATCH = ("profiles.db", "timers.db", "flush.db", "flush-raw.db", "stall.db", "fire.db")


# Helpers


def db_bytes(path: Path) -> int:
    """File + WAL, after a checkpoint that empties the WAL."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def trim_heap() -> bool:
    """Gives free heap pages back to the OS (glibc), as a long-running server's
    allocator would eventually; returns whether it could."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    libc.malloc_trim(0)
    return True


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def fmt_range(values: Sequence[float], unit: str, digits: int = 0) -> str:
    m, lo, hi = median_range(values)
    if len(values) == 1:
        return f"{m:,.{digits}f} {unit}"
    return f"{m:,.{digits}f} {unit} ({lo:,.{digits}f}-{hi:,.{digits}f})"


def child(kind: str, *args: str) -> dict[str, Any]:
    """Runs ``durability.py child KIND ...`` and returns the JSON it prints last."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "child", kind, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"child {kind} failed:\n{result.stderr}")
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


class Ticker:
    """Measures event-loop stalls: a task sleeping 1 ms in a loop, recording each gap."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> list[float]:
        self._stop = True
        if self._task is not None:
            await self._task
        return self.gaps


class Longest:
    """The longest run of a few synchronous calls (garbage collection inside them
    left out) and of each garbage collection: where a loop stall comes from."""

    def __init__(self) -> None:
        self.found: dict[str, float] = {}
        self.total: dict[str, float] = {}
        self._gc_started = 0.0
        self._gc_seconds = 0.0  # every collection seen so far, together

    def wrap(self, obj: object, name: str) -> None:
        """Times ``obj.name`` from now on (an instance attribute shadows the method)."""
        original: Callable[..., Any] = getattr(obj, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started, collected = time.perf_counter(), self._gc_seconds
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started - (self._gc_seconds - collected)
                self.note(name, spent)

        setattr(obj, name, timed)

    def note(self, name: str, seconds: float) -> None:
        self.found[name] = max(self.found.get(name, 0.0), seconds)
        self.total[name] = self.total.get(name, 0.0) + seconds

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            seconds = time.perf_counter() - self._gc_started
            self._gc_seconds += seconds
            self.note(f"gc gen{info['generation']}", seconds)

    @contextlib.contextmanager
    def gc(self) -> Iterator[None]:
        """Collections are timed inside the block."""
        gc.callbacks.append(self._on_gc)
        try:
            yield
        finally:
            gc.callbacks.remove(self._on_gc)

    def describe(self) -> str:
        return ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in sorted(self.found.items()))


# The profile database (figures 1, 2, 4, 5)


def profile_counts(path: Path, now: int, horizon_ms: int) -> dict[str, float]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        profiles, wakes, snapshot = db.execute(
            "SELECT count(*), count(wake_at), avg(length(data)) FROM actors"
        ).fetchone()
        (near,) = db.execute(
            "SELECT count(*) FROM actors WHERE wake_at IS NOT NULL AND wake_at <= ?",
            (now + horizon_ms,),
        ).fetchone()
        (members,) = db.execute("SELECT count(*) FROM members").fetchone()
        tables = dict(
            db.execute(
                "SELECT CASE WHEN name IN ('actors', 'actors_by_wake', 'sqlite_autoindex_actors_1')"
                " THEN 'actors' WHEN name LIKE 'members%' THEN 'members' ELSE 'other' END, "
                "sum(pgsize) FROM dbstat GROUP BY 1"
            ).fetchall()
        )
    return {
        "profiles": profiles,
        "wakes": wakes,
        "near": near,
        "members": members,
        "snapshot_bytes": snapshot,
        "actors_bytes": tables.get("actors", 0),
        "members_bytes": tables.get("members", 0),
        "other_bytes": tables.get("other", 0),
    }


def eager_reload(path: Path) -> tuple[float, int]:
    """The baseline: every snapshot row read and parsed (ARCHITECTURE.md's eager reload)."""
    started = time.perf_counter()
    count = 0
    with contextlib.closing(sqlite3.connect(path)) as db:
        for (data,) in db.execute("SELECT data FROM actors"):
            json.loads(data)
            count += 1
    return time.perf_counter() - started, count


async def restart(path: Path, now: int, touch: int, clones: int) -> dict[str, Any]:
    """(child) Opens the engine on the profile database, as after a restart."""
    gc.collect()
    rss_start = rss_bytes()
    started = time.perf_counter()
    engine = await Engine.open(path, clock=FakeClock(now))
    opened = time.perf_counter()
    user = f"c{clones // 2:07d}"
    result = await engine.ingest(
        SPACE,
        [
            {
                "type": "track",
                "userId": user,
                "event": "Page Viewed",
                "messageId": f"r-{os.getpid()}",
            }
        ],
    )
    acked = time.perf_counter()
    assert result.accepted == 1
    await engine.ready()
    ready = time.perf_counter()
    gc.collect()
    rss_open = rss_bytes()
    wheel = len(engine.runtime.wheel)
    step = max(1, clones // max(1, touch))
    ids = [f"c{i:07d}" for i in range(0, clones, step)][:touch]
    for i in range(0, len(ids), UNIT_ACTORS):
        await engine.ingest(
            SPACE,
            [
                {"type": "track", "userId": u, "event": "Page Viewed", "messageId": f"t-{u}-{now}"}
                for u in ids[i : i + UNIT_ACTORS]
            ],
        )
    await engine.settle()
    gc.collect()
    rss_touched = rss_bytes()
    resident = len(engine.runtime.space(SPACE).actors)
    await engine.close()
    return {
        "open": opened - started,
        "ack": acked - started,
        "ready": ready - started,
        "rss_start": rss_start,
        "rss_open": rss_open,
        "rss_touched": rss_touched,
        "resident": resident,
        "wheel": wheel,
    }


async def warmup(path: Path, now: int, first: int, seed: int) -> dict[str, Any]:
    """(child) Activates every profile, in shuffled chunks of 500; then passivates them."""
    clock = FakeClock(now)
    engine = await Engine.open(path, clock=clock)
    await engine.ready()
    with contextlib.closing(sqlite3.connect(path)) as db:
        ids = [r[0] for r in db.execute("SELECT actor_id FROM actors WHERE space_id = ?", (SPACE,))]
    random.Random(seed).shuffle(ids)
    space = engine.runtime.space(SPACE)
    segment = max(UNIT_ACTORS, (len(ids) // 10) // UNIT_ACTORS * UNIT_ACTORS)
    rates: list[float] = []
    rss: dict[str, int] = {}
    elapsed = 0.0
    collector = Longest()
    gc.collect()
    rss["base"] = rss_bytes()
    tracked = len(gc.get_objects())
    for start in range(0, len(ids), segment):
        part = ids[start : start + segment]
        began = time.perf_counter()
        with collector.gc():  # (the automatic collections only, not the explicit ones)
            for i in range(0, len(part), UNIT_ACTORS):
                await engine._activate(SPACE, part[i : i + UNIT_ACTORS])
        took = time.perf_counter() - began
        elapsed += took
        rates.append(len(part) / took)
        if start + len(part) == first:
            gc.collect()
            rss["first"] = rss_bytes()
            tracked = (len(gc.get_objects()) - tracked) // first
    resident = len(space.actors)
    gc.collect()
    rss["all"] = rss_bytes()
    clock.advance(1)
    began = time.perf_counter()
    dropped = await engine.passivate(0)
    passivate_s = time.perf_counter() - began
    gc.collect()
    rss["passivated"] = rss_bytes()
    trimmed = trim_heap()
    rss["trimmed"] = rss_bytes()
    left = len(space.actors)
    await engine.close()
    return {
        "resident": resident,
        "rate": resident / elapsed,
        "segment": segment,
        "rates": rates,
        "rss": rss,
        "dropped": dropped,
        "left": left,
        "passivate_s": passivate_s,
        "trimmed": trimmed,
        "gc_longest": collector.found.get("gc gen2", 0.0),
        "gc_total": sum(collector.total.values()),
        "tracked": tracked,
        "seconds": elapsed,
    }


# Pending timers (figure 6)


async def open_timers(path: Path, now: int) -> dict[str, Any]:
    """(child) The engine opened on the pending-timer database."""
    gc.collect()
    rss_start = rss_bytes()
    started = time.perf_counter()
    engine = await Engine.open(path, clock=FakeClock(now))
    await engine.ingest(SPACE, [{"type": "track", "userId": "t00000001", "event": "Ping"}])
    await engine.ready()
    ready = time.perf_counter() - started
    gc.collect()
    rss_open = rss_bytes()
    wheel = len(engine.runtime.wheel)
    await engine.close()
    return {"rss_start": rss_start, "rss_open": rss_open, "ready": ready, "wheel": wheel}


def heap_timers(count: int, now: int) -> dict[str, Any]:
    """(child) The baseline: every wake-up in a heapq of (instant, actor id)."""
    gc.collect()
    rss_start = rss_bytes()
    started = time.perf_counter()
    heap: list[tuple[int, str]] = []
    for i in range(count):
        heapq.heappush(heap, (wake_at(now, i), f"u:t{i:08d}"))
    took = time.perf_counter() - started
    gc.collect()
    rss_heap = rss_bytes()
    return {"rss_start": rss_start, "rss_heap": rss_heap, "seconds": took, "size": len(heap)}


# Snapshot flushes and stalls (figure 3)


async def flush_figures(workdir: Path, profiles: int, runs: int) -> dict[str, Any]:
    """Units of 500 real profiles committed through the store, through the engine's
    own flush, and by raw sqlite3, alternating; the loop's ticks during the
    engine's flushes."""
    path, raw_path = workdir / "flush.db", workdir / "flush-raw.db"
    remove_db(path)
    remove_db(raw_path)
    clock = FakeClock(START)
    engine = await open_engine(clock, path)
    stream = segment_messages(profiles, 2 * profiles, seed=7)
    for i in range(0, len(stream), UNIT_ACTORS):
        await engine.ingest(SPACE, stream[i : i + UNIT_ACTORS])
    await engine.settle()
    actors = list(engine.runtime.space(SPACE).actors.items())
    chunks = [actors[i : i + UNIT_ACTORS] for i in range(0, len(actors), UNIT_ACTORS)]
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    units = [
        Unit(
            snapshots={
                (SPACE, actor_id): ActorSnapshot(
                    actor.position, actor.wake_at, dumps(actor.to_data()), None
                )
                for actor_id, actor in chunk
            }
        )
        for chunk in chunks
    ]
    rows = [
        (space_id, actor_id, snap.position, snap.wake_at, snap.data)
        for unit in units
        for (space_id, actor_id), snap in unit.snapshots.items()
    ]
    await _create(raw_path)
    raw = sqlite3.connect(raw_path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    insert = (
        "INSERT OR REPLACE INTO actors (space_id, actor_id, position, wake_at, data) "
        "VALUES (?, ?, ?, ?, ?)"
    )

    def raw_pass() -> float:
        began = time.perf_counter()
        for i in range(0, len(rows), UNIT_ACTORS):
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany(insert, rows[i : i + UNIT_ACTORS])
            raw.execute("COMMIT")
        return len(rows) / (time.perf_counter() - began)

    raw_pass()  # the rows exist in both files before timing: each pass replaces them
    store_rates, engine_rates, raw_rates = [], [], []
    gaps: list[float] = []
    longest = Longest()
    longest.wrap(engine.runtime, "take_units")
    for run in range(runs):
        if run % 2:
            raw_rates.append(raw_pass())
        began = time.perf_counter()
        for unit in units:
            await engine.store.commit(unit)
        store_rates.append(len(rows) / (time.perf_counter() - began))
        # The engine's own flush: profiles marked changed, units taken (the
        # snapshots encoded, on the loop), committed.
        ticker = Ticker()
        ticker.start()
        began = time.perf_counter()
        with longest.gc():
            for chunk in chunks:
                busy = engine.runtime.busy
                for actor_id, actor in chunk:
                    busy[(SPACE, actor_id)] = actor
                await engine._commit()
        engine_rates.append(len(rows) / (time.perf_counter() - began))
        gaps.extend(await ticker.stop())
        if not run % 2:
            raw_rates.append(raw_pass())
    raw.close()
    await engine.close()
    remove_db(path)
    remove_db(raw_path)
    return {
        "rows": len(rows),
        "snapshot_bytes": sum(len(r[4]) for r in rows) / len(rows),
        "store": store_rates,
        "engine": engine_rates,
        "raw": raw_rates,
        "gaps": gaps,
        "longest": longest.describe(),
    }


async def stall_figures(workdir: Path, events: int, profiles: int) -> dict[str, Any]:
    """The loop's ticks when idle (the baseline), then under a sustained ingest with
    timers firing (``bench/runtime.py``'s way: the clock crossing ten days)."""
    gc.collect()
    idle = Ticker()
    idle.start()
    await asyncio.sleep(1.0)
    idle_gaps = await idle.stop()
    path = workdir / "stall.db"
    remove_db(path)
    clock = FakeClock(START)
    engine = await open_engine(clock, path)
    stream = segment_messages(profiles, events, seed=9)
    step_ms = 10 * DAY_MS * UNIT_ACTORS // max(1, len(stream))
    longest = Longest()
    for name in ("apply", "take_units", "wake"):
        longest.wrap(engine.runtime, name)
    # The stream is the benchmark's, not the engine's: collections do not walk it.
    gc.collect()
    gc.freeze()
    ticker = Ticker()
    ticker.start()
    began = time.perf_counter()
    with longest.gc():
        for i in range(0, len(stream), UNIT_ACTORS):
            await engine.ingest(SPACE, stream[i : i + UNIT_ACTORS])
            clock.advance(step_ms)
            await engine.fire_due()
        await engine.settle()
    rate = len(stream) / (time.perf_counter() - began)
    gaps = await ticker.stop()
    gc.unfreeze()
    resident = len(engine.runtime.space(SPACE).actors)
    await engine.close()
    remove_db(path)
    return {
        "idle_gaps": idle_gaps,
        "gaps": gaps,
        "longest": longest.describe(),
        "rate": rate,
        "resident": resident,
    }


# Timers on the system clock (figure 7)


class TimedSink:
    """Notes, for every output, its lateness: wall time at commit minus its due instant."""

    def __init__(self, expected: int) -> None:
        self.lateness: list[int] = []
        self.last = 0
        self.expected = expected
        self.done = asyncio.Event()

    async def commit(self, unit: Unit) -> None:
        if unit.outputs:
            wall = time.time_ns() // 1_000_000
            self.last = wall
            self.lateness.extend(wall - o.timestamp for o in unit.outputs)
            if len(self.lateness) >= self.expected:
                self.done.set()


async def fire_run(path: Path, count: int, wait_ms: int) -> dict[str, Any]:
    remove_db(path)
    sink = TimedSink(count)
    engine = await Engine.open(path, sink=sink, settings=EngineSettings())
    assert not engine.manual_clock
    await engine.definitions.create(
        SPACE, Destination("bench", "", "Bench", DestinationKind.EVENT, EventMode.TRACK)
    )
    steps = (
        EntryStep("entry", "Go", Condition("event('Go').count() >= 1"), False, "wait"),
        WaitDurationStep("wait", "Wait", wait_ms, "send"),
        SendToDestinationsStep("send", "Send", ("bench",)),
    )
    await engine.journeys.create(
        SPACE, Journey(id="fire", space_id="", name="Fire", settings=JourneySettings(), steps=steps)
    )
    await engine.journeys.move(SPACE, "fire", Move.PUBLISH)
    batch = 2_500  # the largest batch the server takes
    received: list[int] = []
    for i in range(0, count, batch):
        received.append(engine.clock.now_ms())
        await engine.ingest(
            SPACE,
            [
                {"type": "track", "userId": f"f{j}", "event": "Go", "messageId": f"go-{j}"}
                for j in range(i, min(count, i + batch))
            ],
        )
    await engine.settle()
    applied_at = engine.clock.now_ms()
    first_due = received[0] + wait_ms
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sink.done.wait(), 120 + wait_ms / 1000)
    await engine.close()
    remove_db(path)
    fired = len(sink.lateness)
    return {
        "fired": fired,
        "rate": fired / max(0.001, (sink.last - first_due) / 1000),
        "p50": percentile(sink.lateness, 0.5),
        "p99": percentile(sink.lateness, 0.99),
        "max": max(sink.lateness),
        "spread": received[-1] - received[0],
        "slack": first_due - applied_at,  # > 0: every entry applied before the first wait ended
    }


def heap_rate(count: int, seed: int) -> float:
    rng = random.Random(seed)
    items = [(rng.randrange(1_000), f"u:f{i}") for i in range(count)]
    began = time.perf_counter()
    heap: list[tuple[int, str]] = []
    for item in items:
        heapq.heappush(heap, item)
    while heap:
        heapq.heappop(heap)
    return count / (time.perf_counter() - began)


# Running it


def run_child(argv: list[str]) -> None:
    kind, rest = argv[0], argv[1:]
    match kind:
        case "restart":
            path, now, touch, clones = Path(rest[0]), int(rest[1]), int(rest[2]), int(rest[3])
            found = asyncio.run(restart(path, now, touch, clones))
        case "warmup":
            path, now, first = Path(rest[0]), int(rest[1]), int(rest[2])
            found = asyncio.run(warmup(path, now, first, seed=13))
        case "open-timers":
            found = asyncio.run(open_timers(Path(rest[0]), int(rest[1])))
        case "heap-timers":
            found = heap_timers(int(rest[0]), int(rest[1]))
        case _:
            raise SystemExit(f"unknown child {kind!r}")
    print(json.dumps(found), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        run_child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--templates", type=int, default=2_000, help="real profiles cloned")
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--touch", type=int, default=10_000, help="profiles touched after open")
    parser.add_argument("--timers", type=int, default=10_000_000)
    parser.add_argument("--flush-profiles", type=int, default=20_000)
    parser.add_argument("--flush-runs", type=int, default=3)
    parser.add_argument("--stall-events", type=int, default=50_000)
    parser.add_argument("--stall-profiles", type=int, default=10_000)
    parser.add_argument("--fire", type=int, default=20_000, help="profiles whose waits end")
    parser.add_argument("--wait", type=float, default=10.0, help="their wait, seconds")
    parser.add_argument("--fire-runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument(
        "--only", default="1234567", help="figures to run, e.g. 37 (1, 2, 4 and 5 share a build)"
    )
    args = parser.parse_args()
    if args.quick:
        args.profiles, args.templates, args.restarts, args.touch = 2_000, 100, 1, 200
        args.timers, args.flush_profiles, args.flush_runs = 20_000, 1_000, 1
        args.stall_events, args.stall_profiles = 2_000, 500
        args.fire, args.wait, args.fire_runs = 200, 1.0, 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    horizon_ms = EngineSettings().timer_horizon_ms
    only = set(args.only)
    print(describe(), flush=True)
    print("durability: WAL, synchronous=NORMAL (survives a killed process, not power loss)")
    try:
        if only & set("1245"):
            profile_figures(args, horizon_ms, only)
        if "3" in only:
            print_flush(args)
        if "6" in only:
            timer_figures(args, horizon_ms)
        if "7" in only:
            fire_figures(args)
    finally:
        if not args.keep:
            for name in SCRATCH:
                remove_db(args.workdir / name)
            with contextlib.suppress(OSError):
                args.workdir.rmdir()  # (only when nothing else is in it)


def profile_figures(args: argparse.Namespace, horizon_ms: int, only: set[str]) -> None:
    path = args.workdir / "profiles.db"
    now, build_s = asyncio.run(build_profiles(path, args.profiles, args.templates))
    os.sync()  # the build's writes reach the disk before anything is timed
    counts = profile_counts(path, now, horizon_ms)
    size = db_bytes(path)
    n = int(counts["profiles"])
    print(
        f"\nprofile database: {n:,} profiles cloned from {args.templates:,} real ones, "
        f"{counts['wakes']:,.0f} pending wake-ups over 30 days ({counts['near']:,.0f} within "
        f"the {horizon_ms // 60_000} min horizon), {counts['members']:,.0f} roster rows, "
        f"snapshots {counts['snapshot_bytes']:,.0f} B of JSON on average; built in {build_s:.1f} s",
        flush=True,
    )
    if "1" in only or "5" in only:
        restarts = [
            child("restart", str(path), str(now), str(args.touch), str(n))
            for _ in range(args.restarts)
        ]
        eager_s, eager_rows = eager_reload(path)
        ack = [r["ack"] for r in restarts]
        print(f"\n1. restart on {n:,} profiles ({len(restarts)} runs, fresh process each):")
        for name, key in (
            ("Engine.open returns:       ", "open"),
            ("first ingest acknowledged: ", "ack"),
            ("ready():                   ", "ready"),
        ):
            print(f"  {name} {fmt_range([r[key] * 1e3 for r in restarts], 'ms', 1)}")
        print(f"  wake-ups in memory after open: {restarts[0]['wheel']:,}")
        print(
            f"  baseline eager reload (read + json.loads of {eager_rows:,} rows): {eager_s:,.2f} s"
        )
        m = median_range(ack)[0]
        print(f"  ratio eager reload / restart to first ack: {eager_s / m:,.0f}x", flush=True)
    if "2" in only or "5" in only:
        first = min(n, max(UNIT_ACTORS, n // 10 // UNIT_ACTORS * UNIT_ACTORS))
        warm = child("warmup", str(path), str(now), str(first))
        rss = warm["rss"]
        resident = warm["resident"]
        print(
            f"\n2. warm-up: {resident:,} profiles activated from snapshots (shuffled, 500 a call)"
        )
        print(f"  overall:                    {warm['rate']:,.0f} profiles/s")
        print(
            f"  per {warm['segment']:,}-profile segment: "
            f"{fmt_range(warm['rates'], 'profiles/s')}; in order: "
            + ", ".join(f"{r:,.0f}" for r in warm["rates"])
        )
        print(
            f"  garbage collection: {warm['gc_total']:,.1f} s of the {warm['seconds']:,.1f} s, "
            f"longest full collection {warm['gc_longest'] * 1e3:,.0f} ms (a loop stall); "
            f"{warm['tracked']:,} objects tracked by the collector per resident profile",
            flush=True,
        )
        if "5" in only:
            slope = (rss["all"] - rss["first"]) / max(1, resident - first)
            dropped = warm["dropped"]
            print(f"\n5. memory (RSS) of {resident:,} profiles:")
            print(f"  RSS per resident profile (slope {first:,} -> {resident:,}): {slope:,.0f} B")
            print(
                f"  passivate(0): {dropped:,} dropped in {warm['passivate_s'] * 1e3:,.0f} ms, "
                f"{warm['left']:,} left resident"
            )
            give = (rss["all"] - rss["passivated"]) / max(1, dropped)
            kept = (rss["passivated"] - rss["base"]) / max(1, dropped)
            print(
                f"  RSS given back per passivated profile: {give:,.0f} B; still held {kept:,.0f} B"
            )
            if warm["trimmed"]:
                give = (rss["all"] - rss["trimmed"]) / max(1, dropped)
                kept = (rss["trimmed"] - rss["base"]) / max(1, dropped)
                print(f"  after malloc_trim(0): given back {give:,.0f} B; still held {kept:,.0f} B")
            if "1" in only:
                r = restarts[0]
                opened = median_range([x["rss_open"] for x in restarts])[0]
                touched = median_range([x["rss_touched"] for x in restarts])[0]
                start = median_range([x["rss_start"] for x in restarts])[0]
                print(
                    f"  process holding {n:,} passivated profiles: {opened / 2**20:,.0f} MB RSS "
                    f"after open ({(opened - start) / 2**20:,.1f} MB above the bare "
                    f"interpreter with the engine imported, {start / 2**20:,.0f} MB); "
                    f"{touched / 2**20:,.0f} MB with {r['resident']:,} of them touched"
                )
    if "4" in only:
        print(f"\n4. disk: {size:,} B for {n:,} profiles (file + WAL after checkpoint)")
        print(f"  per profile:                {size / n:,.0f} B")
        print(
            f"  of which snapshots + wake index {counts['actors_bytes'] / n:,.0f} B, "
            f"rosters {counts['members_bytes'] / n:,.0f} B, "
            f"the rest (log, timelines, catalog, free pages) {counts['other_bytes'] / n:,.0f} B",
            flush=True,
        )
    if not args.keep:
        remove_db(path)


def print_flush(args: argparse.Namespace) -> None:
    f = asyncio.run(flush_figures(args.workdir, args.flush_profiles, args.flush_runs))
    s = asyncio.run(stall_figures(args.workdir, args.stall_events, args.stall_profiles))
    store, raw = median_range(f["store"])[0], median_range(f["raw"])[0]
    print(
        f"\n3. snapshot flush: {f['rows']:,} profiles ({f['snapshot_bytes']:,.0f} B of JSON "
        f"each) in units of {UNIT_ACTORS}, {len(f['store'])} runs"
    )
    print(f"  DurableStore.commit:        {fmt_range(f['store'], 'rows/s')}")
    print(f"  engine flush (encode + commit): {fmt_range(f['engine'], 'rows/s')}")
    print(f"  raw sqlite3 executemany:    {fmt_range(f['raw'], 'rows/s')}")
    print(f"  ratio DurableStore.commit / raw: {store / raw:.2f}")

    def stall(name: str, gaps: list[float]) -> None:
        ms = [g * 1e3 for g in gaps]
        print(
            f"  {name}: max {max(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
            f"p50 {percentile(ms, 0.5):.2f} ms ({len(ms):,} ticks)"
        )

    print("  loop stalls (gap between ticks of a 1 ms sleep loop):")
    stall("idle loop (baseline)", s["idle_gaps"])
    stall("engine flushes alone", f["gaps"])
    print(f"    longest, without the collections inside: {f['longest']}")
    stall(
        f"ingest {args.stall_events:,} events over {args.stall_profiles:,} profiles in "
        f"batches of {UNIT_ACTORS}, timers firing ({s['rate']:,.0f} events/s)",
        s["gaps"],
    )
    print(f"    longest, without the collections inside: {s['longest']}", flush=True)


def timer_figures(args: argparse.Namespace, horizon_ms: int) -> None:
    path = args.workdir / "timers.db"
    now = START
    build_s = build_timers(path, args.timers, now)
    os.sync()
    size = db_bytes(path)
    opened = child("open-timers", str(path), str(now))
    heap = child("heap-timers", str(args.timers), str(now))
    engine_rss = opened["rss_open"] - opened["rss_start"]
    heap_rss = heap["rss_heap"] - heap["rss_start"]
    print(
        f"\n6. {args.timers:,} pending timers (minimal snapshots, 30 days): built in "
        f"{build_s:.1f} s, {size / args.timers:,.0f} B per timer on disk"
    )
    print(
        f"  engine after open: {engine_rss / 2**20:,.1f} MB RSS above the bare process "
        f"({opened['wheel']:,} wake-ups of the {horizon_ms // 60_000} min horizon in memory; "
        f"ready in {opened['ready'] * 1e3:,.0f} ms)"
    )
    print(
        f"  baseline heapq of (instant, actor id): {heap_rss / 2**20:,.1f} MB RSS "
        f"({heap_rss / args.timers:,.0f} B per timer; built in {heap['seconds']:.1f} s)"
    )
    print(f"  ratio heapq / engine RSS: {heap_rss / max(1, engine_rss):,.1f}x", flush=True)
    if not args.keep:
        remove_db(path)


def fire_figures(args: argparse.Namespace) -> None:
    path = args.workdir / "fire.db"
    wait_ms = int(args.wait * 1000)
    runs = [asyncio.run(fire_run(path, args.fire, wait_ms)) for _ in range(args.fire_runs)]
    heap = [heap_rate(args.fire, seed) for seed in range(max(3, args.fire_runs))]
    print(
        f"\n7. timers on the system clock: {args.fire:,} profiles enter, wait {args.wait:g} s, "
        f"send ({len(runs)} runs; entries logged over "
        f"{fmt_range([r['spread'] for r in runs], 'ms')}, the last applied "
        f"{fmt_range([r['slack'] for r in runs], 'ms')} before the first wait ended)"
    )
    missing = sum(args.fire - r["fired"] for r in runs)
    rates = [r["rate"] for r in runs]
    print(f"  fired (step applied, outbox committed): {fmt_range(rates, 'fires/s')}")
    print(
        f"  lateness (commit - due): p50 {fmt_range([r['p50'] for r in runs], 'ms')}, "
        f"p99 {fmt_range([r['p99'] for r in runs], 'ms')}, "
        f"max {fmt_range([r['max'] for r in runs], 'ms')}; {missing} missing"
    )
    print(f"  baseline heapq push + pop: {fmt_range(heap, 'timers/s')}")
    rate = median_range([r["rate"] for r in runs])[0]
    print(f"  ratio engine / heapq: {rate / median_range(heap)[0]:.4f}", flush=True)


if __name__ == "__main__":
    main()
