"""Concurrent requests against one engine keep its limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

from journeys_engine import Engine, EngineSettings, LimitExceededError, Move
from journeys_engine.model import Journey, JourneyStatus, Limits
from journeys_engine.testing import FakeClock
from tests.helpers.builders import add_destination, journey


async def test_concurrent_publishes_take_the_last_live_place_once(
    db_path: Path, clock: FakeClock
) -> None:
    settings = EngineSettings(limits=Limits(max_live_journeys=2))
    async with await Engine.open(db_path, clock=clock, settings=settings) as engine:
        await add_destination(engine)
        for journey_id in ("live", "a", "b"):
            await engine.journeys.create("default", journey(journey_id=journey_id))
        await engine.journeys.move("default", "live", Move.PUBLISH)

        results = await asyncio.gather(
            engine.journeys.move("default", "a", Move.PUBLISH),
            engine.journeys.move("default", "b", Move.PUBLISH),
            return_exceptions=True,
        )

        published = [r for r in results if isinstance(r, Journey)]
        refused = [r for r in results if isinstance(r, LimitExceededError)]
        assert len(published) == 1, results
        assert len(refused) == 1, results
        assert published[0].status is JourneyStatus.PUBLISHED
        winner = published[0].id
        loser = "b" if winner == "a" else "a"
        stored = {j.id: j.status for j in (await engine.journeys.list("default")).items}
        assert stored == {
            "live": JourneyStatus.PUBLISHED,
            winner: JourneyStatus.PUBLISHED,
            loser: JourneyStatus.DRAFT,
        }
