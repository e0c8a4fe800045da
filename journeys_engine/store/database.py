"""The SQLite database: opening, pragmas, schema migrations, transactions.

One file holds a server's whole state. It runs in WAL mode with
``synchronous=NORMAL`` (durable across a killed process) or ``FULL`` (also across
power loss). The schema version lives in ``PRAGMA user_version`` and migrates
forward on open; a database written by a newer server is refused untouched.

The file is created readable and writable by its owner alone; SQLite gives its
``-wal`` and ``-shm`` files the database's permissions. Every statement takes its
values as parameters; only fixed identifiers from the code itself are ever put into
SQL text (``tests/engine/test_sql_safety.py`` checks this). A database that cannot
be used — not a file, not writable, full, damaged, too new — is refused when it is
opened, with a message naming it and saying what to do, and an open that fails
leaves no file it created behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from journeys_engine.errors import AlreadyExistsError, StorageError
from journeys_engine.store.schema import MIGRATIONS

__all__ = ["SCHEMA_VERSION", "Database", "create_owner_only"]

SCHEMA_VERSION = len(MIGRATIONS)


class Database:
    """An open database. Use :meth:`open`; close with :meth:`close` or ``async with``.

    Every read and write of the catalog goes through :meth:`transaction` (writes)
    or :meth:`read`, which serialise on one lock so that a read never sees
    another operation's uncommitted rows.
    """

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, fsync: bool = False) -> Database:
        """Opens (creating when missing) and migrates the database at ``path``.

        Args:
            path: The database file, or ``:memory:``.
            fsync: ``synchronous=FULL`` (power-loss safe) instead of ``NORMAL``.

        Raises:
            StorageError: the path is not a file this process can create or write
                (a directory, a device, a missing or read-only folder), or not a
                usable database of a known version (damaged, too new, on a full
                disk); the message names it and says what to do.
        """
        name = os.fspath(path)
        created = False
        if name != ":memory:":
            created = create_owner_only(Path(name), "database", exist_ok=True)
            if not created:
                _check_writable_file(name)
        try:
            return await cls._open(name, fsync=fsync)
        except StorageError:
            if created:
                _remove_created(name)
            raise

    @classmethod
    async def _open(cls, name: str, *, fsync: bool) -> Database:
        pending = aiosqlite.connect(name, isolation_level=None)
        try:
            conn = await pending
        except (sqlite3.Error, OSError) as err:
            await _stopped(pending)
            raise StorageError(f"cannot open database {name!r}: {err}; {_advice(err)}") from err
        db = cls(conn, name)
        try:
            await db._prepare(fsync=fsync)
        except sqlite3.Error as err:
            await conn.close()
            raise StorageError(f"database {name!r} cannot be used: {err}; {_advice(err)}") from err
        except StorageError as err:
            await conn.close()
            cause = err.__cause__
            if isinstance(cause, sqlite3.Error):  # (from a transaction: name the file)
                raise StorageError(
                    f"database {name!r} cannot be used: {cause}; {_advice(cause)}"
                ) from cause
            raise
        return db

    async def _prepare(self, *, fsync: bool) -> None:
        conn = self._conn
        version = await self._scalar("PRAGMA user_version")
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"database {self.path!r} has schema version {version}, newer than this "
                f"server understands ({SCHEMA_VERSION}); upgrade the server. "
                "The file was not changed."
            )
        if self.path != ":memory:":
            mode = await self._scalar_text("PRAGMA journal_mode=WAL")
            if mode.lower() != "wal":
                raise StorageError(f"database {self.path!r} cannot use WAL mode (got {mode})")
        await conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=5000")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            async with self.transaction() as tx:
                for statement in MIGRATIONS[target - 1]:
                    await tx.execute(statement)
                await tx.execute(f"PRAGMA user_version={int(target)}")
        if version == SCHEMA_VERSION and self.path != ":memory:":
            # One small write at every open, so that a database that cannot be
            # written (read-only, a full disk) is reported now, not at the first
            # message taken.
            async with self.transaction() as tx:
                await tx.execute(f"PRAGMA user_version={int(version)}")

    async def _scalar(self, sql: str) -> int:
        async with self._conn.execute(sql) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0

    async def _scalar_text(self, sql: str) -> str:
        async with self._conn.execute(sql) as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row is not None else ""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction (``BEGIN IMMEDIATE``), committed when the block ends.

        Any exception rolls it back and propagates; SQLite's own errors (a full
        disk, a locked file) become :class:`StorageError`.
        """
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise StorageError(f"database error: {err}") from err
            committed = False
            try:
                try:
                    yield Tx(self._conn)
                    await self._conn.execute("COMMIT")
                except sqlite3.Error as err:
                    raise StorageError(f"database error: {err}") from err
                committed = True
            finally:
                if not committed:
                    # The transaction may already be gone (a failed COMMIT ends it).
                    with contextlib.suppress(sqlite3.Error):
                        await self._conn.execute("ROLLBACK")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """Serialised reads outside any write transaction."""
        async with self._lock:
            try:
                yield Tx(self._conn)
            except sqlite3.Error as err:
                raise StorageError(f"database error: {err}") from err

    async def close(self) -> None:
        """Closes the connection; idempotent."""
        async with self._lock:
            await self._conn.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Tx:
    """Statement helpers bound to the connection inside a transaction or read."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        """Runs one statement; returns the number of rows it changed."""
        async with self._conn.execute(sql, params) as cursor:
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """Runs one statement for each row."""
        await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Row | None:
        """The first row of a query, or None."""
        async with self._conn.execute(sql, params) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def fetchall(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        """Every row of a query."""
        async with self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def insert(self, sql: str, params: tuple[object, ...] = ()) -> int:
        """Runs an INSERT; returns the new row's rowid."""
        async with self._conn.execute(sql, params) as cursor:
            rowid = cursor.lastrowid
        if rowid is None:
            raise StorageError("insert returned no row id")
        return rowid


def create_owner_only(path: Path, what: str, *, exist_ok: bool) -> bool:
    """Creates ``path`` empty, readable and writable by its owner alone (``O_EXCL``:
    a symbolic link in its place is never followed); ``what`` names it in errors.
    Returns whether it was created (False: it existed, and ``exist_ok``).

    Raises:
        AlreadyExistsError: it exists (kind ``file``), unless ``exist_ok``.
        StorageError: it cannot be created (a missing folder, no permission).
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        if exist_ok:
            return False
        raise AlreadyExistsError(kind="file", id=str(path)) from None
    except OSError as err:
        raise StorageError(
            f"cannot create {what} {str(path)!r}: {err.strerror}; its folder must exist "
            "and be writable by this user"
        ) from err
    os.close(fd)
    return True


def _check_writable_file(name: str) -> None:
    """Refuses an existing database path that is not a regular file this process can
    write, before SQLite opens it (and creates files beside it)."""
    try:
        mode = os.stat(name).st_mode
    except OSError as err:
        raise StorageError(f"cannot open database {name!r}: {err.strerror}") from err
    if stat.S_ISDIR(mode):
        raise StorageError(f"database {name!r} is a directory: name a file (a new one is created)")
    if not stat.S_ISREG(mode):
        raise StorageError(
            f"database {name!r} is not a regular file (a device, a pipe or a socket): "
            "name a file (a new one is created)"
        )
    try:  # (also for root: a read-only file system, an immutable file)
        fd = os.open(name, os.O_RDWR)
    except OSError as err:
        raise StorageError(
            f"database {name!r} cannot be written ({err.strerror}): make it writable by "
            "this user, or name another file"
        ) from err
    os.close(fd)


def _advice(err: BaseException) -> str:
    """What to do about an SQLite error met opening a database."""
    code = getattr(err, "sqlite_errorname", "")
    if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return (
            "it is not a journeys database, or it is damaged: name another file, "
            "or restore a backup"
        )
    if code.startswith(("SQLITE_FULL", "SQLITE_IOERR")):
        return "check that its disk has room and can be written, or name another file"
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return "another process holds it locked: stop that process, or name another file"
    return "make the file and its folder writable by this user, or name another file"


async def _stopped(pending: aiosqlite.Connection) -> None:
    """Waits for the thread of a connection that failed to open: it was told to stop,
    and would report that to a closed event loop if the loop ended first."""
    thread = getattr(pending, "_thread", None)
    if isinstance(thread, threading.Thread) and thread.is_alive():
        await asyncio.to_thread(thread.join, 5.0)


def _remove_created(name: str) -> None:
    """Removes a database file this process created for an open that failed, and the
    files SQLite made beside it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name + suffix)
