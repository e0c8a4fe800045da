"""Rows of the catalog: spaces, journeys, step keys, definitions, references.

Functions here run inside a caller's transaction (:class:`Tx`) and hold no
business rules; those live in :mod:`journeys_engine.catalog`.
"""

from __future__ import annotations

from collections.abc import Iterable

from journeys_engine.model.definitions import Definition, DefinitionKind, Destination, Space
from journeys_engine.model.journey import Journey, JourneyStatus
from journeys_engine.store.codec import (
    decode_definition,
    decode_journey,
    decode_space,
    encode_definition,
    encode_journey,
    encode_space,
)
from journeys_engine.store.database import Tx

__all__ = ["CatalogRows"]

JOURNEY = "journey"


class CatalogRows:
    """SQL for the catalog tables, bound to one transaction or read."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    # Spaces

    async def insert_space(self, space: Space) -> None:
        await self.tx.insert(
            "INSERT INTO spaces (id, doc) VALUES (?, ?)", (space.id, encode_space(space))
        )

    async def get_space(self, space_id: str) -> Space | None:
        row = await self.tx.fetchone("SELECT doc FROM spaces WHERE id = ?", (space_id,))
        return None if row is None else decode_space(row[0])

    async def list_spaces(self, after: int, limit: int) -> list[tuple[int, Space]]:
        rows = await self.tx.fetchall(
            "SELECT seq, doc FROM spaces WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        )
        return [(seq, decode_space(doc)) for seq, doc in rows]

    # Journeys

    async def insert_journey(self, journey: Journey) -> None:
        await self.tx.insert(
            "INSERT INTO journeys (space_id, id, status, doc) VALUES (?, ?, ?, ?)",
            (journey.space_id, journey.id, journey.status.value, encode_journey(journey)),
        )
        await self._save_journey_links(journey)

    async def update_journey(self, journey: Journey) -> None:
        await self.tx.execute(
            "UPDATE journeys SET status = ?, doc = ? WHERE space_id = ? AND id = ?",
            (journey.status.value, encode_journey(journey), journey.space_id, journey.id),
        )
        await self._save_journey_links(journey)

    async def delete_journey(self, space_id: str, journey_id: str) -> None:
        await self.tx.execute(
            "DELETE FROM journeys WHERE space_id = ? AND id = ?", (space_id, journey_id)
        )
        await self.tx.execute(
            "DELETE FROM step_keys WHERE space_id = ? AND journey_id = ?", (space_id, journey_id)
        )
        await self.set_refs(space_id, JOURNEY, journey_id, ())

    async def get_journey(self, space_id: str, journey_id: str) -> Journey | None:
        row = await self.tx.fetchone(
            "SELECT doc FROM journeys WHERE space_id = ? AND id = ?", (space_id, journey_id)
        )
        return None if row is None else decode_journey(row[0])

    async def list_journeys(
        self, space_id: str, status: JourneyStatus | None, after: int, limit: int
    ) -> list[tuple[int, Journey]]:
        sql = "SELECT seq, doc FROM journeys WHERE space_id = ? AND seq > ?"
        params: tuple[object, ...] = (space_id, after)
        if status is not None:
            sql += " AND status = ?"
            params += (status.value,)
        rows = await self.tx.fetchall(sql + " ORDER BY seq LIMIT ?", (*params, limit))
        return [(seq, decode_journey(doc)) for seq, doc in rows]

    async def count_journeys(self, space_id: str, statuses: Iterable[JourneyStatus]) -> int:
        values = [s.value for s in statuses]
        marks = ",".join("?" * len(values))
        row = await self.tx.fetchone(
            f"SELECT count(*) FROM journeys WHERE space_id = ? AND status IN ({marks})",  # noqa: S608
            (space_id, *values),
        )
        return 0 if row is None else int(row[0])

    async def key_owner(self, space_id: str, key: str) -> tuple[str, str] | None:
        """The (journey id, step id) that holds ``key`` in the space, if any."""
        row = await self.tx.fetchone(
            "SELECT journey_id, step_id FROM step_keys WHERE space_id = ? AND key = ?",
            (space_id, key),
        )
        return None if row is None else (row[0], row[1])

    async def _save_journey_links(self, journey: Journey) -> None:
        await self.tx.execute(
            "DELETE FROM step_keys WHERE space_id = ? AND journey_id = ?",
            (journey.space_id, journey.id),
        )
        await self.tx.executemany(
            "INSERT INTO step_keys (space_id, key, journey_id, step_id) VALUES (?, ?, ?, ?)",
            [(journey.space_id, s.key, journey.id, s.id) for s in journey.send_steps()],
        )

    # Definitions

    async def insert_definition(self, definition: Definition) -> None:
        await self.tx.insert(
            "INSERT INTO definitions (space_id, kind, id, doc) VALUES (?, ?, ?, ?)",
            (
                definition.space_id,
                definition.KIND.value,
                definition.id,
                encode_definition(definition),
            ),
        )

    async def update_definition(self, definition: Definition) -> None:
        await self.tx.execute(
            "UPDATE definitions SET doc = ? WHERE space_id = ? AND kind = ? AND id = ?",
            (
                encode_definition(definition),
                definition.space_id,
                definition.KIND.value,
                definition.id,
            ),
        )

    async def delete_definition(self, space_id: str, kind: DefinitionKind, def_id: str) -> None:
        await self.tx.execute(
            "DELETE FROM definitions WHERE space_id = ? AND kind = ? AND id = ?",
            (space_id, kind.value, def_id),
        )
        await self.set_refs(space_id, kind.value, def_id, ())

    async def get_definition(
        self, space_id: str, kind: DefinitionKind, def_id: str
    ) -> Definition | None:
        row = await self.tx.fetchone(
            "SELECT doc FROM definitions WHERE space_id = ? AND kind = ? AND id = ?",
            (space_id, kind.value, def_id),
        )
        return None if row is None else decode_definition(kind.value, row[0])

    async def list_definitions(
        self, space_id: str, kind: DefinitionKind, after: int, limit: int
    ) -> list[tuple[int, Definition]]:
        rows = await self.tx.fetchall(
            "SELECT seq, doc FROM definitions WHERE space_id = ? AND kind = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (space_id, kind.value, after, limit),
        )
        return [(seq, decode_definition(kind.value, doc)) for seq, doc in rows]

    async def definition_ids(self, space_id: str, kind: DefinitionKind) -> frozenset[str]:
        rows = await self.tx.fetchall(
            "SELECT id FROM definitions WHERE space_id = ? AND kind = ?", (space_id, kind.value)
        )
        return frozenset(row[0] for row in rows)

    async def destinations(self, space_id: str) -> dict[str, Destination]:
        rows = await self.tx.fetchall(
            "SELECT doc FROM definitions WHERE space_id = ? AND kind = ?",
            (space_id, DefinitionKind.DESTINATION.value),
        )
        found = (decode_definition(DefinitionKind.DESTINATION.value, row[0]) for row in rows)
        return {d.id: d for d in found if isinstance(d, Destination)}

    # References: which journey or definition uses which definition

    async def set_refs(
        self,
        space_id: str,
        from_kind: str,
        from_id: str,
        refs: Iterable[tuple[DefinitionKind, str]],
    ) -> None:
        await self.tx.execute(
            "DELETE FROM refs WHERE space_id = ? AND from_kind = ? AND from_id = ?",
            (space_id, from_kind, from_id),
        )
        await self.tx.executemany(
            "INSERT OR IGNORE INTO refs (space_id, from_kind, from_id, to_kind, to_id) "
            "VALUES (?, ?, ?, ?, ?)",
            [(space_id, from_kind, from_id, kind.value, ref_id) for kind, ref_id in refs],
        )

    async def users_of(
        self, space_id: str, kind: DefinitionKind, def_id: str
    ) -> list[tuple[str, str]]:
        """``(kind, id)`` of every journey and definition referring to a definition."""
        rows = await self.tx.fetchall(
            "SELECT from_kind, from_id FROM refs WHERE space_id = ? AND to_kind = ? AND to_id = ? "
            "ORDER BY from_kind, from_id",
            (space_id, kind.value, def_id),
        )
        return [(row[0], row[1]) for row in rows]

    # Settings kept across restarts

    async def get_meta(self, key: str) -> str | None:
        row = await self.tx.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        await self.tx.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
