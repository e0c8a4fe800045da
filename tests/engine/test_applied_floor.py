"""The applied floor: the log position up to which a restart applies nothing again.

It may lag behind, never run ahead: a floor past a message that is logged but
not yet applied would make a restart skip that message for good.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from journeys_engine import Engine, EngineSettings
from journeys_engine.runtime.runtime import Unit
from journeys_engine.testing import FakeClock
from tests.helpers.builders import add_destination, journey


async def test_the_floor_never_passes_a_logged_message_not_yet_applied(
    db_path: Path, clock: FakeClock
) -> None:
    # Small queues and many concurrent senders: appends commit to the log while
    # units of applied work commit, in every interleaving the loop produces.
    settings = EngineSettings(shards=3, shard_capacity=1)
    async with await Engine.open(db_path, clock=clock, settings=settings) as engine:
        await add_destination(engine)
        await engine.journeys.create("default", journey(journey_id="j"))
        store = engine.store
        applied: set[int] = set()
        floors: list[int] = []
        commit = store.commit

        async def checked_commit(unit: Unit) -> None:
            await commit(unit)
            applied.update(unit.positions)
            floors.append(store.floor)
            ahead = set(range(1, store.floor + 1)) - applied
            assert not ahead, f"floor {store.floor} passes unapplied positions {sorted(ahead)}"

        store.commit = checked_commit  # type: ignore[method-assign]

        async def sender(n: int) -> None:
            for batch in range(10):
                messages = [
                    {"type": "track", "userId": f"u{n}-{batch}-{i}", "event": "Signed Up"}
                    for i in range(20)
                ]
                await engine.ingest("default", messages)

        await asyncio.gather(*(sender(n) for n in range(8)))
        await engine.settle()
        assert store.floor == 8 * 10 * 20
        assert len(set(floors)) > 10  # the floor moved many times on the way
