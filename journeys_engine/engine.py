"""The engine: one object that owns the database, the clock and the services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from journeys_engine.catalog import CatalogContext, Definitions, Journeys, Page, Spaces
from journeys_engine.catalog.changes import CatalogChange, DefinitionsChanged
from journeys_engine.clock import MAX_INSTANT_MS, Clock, ManualClock, SystemClock, format_ms
from journeys_engine.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    PreconditionViolation,
)
from journeys_engine.messages import Message, parse_message
from journeys_engine.model.definitions import (
    Audience,
    ComputedTrait,
    Definition,
    DefinitionKind,
    Destination,
)
from journeys_engine.model.journey import Journey, JourneyStatus
from journeys_engine.model.limits import Limits
from journeys_engine.reporting import Reporting
from journeys_engine.runtime import Router, Runtime, Sink
from journeys_engine.runtime.router import Batch
from journeys_engine.store.catalog import CatalogRows
from journeys_engine.store.database import Database
from journeys_engine.store.durable import DurableStore

__all__ = ["Engine", "EngineSettings", "IngestResult"]

log = logging.getLogger("journeys_engine")

_MANUAL_CLOCK_KEY = "manual_clock_ms"


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How an engine runs.

    Attributes:
        limits: Size and count limits (SPEC §10).
        fsync: Make commits power-loss safe (``synchronous=FULL``), not only
            process-kill safe.
        manual_clock: Run on a clock that moves only when told to; its time is
            kept in the database across restarts. Ignored when a clock is given
            to :meth:`Engine.open`.
        shards: Queues that order each profile's messages (profiles hash to one).
        shard_capacity: Batches a shard queues before senders wait.
    """

    limits: Limits = field(default_factory=Limits)
    fsync: bool = False
    manual_clock: bool = False
    shards: int = 4
    shard_capacity: int = 64


class Engine:
    """The journeys engine. Open with :meth:`open`, close with :meth:`close`.

    Attributes:
        spaces: Spaces (tenants).
        journeys: Journeys and their lifecycle.
        definitions: Audiences, computed traits and destinations.
        reporting: Counts, who is at a step, profiles and their timelines.
        clock: The clock every time-based rule reads.
        settings: The settings it was opened with.
    """

    def __init__(
        self, db: Database, clock: Clock, settings: EngineSettings, sink: Sink | None = None
    ) -> None:
        self._db = db
        self.clock = clock
        self.settings = settings
        self.sink = sink
        limits = settings.limits
        self.store = DurableStore(
            db,
            clock,
            dedup_window_ms=limits.dedup_window_ms,
            retention_ms=limits.outbox_retention_ms,
        )
        ctx = CatalogContext(db, clock, limits, [self._on_catalog_change])
        self.spaces = Spaces(ctx)
        self.journeys = Journeys(ctx)
        self.definitions = Definitions(ctx)
        self.runtime = Runtime()
        self.reporting = Reporting(
            self.spaces, self.journeys, self.runtime, self.store, self.settle, clock.now_ms
        )
        self.router = Router(
            self._apply_batch, shards=settings.shards, capacity=settings.shard_capacity
        )
        self.store.on_logged = self.router.put
        self._timers: asyncio.Task[None] | None = None
        self._timers_changed = asyncio.Event()
        self._advancing = asyncio.Lock()
        self._holds = 0  # clock moves and catalog changes holding new messages back
        self._door = asyncio.Event()
        self._door.set()
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        settings: EngineSettings | None = None,
        clock: Clock | None = None,
        sink: Sink | None = None,
    ) -> Engine:
        """Opens the engine on the database at ``path`` (created when missing).

        On start the engine puts back every profile from its snapshot and applies
        again what the ingest log holds beyond the applied floor (durability
        contract, ARCHITECTURE.md). ``sink``, when given, also receives each unit
        of applied work once it is committed (tests keep outputs in a
        :class:`MemorySink`).

        Raises:
            StorageError: the database cannot be used.
        """
        settings = settings or EngineSettings()
        db = await Database.open(path, fsync=settings.fsync)
        async with contextlib.AsyncExitStack() as on_failure:
            on_failure.push_async_callback(db.close)
            if clock is None:
                clock = await _load_clock(db, manual=settings.manual_clock)
            engine = cls(db, clock, settings, sink)
            await engine.spaces.ensure_default()
            await engine.store.open()
            await engine._load_runtime()
            await engine.store.load(engine.runtime)
            await engine._recover()
            engine.router.start()
            if not engine.manual_clock:
                engine._timers = asyncio.get_running_loop().create_task(
                    engine._run_timers(), name="timers"
                )
            on_failure.pop_all()
        return engine

    async def _recover(self) -> None:
        """Applies again every logged message beyond the applied floor, in log order."""
        for count, (space_id, logged) in enumerate(await self.store.unapplied(), 1):
            self.runtime.apply(space_id, [logged])
            if count % 500 == 0:
                await self._commit()
        await self._commit()

    # Messages and time

    async def ingest(self, space_id: str, messages: Sequence[Mapping[str, Any]]) -> IngestResult:
        """Checks Segment-spec messages received now, logs the good ones, and queues them.

        Each message is checked on its own; duplicates (a message id seen in the
        space within the dedup window) are acknowledged and have no effect. The
        call returns once the accepted messages are committed to the ingest log
        and queued (waiting while a shard is full).

        Raises:
            NotFoundError: the space does not exist.
        """
        await self.spaces.get(space_id)
        while not self._door.is_set():  # a clock move or catalog change is settling
            await self._door.wait()
        now = self.clock.now_ms()
        parsed: list[Message] = []
        indexes: list[int] = []
        errors: dict[int, tuple[FieldViolation, ...]] = {}
        for i, raw in enumerate(messages):
            try:
                parsed.append(parse_message(raw, received_at=now, path=f"messages[{i}]"))
                indexes.append(i)
            except InvalidArgumentError as err:
                errors[i] = err.violations
        logged = await self.store.append(space_id, parsed)
        positions: list[int | None] = [None] * len(messages)
        duplicates: list[int] = []
        for index, entry in zip(indexes, logged, strict=True):
            if entry is None:
                duplicates.append(index)
            else:
                positions[index] = entry.position
        return IngestResult(positions, duplicates, errors)

    async def settle(self) -> None:
        """Returns once every message received before the call has been applied and
        committed (those still being written to the log included)."""
        await self.store.drain()
        await self.router.settle()

    @contextlib.asynccontextmanager
    async def _holding_messages(self) -> AsyncIterator[None]:
        """New messages wait at the door meanwhile, so that settling ends under steady
        traffic and nothing is received between the settle and what follows it."""
        self._holds += 1
        self._door.clear()
        try:
            yield
        finally:
            self._holds -= 1
            if not self._holds:
                self._door.set()

    async def advance_to(self, instant: int) -> None:
        """Moves a manual clock to ``instant``, firing every due timer at its own instant.

        Queued messages are applied first. Returns when all of it is committed.

        Raises:
            FailedPreconditionError: the clock is not manual, or ``instant`` is
                before now (the clock never goes backwards).
        """
        clock = self._manual()
        if instant > MAX_INSTANT_MS:
            raise InvalidArgumentError.single(
                "time", f"is after {format_ms(MAX_INSTANT_MS)}, the last instant the engine keeps"
            )
        # Shielded: a caller that gives up (an RPC past its deadline) does not stop
        # the move half-way; it completes as if the caller had waited.
        await asyncio.shield(self._advance_to(clock, instant))

    async def _advance_to(self, clock: ManualClock, instant: int) -> None:
        async with self._advancing, self._holding_messages():
            now = self.clock.now_ms()
            if instant < now:
                raise FailedPreconditionError(
                    f"the clock cannot go backwards (it is {format_ms(now)}, "
                    f"asked for {format_ms(instant)})",
                    [
                        PreconditionViolation(
                            "CLOCK_BACKWARDS", "clock", "the clock never goes back"
                        )
                    ],
                )
            await self.settle()
            # Moved and fired with no await between, so no message applied
            # meanwhile sees the new time before the timers due earlier.
            clock.set(instant)
            self.runtime.fire_due(instant)
            async with self._db.transaction() as tx:
                await CatalogRows(tx).set_meta(_MANUAL_CLOCK_KEY, str(instant))
            await self._commit()
            await self._purge()

    async def advance(self, ms: int) -> None:
        """Moves a manual clock forward by ``ms`` (see :meth:`advance_to`).

        Raises:
            InvalidArgumentError: ``ms`` is not positive.
            FailedPreconditionError: the clock is not manual.
        """
        if ms <= 0:
            raise InvalidArgumentError.single("by", "must be more than zero")
        if self.clock.now_ms() + ms > MAX_INSTANT_MS:
            raise InvalidArgumentError.single(
                "by", f"goes past {format_ms(MAX_INSTANT_MS)}, the last instant the engine keeps"
            )
        await self.advance_to(self.clock.now_ms() + ms)

    def manual_now(self) -> int:
        """The manual clock's time.

        Raises:
            FailedPreconditionError: the clock is not manual (clients may read,
                set and advance only a manual clock).
        """
        return self._manual().now_ms()

    def _manual(self) -> ManualClock:
        if not self.manual_clock:
            raise FailedPreconditionError(
                "the server runs on the system clock; start it with --manual-clock "
                "to read, set or advance its clock",
                [PreconditionViolation("CLOCK_NOT_MANUAL", "clock", "the clock is not manual")],
            )
        assert isinstance(self.clock, ManualClock)
        return self.clock

    @property
    def database_path(self) -> str:
        """The SQLite file the engine runs on."""
        return self._db.path

    @property
    def manual_clock(self) -> bool:
        """Whether clients may set and advance the clock (else timers fire by themselves)."""
        return isinstance(self.clock, ManualClock) and self.clock.settable

    async def fire_due(self) -> None:
        """Fires every timer due by now, each at its own instant, and commits."""
        self.runtime.fire_due(self.clock.now_ms())
        await self._commit()

    async def _apply_batch(self, batch: Batch) -> None:
        self.runtime.wake(batch.space_id, batch.wakes)
        self.runtime.apply(batch.space_id, batch.messages)
        await self._commit()

    async def _commit(self) -> None:
        """Commits the work applied so far, shielded from the caller's cancellation: a
        unit taken from the runtime is committed, or the engine stops."""
        await asyncio.shield(self._commit_unit())

    async def _commit_unit(self) -> None:
        unit = self.runtime.take_unit()
        if unit:
            try:
                await self.store.commit(unit)
            except Exception as err:
                # Memory is ahead of the database now: only a restart reconciles them.
                self.router.fail(err)
                raise
            if self.sink is not None:
                await self.sink.commit(unit)
            self._timers_changed.set()

    async def _purge(self) -> None:
        for (space_id, destination_id), count in (await self.store.purge()).items():
            log.warning(
                "the outbox retention dropped %d unacknowledged calls of destination %r "
                "in space %r",
                count,
                destination_id,
                space_id,
            )

    async def _run_timers(self) -> None:
        """On the system clock: fires each wake-up at its instant, after what came before."""
        purge_at = self.clock.now_ms()
        while True:
            due = self.runtime.next_due()
            now = self.clock.now_ms()
            if now >= purge_at:
                await self._purge()
                purge_at = now + 60_000
            if due is not None and due <= now:
                # Each wake-up queues behind what its profile's shard holds, and
                # messages still being logged are queued first: whatever was
                # received before it is applied first.
                await self.store.drain()
                now = self.clock.now_ms()
                for space_id, wakes in self.runtime.take_due(now).items():
                    await self.router.put_wakes(space_id, wakes)
                continue
            wait = (min(due, purge_at) if due is not None else purge_at) - now
            self._timers_changed.clear()
            changed = asyncio.ensure_future(self._timers_changed.wait())
            passed = asyncio.ensure_future(self.clock.sleep(wait))
            try:
                await asyncio.wait((changed, passed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                passed.cancel()

    # The runtime follows the catalog

    async def _load_runtime(self) -> None:
        spaces = await _all(lambda token: self.spaces.list(page_token=token))
        for space in spaces:
            await self._load_definitions(space.id)

            def fetch(token: str, space_id: str = space.id) -> Awaitable[Page[Journey]]:
                return self.journeys.list(space_id, page_token=token)

            journeys = await _all(fetch)
            now = self.clock.now_ms()
            for journey in journeys:  # in creation order
                self.runtime.note_created(space.id, journey.id)
                if journey.status is not JourneyStatus.DRAFT:
                    self.runtime.put_journey(journey, now)

    async def _load_definitions(self, space_id: str) -> None:
        found: dict[DefinitionKind, list[Definition]] = {}
        for kind in DefinitionKind:

            def fetch(token: str, kind: DefinitionKind = kind) -> Awaitable[Page[Definition]]:
                return self.definitions.list(space_id, kind, page_token=token)

            found[kind] = await _all(fetch)
        self.runtime.set_definitions(
            space_id,
            [d for d in found[DefinitionKind.AUDIENCE] if isinstance(d, Audience)],
            [d for d in found[DefinitionKind.COMPUTED_TRAIT] if isinstance(d, ComputedTrait)],
            [d for d in found[DefinitionKind.DESTINATION] if isinstance(d, Destination)],
            self.clock.now_ms(),
        )

    async def _on_catalog_change(self, change: CatalogChange) -> None:
        # The change is committed: the runtime must learn it even if the caller
        # gives up meanwhile.
        await asyncio.shield(self._apply_catalog_change(change))

    async def _apply_catalog_change(self, change: CatalogChange) -> None:
        async with self._holding_messages():
            await self._settled_catalog_change(change)

    async def _settled_catalog_change(self, change: CatalogChange) -> None:
        await self.settle()
        # What fell due before the change happens before it (SPEC §9).
        self.runtime.fire_due(self.clock.now_ms())
        if isinstance(change, DefinitionsChanged):
            await self._load_definitions(change.space_id)
        else:
            before, after = change.before, change.after
            if before is None and after is not None:
                self.runtime.note_created(change.space_id, after.id)
            if after is not None and after.status is not JourneyStatus.DRAFT:
                self.runtime.put_journey(after, self.clock.now_ms())
            elif before is not None and (after is None or before.status is not JourneyStatus.DRAFT):
                self.runtime.drop_journey(change.space_id, before.id, deleted=after is None)
        await self._commit()

    async def close(self) -> None:
        """Applies what is queued, then closes the database; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._timers is not None:
                self._timers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._timers
            await self.store.drain()  # what is being logged is queued before the shards stop
            await self.router.close()
            await self._commit()
            await self.store.close()
        finally:
            await self._db.close()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to each message of a batch.

    Attributes:
        positions: Per message, its ingest-log position; None when refused or a duplicate.
        duplicates: Indexes of messages whose id was already seen (no effect).
        errors: Per refused message index, its problems.
    """

    positions: list[int | None]
    duplicates: list[int]
    errors: dict[int, tuple[FieldViolation, ...]]

    @property
    def accepted(self) -> int:
        """Messages committed to the log."""
        return sum(p is not None for p in self.positions)


async def _all(fetch: Callable[[str], Awaitable[Page[T]]]) -> list[T]:
    """Every item of a paged list."""
    items: list[T] = []
    token = ""
    while True:
        page = await fetch(token)
        items.extend(page.items)
        token = page.next_page_token
        if not token:
            return items


async def _load_clock(db: Database, *, manual: bool) -> Clock:
    if not manual:
        return SystemClock()
    async with db.transaction() as tx:
        rows = CatalogRows(tx)
        saved = await rows.get_meta(_MANUAL_CLOCK_KEY)
        start = int(saved) if saved is not None else SystemClock().now_ms()
        await rows.set_meta(_MANUAL_CLOCK_KEY, str(start))
    return ManualClock(start)
