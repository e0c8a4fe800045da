"""Historical entry as an operation: started at publish, run in the background,
watched by callers, resumed after a restart (SPEC §5.1).

Publishing a journey whose entry uses historical data hands it to the runtime
with a :class:`~journeys_engine.runtime.backfill.Backfill`: the journey leaves
every existing profile alone until that profile's history has been looked at.
Two things look at histories, with the same code:

* the **walk** goes over the stored profiles in id order, a unit at a time:
  each is made resident (which looks at it), the unit is committed, the
  profiles it loaded leave memory again, and the walk's place is stored;
* the **gate**: whatever is about to touch a profile the walk has not reached
  yet (a message, a timer, a change) makes it resident first, and making it
  resident looks at its history then, before anything else happens to it.

Looking at a profile reads its retained events up to the last log position
applied to it — so exactly what it had when the journey was published, as
nothing was applied to it since — builds the entry's new leaves from them, and
evaluates the entry at the publish time. Whichever comes first does it; the
profile then has a standing in the journey and the other leaves it be. So no
profile enters twice or is missed however live messages and the walk
interleave, and a crash anywhere recovers: a profile's standing is committed
with its unit, the walk's place after it, and a profile looked at but not
committed is looked at again with the same result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field

from journeys_engine.catalog.paging import Page, PageRequest
from journeys_engine.clock import Clock
from journeys_engine.errors import InvalidArgumentError, NotFoundError
from journeys_engine.ids import new_id
from journeys_engine.model.journey import Journey, JourneyStatus
from journeys_engine.model.operation import Operation, OperationKind, OperationState
from journeys_engine.runtime import Runtime
from journeys_engine.runtime.actor import Actor
from journeys_engine.runtime.backfill import Backfill
from journeys_engine.runtime.runtime import UNIT_ACTORS
from journeys_engine.runtime.space import SpaceRuntime
from journeys_engine.store.durable import DurableStore
from journeys_engine.store.history import History

__all__ = ["Operations"]

log = logging.getLogger("journeys_engine")

_WATCH_INTERVAL_S = 0.2  # a watcher hears of progress at most this often


@dataclass(eq=False)
class _Running:
    """A running operation in this process."""

    operation: Operation
    task: asyncio.Task[None] | None = None
    began: float = field(default_factory=time.monotonic)
    scanned: int = 0  # by this process (rates)
    events: int = 0
    signal: asyncio.Event = field(default_factory=asyncio.Event)

    def update(self, **changes: object) -> None:
        self.operation = self.operation.replace(**changes)
        signal, self.signal = self.signal, asyncio.Event()
        signal.set()

    def current(self) -> Operation:
        elapsed = time.monotonic() - self.began
        if elapsed <= 0 or self.operation.state.ended:
            return self.operation
        return self.operation.replace(
            profiles_per_second=self.scanned / elapsed, events_per_second=self.events / elapsed
        )


class Operations:
    """Historical entries of every space.

    Args:
        runtime: The engine's runtime.
        store: The engine's durable store (stored profiles, snapshots).
        history: Event history and operation rows.
        clock: The engine's clock.
        commit: Commits the work applied so far.
        activate: Makes profiles resident (and so looks at their history).
        evict: Drops committed profiles from memory.
        ready: Returns once the log beyond the last commit is queued again.

    Attributes:
        unit: Stored profiles the walk looks at per unit.
        pace: When set, awaited before each unit of the walk (tests step it).
    """

    def __init__(
        self,
        runtime: Runtime,
        store: DurableStore,
        history: History,
        clock: Clock,
        *,
        commit: Callable[[], Awaitable[None]],
        activate: Callable[[str, Collection[str]], Awaitable[None]],
        evict: Callable[[str, Sequence[str]], None],
        ready: Callable[[], Awaitable[object]],
    ) -> None:
        self._runtime = runtime
        self._store = store
        self._history = history
        self._clock = clock
        self._commit = commit
        self._activate = activate
        self._evict = evict
        self._ready = ready
        self.unit = UNIT_ACTORS
        self.pace: Callable[[], Awaitable[object]] | None = None
        self._running: dict[str, _Running] = {}
        self._started: dict[tuple[str, str], Operation] = {}
        self._closed = False

    # Starting, resuming, stopping

    async def start(self, space_id: str, journey: Journey, now: int) -> Operation:
        """Publishes ``journey`` (its entry uses historical data) into the runtime
        and starts its historical entry."""
        space = self._runtime.space(space_id)
        operation_id = new_id("op")
        total = await self._history.profile_count(space_id)
        backfill = space.put_historical(journey, operation_id, now)
        operation = Operation(
            operation_id,
            space_id,
            OperationKind.HISTORICAL_ENTRY,
            journey.id,
            OperationState.RUNNING,
            start_ms=now,
            at=backfill.at,
            keys=tuple(sorted(backfill.keys)),
            profiles_total=total,
        )
        await self._history.save(operation)
        self._started[(space_id, journey.id)] = operation
        self._run(operation, backfill)
        return operation

    def started(self, space_id: str, journey_id: str) -> Operation | None:
        """The operation the journey's publish just started, if any (asked once)."""
        return self._started.pop((space_id, journey_id), None)

    async def resume(self) -> None:
        """After a start: goes on with every operation that was running, and starts
        the historical entry of a journey published just before a crash."""
        for operation in await self._history.running():
            space = self._runtime.space(operation.space_id)
            live = space.journeys.get(operation.journey_id)
            if live is None or live.status is JourneyStatus.ARCHIVED:
                await self._history.save(self._ended(operation, OperationState.CANCELLED))
                continue
            backfill = Backfill(
                operation.id,
                operation.journey_id,
                operation.at,
                frozenset(operation.keys),
                operation.cursor,
            )
            space.backfills[operation.journey_id] = backfill
            self._run(operation, backfill)
        now = self._clock.now_ms()
        for space_id, space in list(self._runtime.spaces.items()):
            for live in list(space.journeys.values()):
                journey = live.journey
                if (
                    journey.entry.use_historical_data
                    and live.status is not JourneyStatus.ARCHIVED
                    and journey.id not in space.backfills
                    and not await self._history.historical(space_id, journey.id)
                ):
                    # Published, but the crash came before its historical entry began.
                    await self.start(space_id, journey, now)
                    self._started.pop((space_id, journey.id), None)

    async def journey_changed(self, space_id: str, journey_id: str, deleted: bool) -> None:
        """A journey was archived or deleted: its historical entry, if running, ends."""
        for running in list(self._running.values()):
            operation = running.operation
            if operation.space_id == space_id and operation.journey_id == journey_id:
                why = "deleted" if deleted else "archived"
                await self._end(running, OperationState.CANCELLED, f"the journey was {why} first")

    async def close(self) -> None:
        """Stops the walks (each goes on from its stored place at the next start)."""
        self._closed = True
        tasks = [r.task for r in self._running.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # Looking at profiles

    async def activate(
        self,
        space: SpaceRuntime,
        found: list[tuple[Actor, int | None]],
        actor_ids: Collection[str],
        since: int,
    ) -> None:
        """Makes the loaded profiles resident, looking first at the history of every
        existing profile among ``actor_ids`` that a historical entry has yet to
        (``since``: the load's mark, see :meth:`SpaceRuntime.activate`)."""
        now = self._clock.now_ms()
        candidates = {actor.id: actor for actor, _ in found}
        for actor_id in actor_ids:
            resident = space.actors.get(actor_id)
            if resident is not None:
                candidates[actor_id] = resident
        todo = [a for a in candidates.values() if a.position > 0 and space.uncovered(a)]
        names = space.history_names() if todo else set()
        history, read = await self._history.events(
            space.space_id, {a.id: a.position for a in todo}, names
        )
        space.activate(found, now, since)
        entered: dict[str, int] = {}
        for actor in todo:
            resident = space.actors.get(actor.id)
            if resident is None:  # (dropped from memory meanwhile: its state is committed)
                space.activate([(actor, actor.wake_at)], now, since)
                if space.actors.get(actor.id) is not actor:
                    continue  # deleted meanwhile
            elif resident is not actor:
                continue  # loaded again meanwhile, and looked at by whoever did
            for journey_id in space.seed(actor, history.get(actor.id, ())):
                entered[journey_id] = entered.get(journey_id, 0) + 1
        if todo:
            self._count(space.space_id, entered, read)

    def _count(self, space_id: str, entered: dict[str, int], read: int) -> None:
        for running in self._running.values():
            operation = running.operation
            if operation.space_id == space_id and not operation.state.ended:
                running.events += read
                running.update(
                    profiles_entered=operation.profiles_entered
                    + entered.get(operation.journey_id, 0),
                    events_read=operation.events_read + read,
                )

    def _run(self, operation: Operation, backfill: Backfill) -> None:
        running = self._running[operation.id] = _Running(operation)
        running.task = asyncio.get_running_loop().create_task(
            self._walk(running, backfill), name=f"operation {operation.id}"
        )

    async def _walk(self, running: _Running, backfill: Backfill) -> None:
        """Looks at every stored profile of the space, a unit at a time."""
        await self._ready()
        operation = running.operation
        space_id, journey_id = operation.space_id, operation.journey_id
        try:
            after = backfill.cursor
            while not self._closed:
                space = self._runtime.space(space_id)
                if space.backfills.get(journey_id) is not backfill:
                    return  # archived or deleted: journey_changed ended it
                if self.pace is not None:
                    await self.pace()
                ids = await self._store.actor_ids(space_id, after, self.unit)
                if not ids:
                    break
                resident = {actor_id for actor_id in ids if actor_id in space.actors}
                await self._activate(space_id, ids)
                await self._commit()
                if space.backfills.get(journey_id) is not backfill:
                    return
                after = backfill.cursor = ids[-1]
                self._evict(space_id, [actor_id for actor_id in ids if actor_id not in resident])
                running.scanned += len(ids)
                scanned = running.operation.profiles_scanned + len(ids)
                running.update(
                    profiles_scanned=scanned,
                    profiles_total=max(running.operation.profiles_total, scanned),
                    cursor=after,
                )
                await self._history.save(running.operation)
            if self._closed:
                return
            space = self._runtime.space(space_id)
            if space.backfills.get(journey_id) is backfill:
                del space.backfills[journey_id]
                await self._end(running, OperationState.SUCCEEDED, "")
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a storage error: the operation says so
            log.exception("historical entry %s failed", operation.id)
            space = self._runtime.space(space_id)
            if space.backfills.get(journey_id) is backfill:
                # The journey goes on without it: profiles not reached enter live.
                del space.backfills[journey_id]
            await self._end(running, OperationState.FAILED, str(err) or type(err).__name__)

    def _ended(self, operation: Operation, state: OperationState, detail: str = "") -> Operation:
        return operation.replace(state=state, end_ms=self._clock.now_ms(), detail=detail)

    async def _end(self, running: _Running, state: OperationState, detail: str) -> None:
        if running.operation.state.ended:
            return
        ended = self._ended(running.current(), state, detail)
        running.update(**_fields(ended))
        try:
            await self._history.save(running.operation)
        finally:  # (watchers read it from memory until it is stored)
            self._running.pop(running.operation.id, None)

    # Reading

    async def get(self, space_id: str, operation_id: str) -> Operation:
        """An operation as it stands.

        Raises:
            InvalidArgumentError: no operation id.
            NotFoundError: no such operation in the space.
        """
        if not operation_id:
            raise InvalidArgumentError.single("operation_id", "is required")
        running = self._running.get(operation_id)
        if running is not None and running.operation.space_id == space_id:
            return running.current()
        found = await self._history.operation(space_id, operation_id)
        if found is None:
            raise NotFoundError(kind="operation", id=operation_id, space_id=space_id)
        return found

    async def list(
        self, space_id: str, page_size: int = 0, page_token: str = ""
    ) -> Page[Operation]:
        """A space's operations in the order they began, paged."""
        page = await self._history.operations(space_id, PageRequest.parse(page_size, page_token))
        items = tuple(
            self._running[op.id].current() if op.id in self._running else op for op in page.items
        )
        return Page(items, page.next_page_token)

    async def watch(
        self, space_id: str, operation_id: str, *, interval: float = _WATCH_INTERVAL_S
    ) -> AsyncGenerator[Operation]:
        """The operation now, then each time it moves (at most once per ``interval``
        seconds), ending with the state that shows it ended."""
        operation = await self.get(space_id, operation_id)  # (NotFoundError first)
        seen: Operation | None = None
        while True:
            running = self._running.get(operation_id)
            if running is None:  # it ended, and is stored as it ended
                if seen is not None or operation.state.ended:
                    operation = await self.get(space_id, operation_id)
                yield operation
                return
            if running.operation is seen:
                await running.signal.wait()
                continue
            seen = running.operation
            operation = running.current()
            yield operation
            if operation.state.ended:
                return
            if interval > 0:
                await asyncio.sleep(interval)

    async def wait(self, space_id: str, operation_id: str) -> Operation:
        """Returns once the operation ended, as it ended."""
        async for operation in self.watch(space_id, operation_id, interval=0):
            last = operation
        return last


def _fields(operation: Operation) -> dict[str, object]:
    return {
        "state": operation.state,
        "end_ms": operation.end_ms,
        "detail": operation.detail,
        "profiles_per_second": operation.profiles_per_second,
        "events_per_second": operation.events_per_second,
    }
