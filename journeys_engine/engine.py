"""The engine: one object that owns the database, the clock and the services."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from journeys_engine.catalog import CatalogContext, Definitions, Journeys, Page, Spaces
from journeys_engine.catalog.changes import CatalogChange, DefinitionsChanged
from journeys_engine.clock import Clock, ManualClock, SystemClock
from journeys_engine.errors import FieldViolation, InvalidArgumentError
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
from journeys_engine.runtime import MemorySink, Router, Runtime, Sink
from journeys_engine.runtime.router import Batch
from journeys_engine.store.catalog import CatalogRows
from journeys_engine.store.database import Database

__all__ = ["Engine", "EngineSettings"]

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
        clock: The clock every time-based rule reads.
        settings: The settings it was opened with.
    """

    def __init__(
        self, db: Database, clock: Clock, settings: EngineSettings, sink: Sink | None = None
    ) -> None:
        self._db = db
        self.clock = clock
        self.settings = settings
        self.sink: Sink = sink or MemorySink()
        ctx = CatalogContext(db, clock, settings.limits, [self._on_catalog_change])
        self.spaces = Spaces(ctx)
        self.journeys = Journeys(ctx)
        self.definitions = Definitions(ctx)
        self.runtime = Runtime()
        self.router = Router(
            self._apply_batch, shards=settings.shards, capacity=settings.shard_capacity
        )
        self._positions = itertools.count(1)
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

        ``sink`` receives each unit of applied work (changed profiles, outputs,
        position); by default outputs are kept in memory (:class:`MemorySink`).

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
            await engine._load_runtime()
            engine.router.start()
            on_failure.pop_all()
        return engine

    # Messages and time

    async def ingest(self, space_id: str, messages: Sequence[Mapping[str, Any]]) -> list[Message]:
        """Checks Segment-spec messages, received now, and queues them in order.

        Waits while the shards they go to are full. Returns the checked messages.

        Raises:
            NotFoundError: the space does not exist.
            InvalidArgumentError: a message is invalid (none is queued).
        """
        await self.spaces.get(space_id)
        now = self.clock.now_ms()
        parsed: list[Message] = []
        problems: list[FieldViolation] = []
        for i, raw in enumerate(messages):
            try:
                parsed.append(parse_message(raw, received_at=now, path=f"messages[{i}]"))
            except InvalidArgumentError as err:
                problems.extend(err.violations)
        if problems:
            raise InvalidArgumentError(problems)
        await self.router.put(space_id, [(next(self._positions), m) for m in parsed])
        return parsed

    async def settle(self) -> None:
        """Returns once every queued message has been applied and committed."""
        await self.router.settle()

    async def advance_to(self, instant: int) -> None:
        """Moves a manual clock to ``instant``, firing every due timer at its own instant.

        Queued messages are applied first. Returns when all of it is committed.

        Raises:
            TypeError: the engine does not run on a manual clock.
            ValueError: ``instant`` is before now.
        """
        if not isinstance(self.clock, ManualClock):
            raise TypeError("only a manual clock can be moved")
        await self.settle()
        self.clock.set(instant)
        await self.fire_due()

    async def advance(self, ms: int) -> None:
        """Moves a manual clock forward by ``ms`` (see :meth:`advance_to`)."""
        await self.advance_to(self.clock.now_ms() + ms)

    async def fire_due(self) -> None:
        """Fires every timer due by now, each at its own instant, and commits."""
        self.runtime.fire_due(self.clock.now_ms())
        await self._commit()

    async def _apply_batch(self, batch: Batch) -> None:
        self.runtime.apply(batch.space_id, batch.messages)
        await self._commit()

    async def _commit(self) -> None:
        unit = self.runtime.take_unit()
        if unit:
            await self.sink.commit(unit)

    # The runtime follows the catalog

    async def _load_runtime(self) -> None:
        spaces = await _all(lambda token: self.spaces.list(page_token=token))
        for space in spaces:
            await self._load_definitions(space.id)

            def fetch(token: str, space_id: str = space.id) -> Awaitable[Page[Journey]]:
                return self.journeys.list(space_id, page_token=token)

            journeys = await _all(fetch)
            now = self.clock.now_ms()
            for journey in journeys:
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
        )

    async def _on_catalog_change(self, change: CatalogChange) -> None:
        await self.settle()
        if isinstance(change, DefinitionsChanged):
            await self._load_definitions(change.space_id)
        else:
            after = change.after
            if after is not None and after.status is not JourneyStatus.DRAFT:
                self.runtime.put_journey(after, self.clock.now_ms())
            elif change.before is not None:
                self.runtime.drop_journey(change.space_id, change.before.id)
        await self._commit()

    async def close(self) -> None:
        """Applies what is queued, then closes the database; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.router.close()
            await self._commit()
        finally:
            await self._db.close()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


T = TypeVar("T")


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
