"""``journeys.v1.BackupService``: a consistent copy of the database, streamed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from pathlib import Path
from typing import Any, BinaryIO

import grpc
from journeys.v1 import backup_pb2 as pb
from journeys.v1 import backup_pb2_grpc

from journeys_engine import Engine
from journeys_engine.store.backup import DatabaseCopy, backup_database
from journeys_server.errors import handle_write_errors

__all__ = ["CHUNK_BYTES", "BackupServicer"]

Context = grpc.aio.ServicerContext[Any, Any]

CHUNK_BYTES = 1 << 20
"""The most bytes one ``BackupChunk`` carries (1 MiB)."""


class BackupServicer(backup_pb2_grpc.BackupServiceServicer):
    """Backups over gRPC.

    Args:
        engine: The engine whose database is copied.
        chunk_bytes: The most bytes per chunk.
    """

    def __init__(self, engine: Engine, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._engine = engine
        self._chunk_bytes = chunk_bytes

    @handle_write_errors
    async def Backup(  # type: ignore[override]
        self, request: pb.BackupRequest, context: Context
    ) -> None:
        # Written with context.write rather than yielded: a client that cancels
        # cancels this coroutine itself, so the finally below runs at once.
        source = self._engine.database_path
        temporary = _temporary_path(source)
        copy = _Copy(source, temporary)
        try:
            taken = await copy.take()
            with await asyncio.to_thread(_open, taken.path) as file:
                info = pb.BackupInfo(
                    size_bytes=taken.size_bytes, schema_version=taken.schema_version
                )
                chunk = pb.BackupChunk(info=info, data=await self._read(file))
                while True:
                    await context.write(chunk)
                    data = await self._read(file)
                    if not data:
                        break
                    chunk = pb.BackupChunk(data=data)
        finally:
            copy.discard()

    async def _read(self, file: BinaryIO) -> bytes:
        return await asyncio.to_thread(file.read, self._chunk_bytes)


def _temporary_path(source: str) -> Path:
    """A fresh name next to the database: the same file system and the same folder
    permissions as the data it copies."""
    path = Path(source)
    return path.with_name(f"{path.name}.backup-{secrets.token_hex(6)}.tmp")


class _Copy:
    """One temporary copy, taken in a worker thread, and deleted whatever happens.

    A worker thread cannot be cancelled: when the caller goes away while the copy
    is being taken, the copy is marked discarded and the thread deletes the file
    once it is done. The lock orders the two, so the file is always deleted, and
    never from under SQLite while it is writing it.
    """

    def __init__(self, source: str, path: Path) -> None:
        self._source = source
        self._path = path
        self._lock = threading.Lock()
        self._running = False
        self._discarded = False

    async def take(self) -> DatabaseCopy:
        """Takes the copy without blocking the event loop."""
        self._running = True
        work = asyncio.ensure_future(asyncio.to_thread(self._take))
        work.add_done_callback(_retrieve)
        # Shielded: a cancelled caller stops waiting; the thread runs to its end.
        return await asyncio.shield(work)

    def _take(self) -> DatabaseCopy:
        try:
            return backup_database(self._source, self._path)
        finally:
            with self._lock:
                self._running = False
                if self._discarded:
                    _unlink(self._path)

    def discard(self) -> None:
        """Deletes the copy now, or (while it is being taken) as soon as it is done."""
        with self._lock:
            self._discarded = True
            if not self._running:
                _unlink(self._path)


def _retrieve(work: asyncio.Future[Any]) -> None:
    """Marks the outcome of a copy as seen once its caller has gone."""
    if not work.cancelled():
        work.exception()


def _open(path: str) -> BinaryIO:
    return open(path, "rb")


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
