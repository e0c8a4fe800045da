"""Each space's event history, and the operations that read it.

The history is the ingest log itself: every accepted message, with the profile
it was decided to be about, kept for the history retention (compaction deletes
older entries once applied). It is read by profile, in log order, through the
``ingest_log_by_actor`` index, with the same message parser the live path uses.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

from journeys_engine.catalog.paging import Page, PageRequest
from journeys_engine.conditions.profile import EventRecord
from journeys_engine.messages import parse_message
from journeys_engine.model.operation import Operation
from journeys_engine.runtime.runtime import compact_json
from journeys_engine.store.database import Database

__all__ = ["History", "ProfileHistory"]

_CHUNK = 500
_PAGE_VIEWED = "Page Viewed"
_SCREEN_VIEWED = "Screen Viewed"

ProfileHistory = list[tuple[int, EventRecord]]
"""A profile's events in log order: (log position, event)."""


class History:
    """Reads event history and stores operations, in the engine's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def events(
        self, space_id: str, upto: Mapping[str, int], names: Collection[str]
    ) -> tuple[dict[str, ProfileHistory], int]:
        """The retained events named ``names`` of each profile in ``upto``, logged at
        or before the position given for it. Returns them by profile id, and how
        many were read."""
        tracks = sorted(set(names) - {_PAGE_VIEWED, _SCREEN_VIEWED})
        types = [t for t, n in (("page", _PAGE_VIEWED), ("screen", _SCREEN_VIEWED)) if n in names]
        if not upto or not (tracks or types):
            return {}, 0
        wanted = []
        params: list[object] = []
        if tracks:
            wanted.append(f"json_extract(message, '$.event') IN ({','.join('?' * len(tracks))})")
            params += tracks
        if types:
            wanted.append(f"json_extract(message, '$.type') IN ({','.join('?' * len(types))})")
            params += types
        found: dict[str, ProfileHistory] = {}
        read = 0
        ids = sorted(upto)
        async with self._db.read() as tx:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                rows = await tx.fetchall(
                    "SELECT actor_id, position, received_at, message FROM ingest_log "  # noqa: S608
                    f"WHERE space_id = ? AND actor_id IN ({','.join('?' * len(chunk))}) "
                    f"AND ({' OR '.join(wanted)}) ORDER BY actor_id, position",
                    (space_id, *chunk, *params),
                )
                for actor_id, position, received_at, text in rows:
                    if position > upto[actor_id]:
                        continue  # logged, not yet applied to it: it comes live
                    message = parse_message(json.loads(text), received_at=int(received_at))
                    event = EventRecord(
                        str(message.event), message.timestamp, message.properties, message.context
                    )
                    found.setdefault(actor_id, []).append((int(position), event))
                    read += 1
        return found, read

    async def profile_count(self, space_id: str) -> int:
        """How many profiles of the space are stored."""
        async with self._db.read() as tx:
            row = await tx.fetchone("SELECT count(*) FROM actors WHERE space_id = ?", (space_id,))
        return int(row[0]) if row is not None else 0

    # Operations

    async def save(self, operation: Operation) -> None:
        """Stores an operation as it stands (new or not)."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO operations (space_id, id, journey_id, doc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (space_id, id) DO UPDATE SET doc = excluded.doc",
                (
                    operation.space_id,
                    operation.id,
                    operation.journey_id,
                    compact_json(operation.to_data()),
                ),
            )

    async def operation(self, space_id: str, operation_id: str) -> Operation | None:
        async with self._db.read() as tx:
            row = await tx.fetchone(
                "SELECT doc FROM operations WHERE space_id = ? AND id = ?", (space_id, operation_id)
            )
        return None if row is None else Operation.from_data(json.loads(row[0]))

    async def operations(self, space_id: str, page: PageRequest) -> Page[Operation]:
        """A space's operations in the order they began."""
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT seq, doc FROM operations WHERE space_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (space_id, page.after, page.size + 1),
            )
        return page.page([(int(r[0]), Operation.from_data(json.loads(r[1]))) for r in rows])

    async def running(self) -> list[Operation]:
        """Every operation still running (to go on after a restart), in the order begun."""
        async with self._db.read() as tx:
            rows = await tx.fetchall("SELECT doc FROM operations ORDER BY seq")
        found = [Operation.from_data(json.loads(r[0])) for r in rows]
        return [op for op in found if not op.state.ended]

    async def historical(self, space_id: str, journey_id: str) -> bool:
        """Whether the journey's historical entry was ever started."""
        async with self._db.read() as tx:
            row = await tx.fetchone(
                "SELECT 1 FROM operations WHERE space_id = ? AND journey_id = ?",
                (space_id, journey_id),
            )
        return row is not None
