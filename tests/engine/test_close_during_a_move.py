"""Closing an engine while a clock move whose caller gave up is still running.

A clock move is shielded: cancelling its caller (a gRPC deadline, a simulation
whose client went away) leaves it running to its end. Closing the engine then
must wait for it, not close the database under it.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from journeys_engine import Engine
from journeys_engine.model.limits import DAY_MS
from journeys_engine.testing import FakeClock
from tests.helpers.builders import add_destination, journey


async def test_closing_waits_for_a_move_whose_caller_gave_up() -> None:
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    try:
        clock = FakeClock.at("2026-03-02T09:00:00Z")
        engine = await Engine.open(":memory:", clock=clock)
        await add_destination(engine)
        await engine.journeys.create("default", journey(), journey_id="j")
        await engine.ingest("default", [{"type": "track", "userId": "u", "event": "Signed Up"}])
        move = asyncio.ensure_future(engine.advance_to(clock.now_ms() + DAY_MS))
        await asyncio.sleep(0)  # the move has begun
        move.cancel()
        await asyncio.gather(move, return_exceptions=True)
        await engine.close()
        assert clock.now_ms() == FakeClock.at("2026-03-03T09:00:00Z").now_ms()
        gc.collect()  # a task that failed unseen is reported when collected
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert unhandled == []
