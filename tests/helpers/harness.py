"""An in-process engine on a fake clock, with short ways to script a journey test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from journeys_engine import Engine, EngineSettings, Move
from journeys_engine.clock import format_ms
from journeys_engine.model import (
    Condition,
    Destination,
    DestinationKind,
    EventMode,
    Journey,
    JourneySettings,
    Step,
)
from journeys_engine.runtime import JourneyStats, MemorySink, Output
from journeys_engine.testing import FakeClock

T0 = 1_772_442_000_000  # 2026-03-02T09:00:00Z, publish time unless a test moves it
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

Seen = tuple[str, str, str, str, int]
"""(destination, profile key, step id, "entered"/"exited", minutes after T0)."""


class Harness:
    """A space with three destinations — ``email`` (track), ``crm`` (identify),
    ``ads`` (list) — and helpers to publish journeys, send messages and move time."""

    def __init__(self, engine: Engine, clock: FakeClock) -> None:
        self.engine = engine
        self.clock = clock

    @property
    def sink(self) -> MemorySink:
        assert isinstance(self.engine.sink, MemorySink)
        return self.engine.sink

    async def journey(
        self,
        *steps: Step,
        journey_id: str = "j",
        name: str = "Journey",
        settings: JourneySettings | None = None,
        publish: bool = True,
    ) -> Journey:
        journey = Journey(
            id=journey_id,
            space_id="",
            name=name,
            settings=settings or JourneySettings(),
            steps=steps,
        )
        saved = (await self.engine.journeys.create("default", journey)).journey
        if publish:
            return await self.engine.journeys.move("default", journey_id, Move.PUBLISH)
        return saved

    async def move(self, journey_id: str, move: Move) -> Journey:
        return await self.engine.journeys.move("default", journey_id, move)

    async def at(self, minutes: float) -> None:
        """Moves the clock to ``minutes`` after T0 (timers fire on the way)."""
        await self.engine.advance_to(T0 + round(minutes * MINUTE))

    async def send(self, *messages: dict[str, Any]) -> None:
        """Sends messages now and waits until they are applied."""
        await self.engine.ingest("default", list(messages))
        await self.engine.settle()

    async def track(
        self,
        user: str,
        event: str,
        *,
        at_minutes: float | None = None,
        properties: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        message: dict[str, Any] = {"type": "track", "userId": user, "event": event, **extra}
        if properties:
            message["properties"] = properties
        if at_minutes is not None:
            message["timestamp"] = format_ms(T0 + round(at_minutes * MINUTE))
        await self.send(message)

    async def identify(self, user: str, **traits: Any) -> None:
        await self.send({"type": "identify", "userId": user, "traits": traits})

    def seen(self) -> list[Seen]:
        """Every output so far, in order, as (destination, profile, step, change, minute)."""
        return [
            (
                o.destination_id,
                o.profile_key,
                o.step_id,
                o.change.value,
                (o.timestamp - T0) // MINUTE,
            )
            for o in self.sink.outputs
        ]

    def outputs(self) -> list[Output]:
        return list(self.sink.outputs)

    def payloads(self, destination: str) -> list[dict[str, Any]]:
        return [json.loads(o.payload) for o in self.sink.for_destination(destination)]

    def stats(self, journey_id: str = "j") -> JourneyStats:
        return self.engine.runtime.space("default").stats[journey_id]

    async def members(self, step_id: str, journey_id: str = "j") -> dict[str, int]:
        """The runs at a step as stored: actor id -> run."""
        rows = await self.engine.store.members(
            "default", journey_id, step_id, waiting=False, offset=0, limit=1_000_000
        )
        return {actor_id: run for actor_id, run, _ in rows}


@asynccontextmanager
async def harness(
    settings: EngineSettings | None = None, *, destinations: bool = True, clock_at: int = T0
) -> AsyncIterator[Harness]:
    """A fresh in-memory engine at ``clock_at``; with ``destinations``, email, crm and
    ads exist."""
    clock = FakeClock(clock_at)
    sink = MemorySink()
    async with await Engine.open(":memory:", clock=clock, settings=settings, sink=sink) as engine:
        if not destinations:
            yield Harness(engine, clock)
            return
        defs = engine.definitions
        await defs.create(
            "default", Destination("email", "", "Email", DestinationKind.EVENT, EventMode.TRACK)
        )
        await defs.create(
            "default", Destination("crm", "", "CRM", DestinationKind.EVENT, EventMode.IDENTIFY)
        )
        await defs.create("default", Destination("ads", "", "Ads", DestinationKind.LIST))
        yield Harness(engine, clock)


def cond(text: str) -> Condition:
    return Condition(text)


def only(seen: Sequence[Seen], change: str) -> list[Seen]:
    return [s for s in seen if s[3] == change]
