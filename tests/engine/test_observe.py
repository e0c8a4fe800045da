"""The engine's measurement hooks: commits timed, wake-ups' lateness on a clock
that is not manual, zero when a manual move fires them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from journeys_engine import Engine, Move
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
from journeys_engine.observe import NO_OBSERVER, EngineObserver
from journeys_engine.testing import FakeClock, SteppedClock
from tests.helpers.harness import MINUTE, T0, cond


class Recorded:
    def __init__(self) -> None:
        self.commits: list[tuple[float, int]] = []
        self.lags: list[int] = []
        self.fired = asyncio.Event()

    def committed(self, seconds: float, actors: int) -> None:
        self.commits.append((seconds, actors))

    def timers_fired(self, lags_ms: Sequence[int]) -> None:
        self.lags.extend(lags_ms)
        self.fired.set()


async def _waiting_journey(engine: Engine) -> None:
    await engine.definitions.create(
        "default", Destination("email", "", "Email", DestinationKind.EVENT, EventMode.TRACK)
    )
    journey = Journey(
        id="j",
        space_id="",
        name="J",
        settings=JourneySettings(),
        steps=(
            EntryStep("entry", "E", cond("event('Signup').count() >= 1"), False, "w"),
            WaitDurationStep("w", "W", 60 * MINUTE, "send"),
            SendToDestinationsStep("send", "Send", ("email",), "", None),
        ),
    )
    await engine.journeys.create("default", journey)
    await engine.journeys.move("default", "j", Move.PUBLISH)


async def test_late_wake_ups_report_how_late_they_fired() -> None:
    clock = SteppedClock(T0)
    async with await Engine.open(":memory:", clock=clock) as engine:
        assert engine.observer is NO_OBSERVER
        recorded = Recorded()
        observer: EngineObserver = recorded
        engine.observer = observer
        await _waiting_journey(engine)
        signups = [{"type": "track", "userId": u, "event": "Signup"} for u in ("u1", "u2")]
        await engine.ingest("default", signups)
        await engine.settle()
        assert recorded.commits
        assert all(seconds >= 0 for seconds, _ in recorded.commits)
        assert sum(actors for _, actors in recorded.commits) >= 2
        assert recorded.lags == []
        # The timer loop must be asleep before the clock moves: its sleep on this clock
        # counts from when it starts (as in tests/engine/runtime/test_system_clock.py).
        await asyncio.sleep(0.05)
        clock.advance(minutes=60, ms=2_500)  # the timer loop wakes 2.5 s after the due instant
        await asyncio.wait_for(recorded.fired.wait(), 10)
        await engine.settle()
        assert recorded.lags == [2_500, 2_500]


async def test_a_manual_move_fires_each_wake_up_at_its_instant() -> None:
    async with await Engine.open(":memory:", clock=FakeClock(T0)) as engine:
        recorded = Recorded()
        engine.observer = recorded
        await _waiting_journey(engine)
        await engine.ingest("default", [{"type": "track", "userId": "u1", "event": "Signup"}])
        await engine.advance(3 * 60 * MINUTE)
        assert recorded.lags == [0]
