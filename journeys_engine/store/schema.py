"""Schema migrations, in order. Migration N takes ``user_version`` N-1 to N.

Each migration is a sequence of statements run in one transaction. A migration
is never edited once released: a change adds a new one.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

_V1 = (
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE spaces (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        doc TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE journeys (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        space_id TEXT NOT NULL REFERENCES spaces (id),
        id TEXT NOT NULL,
        status TEXT NOT NULL,
        doc TEXT NOT NULL,
        UNIQUE (space_id, id)
    )
    """,
    """
    CREATE TABLE step_keys (
        space_id TEXT NOT NULL,
        key TEXT NOT NULL,
        journey_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        PRIMARY KEY (space_id, key)
    )
    """,
    "CREATE INDEX step_keys_by_journey ON step_keys (space_id, journey_id)",
    """
    CREATE TABLE definitions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        space_id TEXT NOT NULL REFERENCES spaces (id),
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        doc TEXT NOT NULL,
        UNIQUE (space_id, kind, id)
    )
    """,
    """
    CREATE TABLE refs (
        space_id TEXT NOT NULL,
        from_kind TEXT NOT NULL,
        from_id TEXT NOT NULL,
        to_kind TEXT NOT NULL,
        to_id TEXT NOT NULL,
        PRIMARY KEY (space_id, from_kind, from_id, to_kind, to_id)
    )
    """,
    "CREATE INDEX refs_by_target ON refs (space_id, to_kind, to_id)",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1,)
