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

_V2 = (
    # Every accepted message, in order; acknowledged only once written here.
    """
    CREATE TABLE ingest_log (
        position INTEGER PRIMARY KEY,
        space_id TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        message TEXT NOT NULL
    )
    """,
    # Message ids seen per space, for the dedup window.
    """
    CREATE TABLE dedup (
        space_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (space_id, message_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX dedup_by_time ON dedup (received_at)",
    # Each profile's state, the last log position applied to it, its next wake-up.
    """
    CREATE TABLE actors (
        space_id TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        wake_at INTEGER,
        data TEXT NOT NULL,
        PRIMARY KEY (space_id, actor_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX actors_by_wake ON actors (wake_at) WHERE wake_at IS NOT NULL",
    # Identity links: anonymous id -> user id, written as messages are logged.
    """
    CREATE TABLE links (
        space_id TEXT NOT NULL,
        anonymous_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (space_id, anonymous_id)
    ) WITHOUT ROWID
    """,
    # Counts per journey (reporting), written as they change.
    """
    CREATE TABLE journey_stats (
        space_id TEXT NOT NULL,
        journey_id TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (space_id, journey_id)
    ) WITHOUT ROWID
    """,
    # Destination calls, with dense sequences per destination.
    """
    CREATE TABLE outbox (
        space_id TEXT NOT NULL,
        destination_id TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        journey_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        profile_key TEXT NOT NULL,
        run INTEGER NOT NULL,
        change TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (space_id, destination_id, sequence)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX outbox_by_age ON outbox (created_at)",
    # The last sequence given per destination (calls may be purged; sequences never reused).
    """
    CREATE TABLE sequences (
        space_id TEXT NOT NULL,
        destination_id TEXT NOT NULL,
        last INTEGER NOT NULL,
        PRIMARY KEY (space_id, destination_id)
    ) WITHOUT ROWID
    """,
    # Calls the retention dropped before every consumer acknowledged them.
    """
    CREATE TABLE outbox_dropped (
        space_id TEXT NOT NULL,
        destination_id TEXT NOT NULL,
        dropped INTEGER NOT NULL,
        PRIMARY KEY (space_id, destination_id)
    ) WITHOUT ROWID
    """,
    # Each named consumer's cursor on a destination.
    """
    CREATE TABLE cursors (
        space_id TEXT NOT NULL,
        destination_id TEXT NOT NULL,
        consumer TEXT NOT NULL,
        acked INTEGER NOT NULL,
        PRIMARY KEY (space_id, destination_id, consumer)
    ) WITHOUT ROWID
    """,
)

_V3 = (
    # Each profile's timeline (SPEC §8): every transition, in order, with its cause.
    """
    CREATE TABLE timeline (
        sequence INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: pages go by it
        space_id TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        journey_id TEXT NOT NULL,
        run INTEGER NOT NULL,
        kind TEXT NOT NULL,
        step_id TEXT,
        cause TEXT NOT NULL,
        detail TEXT
    )
    """,
    "CREATE INDEX timeline_by_actor ON timeline (space_id, actor_id, sequence)",
    "CREATE INDEX timeline_by_journey ON timeline (space_id, journey_id)",
)

_V4 = (
    # Snapshots move to a rowid table: in a WITHOUT ROWID table a row over about
    # 1 KB spills into an overflow page of its own, mostly empty (snapshots are
    # 1-3 KB), so the same rows took twice the disk and were slower to write.
    """
    CREATE TABLE actors_v4 (
        space_id TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        wake_at INTEGER,
        data TEXT NOT NULL,
        UNIQUE (space_id, actor_id)
    )
    """,
    "INSERT INTO actors_v4 SELECT space_id, actor_id, position, wake_at, data FROM actors",
    "DROP TABLE actors",
    "ALTER TABLE actors_v4 RENAME TO actors",
    # The wheel's far level: stored wake-ups by due time.
    "CREATE INDEX actors_by_wake ON actors (wake_at) WHERE wake_at IS NOT NULL",
    # Who is at each step now (SPEC §8): a row per step each current run joined,
    # rewritten with the profile's snapshot when its runs moved.
    """
    CREATE TABLE members (
        space_id TEXT NOT NULL,
        journey_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        joined_at INTEGER NOT NULL,
        joined_after INTEGER NOT NULL,  -- the log position then: orders one instant
        actor_id TEXT NOT NULL,
        run INTEGER NOT NULL,
        waiting INTEGER NOT NULL,
        PRIMARY KEY (space_id, journey_id, step_id, joined_at, joined_after, actor_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX members_by_actor ON members (space_id, actor_id)",
    # Runs already stored (snapshots written before this table existed).
    """
    INSERT OR IGNORE INTO members
        (space_id, journey_id, step_id, joined_at, joined_after, actor_id, run, waiting)
    SELECT a.space_id, j.key, s.value,
        coalesce(t.value, json_extract(j.value, '$.run.entered_at')), 0, a.actor_id,
        json_extract(j.value, '$.run.number'),
        json_type(j.value, '$.run.waits."' || s.value || '"') IS NOT NULL
    FROM actors AS a, json_each(a.data, '$.journeys') AS j,
        json_each(j.value, '$.run.joined') AS s
    LEFT JOIN json_each(j.value, '$.run.joined_at') AS t ON t.key = s.key
    WHERE json_type(j.value, '$.run') = 'object'
    """,
)

_V5 = (
    # The ingest log is each space's event history now (kept for the history
    # retention): a profile's messages, in order, for historical entry and preview.
    "CREATE INDEX ingest_log_by_actor ON ingest_log (space_id, actor_id, position)",
    # Long-running work another call started (a historical entry), with its progress.
    """
    CREATE TABLE operations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        space_id TEXT NOT NULL,
        id TEXT NOT NULL,
        journey_id TEXT NOT NULL,
        doc TEXT NOT NULL,
        UNIQUE (space_id, id)
    )
    """,
    "CREATE INDEX operations_by_journey ON operations (space_id, journey_id)",
)

_V6 = (
    # Access tokens: only a hash of each secret is kept; the secret is shown once.
    # ``space_id`` is ``*`` for a token that covers every space.
    """
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL UNIQUE,
        space_id TEXT NOT NULL,
        role TEXT NOT NULL,
        doc TEXT NOT NULL
    )
    """,
    # Identifiers whose messages are refused after their profile was deleted, kept
    # as hashes only, until ``expire_at``.
    """
    CREATE TABLE suppressions (
        space_id TEXT NOT NULL,
        id_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expire_at INTEGER NOT NULL,
        PRIMARY KEY (space_id, id_hash)
    ) WITHOUT ROWID
    """,
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
