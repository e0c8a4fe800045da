"""The engine: one object that owns the database, the clock and the services."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

from journeys_engine.catalog import CatalogContext, Definitions, Journeys, Spaces
from journeys_engine.clock import Clock, ManualClock, SystemClock
from journeys_engine.model.limits import Limits
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
    """

    limits: Limits = field(default_factory=Limits)
    fsync: bool = False
    manual_clock: bool = False


class Engine:
    """The journeys engine. Open with :meth:`open`, close with :meth:`close`.

    Attributes:
        spaces: Spaces (tenants).
        journeys: Journeys and their lifecycle.
        definitions: Audiences, computed traits and destinations.
        clock: The clock every time-based rule reads.
        settings: The settings it was opened with.
    """

    def __init__(self, db: Database, clock: Clock, settings: EngineSettings) -> None:
        self._db = db
        self.clock = clock
        self.settings = settings
        ctx = CatalogContext(db, clock, settings.limits)
        self.spaces = Spaces(ctx)
        self.journeys = Journeys(ctx)
        self.definitions = Definitions(ctx)
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        settings: EngineSettings | None = None,
        clock: Clock | None = None,
    ) -> Engine:
        """Opens the engine on the database at ``path`` (created when missing).

        Raises:
            StorageError: the database cannot be used.
        """
        settings = settings or EngineSettings()
        db = await Database.open(path, fsync=settings.fsync)
        async with contextlib.AsyncExitStack() as on_failure:
            on_failure.push_async_callback(db.close)
            if clock is None:
                clock = await _load_clock(db, manual=settings.manual_clock)
            engine = cls(db, clock, settings)
            await engine.spaces.ensure_default()
            on_failure.pop_all()
        return engine

    async def close(self) -> None:
        """Closes the database; idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._db.close()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _load_clock(db: Database, *, manual: bool) -> Clock:
    if not manual:
        return SystemClock()
    async with db.transaction() as tx:
        rows = CatalogRows(tx)
        saved = await rows.get_meta(_MANUAL_CLOCK_KEY)
        start = int(saved) if saved is not None else SystemClock().now_ms()
        await rows.set_meta(_MANUAL_CLOCK_KEY, str(start))
    return ManualClock(start)
