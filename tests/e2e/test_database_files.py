"""The database's files on disk, with real server processes: readable by their owner
alone whatever the umask, and a database that cannot be used refused at start in
one clear line (exit status 2), with nothing left behind.

(A file that is not a database, or one from a newer server, is covered by
``tests/engine/test_store.py`` and ``tests/e2e/test_cli.py``.)
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from journeys_client import JourneysClient

from tests.helpers.live import track
from tests.helpers.processes import ROOT, ServerProcess, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, which leaves new files readable by everyone (0644)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(db: Path) -> dict[str, int]:
    """The permission bits of the database and of SQLite's files beside it."""
    return {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in sorted(db.parent.glob(db.name + "*"))
    }


async def ingest(server: ServerProcess, user: str, count: int) -> None:
    async with JourneysClient(server.target, timeout=30) as client:
        messages = [track(f"{user}-{n}", "Signed Up", f"{user}-{n}") for n in range(count)]
        assert (await client.send(messages)).accepted == count
        await client.get_profile(f"{user}-0")  # (a read waits until they are applied)


@pytest.mark.usefixtures("umask_022")
async def test_the_database_its_wal_and_shm_and_backups_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "journeys.db"
    owner_only = {"journeys.db": 0o600, "journeys.db-shm": 0o600, "journeys.db-wal": 0o600}
    with ServerProcess(db) as server:
        await ingest(server, "a", 500)
        outside = sqlite3.connect(db)  # a checkpoint empties the WAL; it grows again
        try:
            outside.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            outside.close()
        await ingest(server, "b", 500)
        assert modes(db) == owner_only
        backup = tmp_path / "saved.db"
        done = run_cli("backup", "--to", str(backup), server=server.target)
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        server.stop(signal.SIGKILL)  # the WAL and its index stay behind, as they are
    assert modes(db) == owner_only
    with ServerProcess(db) as restarted:  # recovers from them, and makes them again
        await ingest(restarted, "c", 100)
        assert modes(db) == owner_only
        assert restarted.stop() == 0
    assert set(modes(db).values()) == {0o600}


# A database that cannot be used


def refused_at_start(*command: str, where: Path) -> str:
    """Runs ``journeys serve`` (``command`` is the whole command line); checks it is
    refused in one line naming the problem, and that ``where`` is left as it was.
    Returns the message."""
    before = sorted(where.iterdir()) if where.is_dir() else None
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "listening" not in result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    if before is not None:
        assert sorted(where.iterdir()) == before
    return lines[0]


def serve(db: Path | str, *, preamble: str = "") -> tuple[str, ...]:
    """The command line of ``journeys serve --db DB``, run after ``preamble`` (Python)."""
    args = ["serve", "--db", str(db), "--host", "127.0.0.1", "--port", "0", "--insecure-no-auth"]
    code = f"{preamble}\nimport runpy, sys\nsys.argv = ['journeys', *sys.argv[1:]]\n"
    code += "runpy.run_module('journeys_cli', run_name='__main__')\n"
    return (sys.executable, "-c", code, *args)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "journeys.db"
    folder.mkdir()
    message = refused_at_start(*serve(folder), where=tmp_path)
    assert (
        message == f"error: database '{folder}' is a directory: name a file (a new one is created)"
    )
    assert list(folder.iterdir()) == []


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "missing" / "journeys.db"
    message = refused_at_start(*serve(db), where=tmp_path)
    assert message == (
        f"error: cannot create database '{db}': No such file or directory; its folder must "
        "exist and be writable by this user"
    )


def test_a_folder_no_one_may_create_files_in_is_refused() -> None:
    # sysfs refuses new files even to root, as a read-only file system would.
    if not os.path.ismount("/sys"):
        pytest.skip("no /sys")
    db = Path(f"/sys/journeys-{uuid.uuid4().hex}.db")
    message = refused_at_start(*serve(db), where=Path("/sys"))
    assert message.startswith(f"error: cannot create database '{db}': ")
    assert message.endswith("; its folder must exist and be writable by this user")
    assert not db.exists()


def test_a_device_that_takes_no_writes_is_refused_and_gets_no_files_beside_it() -> None:
    # Writes to /dev/full fail with ENOSPC; SQLite would also make /dev/full-journal.
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    message = refused_at_start(*serve("/dev/full"), where=Path("/dev"))
    assert message == (
        "error: database '/dev/full' is not a regular file (a device, a pipe or a socket): "
        "name a file (a new one is created)"
    )
    assert not list(Path("/dev").glob("full-*"))


def test_a_disk_that_takes_no_more_bytes_is_refused_and_the_new_file_removed(
    tmp_path: Path,
) -> None:
    # The file size limit of the process at 0: every write fails (EFBIG), as on a
    # full disk, while the empty file can still be created.
    db = tmp_path / "journeys.db"
    preamble = "import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))"
    message = refused_at_start(*serve(db, preamble=preamble), where=tmp_path)
    assert message == (
        f"error: database '{db}' cannot be used: disk I/O error; check that its disk has "
        "room and can be written, or name another file"
    )


def test_a_file_that_cannot_be_written_even_by_root_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "journeys.db"
    with ServerProcess(db) as server:
        assert server.stop() == 0
    before = db.read_bytes()
    if shutil.which("chattr") is None:
        pytest.skip("no chattr")
    immutable = subprocess.run(["chattr", "+i", str(db)], capture_output=True, check=False)
    if immutable.returncode != 0:
        pytest.skip(f"cannot make a file immutable here: {immutable.stderr!r}")
    try:
        message = refused_at_start(*serve(db), where=tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert message == (
        f"error: database '{db}' cannot be written (Operation not permitted): make it "
        "writable by this user, or name another file"
    )
    assert db.read_bytes() == before
