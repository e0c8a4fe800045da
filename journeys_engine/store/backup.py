"""Online backup: a consistent copy of a live database file.

:func:`backup_database` copies the database with SQLite's online backup API on
a connection of its own, in one step: the copy is a single snapshot, exactly
the committed state at one instant, even while the server keeps writing (in
WAL mode readers never block writers, and a one-step backup holds one read
transaction from the first page to the last). Everything committed before the
copy began is in it, so every ingest acknowledged before then is too: applied
already, or applied when a server starts on the copy.

The function blocks for as long as the copy takes; an asyncio caller runs it in
a worker thread (``asyncio.to_thread``). It imports nothing from the rest of the
engine's runtime: it needs only the file's path.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from journeys_engine.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    PreconditionViolation,
    StorageError,
)
from journeys_engine.store.database import create_owner_only

__all__ = ["DatabaseCopy", "backup_database", "is_in_memory"]

# SQLite files the library may create next to a database while it is open.
_SIDE_FILES = ("-journal", "-wal", "-shm")


@dataclass(frozen=True, slots=True)
class DatabaseCopy:
    """A finished copy.

    Attributes:
        path: The copy's file.
        size_bytes: Its size.
        schema_version: Its ``PRAGMA user_version``: the schema version a server
            opening it finds (and migrates forward from, when older).
    """

    path: str
    size_bytes: int
    schema_version: int


def is_in_memory(database_path: str) -> bool:
    """Whether ``database_path`` names a database with no file of its own.

    ``:memory:`` lives in the process; ``""`` is a private temporary file SQLite
    deletes on close, which no second connection can open.
    """
    return database_path in ("", ":memory:")


def backup_database(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> DatabaseCopy:
    """Copies the database at ``source`` into a new file ``target``, consistently.

    The target is created readable and writable by its owner alone (``0o600``),
    like the database itself, and must not exist. It is one self-contained file
    (rollback-journal mode; a server opening it switches it to WAL). On any
    failure nothing is left at ``target``.

    Args:
        source: The live database file (another process or connection may be
            writing to it).
        target: The new file.

    Returns:
        The copy's path, size and schema version.

    Raises:
        FailedPreconditionError: ``source`` is an in-memory database (type
            ``DATABASE_IN_MEMORY``): there is no file to copy.
        AlreadyExistsError: ``target`` exists (kind ``file``); it is left as it was.
        StorageError: ``source`` cannot be read as a database, or ``target``
            cannot be created or written (a missing folder, a full disk).
    """
    source_name = os.fspath(source)
    target_path = Path(os.fspath(target))
    if is_in_memory(source_name):
        raise FailedPreconditionError(
            "the server's database is in memory: there is no file to back up",
            [
                PreconditionViolation(
                    "DATABASE_IN_MEMORY",
                    "database",
                    "only a database kept in a file can be backed up; start the server "
                    "with --db PATH",
                )
            ],
        )
    for suffix in _SIDE_FILES:
        # SQLite would take a stale journal or WAL under that name for the copy's own.
        if Path(f"{target_path}{suffix}").exists():
            raise AlreadyExistsError(kind="file", id=f"{target_path}{suffix}")
    create_owner_only(target_path, "the copy", exist_ok=False)
    done = False
    try:
        schema_version = _copy(source_name, target_path)
        size = target_path.stat().st_size
        done = True
    finally:
        if not done:  # a failed or interrupted copy leaves no partial file behind
            _remove(target_path)
    return DatabaseCopy(path=str(target_path), size_bytes=size, schema_version=schema_version)


def _copy(source: str, target: Path) -> int:
    """Runs the one-step backup; returns the copy's schema version."""
    # Read-only, by URI: a plain connect would create a missing source silently.
    uri = Path(source).absolute().as_uri() + "?mode=ro"
    try:
        reader = sqlite3.connect(uri, uri=True, timeout=30.0)
    except sqlite3.Error as err:
        raise StorageError(f"cannot open database {source!r} to back it up: {err}") from err
    try:
        writer = sqlite3.connect(target, isolation_level=None)
        try:
            # pages=-1: every page in one step, under one read transaction, so the
            # copy is one snapshot. (In steps, each step would see the latest
            # commit and the backup would restart whenever the source changed.)
            reader.backup(writer, pages=-1)
            # The copy inherits the source's WAL flag; back to a rollback journal,
            # so that it is complete in one file, whatever is copied or moved.
            writer.execute("PRAGMA journal_mode=DELETE")
            row = writer.execute("PRAGMA user_version").fetchone()
        finally:
            writer.close()
    except sqlite3.Error as err:
        raise StorageError(f"cannot back up database {source!r} to {str(target)!r}: {err}") from err
    finally:
        reader.close()
    for suffix in _SIDE_FILES:
        if Path(f"{target}{suffix}").exists():
            raise StorageError(f"the copy {str(target)!r} was not completed (its {suffix} remains)")
    return int(row[0]) if row is not None else 0


def _remove(path: Path) -> None:
    for name in (str(path), *(f"{path}{suffix}" for suffix in _SIDE_FILES)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
