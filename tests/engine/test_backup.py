"""Online backup of the database file: one consistent snapshot, owner-only, refusals."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from journeys_engine import (
    AlreadyExistsError,
    Engine,
    FailedPreconditionError,
    StorageError,
)
from journeys_engine.store import SCHEMA_VERSION
from journeys_engine.store.backup import backup_database
from journeys_engine.testing import FakeClock
from tests.helpers.builders import add_destination, journey


def _ledger(path: Path) -> sqlite3.Connection:
    """A WAL database where every transaction keeps sum(amount) == 0 and pairs == rows / 2."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL)")
    conn.execute("CREATE TABLE meta (pairs INTEGER NOT NULL)")
    conn.execute("INSERT INTO meta VALUES (0)")
    conn.execute("PRAGMA user_version=7")
    return conn


def _write_pair(conn: sqlite3.Connection, amount: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO ledger (amount) VALUES (?)", (amount,))
    conn.execute("INSERT INTO ledger (amount) VALUES (?)", (-amount,))
    conn.execute("UPDATE meta SET pairs = pairs + 1")
    conn.execute("COMMIT")


def _check_ledger(path: Path) -> int:
    """Asserts the copy is whole and consistent; returns its number of pairs."""
    with sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
        rows, total = copy.execute(
            "SELECT count(*), coalesce(sum(amount), 0) FROM ledger"
        ).fetchone()
        (pairs,) = copy.execute("SELECT pairs FROM meta").fetchone()
    assert total == 0
    assert rows == 2 * pairs
    return int(pairs)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """A umask that would leave new files readable by everyone."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_copies_taken_while_a_writer_commits_are_consistent_snapshots(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    writer = _ledger(source)
    stop = threading.Event()
    commits = 0

    def write() -> None:
        nonlocal commits
        while not stop.is_set():
            _write_pair(writer, commits + 1)
            commits += 1

    thread = threading.Thread(target=write)
    thread.start()
    seen: list[int] = []
    try:
        for n in range(8):
            floor = commits  # committed before this copy began: the copy holds it
            while commits < floor + 50:  # the writer is really going on between copies
                stop.wait(0.001)
            copy = backup_database(source, tmp_path / f"copy-{n}.db")
            ceiling = commits
            assert copy.schema_version == 7
            assert copy.size_bytes == os.path.getsize(copy.path) > 0
            pairs = _check_ledger(Path(copy.path))
            assert floor + 50 <= pairs <= ceiling + 1  # one commit may be under way
            seen.append(pairs)
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)  # each copy is a later instant, not a stale file
    assert not list(tmp_path.glob("copy-*.db-*"))  # no journal or WAL left beside a copy


async def test_an_engine_opens_a_copy_of_a_running_engine(db_path: Path, clock: FakeClock) -> None:
    async with await Engine.open(db_path, clock=clock) as engine:
        await engine.spaces.create("acme")
        await add_destination(engine, space="acme")
        saved = (await engine.journeys.create("acme", journey(journey_id="j"))).journey
        copy = backup_database(engine.database_path, db_path.with_name("copy.db"))
        assert copy.schema_version == SCHEMA_VERSION
        await engine.journeys.delete("acme", "j")  # after the copy: not in it
    async with await Engine.open(copy.path, clock=clock) as restored:
        assert [s.id for s in (await restored.spaces.list()).items] == ["default", "acme"]
        assert await restored.journeys.get("acme", "j") == saved


@pytest.mark.usefixtures("umask_zero")
def test_the_copy_is_owner_only(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    _ledger(source).close()
    copy = backup_database(source, tmp_path / "copy.db")
    assert stat.S_IMODE(os.stat(copy.path).st_mode) == 0o600


def test_an_existing_target_is_refused_and_left_alone(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    _ledger(source).close()
    target = tmp_path / "precious.db"
    target.write_bytes(b"keep me")
    with pytest.raises(AlreadyExistsError, match=r"precious\.db") as caught:
        backup_database(source, target)
    assert caught.value.kind == "file"
    assert target.read_bytes() == b"keep me"
    (tmp_path / "other.db-wal").write_bytes(b"stale")  # SQLite would replay it into the copy
    with pytest.raises(AlreadyExistsError, match=r"other\.db-wal"):
        backup_database(source, tmp_path / "other.db")
    assert not (tmp_path / "other.db").exists()


def test_an_in_memory_database_cannot_be_backed_up(tmp_path: Path) -> None:
    with pytest.raises(FailedPreconditionError, match="in memory") as caught:
        backup_database(":memory:", tmp_path / "copy.db")
    assert [v.type for v in caught.value.violations] == ["DATABASE_IN_MEMORY"]
    assert list(tmp_path.iterdir()) == []


def test_a_missing_source_is_a_storage_error_and_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open database"):
        backup_database(tmp_path / "missing.db", tmp_path / "copy.db")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_database_leaves_no_copy(tmp_path: Path) -> None:
    source = tmp_path / "notes.db"
    source.write_text("not a database\n" * 200)
    with pytest.raises(StorageError, match="cannot back up"):
        backup_database(source, tmp_path / "copy.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_an_unwritable_target_is_a_storage_error(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    _ledger(source).close()
    with pytest.raises(StorageError, match="cannot create"):
        backup_database(source, tmp_path / "no" / "such" / "folder.db")
