"""Access tokens: who may call the server, in which space, in which role.

A token is a random secret shown once, when it is created; the database keeps
only its SHA-256 hash, so a copy of the database grants nothing. Each token
belongs to one space (or to every space, :data:`ALL_SPACES`) and has one role:

- ``ingest``: send messages (like a Segment write key);
- ``subscribe``: read and acknowledge destination streams, optionally only the
  named destinations;
- ``admin``: everything in its space (definitions, journeys and their
  lifecycle, reporting, tokens), ingest and subscribe included. An admin token
  of every space also creates spaces, moves the manual clock and takes backups.

:class:`Tokens` keeps every token in memory (they are few) so that checking a
call costs a hash and a dictionary lookup; :meth:`Tokens.refresh` picks up
tokens another process created or revoked in the same database.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from journeys_engine.catalog.paging import Page, PageRequest
from journeys_engine.catalog.spaces import DEFAULT_SPACE
from journeys_engine.clock import Clock
from journeys_engine.errors import FieldViolation, InvalidArgumentError, NotFoundError
from journeys_engine.ids import id_problem, new_id
from journeys_engine.model.definitions import DefinitionKind
from journeys_engine.store.database import Database

__all__ = ["ALL_SPACES", "SECRET_PREFIX", "Role", "Token", "Tokens"]

ALL_SPACES = "*"
SECRET_PREFIX = "jt_"  # noqa: S105 - how every secret begins, not a secret
MAX_NAME_LENGTH = 200
MAX_DESTINATIONS = 100
_MISS_RELOAD_SECONDS = 1.0  # an unknown secret re-reads the table at most this often


class Role(StrEnum):
    """What a token may do in its space."""

    INGEST = "ingest"
    SUBSCRIBE = "subscribe"
    ADMIN = "admin"

    def grants(self, needed: Role) -> bool:
        """Whether this role covers ``needed`` (admin covers every role)."""
        return self is needed or self is Role.ADMIN


@dataclass(frozen=True, slots=True)
class Token:
    """An access token, without its secret.

    Attributes:
        id: The public id (``tok_…``), used to list and revoke it.
        space_id: The space it grants access to, or :data:`ALL_SPACES`.
        role: What it may do there.
        name: What it is for, as its creator wrote it.
        destination_ids: For a ``subscribe`` token, the only destinations it
            may read; empty for all of them.
        create_ms: When it was created.
    """

    id: str
    space_id: str
    role: Role
    name: str = ""
    destination_ids: tuple[str, ...] = ()
    create_ms: int = 0

    def covers(self, space_id: str) -> bool:
        """Whether the token grants access to ``space_id``."""
        return self.space_id in (ALL_SPACES, space_id)

    def reads(self, destination_id: str) -> bool:
        """Whether the token may read ``destination_id``'s stream."""
        return not self.destination_ids or destination_id in self.destination_ids


def hash_secret(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class Tokens:
    """The access tokens of one database, cached in memory.

    Args:
        db: The database.
        clock: Stamps creation times.
    """

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._by_hash: dict[str, Token] = {}
        self._ids: set[str] = set()
        self._loaded_at = float("-inf")
        self._reloading: asyncio.Task[None] | None = None
        self.on_revoke: list[Callable[[str], None]] = []
        """Called with each revoked token's id (streams it opened are ended)."""

    @property
    def count(self) -> int:
        """How many tokens exist."""
        return len(self._by_hash)

    def find(self, secret: str) -> Token | None:
        """The token whose secret this is, or None.

        An unknown secret schedules a re-read of the table (at most once a second),
        so a token created by another process is found moments later.
        """
        token = self._by_hash.get(hash_secret(secret))
        if token is None and time.monotonic() - self._loaded_at > _MISS_RELOAD_SECONDS:
            self._loaded_at = time.monotonic()
            if self._reloading is None or self._reloading.done():
                self._reloading = asyncio.get_running_loop().create_task(self.refresh())
        return token

    def live(self, token_id: str) -> bool:
        """Whether the token with this id still exists."""
        return token_id in self._ids

    async def refresh(self) -> None:
        """Reads every token again; tokens gone since are reported as revoked."""
        async with self._db.read() as tx:
            rows = await tx.fetchall("SELECT id, secret_hash, space_id, role, doc FROM tokens")
        before = self._ids
        self._by_hash = {row[1]: _token(row) for row in rows}
        self._ids = {t.id for t in self._by_hash.values()}
        self._loaded_at = time.monotonic()
        for token_id in before - self._ids:
            self._revoked(token_id)

    async def create(
        self,
        space_id: str,
        role: Role | str,
        *,
        name: str = "",
        destination_ids: Sequence[str] = (),
    ) -> tuple[Token, str]:
        """Creates a token; returns it and its secret (which is not kept).

        Raises:
            InvalidArgumentError: a bad space id, role, name or destination list.
            NotFoundError: the space or a named destination does not exist.
        """
        _check_space(space_id)
        await self._require_space(space_id)
        checked_role = _check(space_id, role, name, destination_ids)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        token = Token(
            id=new_id("tok"),
            space_id=space_id,
            role=checked_role,
            name=name,
            destination_ids=tuple(destination_ids),
            create_ms=self._clock.now_ms(),
        )
        doc = {"name": name, "destination_ids": list(destination_ids), "create_ms": token.create_ms}
        async with self._db.transaction() as tx:
            for destination_id in destination_ids:
                found = await tx.fetchone(
                    "SELECT 1 FROM definitions WHERE space_id = ? AND kind = ? AND id = ?",
                    (space_id, DefinitionKind.DESTINATION.value, destination_id),
                )
                if found is None:
                    raise NotFoundError(kind="destination", id=destination_id, space_id=space_id)
            await tx.execute(
                "INSERT INTO tokens (id, secret_hash, space_id, role, doc) VALUES (?, ?, ?, ?, ?)",
                (token.id, hash_secret(secret), space_id, token.role.value, json.dumps(doc)),
            )
        self._by_hash[hash_secret(secret)] = token
        self._ids.add(token.id)
        return token, secret

    async def list(self, space_id: str, page_size: int = 0, page_token: str = "") -> Page[Token]:
        """The tokens of a space in the order they were created; :data:`ALL_SPACES`
        lists every token.

        Raises:
            InvalidArgumentError: a bad space id, page size or page token.
            NotFoundError: the space does not exist.
        """
        _check_space(space_id)
        await self._require_space(space_id)
        page = PageRequest.parse(page_size, page_token)
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT rowid, id, secret_hash, space_id, role, doc FROM tokens "
                "WHERE rowid > ? AND ? IN (space_id, ?) ORDER BY rowid LIMIT ?",
                (page.after, space_id, ALL_SPACES, page.size + 1),
            )
        return page.page([(row[0], _token(row[1:])) for row in rows])

    async def revoke(self, space_id: str, token_id: str) -> Token:
        """Deletes a token of ``space_id`` (any space's, for :data:`ALL_SPACES`).

        Raises:
            InvalidArgumentError: a bad space id or an empty token id.
            NotFoundError: the space does not exist, or has no such token.
        """
        _check_space(space_id)
        await self._require_space(space_id)
        if not token_id:
            raise InvalidArgumentError.single("token_id", "is required")
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT id, secret_hash, space_id, role, doc FROM tokens WHERE id = ?", (token_id,)
            )
            if row is None or not (space_id == ALL_SPACES or row[2] == space_id):
                raise NotFoundError(kind="token", id=token_id)
            await tx.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
        self._by_hash.pop(row[1], None)
        self._ids.discard(token_id)
        self._revoked(token_id)
        return _token(row)

    async def _require_space(self, space_id: str) -> None:
        """Raises NotFoundError unless the space exists (the default space and
        :data:`ALL_SPACES` always do: a new database gets the default at first start)."""
        if space_id in (ALL_SPACES, DEFAULT_SPACE):
            return
        async with self._db.read() as tx:
            if await tx.fetchone("SELECT 1 FROM spaces WHERE id = ?", (space_id,)) is None:
                raise NotFoundError(kind="space", id=space_id)

    def _revoked(self, token_id: str) -> None:
        for listener in self.on_revoke:
            listener(token_id)


def _space_problem(space_id: str) -> FieldViolation | None:
    if space_id != ALL_SPACES and (problem := id_problem(space_id)) is not None:
        return FieldViolation("space_id", f"{problem} (or '*' for every space)")
    return None


def _check_space(space_id: str) -> None:
    if (problem := _space_problem(space_id)) is not None:
        raise InvalidArgumentError([problem])


def _check(space_id: str, role: Role | str, name: str, destination_ids: Sequence[str]) -> Role:
    problems: list[FieldViolation] = []
    if (space_problem := _space_problem(space_id)) is not None:
        problems.append(space_problem)
    checked: Role | None = None
    try:
        checked = Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        problems.append(FieldViolation("role", f"must be one of {choices}"))
    if len(name) > MAX_NAME_LENGTH:
        problems.append(FieldViolation("name", f"is at most {MAX_NAME_LENGTH} characters"))
    elif not name.isprintable():
        problems.append(FieldViolation("name", "must not hold control characters"))
    if destination_ids:
        if checked is not None and checked is not Role.SUBSCRIBE:
            problems.append(
                FieldViolation("destination_ids", "only a subscribe token names destinations")
            )
        elif space_id == ALL_SPACES:
            problems.append(
                FieldViolation("destination_ids", "a token of every space cannot name destinations")
            )
        if len(destination_ids) > MAX_DESTINATIONS:
            problems.append(
                FieldViolation("destination_ids", f"names at most {MAX_DESTINATIONS} destinations")
            )
        if len(set(destination_ids)) != len(destination_ids):
            problems.append(FieldViolation("destination_ids", "names a destination twice"))
        for i, destination_id in enumerate(destination_ids):
            if (problem := id_problem(destination_id)) is not None:
                problems.append(FieldViolation(f"destination_ids[{i}]", problem))
    if problems or checked is None:
        raise InvalidArgumentError(problems)
    return checked


def _token(row: Sequence[Any]) -> Token:
    """A token from the columns ``id, secret_hash, space_id, role, doc``."""
    token_id, _, space_id, role, doc_text = row
    doc = json.loads(doc_text)
    return Token(
        id=token_id,
        space_id=space_id,
        role=Role(role),
        name=doc.get("name", ""),
        destination_ids=tuple(doc.get("destination_ids", ())),
        create_ms=doc.get("create_ms", 0),
    )
