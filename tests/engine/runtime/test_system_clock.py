"""On a clock that is not manual, the engine fires wake-ups by itself, on time."""

from __future__ import annotations

import asyncio

import pytest

from journeys_engine import Engine, FailedPreconditionError, Move
from journeys_engine.model import (
    Destination,
    DestinationKind,
    EntryStep,
    EventMode,
    Journey,
    JourneySettings,
    SendToDestinationsStep,
    WaitDurationStep,
)
from journeys_engine.runtime import MemorySink
from journeys_engine.testing import FakeClock, SteppedClock
from tests.helpers.harness import MINUTE, T0, cond


async def _outputs(sink: MemorySink, count: int) -> list[tuple[str, int]]:
    async def enough() -> None:
        while len(sink.outputs) < count:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(enough(), 10)
    return [(o.change.value, (o.timestamp - T0) // MINUTE) for o in sink.outputs]


async def test_wake_ups_fire_as_time_passes_at_their_own_instants() -> None:
    clock = SteppedClock(T0)
    sink = MemorySink()
    async with await Engine.open(":memory:", clock=clock, sink=sink) as engine:
        await engine.definitions.create(
            "default", Destination("email", "", "Email", DestinationKind.EVENT, EventMode.TRACK)
        )
        journey = Journey(
            id="j",
            space_id="",
            name="J",
            settings=JourneySettings(exit_after_ms=90 * MINUTE),
            steps=(
                EntryStep("entry", "E", cond("event('Signup').count() >= 1"), False, "w"),
                WaitDurationStep("w", "W", 60 * MINUTE, "send"),
                SendToDestinationsStep("send", "Send", ("email",), "", None),
            ),
        )
        await engine.journeys.create("default", journey)
        await engine.journeys.move("default", "j", Move.PUBLISH)
        await engine.ingest("default", [{"type": "track", "userId": "u1", "event": "Signup"}])
        await engine.settle()
        clock.advance(minutes=59)
        await asyncio.sleep(0.05)
        assert sink.outputs == []
        clock.advance(minutes=31)  # past both the wait (60) and exit_after (90) at once
        assert await _outputs(sink, 2) == [("entered", 60), ("exited", 90)]
        assert not engine.manual_clock
        with pytest.raises(FailedPreconditionError):
            await engine.advance(MINUTE)
        with pytest.raises(FailedPreconditionError):
            engine.manual_now()


async def test_a_manual_clock_move_ends_while_messages_keep_coming() -> None:
    # Senders always have a message being logged; the move holds new ones at the
    # door instead of waiting for a quiet moment that never comes.
    async with await Engine.open(":memory:", clock=FakeClock(T0)) as engine:
        stop = asyncio.Event()

        async def sender(n: int) -> None:
            while not stop.is_set():
                noise = [{"type": "track", "userId": f"n{n}", "event": "Noise"}] * 20
                await engine.ingest("default", noise)

        senders = [asyncio.create_task(sender(n)) for n in range(4)]
        try:
            await asyncio.sleep(0.05)
            await asyncio.wait_for(engine.advance_to(T0 + MINUTE), 10)
        finally:
            stop.set()
            await asyncio.gather(*senders)
