"""The large SQLite files the scale benchmarks run on, built once and kept.

- **The profile file** (:func:`profile_db`): N profiles (1,000,000 in the full
  runs), each with a pending wake-up spread over the next 30 days, and the five
  example journeys published. A few thousand real profiles go through the
  engine (``bench/runtime.py``'s stream, four messages each, the clock crossing
  two days); their snapshot rows and step rosters are then cloned in SQL under
  distinct ids (``u:c0000000``...) with distinct wake-ups, and the originals are
  dropped. The file's manual clock is set to the instant the build ended, so a
  ``journeys serve --manual-clock`` on it starts there.
- **The timer file** (:func:`timer_db`): N profiles (10,000,000 in the full runs)
  with minimal snapshots and a wake-up each over the next 30 days.

Both are kept in a work directory under a name that says their size, next to a
``.json`` that records how they were built (build version, schema version, the
engine's snapshot format, how long the build took); a file whose record does not
match is built again. The benchmarks keep a kept file as built: a child process
that opens the engine on it exits without closing it (as if killed), and
:func:`discard_wal` then drops what it wrote (the WAL, never checkpointed into
the file while it stays under SQLite's 1,000-page auto-checkpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.figures import Figure, table  # noqa: E402
from bench.runtime import START, open_engine  # noqa: E402
from bench.workload import segment_messages  # noqa: E402
from journeys_engine.runtime.actor import Actor  # noqa: E402
from journeys_engine.store.database import SCHEMA_VERSION, Database  # noqa: E402
from journeys_engine.store.schema import MIGRATIONS  # noqa: E402
from journeys_engine.testing import FakeClock  # noqa: E402

__all__ = [
    "DAY_MS",
    "HASH",
    "SPACE",
    "SPREAD_MS",
    "START",
    "WORKDIR",
    "Built",
    "build_profiles",
    "build_templates",
    "build_timers",
    "child",
    "clone_profiles",
    "create_db",
    "discard_wal",
    "profile_db",
    "remove_db",
    "report",
    "schema_statement",
    "timer_db",
    "wake_at",
    "warm",
]

SPACE = "default"
DAY_MS = 86_400_000
SPREAD_MS = 30 * DAY_MS  # wake-ups spread over the next 30 days
HASH = 2_654_435_761  # (i * HASH) % SPREAD_MS: distinct-looking, reproducible instants
WORKDIR = Path("/tmp/journeys-scale")
BUILD_VERSION = 2  # bump when the builds below change what they write
_AUTO_CHECKPOINT_PAGES = 1_000  # SQLite's default: a smaller WAL was never checkpointed


# Helpers


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def schema_statement(prefix: str) -> str:
    """The schema's own statement that starts with ``prefix`` (an index to drop and remake)."""
    for migration in MIGRATIONS:
        for statement in migration:
            if statement.strip().startswith(prefix):
                return statement
    raise LookupError(prefix)


def wake_at(now: int, i: int) -> int:
    """The i-th cloned profile's wake-up (the same formula as the SQL builds use)."""
    return now + 1 + (i * HASH) % SPREAD_MS


async def create_db(path: Path) -> None:
    """An empty database with the engine's schema."""
    db = await Database.open(path)
    await db.close()


def child(script: Path, kind: str, *args: str, timeout: float = 900) -> dict[str, Any]:
    """Runs ``script child KIND ARGS...`` and returns the JSON it prints last."""
    result = subprocess.run(
        [sys.executable, str(script), "child", kind, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"child {kind} failed:\n{result.stderr}")
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def finish_child(found: dict[str, Any]) -> None:
    """(in a child) Prints the result and exits at once: the engine is not closed
    (what it wrote stays in the WAL, for :func:`discard_wal`), and a process
    holding millions of objects does not spend seconds freeing them."""
    print(json.dumps(found), flush=True)
    sys.stdout.flush()
    os._exit(0)


def warm(path: Path) -> None:
    """Reads the file through once, so that every measurement starts with it in the
    page cache, whether it was just built or kept from an earlier run."""
    with open(path, "rb", buffering=0) as f:
        while f.read(16 << 20):
            pass


def discard_wal(path: Path, record: Path | None = None) -> bool:
    """Drops what a child wrote to a kept file (its WAL, never checkpointed while it
    stays small). Returns False, and forgets the file's build record so that the
    next run builds it again, when the WAL was large enough to have been
    checkpointed into the file."""
    wal = Path(f"{path}-wal")
    intact = True
    if wal.exists():
        with contextlib.closing(sqlite3.connect(":memory:")) as db:
            (page,) = db.execute("PRAGMA page_size").fetchone()
        intact = wal.stat().st_size < _AUTO_CHECKPOINT_PAGES * page
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()
    if not intact and record is not None:
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        print(f"warning: {path} was changed by a measurement; it is rebuilt next run")
    return intact


def _snapshot_format() -> str:
    """A fingerprint of the engine's snapshot format (a fresh profile's)."""
    minimal = json.dumps(Actor("@", "@", None).to_data(), separators=(",", ":"))
    return hashlib.sha256(minimal.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Built:
    """A built (or kept) file: its path, the clock's instant when its build ended,
    its size in rows, how long its build took and whether it was kept from before."""

    path: Path
    now: int
    rows: int
    build_s: float
    kept: bool
    record: Path

    def describe(self) -> str:
        how = "kept from an earlier run" if self.kept else "built now"
        return f"{self.rows:,} rows, built in {self.build_s:.0f} s ({how})"


def _kept(path: Path, record: Path, expected: dict[str, Any]) -> dict[str, Any] | None:
    """The build record when the file matches it and the engine still reads it as built."""
    if not path.exists() or not record.exists():
        return None
    try:
        found: dict[str, Any] = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if any(found.get(k) != v for k, v in expected.items()):
        return None
    if Path(f"{path}-wal").exists() and not discard_wal(path, record):
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error:
        return None
    return found if version == SCHEMA_VERSION else None


def _expected(kind: str, rows: int, **more: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "rows": rows,
        "build_version": BUILD_VERSION,
        "schema_version": SCHEMA_VERSION,
        "snapshot_format": _snapshot_format(),
        **more,
    }


def report(figures: list[Figure], quick: bool) -> None:
    """Prints a runner's table and the figures whose ratio fell below their guard
    (``REGRESSED: ...``, as ``bench/suite.py`` does); exits 1 on one in a quick run."""
    print(table(figures), flush=True)
    regressed = [f for f in figures if f.regressed()]
    for figure in regressed:
        print(f"REGRESSED: {figure.name}: ratio {figure.ratio:.3g} < guard {figure.guard}")
    if regressed and quick:
        sys.exit(1)


# The profile file


async def build_templates(path: Path, templates: int) -> int:
    """Real profiles through the engine: the five examples, four messages per
    profile, the clock crossing two days. Returns the clock's time at the end."""
    remove_db(path)
    clock = FakeClock(START)
    engine = await open_engine(clock, path)
    stream = segment_messages(templates, 4 * templates, seed=5)
    batch = 500
    step_ms = 2 * DAY_MS * batch // len(stream)
    for i in range(0, len(stream), batch):
        await engine.ingest(SPACE, stream[i : i + batch])
        clock.advance(step_ms)
        await engine.fire_due()
    await engine.settle()
    now = clock.now_ms()
    await engine.close()
    return now


def clone_profiles(path: Path, profiles: int, now: int) -> None:
    """Replaces the template profiles by ``profiles`` clones of them (ids
    ``u:c0000000``...), each with its own wake-up after ``now``, and their step
    rosters (the templates' are kept aside in ``members_src``)."""
    chunk = 250_000
    by_wake = schema_statement("CREATE INDEX actors_by_wake")
    by_actor = schema_statement("CREATE INDEX members_by_actor")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        # A scratch build: no journal, no syncs; the indexes are made at the end.
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("PRAGMA threads=2")
        # Each template's snapshot without its leading key and user id, which every
        # snapshot starts with (checked): a clone's is its own two, then that rest.
        head = (  # the snapshot's start: {"key":KEY,"user_id":USER_ID
            """'{"key":' || json_quote(json_extract(data, '$.key')) """
            """|| ',"user_id":' || json_quote(json_extract(data, '$.user_id'))"""
        )
        db.execute(
            "CREATE TEMP TABLE tpl AS SELECT row_number() OVER (ORDER BY actor_id) - 1 AS n, "
            f"actor_id, position, data, substr(data, length({head}) + 1) AS rest "
            "FROM actors WHERE space_id = ?",
            (SPACE,),
        )
        (odd,) = db.execute(f"SELECT count(*) FROM tpl WHERE data != {head} || rest").fetchone()
        if odd:
            raise RuntimeError(f"{odd} snapshots do not start with their key and user id")
        db.execute("CREATE UNIQUE INDEX temp.tpl_n ON tpl (n)")
        (templates,) = db.execute("SELECT count(*) FROM tpl").fetchone()
        db.execute("BEGIN")
        db.execute("DELETE FROM members WHERE actor_id IN (SELECT actor_id FROM tpl)")
        db.execute("DELETE FROM actors WHERE actor_id IN (SELECT actor_id FROM tpl)")
        db.execute("DROP INDEX actors_by_wake")
        db.execute("DROP INDEX members_by_actor")
        db.execute("COMMIT")
        series = "WITH RECURSIVE c(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM c WHERE i + 1 < ?)"
        user = "'c' || printf('%07d', c.i)"
        for first in range(0, profiles, chunk):
            last = min(profiles, first + chunk)
            db.execute("BEGIN")
            db.execute(
                f"{series} INSERT INTO actors (space_id, actor_id, position, wake_at, data) "
                f"SELECT ?, 'u:' || {user}, t.position, ? + 1 + (c.i * ?) % ?, "
                f"""'{{"key":"' || {user} || '","user_id":"' || {user} || '"' || t.rest """
                "FROM c JOIN tpl AS t ON t.n = c.i % ?",
                (first, last, SPACE, now, HASH, SPREAD_MS, templates),
            )
            db.execute("COMMIT")
        # The rosters in one statement, in key order: the table is empty, so they append.
        db.execute("BEGIN")
        db.execute(
            f"{series} INSERT INTO members (space_id, journey_id, step_id, joined_at, "
            "joined_after, actor_id, run, waiting) SELECT m.space_id, m.journey_id, "
            f"m.step_id, m.joined_at, m.joined_after, 'u:' || {user}, m.run, m.waiting "
            "FROM c JOIN temp.tpl AS t ON t.n = c.i % ? JOIN main.members_src AS m "
            "ON m.actor_id = t.actor_id ORDER BY 1, 2, 3, 4, 5, 6",
            (0, profiles, templates),
        )
        db.execute("COMMIT")
        db.execute(by_wake)
        db.execute(by_actor)
        db.execute("PRAGMA journal_mode=WAL")


async def build_profiles(path: Path, profiles: int, templates: int) -> tuple[int, float]:
    """The profile database; returns (its clock's now, seconds to build)."""
    started = time.perf_counter()
    now = await build_templates(path, templates)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        # The templates' rosters, kept aside while the templates go.
        db.execute("DROP TABLE IF EXISTS members_src")
        db.execute("CREATE TABLE members_src AS SELECT * FROM members WHERE space_id = ?", (SPACE,))
        db.execute("CREATE INDEX members_src_by_actor ON members_src (actor_id)")
    clone_profiles(path, profiles, now)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("DROP TABLE members_src")
        # A manual clock started on the file starts where the build ended.
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('manual_clock_ms', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(now),),
        )
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return now, time.perf_counter() - started


def profile_db(workdir: Path, profiles: int, templates: int) -> Built:
    """The profile file of this size, kept in ``workdir`` (built when missing or stale)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"profiles-{profiles}-t{templates}.db"
    record = path.with_suffix(".json")
    expected = _expected("profiles", profiles, templates=templates)
    found = _kept(path, record, expected)
    if found is not None:
        return Built(path, found["now"], profiles, found["build_s"], True, record)
    with contextlib.suppress(FileNotFoundError):
        record.unlink()
    now, build_s = asyncio.run(build_profiles(path, profiles, templates))
    os.sync()  # the build's writes reach the disk before anything is timed
    record.write_text(json.dumps({**expected, "now": now, "build_s": build_s}))
    return Built(path, now, profiles, build_s, False, record)


# The timer file


def build_timers(path: Path, count: int, now: int) -> float:
    """``count`` profiles with minimal snapshots and a wake-up each, in SQL; seconds."""
    started = time.perf_counter()
    remove_db(path)
    asyncio.run(create_db(path))
    template = json.dumps(Actor("@", "@", None).to_data(), separators=(",", ":"))
    head, middle, tail = template.split("@")
    chunk = 1_000_000
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        # A scratch build: no journal, no syncs (WAL again at the end).
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("PRAGMA threads=2")
        db.execute("DROP INDEX actors_by_wake")  # made again at the end: faster than kept
        for first in range(0, count, chunk):
            last = min(count, first + chunk)
            user = "'t' || printf('%08d', c.i)"
            db.execute("BEGIN")
            db.execute(
                "WITH RECURSIVE c(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM c WHERE i + 1 < ?) "
                "INSERT INTO actors (space_id, actor_id, position, wake_at, data) "
                f"SELECT ?, 'u:' || {user}, 0, ? + 1 + (c.i * ?) % ?, "
                f"? || {user} || ? || {user} || ? FROM c",
                (first, last, SPACE, now, HASH, SPREAD_MS, head, middle, tail),
            )
            db.execute("COMMIT")
        db.execute(schema_statement("CREATE INDEX actors_by_wake"))
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('manual_clock_ms', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(now),),
        )
        db.execute("PRAGMA journal_mode=WAL")
    return time.perf_counter() - started


def timer_db(workdir: Path, count: int) -> Built:
    """The timer file of this size, kept in ``workdir`` (built when missing or stale)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"timers-{count}.db"
    record = path.with_suffix(".json")
    expected = _expected("timers", count)
    found = _kept(path, record, expected)
    if found is not None:
        return Built(path, START, count, found["build_s"], True, record)
    with contextlib.suppress(FileNotFoundError):
        record.unlink()
    build_s = build_timers(path, count, START)
    os.sync()
    record.write_text(json.dumps({**expected, "now": START, "build_s": build_s}))
    return Built(path, START, count, build_s, False, record)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Builds (or checks) the kept scale files.")
    parser.add_argument("--quick", action="store_true", help="toy sizes")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    args = parser.parse_args()
    profiles, templates, timers = (2_000, 100, 20_000) if args.quick else (1_000_000, 2_000, 10**7)
    print("profiles:", profile_db(args.workdir, profiles, templates).describe(), flush=True)
    print("timers:", timer_db(args.workdir, timers).describe(), flush=True)


if __name__ == "__main__":
    main()
