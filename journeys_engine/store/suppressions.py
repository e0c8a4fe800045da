"""Suppressions: identifiers whose messages are refused after their profile was deleted.

A suppression is kept as a hash only — SHA-256 over the identifier's kind and
value (:func:`identifier_hash`) — so the deleted person's ids are not stored in
plain text by it, and it can be checked but not listed. Each space's active
hashes are also held in memory, loaded at start and changed as suppressions
are added (with the unit that deletes the profile) and lifted, so checking a
message costs a hash and a dictionary lookup per identifier, and nothing at
all in a space without suppressions. Expired ones are ignored at once and
deleted by the periodic compaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import StrEnum

from journeys_engine.clock import Clock, format_ms
from journeys_engine.errors import FieldViolation
from journeys_engine.messages import Message
from journeys_engine.store.database import Database, Tx

__all__ = ["IdKind", "Suppressions", "identifier_hash"]


class IdKind(StrEnum):
    """The kind of a profile identifier (kept apart: a user id is not an anonymous id)."""

    USER_ID = "user_id"
    ANONYMOUS_ID = "anonymous_id"


def identifier_hash(kind: IdKind, value: str) -> str:
    """Hex SHA-256 of ``KIND NUL VALUE`` (identifiers never hold control characters)."""
    return hashlib.sha256(f"{kind.value}\x00{value}".encode()).hexdigest()


_REFUSED = (
    # (field of a message, its attribute, kind of id, what to call it); an alias's
    # previous id is linked as an anonymous id, so it is checked as one
    ("userId", "user_id", IdKind.USER_ID, "user id"),
    ("anonymousId", "anonymous_id", IdKind.ANONYMOUS_ID, "anonymous id"),
    ("previousId", "previous_id", IdKind.ANONYMOUS_ID, "id"),
)


class Suppressions:
    """Every space's suppressed identifier hashes, in the database and in memory.

    Args:
        db: The open database.
        clock: The engine's clock (expiry).
    """

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._active: dict[str, dict[str, int]] = {}  # space -> hash -> expire_at

    async def load(self) -> None:
        """Reads the suppressions not expired yet into memory."""
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT space_id, id_hash, expire_at FROM suppressions WHERE expire_at > ?",
                (self._clock.now_ms(),),
            )
        self._active = {}
        for space_id, id_hash, expire_at in rows:
            self._active.setdefault(space_id, {})[id_hash] = int(expire_at)

    def until(self, space_id: str, id_hash: str, now: int) -> int | None:
        """When the identifier's suppression ends, if it is suppressed at ``now``."""
        expire_at = self._active.get(space_id, {}).get(id_hash)
        return expire_at if expire_at is not None and expire_at > now else None

    def refusal(self, space_id: str, message: Message, now: int, path: str) -> list[FieldViolation]:
        """Why the message must be refused (a ``suppressed:`` problem per suppressed
        identifier it carries), or nothing."""
        active = self._active.get(space_id)
        if not active:
            return []
        found = []
        for name, attribute, kind, what in _REFUSED:
            value = getattr(message, attribute)
            if value is None:
                continue
            expire_at = active.get(identifier_hash(kind, value))
            if expire_at is not None and expire_at > now:
                found.append(
                    FieldViolation(
                        f"{path}.{name}",
                        f"suppressed: the profile of this {what} was deleted; its messages "
                        f"are refused until {format_ms(expire_at)}",
                    )
                )
        return found

    async def write(
        self, tx: Tx, space_id: str, hashes: Iterable[str], at: int, expire_at: int
    ) -> None:
        """Stores suppressions in a transaction (a hash suppressed again is renewed);
        :meth:`added` tells the memory once it is committed."""
        await tx.executemany(
            "INSERT INTO suppressions (space_id, id_hash, created_at, expire_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (space_id, id_hash) DO UPDATE SET "
            "created_at = excluded.created_at, expire_at = excluded.expire_at",
            [(space_id, h, at, expire_at) for h in hashes],
        )

    def added(self, space_id: str, hashes: Iterable[str], expire_at: int) -> None:
        """Suppressions were committed."""
        active = self._active.setdefault(space_id, {})
        for id_hash in hashes:
            active[id_hash] = expire_at

    async def lift(self, space_id: str, id_hash: str) -> bool:
        """Deletes a suppression; returns whether it was in force."""
        now = self._clock.now_ms()
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT expire_at FROM suppressions WHERE space_id = ? AND id_hash = ?",
                (space_id, id_hash),
            )
            await tx.execute(
                "DELETE FROM suppressions WHERE space_id = ? AND id_hash = ?", (space_id, id_hash)
            )
        active = self._active.get(space_id)
        if active is not None:
            active.pop(id_hash, None)
            if not active:
                del self._active[space_id]
        return row is not None and int(row[0]) > now

    async def purge(self, now: int) -> None:
        """Deletes the expired suppressions, stored and in memory."""
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM suppressions WHERE expire_at <= ?", (now,))
        for space_id in list(self._active):
            active = self._active[space_id]
            for id_hash in [h for h, expire_at in active.items() if expire_at <= now]:
                del active[id_hash]
            if not active:
                del self._active[space_id]
