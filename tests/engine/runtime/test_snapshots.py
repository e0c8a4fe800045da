"""A profile's whole runtime state snapshots to plain data and back, exactly."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given, settings

from journeys_engine.runtime import Actor
from tests.engine.runtime.test_differential import _run_engine
from tests.helpers.condition_strategies import BASE
from tests.helpers.journey_strategies import Sent, journeys, scripts


@settings(max_examples=25)
@given(journeys("j1"), scripts(BASE + 3 * 3_600_000))
def test_every_actor_round_trips_through_plain_data(
    plan: object, script: tuple[list[Sent], int]
) -> None:
    sent, end = script
    captured: list[tuple[dict[str, object], Actor]] = []

    async def run() -> None:
        from journeys_engine import Engine

        original = Engine._commit

        async def capture(self: Engine) -> None:
            space = self.runtime.space("default")
            for unit in self.runtime.take_units():
                for _, actor in unit.actors.items():
                    data = json.loads(json.dumps(actor.to_data()))
                    captured.append((data, Actor.from_data(data, space.conditions.index)))
                await self.store.commit(unit)

        Engine._commit = capture  # type: ignore[method-assign]
        try:
            await _run_engine([plan], sent, end)  # type: ignore[list-item]
        finally:
            Engine._commit = original  # type: ignore[method-assign]

    asyncio.run(run())
    for data, restored in captured:
        assert restored.to_data() == data
