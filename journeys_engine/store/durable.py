"""The durable side of the engine: ingest log, dedup, profile snapshots, outbox.

Durability contract (ARCHITECTURE.md):

1. A message is acknowledged only after it is committed to the ingest log,
   with the profile it is about and the identity link it makes, if any.
   Concurrent batches share one transaction (group commit).
2. Applying messages and timers changes profiles and produces destination calls;
   each unit of that work — the changed profiles with the last log position
   applied to each, the counts, the calls with their
   dense per-destination sequences, and the log position up to which everything
   is applied — is committed in one transaction.
3. On start, nothing is loaded but the counts and the wake-ups due within the
   near horizon; a profile comes back from its snapshot when it is first needed
   (:meth:`DurableStore.load_actors`). The log after the applied floor is
   applied again, each message only to a profile that had not applied it yet;
   wake-ups come back at their instants, so timers that fell due while the
   server was down fire in order.

Wake-ups are stored with the snapshots, indexed by due time: that index is the
far level of the timer wheel (:meth:`DurableStore.due`).

A deleted profile (:class:`~journeys_engine.runtime.runtime.Erasure`) goes with
the unit that ends its runs: the unit's own rows are written first (its exits in
the outbox), then every row about the profile is deleted — snapshot, step rows,
timeline, logged messages, identity links — and its suppressions are stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from journeys_engine.clock import Clock
from journeys_engine.conditions.profile import LeafIndex
from journeys_engine.errors import InvalidArgumentError
from journeys_engine.messages import Message, parse_message
from journeys_engine.runtime.actor import Actor
from journeys_engine.runtime.identity import Logged, profile_id, resolve
from journeys_engine.runtime.outputs import Change
from journeys_engine.runtime.runtime import Erasure, Runtime, Unit, compact_json
from journeys_engine.runtime.stats import stats_from
from journeys_engine.runtime.timeline import TimelineEntry, TimelineRow
from journeys_engine.store.catalog import CatalogRows
from journeys_engine.store.database import Database, Tx
from journeys_engine.store.suppressions import Suppressions

__all__ = ["DurableStore", "OutboxRecord"]

_FLOOR_KEY = "applied_floor"
_CHUNK = 500
_DELETE_CHUNK = 20_000


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One stored destination call."""

    sequence: int
    message_id: str
    payload: str
    timestamp: int
    journey_id: str
    step_id: str
    profile_key: str
    run: int
    change: Change


class DurableStore:
    """Everything the engine must not lose, in the engine's SQLite file.

    Args:
        db: The open database.
        clock: The engine's clock (for received times and retention).
        dedup_window_ms: How long a message id is remembered.
        retention_ms: How long an unacknowledged destination call is kept.
        timeline_retention_ms: How long timeline entries are kept.
        history_retention_ms: How long logged messages are kept (the event
            history historical entry and preview read).

    Attributes:
        suppressions: Identifiers whose messages are refused (deleted profiles).
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        dedup_window_ms: int,
        retention_ms: int,
        timeline_retention_ms: int,
        history_retention_ms: int,
    ) -> None:
        self._db = db
        self._clock = clock
        self.dedup_window_ms = dedup_window_ms
        self.retention_ms = retention_ms
        self.timeline_retention_ms = timeline_retention_ms
        self.history_retention_ms = history_retention_ms
        self._next_position = 1
        self._logged_through = 0  # every position up to here is in the log, or a gap
        self._pending_positions: set[int] = set()
        self._floor = 0
        self._sequences: dict[tuple[str, str], int] = {}
        self._links: dict[str, dict[str, str]] = {}  # space -> anonymous id -> user id
        self._appends: list[tuple[str, list[Message], asyncio.Future[list[Logged | None]]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._begun = 0  # appends begun, and of those, handed on (or failed)
        self._finished = 0
        self._progress = asyncio.Event()
        self._changed: dict[tuple[str, str], asyncio.Event] = {}
        self._commit_lock = asyncio.Lock()
        self.suppressions = Suppressions(db, clock)
        self.on_logged: Callable[[str, list[Logged]], Awaitable[None]] | None = None

    async def open(self) -> None:
        """Reads the counters (next log position, applied floor, last sequences) and
        the identity links."""
        async with self._db.read() as tx:
            row = await tx.fetchone("SELECT max(position) FROM ingest_log")
            last = int(row[0]) if row is not None and row[0] is not None else 0
            floor = await CatalogRows(tx).get_meta(_FLOOR_KEY)
            self._floor = int(floor) if floor is not None else 0
            self._next_position = max(last, self._floor) + 1
            self._logged_through = self._next_position - 1
            rows = await tx.fetchall("SELECT space_id, destination_id, last FROM sequences")
            self._sequences = {(r[0], r[1]): int(r[2]) for r in rows}
            for space_id, anonymous_id, user_id in await tx.fetchall(
                "SELECT space_id, anonymous_id, user_id FROM links"
            ):
                self._links.setdefault(space_id, {})[anonymous_id] = user_id
        await self.suppressions.load()

    @property
    def floor(self) -> int:
        """Every log position up to this one is applied and committed."""
        return self._floor

    # Ingest log, with group commit

    async def append(self, space_id: str, messages: Sequence[Message]) -> list[Logged | None]:
        """Commits messages to the log, each with the profile it is about (decided
        here, in log order, see :mod:`journeys_engine.runtime.identity`); returns
        each one as logged, None for duplicates.

        Concurrent calls are committed together, in one transaction; then each
        call's accepted messages go to :attr:`on_logged`, one call after another
        in log order, before the call returns (so what queues them for applying
        sees them in log order, and a full queue holds every sender back).
        """
        if not messages:
            return []
        future: asyncio.Future[list[Logged | None]] = asyncio.get_running_loop().create_future()
        self._appends.append((space_id, list(messages), future))
        self._begun += 1
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_appends())
        return await future

    async def drain(self) -> None:
        """Returns once every append begun before the call is logged and handed on
        (later ones are not waited for, so steady traffic cannot hold it up)."""
        target = self._begun
        while self._finished < target:
            await self._progress.wait()

    def _finish(self, count: int) -> None:
        self._finished += count
        self._progress.set()
        self._progress = asyncio.Event()

    async def _write_appends(self) -> None:
        while self._appends:
            batch, self._appends = self._appends, []
            links: dict[tuple[str, str], str] = {}  # made by this group, kept once committed
            try:
                async with self._db.transaction() as tx:
                    results = [
                        await self._append_in(tx, space, msgs, links) for space, msgs, _ in batch
                    ]
            except Exception as err:  # noqa: BLE001 - handed to every waiting caller
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                self._finish(len(batch))
                continue
            for (space_id, anonymous_id), user_id in links.items():
                self._links.setdefault(space_id, {})[anonymous_id] = user_id
            # The whole group is pending before any of it is handed on (which may
            # wait): a unit committed meanwhile must not move the floor past it.
            for logged in results:
                self._pending_positions.update(e.position for e in logged if e is not None)
            self._logged_through = self._next_position - 1
            for (space_id, _, future), logged in zip(batch, results, strict=True):
                accepted = [e for e in logged if e is not None]
                try:
                    if accepted and self.on_logged is not None:
                        await self.on_logged(space_id, accepted)
                except Exception as err:  # noqa: BLE001 - handed to the waiting caller
                    if not future.done():  # (a caller that gave up has no one to tell)
                        future.set_exception(err)
                    continue
                finally:
                    self._finish(1)
                if not future.done():
                    future.set_result(logged)

    async def _append_in(
        self, tx: Tx, space_id: str, messages: list[Message], links: dict[tuple[str, str], str]
    ) -> list[Logged | None]:
        now = self._clock.now_ms()
        first = self._next_position
        tentative = list(range(first, first + len(messages)))
        ids = [m.message_id for m in messages]
        found: dict[str, int] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            await tx.execute(
                f"DELETE FROM dedup WHERE space_id = ? AND received_at < ? "  # noqa: S608
                f"AND message_id IN ({marks})",
                (space_id, now - self.dedup_window_ms, *chunk),
            )
        await tx.executemany(
            "INSERT OR IGNORE INTO dedup (space_id, message_id, received_at, position) "
            "VALUES (?, ?, ?, ?)",
            [(space_id, m.message_id, now, p) for m, p in zip(messages, tentative, strict=True)],
        )
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = await tx.fetchall(
                f"SELECT message_id, position FROM dedup WHERE space_id = ? "  # noqa: S608
                f"AND message_id IN ({marks})",
                (space_id, *chunk),
            )
            found.update((r[0], int(r[1])) for r in rows)
        committed = self._links.get(space_id, {})

        def link_of(anonymous_id: str) -> str | None:
            made = links.get((space_id, anonymous_id))
            return made if made is not None else committed.get(anonymous_id)

        logged: list[Logged | None] = []
        link_rows = []
        for message, tentative_position in zip(messages, tentative, strict=True):
            if found.get(message.message_id) != tentative_position:
                logged.append(None)
                continue
            actor, link = resolve(message, link_of)
            if link is not None:
                links[(space_id, link[0])] = link[1]
                link_rows.append((space_id, *link))
            logged.append(Logged(tentative_position, actor, message))
        await tx.executemany(
            "INSERT INTO ingest_log (position, space_id, actor_id, received_at, message) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (
                    e.position,
                    space_id,
                    e.actor_id,
                    e.message.received_at,
                    compact_json(e.message.to_json()),
                )
                for e in logged
                if e is not None
            ],
        )
        if link_rows:
            await tx.executemany(
                "INSERT OR REPLACE INTO links (space_id, anonymous_id, user_id) VALUES (?, ?, ?)",
                link_rows,
            )
        self._next_position = first + len(messages)
        return logged

    # Units of applied work

    async def commit(self, unit: Unit) -> None:
        """Commits a unit: profiles, counts, calls and the applied floor, together.

        Units commit one at a time, so sequences and the floor follow commit order.
        """
        async with self._commit_lock:
            await self._commit(unit)

    async def _commit(self, unit: Unit) -> None:
        sequences = dict(self._sequences)
        outbox_rows = []
        now = self._clock.now_ms()
        touched: set[tuple[str, str]] = set()
        for o in unit.outputs:
            key = (o.space_id, o.destination_id)
            sequences[key] = sequences.get(key, 0) + 1
            touched.add(key)
            outbox_rows.append(
                (
                    o.space_id, o.destination_id, sequences[key], o.message_id, o.payload,
                    o.timestamp, o.journey_id, o.step_id, o.profile_key, o.run, o.change.value,
                    now,
                )
            )  # fmt: skip
        pending = self._pending_positions - set(unit.positions)
        # Not _next_position: a group of appends may be committing to the log now.
        floor = (min(pending) - 1) if pending else self._logged_through
        async with self._db.transaction() as tx:
            if unit.snapshots:
                await tx.executemany(
                    "INSERT OR REPLACE INTO actors (space_id, actor_id, position, wake_at, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (space_id, actor_id, snap.position, snap.wake_at, snap.data)
                        for (space_id, actor_id), snap in unit.snapshots.items()
                    ],
                )
                moved = [(k, s.members) for k, s in unit.snapshots.items() if s.members is not None]
                if moved:
                    await tx.executemany(
                        "DELETE FROM members WHERE space_id = ? AND actor_id = ?",
                        [key for key, _ in moved],
                    )
                    await tx.executemany(
                        "INSERT INTO members (space_id, journey_id, step_id, joined_at, "
                        "joined_after, actor_id, run, waiting) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (space_id, journey_id, step_id, at, after, actor_id, run, waiting)
                            for (space_id, actor_id), rows in moved
                            for journey_id, step_id, at, after, run, waiting in rows or ()
                        ],
                    )
            gone = [key for key, counts in unit.counts.items() if counts is None]
            if gone:
                await tx.executemany(
                    "DELETE FROM journey_stats WHERE space_id = ? AND journey_id = ?", gone
                )
            counted = [(*key, counts) for key, counts in unit.counts.items() if counts is not None]
            if counted:
                await tx.executemany(
                    "INSERT OR REPLACE INTO journey_stats (space_id, journey_id, data) "
                    "VALUES (?, ?, ?)",
                    counted,
                )
            if touched:
                await tx.executemany(
                    "INSERT OR REPLACE INTO sequences (space_id, destination_id, last) "
                    "VALUES (?, ?, ?)",
                    [
                        (space, destination, sequences[(space, destination)])
                        for space, destination in touched
                    ],
                )
            if outbox_rows:
                await tx.executemany(
                    "INSERT INTO outbox (space_id, destination_id, sequence, message_id, payload, "
                    "timestamp, journey_id, step_id, profile_key, run, change, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    outbox_rows,
                )
            if unit.timeline:
                await tx.executemany(
                    "INSERT INTO timeline (space_id, actor_id, at, journey_id, run, kind, "
                    "step_id, cause, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    _timeline_rows(unit.timeline),
                )
            if unit.forgotten:  # after the inserts: a unit may record, then delete, a journey
                await tx.executemany(
                    "DELETE FROM timeline WHERE space_id = ? AND journey_id = ?", unit.forgotten
                )
                await tx.executemany(
                    "DELETE FROM members WHERE space_id = ? AND journey_id = ?", unit.forgotten
                )
                # Profiles not in memory lose their standing in it here (those in
                # memory were written above without it).
                await tx.executemany(
                    "UPDATE actors SET data = json_remove(data, ?) "
                    "WHERE space_id = ? AND json_type(data, ?) IS NOT NULL",
                    [
                        (path, space_id, path)
                        for space_id, journey_id in unit.forgotten
                        for path in [f'$.journeys."{journey_id}"']
                    ],
                )
            for erasure in unit.erasures:  # after the inserts: its exits stay, the rest goes
                await self._erase(tx, erasure)
            if floor != self._floor:
                await CatalogRows(tx).set_meta(_FLOOR_KEY, str(floor))
        for erasure in unit.erasures:
            links = self._links.get(erasure.space_id, {})
            for anonymous_id in erasure.unlinked:
                if links.get(anonymous_id) == erasure.user_id:
                    del links[anonymous_id]
            if erasure.suppressed:
                self.suppressions.added(erasure.space_id, erasure.suppressed, erasure.expire_at)
        self._sequences = sequences
        # In place: appends committed meanwhile added positions that are still pending.
        self._pending_positions.difference_update(unit.positions)
        self._floor = floor
        for key in touched:
            event = self._changed.get(key)
            if event is not None:
                event.set()

    async def _erase(self, tx: Tx, erasure: Erasure) -> None:
        """Deletes every row about the erased profiles; stores their suppressions.

        The outbox keeps their calls (they are the destinations' stream, purged
        once acknowledged or past the retention), and the dedup window their
        message ids (opaque).
        """
        space_id = erasure.space_id
        keys = [(space_id, actor_id) for actor_id in erasure.actor_ids]
        for table in ("actors", "members", "timeline", "ingest_log"):
            await tx.executemany(
                f"DELETE FROM {table} WHERE space_id = ? AND actor_id = ?",  # noqa: S608
                keys,
            )
        if erasure.user_id is not None and erasure.unlinked:
            await tx.executemany(
                "DELETE FROM links WHERE space_id = ? AND anonymous_id = ? AND user_id = ?",
                [(space_id, a, erasure.user_id) for a in erasure.unlinked],
            )
        if erasure.suppressed:
            await self.suppressions.write(
                tx, space_id, erasure.suppressed, erasure.at, erasure.expire_at
            )

    # Recovery

    async def load_counts(self, runtime: Runtime) -> None:
        """Puts every journey's counts back into the runtime; what is left of
        journeys no longer in the catalog goes with the next unit."""
        async with self._db.read() as tx:
            rows = await tx.fetchall("SELECT space_id, journey_id, data FROM journey_stats")
        for space_id, journey_id, data in rows:
            space = runtime.space(space_id)
            if journey_id in space.journeys:
                space.stats[journey_id] = stats_from(json.loads(data))
            else:  # deleted while the runtime was not told (a crash)
                space.forget(journey_id)

    async def load_actors(
        self, space_id: str, actor_ids: Sequence[str], index: LeafIndex
    ) -> list[tuple[Actor, int | None]]:
        """The stored profiles among ``actor_ids``, from their snapshots, each with
        its wake-up (profiles never stored are left out)."""
        found: list[tuple[Actor, int | None]] = []
        async with self._db.read() as tx:
            for start in range(0, len(actor_ids), _CHUNK):
                chunk = actor_ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = await tx.fetchall(
                    "SELECT position, wake_at, data FROM actors "  # noqa: S608
                    f"WHERE space_id = ? AND actor_id IN ({marks})",
                    (space_id, *chunk),
                )
                for position, wake_at, data in rows:
                    actor = Actor.from_data(json.loads(data), index)
                    actor.position = int(position)
                    found.append((actor, wake_at))
        return found

    async def due(self, after: int, upto: int, limit: int) -> list[tuple[str, str, int]]:
        """Stored wake-ups due after ``after`` and at or before ``upto``, earliest
        first, at most ``limit`` (-1: all): (space, actor id, instant)."""
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT space_id, actor_id, wake_at FROM actors WHERE wake_at IS NOT NULL "
                "AND wake_at > ? AND wake_at <= ? ORDER BY wake_at LIMIT ?",
                (after, upto, limit),
            )
        return [(r[0], r[1], int(r[2])) for r in rows]

    async def actor_ids(self, space_id: str, after: str, limit: int) -> list[str]:
        """Stored profiles of a space after ``after``, in id order, at most ``limit``."""
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT actor_id FROM actors WHERE space_id = ? AND actor_id > ? "
                "ORDER BY actor_id LIMIT ?",
                (space_id, after, limit),
            )
        return [r[0] for r in rows]

    async def in_journey(self, space_id: str, journey_id: str) -> list[str]:
        """Profiles with a run in the journey now (as committed)."""
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT DISTINCT actor_id FROM members WHERE space_id = ? AND journey_id = ?",
                (space_id, journey_id),
            )
        return [r[0] for r in rows]

    async def members(
        self,
        space_id: str,
        journey_id: str,
        step_id: str,
        *,
        waiting: bool,
        offset: int,
        limit: int,
    ) -> list[tuple[str, int, bool]]:
        """Runs at a step (or held there), in the order they joined it: (actor id,
        run, held), from ``offset``, at most ``limit``."""
        query = (
            "SELECT actor_id, run, waiting FROM members WHERE space_id = ? AND journey_id = ? "
            "AND step_id = ?"
        )
        if waiting:
            query += " AND waiting"
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                f"{query} ORDER BY joined_at, joined_after, actor_id LIMIT ? OFFSET ?",
                (space_id, journey_id, step_id, limit, offset),
            )
        return [(r[0], int(r[1]), bool(r[2])) for r in rows]

    async def unapplied(self) -> list[tuple[str, Logged]]:
        """The log after the applied floor, in order: (space, message as logged)."""
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT space_id, position, actor_id, received_at, message FROM ingest_log "
                "WHERE position > ? ORDER BY position",
                (self._floor,),
            )
        found = []
        for space_id, position, actor, received_at, text in rows:
            message = parse_message(json.loads(text), received_at=int(received_at))
            found.append((space_id, Logged(int(position), actor, message)))
            self._pending_positions.add(int(position))
        return found

    def linked_user(self, space_id: str, anonymous_id: str) -> str | None:
        """The user id an anonymous id is linked to, if any."""
        return self._links.get(space_id, {}).get(anonymous_id)

    async def anonymous_ids(self, space_id: str, user_id: str) -> set[str]:
        """The anonymous ids a user's profile had: those linked to it, and those its
        retained messages carried (an alias's previous id included)."""
        async with self._db.read() as tx:
            # (Rare, so links are scanned rather than indexed by user id.)
            linked = await tx.fetchall(
                "SELECT anonymous_id FROM links WHERE space_id = ? AND user_id = ?",
                (space_id, user_id),
            )
            logged = await tx.fetchall(
                "SELECT DISTINCT json_extract(message, '$.anonymousId'), "
                "json_extract(message, '$.previousId') FROM ingest_log "
                "WHERE space_id = ? AND actor_id = ?",
                (space_id, profile_id(user_id, None)),
            )
        found = {r[0] for r in linked}
        found.update(value for row in logged for value in row if isinstance(value, str))
        return found

    # Timelines

    async def timeline(
        self, space_id: str, actor_id: str, journey_id: str | None, after: int, limit: int
    ) -> list[TimelineEntry]:
        """The profile's timeline entries after sequence ``after``, in order, at most
        ``limit``; only one journey's when ``journey_id`` is given."""
        query = (
            "SELECT sequence, at, journey_id, run, kind, step_id, cause, detail FROM timeline "
            "WHERE space_id = ? AND actor_id = ? AND sequence > ?"
        )
        args: list[object] = [space_id, actor_id, after]
        if journey_id is not None:
            query += " AND journey_id = ?"
            args.append(journey_id)
        async with self._db.read() as tx:
            rows = await tx.fetchall(f"{query} ORDER BY sequence LIMIT ?", (*args, limit))
        return [
            TimelineEntry.from_row(
                int(r[0]),
                int(r[1]),
                r[2],
                int(r[3]),
                r[4],
                r[5],
                json.loads(r[6]),
                None if r[7] is None else json.loads(r[7]),
            )
            for r in rows
        ]

    # Outbox and cursors

    def last_sequence(self, space_id: str, destination_id: str) -> int:
        """The last sequence given to a call for the destination (0 if none)."""
        return self._sequences.get((space_id, destination_id), 0)

    async def read(
        self, space_id: str, destination_id: str, after: int, limit: int
    ) -> list[OutboxRecord]:
        """Stored calls with sequence > ``after``, in order, at most ``limit``."""
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT sequence, message_id, payload, timestamp, journey_id, step_id, "
                "profile_key, run, change FROM outbox WHERE space_id = ? AND destination_id = ? "
                "AND sequence > ? ORDER BY sequence LIMIT ?",
                (space_id, destination_id, after, limit),
            )
        return [
            OutboxRecord(
                int(r[0]), r[1], r[2], int(r[3]), r[4], r[5], r[6], int(r[7]), Change(r[8])
            )
            for r in rows
        ]

    async def wait(self, space_id: str, destination_id: str, after: int) -> None:
        """Returns once a call with sequence > ``after`` exists for the destination."""
        key = (space_id, destination_id)
        while self.last_sequence(space_id, destination_id) <= after:
            event = self._changed.setdefault(key, asyncio.Event())
            event.clear()
            if self.last_sequence(space_id, destination_id) > after:
                return
            await event.wait()

    async def cursor(self, space_id: str, destination_id: str, consumer: str) -> int:
        """The consumer's last acknowledged sequence (0 when it has none)."""
        async with self._db.read() as tx:
            row = await tx.fetchone(
                "SELECT acked FROM cursors WHERE space_id = ? AND destination_id = ? "
                "AND consumer = ?",
                (space_id, destination_id, consumer),
            )
        return 0 if row is None else int(row[0])

    async def cursors(self) -> list[tuple[str, str, str, int]]:
        """Every consumer's cursor: (space, destination, consumer, last acknowledged
        sequence); one read of a small table, for metrics (outbox backlog)."""
        async with self._db.read() as tx:
            rows = await tx.fetchall(
                "SELECT space_id, destination_id, consumer, acked FROM cursors"
            )
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    async def ack(self, space_id: str, destination_id: str, consumer: str, sequence: int) -> int:
        """Moves the consumer's cursor forward to ``sequence`` (never back); returns it.

        Raises:
            InvalidArgumentError: the sequence is negative or was never sent.
        """
        last = self.last_sequence(space_id, destination_id)
        if sequence < 0 or sequence > last:
            raise InvalidArgumentError.single(
                "sequence", f"{sequence} has not been sent (the last sequence is {last})"
            )
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO cursors (space_id, destination_id, consumer, acked) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (space_id, destination_id, consumer) "
                "DO UPDATE SET acked = max(acked, excluded.acked)",
                (space_id, destination_id, consumer, sequence),
            )
            row = await tx.fetchone(
                "SELECT acked FROM cursors WHERE space_id = ? AND destination_id = ? "
                "AND consumer = ?",
                (space_id, destination_id, consumer),
            )
        assert row is not None
        return int(row[0])

    async def purge(self) -> dict[tuple[str, str], int]:
        """Compaction: drops calls older than the retention and calls every consumer
        of their destination acknowledged, applied log entries received before the
        history retention, message ids older than the dedup window, timeline
        entries older than the timeline retention and expired suppressions.

        Deletes go in small transactions, so appends and commits wait at most
        for one of them.

        Returns, per (space, destination), how many of the dropped calls some
        consumer had not acknowledged (also counted in :meth:`dropped`).
        """
        now = self._clock.now_ms()
        cutoff = now - self.retention_ms
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT o.space_id, o.destination_id, count(*) FROM outbox AS o "
                "WHERE o.created_at < ? AND o.sequence > coalesce(("
                "  SELECT min(c.acked) FROM cursors AS c "
                "  WHERE c.space_id = o.space_id AND c.destination_id = o.destination_id"
                "), 0) GROUP BY o.space_id, o.destination_id",
                (cutoff,),
            )
            unacked = {(r[0], r[1]): int(r[2]) for r in rows}
            if unacked:
                await tx.executemany(
                    "INSERT INTO outbox_dropped (space_id, destination_id, dropped) "
                    "VALUES (?, ?, ?) ON CONFLICT (space_id, destination_id) "
                    "DO UPDATE SET dropped = dropped + excluded.dropped",
                    [(space, dest, n) for (space, dest), n in unacked.items()],
                )
            await tx.execute("DELETE FROM outbox WHERE created_at < ?", (cutoff,))
            acked = await tx.fetchall(
                "SELECT space_id, destination_id, min(acked) FROM cursors "
                "GROUP BY space_id, destination_id"
            )
            await tx.executemany(
                "DELETE FROM outbox WHERE space_id = ? AND destination_id = ? AND sequence <= ?",
                [(r[0], r[1], int(r[2])) for r in acked],
            )
        async with self._db.read() as tx:
            # Positions follow reception: the first recent entry bounds what goes.
            row = await tx.fetchone(
                "SELECT position FROM ingest_log WHERE received_at >= ? ORDER BY position LIMIT 1",
                (now - self.history_retention_ms,),
            )
        old = self._floor if row is None else min(self._floor, int(row[0]) - 1)
        await self._delete_through("ingest_log", "position", old)
        async with self._db.transaction() as tx:
            await tx.execute(
                "DELETE FROM dedup WHERE received_at < ?", (now - self.dedup_window_ms,)
            )
        async with self._db.read() as tx:
            # Entries are written in time order but for late profiles, so the first
            # recent one bounds what goes (walking from the oldest).
            row = await tx.fetchone(
                "SELECT sequence FROM timeline WHERE at >= ? ORDER BY sequence LIMIT 1",
                (now - self.timeline_retention_ms,),
            )
            last = await tx.fetchone("SELECT max(sequence) FROM timeline")
        through = int(row[0]) - 1 if row is not None else int(last[0] or 0) if last else 0
        await self._delete_through("timeline", "sequence", through)
        await self.suppressions.purge(now)
        return unacked

    async def _delete_through(self, table: str, key: str, through: int) -> None:
        """Deletes the rows of ``table`` with ``key`` up to ``through``, oldest first,
        a chunk per transaction."""
        while True:
            async with self._db.transaction() as tx:
                row = await tx.fetchone(f"SELECT min({key}) FROM {table}")  # noqa: S608
                first = None if row is None or row[0] is None else int(row[0])
                if first is None or first > through:
                    return
                await tx.execute(
                    f"DELETE FROM {table} WHERE {key} <= ?",  # noqa: S608
                    (min(through, first + _DELETE_CHUNK - 1),),
                )

    async def dropped(self, space_id: str, destination_id: str) -> int:
        """How many of the destination's calls the retention dropped unacknowledged, ever."""
        async with self._db.read() as tx:
            row = await tx.fetchone(
                "SELECT dropped FROM outbox_dropped WHERE space_id = ? AND destination_id = ?",
                (space_id, destination_id),
            )
        return 0 if row is None else int(row[0])

    async def close(self) -> None:
        """Waits for log writes in flight."""
        if self._writer is not None:
            await self._writer


def _timeline_rows(rows: Sequence[TimelineRow]) -> list[tuple[object, ...]]:
    """Rows for the timeline table; the entries of one cascade share their cause,
    encoded once, and an empty detail is stored as NULL."""
    causes: dict[int, str] = {}
    out: list[tuple[object, ...]] = []
    for space_id, actor_id, at, journey_id, run, kind, step_id, cause, detail in rows:
        text = causes.get(id(cause))
        if text is None:
            text = causes[id(cause)] = compact_json(cause.to_data())
        encoded = compact_json(detail) if detail else None
        out.append((space_id, actor_id, at, journey_id, run, kind, step_id, text, encoded))
    return out
