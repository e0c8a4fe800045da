"""The engine: one object that owns the database, the clock and the services."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from journeys_engine.access import Tokens
from journeys_engine.catalog import CatalogContext, Definitions, Journeys, Page, Spaces
from journeys_engine.catalog.changes import CatalogChange, DefinitionsChanged
from journeys_engine.catalog.paging import all_items
from journeys_engine.clock import MAX_INSTANT_MS, Clock, ManualClock, SystemClock, format_ms
from journeys_engine.conditions.state import LeafSpec
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
from journeys_engine.model.lifecycle import Move
from journeys_engine.model.limits import Limits
from journeys_engine.model.operation import Operation
from journeys_engine.observe import NO_OBSERVER, EngineObserver
from journeys_engine.operations import Operations
from journeys_engine.preview import EntryPreview, preview_entry
from journeys_engine.privacy import Privacy, ProfileDeletion, Suppression, identifiers
from journeys_engine.reporting import Reporting
from journeys_engine.runtime import Router, Runtime, Sink
from journeys_engine.runtime.identity import Logged
from journeys_engine.runtime.router import Batch
from journeys_engine.runtime.runtime import UNIT_ACTORS, Unit
from journeys_engine.runtime.space import ActorKey
from journeys_engine.store.catalog import CatalogRows
from journeys_engine.store.database import Database
from journeys_engine.store.durable import DurableStore
from journeys_engine.store.history import History

__all__ = ["Engine", "EngineSettings", "IngestResult"]

log = logging.getLogger("journeys_engine")

_MANUAL_CLOCK_KEY = "manual_clock_ms"
_MINUTE = 60_000
_LONG_AGO = -(2**62)
_PROMOTE_ROWS = 20_000  # stored wake-ups taken into the wheel per read
_NEAR_MAX = 200_000  # the wheel is not filled past this ahead of time
_EVICT_SLICE = 5_000  # profiles passivated between two turns of the event loop


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
        passivate_after_ms: A profile unused for this long (engine clock) is
            dropped from memory; its snapshot brings it back when needed.
        timer_horizon_ms: Wake-ups due within this of now are kept in memory;
            later ones stay in the database until time approaches.
        timeline_retention_ms: How long timeline entries are kept.
        history_retention_ms: How long logged messages are kept: each space's
            event history, read by historical entry and preview.
        suppression_ms: How long a deleted profile's identifiers stay
            suppressed, when its deletion asks for it (their messages refused).
    """

    limits: Limits = field(default_factory=Limits)
    fsync: bool = False
    manual_clock: bool = False
    shards: int = 4
    shard_capacity: int = 64
    passivate_after_ms: int = 10 * _MINUTE
    timer_horizon_ms: int = 60 * _MINUTE
    timeline_retention_ms: int = 180 * 24 * 60 * _MINUTE
    history_retention_ms: int = 180 * 24 * 60 * _MINUTE
    suppression_ms: int = 365 * 24 * 60 * _MINUTE


class Engine:
    """The journeys engine. Open with :meth:`open`, close with :meth:`close`.

    Attributes:
        spaces: Spaces (tenants).
        journeys: Journeys and their lifecycle.
        definitions: Audiences, computed traits and destinations.
        reporting: Counts, who is at a step, profiles and their timelines.
        operations: Historical entries started by publishing, and their progress.
        privacy: Profile deletion and suppressions (see :meth:`delete_profile`).
        tokens: Access tokens (the server checks calls against them).
        clock: The clock every time-based rule reads.
        settings: The settings it was opened with.
        observer: Receives measurements as work is done (see
            :mod:`journeys_engine.observe`); nothing by default.
    """

    def __init__(
        self, db: Database, clock: Clock, settings: EngineSettings, sink: Sink | None = None
    ) -> None:
        self._db = db
        self.clock = clock
        self.settings = settings
        self.sink = sink
        self.observer: EngineObserver = NO_OBSERVER  # metrics (set by the server)
        limits = settings.limits
        self.store = DurableStore(
            db,
            clock,
            dedup_window_ms=limits.dedup_window_ms,
            retention_ms=limits.outbox_retention_ms,
            timeline_retention_ms=settings.timeline_retention_ms,
            history_retention_ms=settings.history_retention_ms,
        )
        ctx = CatalogContext(db, clock, limits, [self._on_catalog_change])
        self.spaces = Spaces(ctx)
        self.journeys = Journeys(ctx)
        self.definitions = Definitions(ctx)
        self.runtime = Runtime()
        self.reporting = Reporting(
            self.spaces,
            self.journeys,
            self.runtime,
            self.store,
            self.settle,
            self._activate,
            clock.now_ms,
        )
        self.router = Router(
            self._apply_batch,
            shards=settings.shards,
            capacity=settings.shard_capacity,
            merge=UNIT_ACTORS,  # messages (a unit of that many holds at most as many profiles)
        )
        self.store.on_logged = self.router.put
        self._replayed = asyncio.Event()  # the log beyond the floor is queued again
        self.history = History(db)
        self.tokens = Tokens(db, clock)
        self.operations = Operations(
            self.runtime,
            self.store,
            self.history,
            clock,
            commit=self._commit,
            activate=self._activate,
            evict=self._evict,
            ready=self._replayed.wait,
        )
        self.privacy = Privacy(
            self.runtime,
            self.store,
            activate=functools.partial(self._activate, history=False),
            commit=self._commit,
            suppression_ms=settings.suppression_ms,
        )
        self._timers: asyncio.Task[None] | None = None
        self._timers_changed = asyncio.Event()
        self._exclusive = asyncio.Lock()  # clock moves and catalog changes, one at a time
        self._in_flight: Counter[ActorKey] = Counter()  # in units being committed
        self._committing = asyncio.Lock()  # units commit in the order they were taken
        self._ready = asyncio.Event()  # ... and applied
        self._replay: asyncio.Task[None] | None = None
        self._holds = 0  # clock moves and catalog changes holding new messages back
        self._door = asyncio.Event()
        self._door.set()
        self._closed = False
        self._spaces_seen: set[str] = set()  # spaces ingest has found: no read per call

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

        On start the engine loads the catalog, the counts and the wake-ups due
        within the timer horizon — nothing that grows with the number of
        profiles — and returns. Profiles come back from their snapshots when
        first needed. What the ingest log holds beyond the applied floor is
        applied again in the background, before any new message (durability
        contract, ARCHITECTURE.md); :meth:`ready` returns once it is.
        ``sink``, when given, also receives each unit of applied work once it is
        committed (tests keep outputs in a :class:`MemorySink`).

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
            await engine.tokens.refresh()
            await engine.store.open()
            await engine._load_runtime()
            await engine.store.load_counts(engine.runtime)
            await engine.operations.resume()
            await engine._commit()  # (what is left of journeys deleted during a crash goes)
            engine.runtime.horizon = _LONG_AGO  # nothing is in the wheel yet
            await engine._promote(clock.now_ms() + settings.timer_horizon_ms)
            unapplied = await engine.store.unapplied()
            engine.router.start()
            engine._replay = asyncio.get_running_loop().create_task(
                engine._replay_log(unapplied), name="replay"
            )
            on_failure.pop_all()
        return engine

    async def _replay_log(self, unapplied: list[tuple[str, Logged]]) -> None:
        """Queues again every logged message beyond the applied floor, in log order,
        ahead of any new message and timer; then starts the timers."""
        try:
            async with self._holding_messages():
                start = 0
                while start < len(unapplied):
                    space_id = unapplied[start][0]
                    end = start
                    while (
                        end < len(unapplied)
                        and unapplied[end][0] == space_id
                        and end - start < UNIT_ACTORS
                    ):
                        end += 1
                    await self.router.put(space_id, [logged for _, logged in unapplied[start:end]])
                    start = end
                self._replayed.set()
            if not self.manual_clock and not self._closed:
                self._timers = asyncio.get_running_loop().create_task(
                    self._run_timers(), name="timers"
                )
            await self.router.settle()
        finally:
            self._replayed.set()
            self._ready.set()

    async def ready(self) -> None:
        """Returns once what was logged before the start is applied again.

        Raises:
            StoppedError: applying it failed (the server must restart).
        """
        await self._ready.wait()
        if self._replay is not None and self._replay.done():
            self._replay.result()
        await self.router.settle()

    # Messages and time

    async def ingest(
        self, space_id: str, messages: Sequence[Mapping[str, Any]], *, whole: bool = False
    ) -> IngestResult:
        """Checks Segment-spec messages received now, logs the good ones, and queues them.

        Each message is checked on its own (with ``whole``, one that fails its
        check refuses them all, nothing written); duplicates (a message id seen in the
        space within the dedup window) are acknowledged and have no effect; a
        message carrying a suppressed identifier (a deleted profile's) is refused
        with a ``suppressed:`` problem. The call returns once the accepted
        messages are committed to the ingest log and queued (waiting while a
        shard is full).

        Raises:
            NotFoundError: the space does not exist.
            InvalidArgumentError: with ``whole``, every problem of every message
                that failed its check (``messages[i].field``).
        """
        if space_id not in self._spaces_seen:  # (spaces are never deleted)
            await self.spaces.get(space_id)
            self._spaces_seen.add(space_id)
        while not self._door.is_set():  # a clock move or catalog change is settling
            await self._door.wait()
        now = self.clock.now_ms()
        parsed: list[Message] = []
        indexes: list[int] = []
        errors: dict[int, tuple[FieldViolation, ...]] = {}
        invalid: list[FieldViolation] = []  # (a suppressed message is refused, not invalid)
        suppressions = self.store.suppressions
        for i, raw in enumerate(messages):
            path = f"messages[{i}]"
            try:
                message = parse_message(raw, received_at=now, path=path)
            except InvalidArgumentError as err:
                invalid.extend(err.violations)
                errors[i] = err.violations
                continue
            refused = suppressions.refusal(space_id, message, now, path)
            if refused:
                errors[i] = tuple(refused)
                continue
            parsed.append(message)
            indexes.append(i)
        if whole and invalid:
            raise InvalidArgumentError(invalid)
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
        if self._replay is not None:
            await self._replayed.wait()
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
        async with self._exclusive, self._holding_messages():
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
            # New messages wait at the door until every timer due by then has
            # fired, so none sees the new time before the timers due earlier.
            clock.set(instant)
            async with self._db.transaction() as tx:
                await CatalogRows(tx).set_meta(_MANUAL_CLOCK_KEY, str(instant))
            await self._fire_due(instant)
            await self._purge()
            await self.passivate()

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
        await self._fire_due(self.clock.now_ms())

    async def _fire_due(self, upto: int) -> None:
        """Fires every wake-up due at or before ``upto``, each at its due instant,
        a unit at a time, taking stored ones into the wheel as it goes."""
        runtime = self.runtime
        while True:
            horizon = runtime.horizon
            if horizon is not None and horizon < upto and len(runtime.wheel) < _NEAR_MAX:
                await self._promote(upto)
                horizon = runtime.horizon
            reach = upto if horizon is None else min(upto, horizon)
            taken = runtime.take_due(reach, UNIT_ACTORS)
            if not taken:
                if reach >= upto:
                    return
                await self._promote(upto)  # (the wheel is full of later wake-ups)
                continue
            for space_id, wakes in taken.items():
                await self._activate(space_id, [actor_id for actor_id, _ in wakes])
                runtime.wake(space_id, wakes)
                self._fired(wakes)
            await self._commit()

    def _fired(self, wakes: Sequence[tuple[str, int]]) -> None:
        """Reports fired wake-ups' lateness; a manual clock move fires each at its
        own instant (the clock is already at the end of the move)."""
        if self.observer is NO_OBSERVER:
            return
        if self.manual_clock:
            self.observer.timers_fired([0] * len(wakes))
        else:
            now = self.clock.now_ms()
            self.observer.timers_fired([max(0, now - due) for _, due in wakes])

    async def _promote(self, upto: int) -> None:
        """Takes stored wake-ups due after the horizon and by ``upto`` into the
        wheel (a bounded number at a time) and moves the horizon to where they end."""
        runtime = self.runtime
        after = runtime.horizon
        if after is None or after >= upto:
            return
        # Moved first: a profile dropped from memory while the rows are read keeps
        # its wake-up in the wheel when it is due by then.
        runtime.horizon = upto
        rows = await self.store.due(after, upto, _PROMOTE_ROWS)
        if len(rows) == _PROMOTE_ROWS:
            last = rows[-1][2]
            if rows[0][2] == last:  # one crowded instant: take all of it
                rows = await self.store.due(last - 1, last, -1)
            else:
                rows = [row for row in rows if row[2] < last]
                last -= 1
            runtime.horizon = min(runtime.horizon, last)
        wheel = runtime.wheel
        for space_id, actor_id, due in rows:
            space = runtime.spaces.get(space_id)
            if space is not None and actor_id not in space.actors:  # (resident: it knows)
                wheel.schedule_min((space_id, actor_id), due)

    async def _activate(
        self, space_id: str, actor_ids: Collection[str], *, history: bool = True
    ) -> None:
        """Makes the profiles resident, from their snapshots, if they are stored; a
        historical entry running in the space looks at their history first (unless
        not ``history``). A profile deleted meanwhile is not brought back."""
        space = self.runtime.space(space_id)
        missing = [actor_id for actor_id in actor_ids if actor_id not in space.actors]
        mark = space.loading()
        try:
            found = []
            if missing:
                found = await self.store.load_actors(space_id, missing, space.conditions.index)
            if space.backfills and history:
                await self.operations.activate(space, found, actor_ids, mark)
            elif found:
                space.activate(found, self.clock.now_ms(), mark)
        finally:
            space.loaded(mark)

    def _evict(self, space_id: str, actor_ids: Sequence[str]) -> None:
        self.runtime.evict([(space_id, actor_id) for actor_id in actor_ids], self._in_flight)

    async def passivate(self, idle_ms: int | None = None) -> int:
        """Drops from memory the profiles unused for ``idle_ms`` (default: the
        setting) whose state is committed; returns how many."""
        idle = self.settings.passivate_after_ms if idle_ms is None else idle_ms
        keys = self.runtime.idle(self.clock.now_ms() - idle)
        dropped = 0
        for start in range(0, len(keys), _EVICT_SLICE):  # (others run between slices)
            if start:
                await asyncio.sleep(0)
            dropped += self.runtime.evict(keys[start : start + _EVICT_SLICE], self._in_flight)
        return dropped

    async def _apply_batch(self, batch: Batch) -> None:
        """Applies a shard's batch a slice at a time, each slice committed before the
        next, so that a large batch neither stalls the event loop nor makes a
        large unit."""
        space_id = batch.space_id
        wakes, messages = batch.wakes, batch.messages
        for start in range(0, len(wakes), UNIT_ACTORS):
            part = wakes[start : start + UNIT_ACTORS]
            await self._activate(space_id, {actor_id for actor_id, _ in part})
            self.runtime.wake(space_id, part)
            self._fired(part)
            await self._commit()
        for start in range(0, len(messages), UNIT_ACTORS):
            slice_ = messages[start : start + UNIT_ACTORS]
            await self._activate(space_id, {logged.actor_id for logged in slice_})
            self.runtime.apply(space_id, slice_)
            await self._commit()

    async def _commit(self) -> None:
        """Commits the work applied so far, shielded from the caller's cancellation: a
        unit taken from the runtime is committed, or the engine stops.

        The units are taken now, by the caller, and commit after those taken
        before and before those taken later: the caller's own work is committed
        when it returns, and no older snapshot of a profile is written after a
        newer one (or after the profile was deleted)."""
        units = self.runtime.take_units()
        # Their profiles stay in memory until committed: the store is behind them.
        for unit in units:
            self._in_flight.update(unit.actors.keys())
        await asyncio.shield(self._commit_units(units))

    async def _commit_units(self, units: list[Unit]) -> None:
        in_flight = self._in_flight
        try:
            async with self._committing:  # (at once when free, and tasks start in order)
                for unit in units:
                    started = time.perf_counter()  # (a measurement, not business time)
                    try:
                        await self.store.commit(unit)
                    except Exception as err:
                        # Memory is ahead of the database now: only a restart reconciles them.
                        self.router.fail(err)
                        raise
                    finally:
                        in_flight.subtract(unit.actors.keys())
                    self.observer.committed(time.perf_counter() - started, len(unit.actors))
                    if self.sink is not None:
                        await self.sink.commit(unit)
                    self._timers_changed.set()
        finally:
            for key in [k for k, n in in_flight.items() if n <= 0]:
                del in_flight[key]

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
        """On the system clock: fires each wake-up at its instant, after what came
        before; takes stored wake-ups into the wheel as time approaches them;
        compacts the database and passivates idle profiles every minute."""
        runtime = self.runtime
        span = self.settings.timer_horizon_ms
        maintain_at = self.clock.now_ms()
        while True:
            while not self._door.is_set():  # a catalog change is settling
                await self._door.wait()
            now = self.clock.now_ms()
            if now >= maintain_at:
                await self._purge()
                await self.passivate()
                maintain_at = now + _MINUTE
            horizon = runtime.horizon
            if horizon is not None and (
                horizon < now or (horizon < now + span // 2 and len(runtime.wheel) < _NEAR_MAX)
            ):
                await self._promote(now + span)
                continue
            due = runtime.next_due()
            if due is not None and due <= now:
                # Each wake-up queues behind what its profile's shard holds, and
                # messages still being logged are queued first: whatever was
                # received before it is applied first.
                await self.store.drain()
                for space_id, wakes in runtime.take_due(now, UNIT_ACTORS).items():
                    await self.router.put_wakes(space_id, wakes)
                continue
            wake = min(maintain_at, due if due is not None else maintain_at)
            if horizon is not None:
                wake = min(wake, max(horizon - span // 2, now + 1))
            self._timers_changed.clear()
            changed = asyncio.ensure_future(self._timers_changed.wait())
            passed = asyncio.ensure_future(self.clock.sleep(wake - now))
            try:
                await asyncio.wait((changed, passed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                passed.cancel()

    # The runtime follows the catalog

    async def _load_runtime(self) -> None:
        spaces = await all_items(lambda token: self.spaces.list(page_token=token))
        for space in spaces:
            await self._load_definitions(space.id)

            def fetch(token: str, space_id: str = space.id) -> Awaitable[Page[Journey]]:
                return self.journeys.list(space_id, page_token=token)

            journeys = await all_items(fetch)
            now = self.clock.now_ms()
            for journey in journeys:  # in creation order
                self.runtime.note_created(space.id, journey.id)
                if journey.status is not JourneyStatus.DRAFT:
                    self.runtime.put_journey(journey, now)

    async def _load_definitions(self, space_id: str) -> list[LeafSpec] | None:
        """Gives the runtime the space's definitions; returns None when profiles need
        not be looked at again, else the new leaves to build from their history
        (:meth:`_recheck_all`)."""
        found: dict[DefinitionKind, list[Definition]] = {}
        for kind in DefinitionKind:

            def fetch(token: str, kind: DefinitionKind = kind) -> Awaitable[Page[Definition]]:
                return self.definitions.list(space_id, kind, page_token=token)

            found[kind] = await all_items(fetch)
        return self.runtime.set_definitions(
            space_id,
            [d for d in found[DefinitionKind.AUDIENCE] if isinstance(d, Audience)],
            [d for d in found[DefinitionKind.COMPUTED_TRAIT] if isinstance(d, ComputedTrait)],
            [d for d in found[DefinitionKind.DESTINATION] if isinstance(d, Destination)],
        )

    async def _recheck_all(self, space_id: str, now: int, fresh: list[LeafSpec]) -> None:
        """Its audiences or computed traits changed: builds the ``fresh`` leaves of
        every profile of the space from its history, and looks at every profile
        in a journey again at ``now``: the resident ones, then the stored ones a
        unit at a time, each dropped from memory again once committed."""
        space = self.runtime.space(space_id)
        resident = set(space.actors)
        if space.backfills:
            await self._activate(space_id, resident)
        await self._from_history(space_id, resident, fresh, now)
        space.recheck(list(resident), now)
        await self._commit()
        after = ""
        while ids := await self.store.actor_ids(space_id, after, UNIT_ACTORS):
            after = ids[-1]
            stored = [actor_id for actor_id in ids if actor_id not in resident]
            await self._activate(space_id, stored)
            await self._from_history(space_id, stored, fresh, now)
            space.recheck(stored, now)
            await self._commit()
            self._evict(space_id, stored)

    async def _from_history(
        self, space_id: str, actor_ids: Collection[str], fresh: list[LeafSpec], now: int
    ) -> None:
        """Builds new audience and computed-trait leaves of resident profiles from
        their retained history (SPEC §2: they see all of it)."""
        space = self.runtime.space(space_id)
        actors = [space.actors[i] for i in actor_ids if i in space.actors]
        if not fresh or not actors:
            return
        names = {spec.aggregate.event for spec in fresh}
        upto = {actor.id: actor.position for actor in actors}
        events, _ = await self.history.events(space_id, upto, names)
        for actor in actors:
            if actor.conditions.rebuild(fresh, events.get(actor.id, ()), now):
                space.changed(actor)

    async def _on_catalog_change(self, change: CatalogChange) -> None:
        # The change is committed: the runtime must learn it even if the caller
        # gives up meanwhile.
        await asyncio.shield(self._apply_catalog_change(change))

    async def _apply_catalog_change(self, change: CatalogChange) -> None:
        async with self._exclusive, self._holding_messages():
            await self._settled_catalog_change(change)

    async def _settled_catalog_change(self, change: CatalogChange) -> None:
        await self.settle()
        now = self.clock.now_ms()
        # What fell due before the change happens before it (SPEC §9).
        await self._fire_due(now)
        space_id = change.space_id
        if isinstance(change, DefinitionsChanged):
            fresh = await self._load_definitions(space_id)
            if fresh is not None:
                await self._recheck_all(space_id, now, fresh)
        else:
            before, after = change.before, change.after
            if before is None and after is not None:
                self.runtime.note_created(space_id, after.id)
            if after is not None and after.status is not JourneyStatus.DRAFT:
                if before is not None and before.status is not JourneyStatus.DRAFT:
                    # Archiving ends its runs; a destination added sends to its members.
                    await self._activate(space_id, await self.store.in_journey(space_id, after.id))
                    self.runtime.put_journey(after, now)
                elif after.entry.use_historical_data:
                    await self.operations.start(space_id, after, now)
                else:
                    self.runtime.put_journey(after, now)
                if after.status is JourneyStatus.ARCHIVED:
                    await self.operations.journey_changed(space_id, after.id, deleted=False)
            elif before is not None and (after is None or before.status is not JourneyStatus.DRAFT):
                self.runtime.drop_journey(change.space_id, before.id, deleted=after is None)
                await self.operations.journey_changed(space_id, before.id, deleted=after is None)
        await self._commit()

    async def preview_entry(self, space_id: str, journey_id: str, limit: int = 0) -> EntryPreview:
        """Who matches the journey's entry condition now over their history; see
        :func:`~journeys_engine.preview.preview_entry`."""
        return await preview_entry(
            journeys=self.journeys,
            runtime=self.runtime,
            store=self.store,
            history=self.history,
            clock=self.clock,
            settle=self.settle,
            space_id=space_id,
            journey_id=journey_id,
            limit=limit,
        )

    async def publish_journey(
        self, space_id: str, journey_id: str
    ) -> tuple[Journey, Operation | None]:
        """Publishes a draft (:meth:`Journeys.move`); when its entry uses historical
        data, also returns the historical entry it started, which runs in the
        background (:attr:`operations`)."""
        journey = await self.journeys.move(space_id, journey_id, Move.PUBLISH)
        return journey, self.operations.started(space_id, journey_id)

    # Privacy

    async def delete_profile(
        self,
        space_id: str,
        *,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        suppress: bool = False,
    ) -> ProfileDeletion:
        """Deletes a profile and everything about it (a person's erasure request).

        Named by exactly one of the ids: a user's profile goes with the anonymous
        profiles of the anonymous ids linked to it (an anonymous id linked to a
        user names that user). Every current run ends as a run ending does —
        each send-step membership sends "exited" ("removed" to list
        destinations), the runs count as exited — and then its snapshot, step
        rows, timeline, logged messages and identity links are deleted, in the
        same transaction (see :mod:`journeys_engine.privacy`). With
        ``suppress``, later messages carrying its identifiers are refused for
        :attr:`EngineSettings.suppression_ms`. An unknown profile is no error:
        ``deleted`` is False (and the suppression is still recorded).

        Everything received before the call is applied first; nothing received
        meanwhile is applied before it is done. Once begun it completes, even
        if the caller gives up.

        Raises:
            NotFoundError: the space does not exist.
            InvalidArgumentError: not exactly one id, or an id no message could carry.
        """
        await self.spaces.get(space_id)
        user_id, anonymous_id = identifiers(user_id, anonymous_id)
        return await asyncio.shield(
            self._delete_profile(space_id, user_id, anonymous_id, suppress=suppress)
        )

    async def _delete_profile(
        self, space_id: str, user_id: str | None, anonymous_id: str | None, *, suppress: bool
    ) -> ProfileDeletion:
        async with self._exclusive, self._holding_messages():
            await self.settle()
            now = self.clock.now_ms()
            await self._fire_due(now)  # (what fell due before happens before it)
            return await self.privacy.delete(
                space_id, user_id, anonymous_id, suppress=suppress, now=now
            )

    async def get_suppression(
        self, space_id: str, *, user_id: str | None = None, anonymous_id: str | None = None
    ) -> Suppression:
        """Whether messages with the identifier (exactly one id) are refused now.

        Raises:
            NotFoundError: the space does not exist.
            InvalidArgumentError: not exactly one id, or an id no message could carry.
        """
        await self.spaces.get(space_id)
        user_id, anonymous_id = identifiers(user_id, anonymous_id)
        return self.privacy.get(space_id, user_id, anonymous_id, self.clock.now_ms())

    async def delete_suppression(
        self, space_id: str, *, user_id: str | None = None, anonymous_id: str | None = None
    ) -> bool:
        """Lifts the identifier's suppression (exactly one id): its messages are
        accepted again. Returns whether it was suppressed.

        Raises:
            NotFoundError: the space does not exist.
            InvalidArgumentError: not exactly one id, or an id no message could carry.
        """
        await self.spaces.get(space_id)
        user_id, anonymous_id = identifiers(user_id, anonymous_id)
        return await self.privacy.lift(space_id, user_id, anonymous_id)

    async def close(self) -> None:
        """Applies what is queued, then closes the database; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.operations.close()
            # A clock move or catalog change under way runs on after its caller was
            # cancelled (it is shielded, never left half made): it ends before the
            # database closes under it.
            async with self._exclusive:
                pass
            if self._replay is not None:
                with contextlib.suppress(Exception):
                    await self._replay
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


async def _load_clock(db: Database, *, manual: bool) -> Clock:
    if not manual:
        return SystemClock()
    async with db.transaction() as tx:
        rows = CatalogRows(tx)
        saved = await rows.get_meta(_MANUAL_CLOCK_KEY)
        start = int(saved) if saved is not None else SystemClock().now_ms()
        await rows.set_meta(_MANUAL_CLOCK_KEY, str(start))
    return ManualClock(start)
