"""Calls that their caller gives up on half-way, and messages still being logged.

A gRPC call past its deadline is cancelled while the engine is inside it. The
work it began must end as if the caller had waited: nothing applied in memory
may miss the database, and what the database holds must be what memory says.
And a clock move must wait for every message received before it, including
those still being written to the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from journeys_engine import Engine, Move
from journeys_engine.model import Condition, EntryStep, SendToDestinationsStep
from journeys_engine.model.limits import DAY_MS
from journeys_engine.testing import FakeClock
from tests.helpers.builders import add_destination, basic_steps, journey

ENTRY_SEND = (
    EntryStep("entry", "Signed up", Condition("event('Signed Up').count() >= 1"), False, "send"),
    SendToDestinationsStep("send", "Send", ("email",)),
)


def signed_up_and_bought(user: str) -> list[dict[str, object]]:
    return [
        {"type": "track", "userId": user, "event": "Signed Up"},
        {"type": "track", "userId": user, "event": "Order Completed"},
    ]


async def calls(engine: Engine) -> list[tuple[int, str]]:
    return [(r.sequence, r.profile_key) for r in await engine.store.read("default", "email", 0, 99)]


@pytest.fixture
async def engine(db_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    async with await Engine.open(db_path, clock=clock) as engine:
        await add_destination(engine)
        yield engine


async def _cancel_while_committing(engine: Engine, call: asyncio.Task[object]) -> None:
    """Holds the commit lock (a shard committing) while ``call`` reaches it, then
    cancels ``call`` and lets the commit go."""
    await engine.store._commit_lock.acquire()
    try:
        for _ in range(20):
            await asyncio.sleep(0.005)
        call.cancel()
    finally:
        engine.store._commit_lock.release()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_clock_move_given_up_on_still_commits_what_it_fired(
    engine: Engine, db_path: Path, clock: FakeClock
) -> None:
    await engine.journeys.create("default", journey(*basic_steps(), journey_id="j"))
    await engine.journeys.move("default", "j", Move.PUBLISH)
    await engine.ingest("default", signed_up_and_bought("u1"))
    await engine.settle()
    target = clock.now_ms() + DAY_MS
    move = asyncio.create_task(engine.advance_to(target))
    await _cancel_while_committing(engine, move)
    await engine.advance_to(target)  # returns once the first move is done
    assert await calls(engine) == [(1, "u1")]
    await engine.close()
    async with await Engine.open(db_path, clock=clock) as reopened:
        await reopened.advance_to(clock.now_ms() + 3 * DAY_MS)
        assert await calls(reopened) == [(1, "u1")]


async def test_a_commit_given_up_on_during_commit_keeps_memory_and_database_agreed(
    engine: Engine, clock: FakeClock
) -> None:
    await engine.journeys.create("default", journey(*basic_steps(), journey_id="j"))
    await engine.journeys.move("default", "j", Move.PUBLISH)
    await engine.ingest("default", signed_up_and_bought("u1"))
    await engine.settle()
    connection = engine._db._conn
    execute = connection.execute
    commits = 0
    move: asyncio.Task[None] | None = None

    def cancel_at_commit(sql: str, *args: object) -> object:
        nonlocal commits
        if sql == "COMMIT" and move is not None:
            commits += 1
            if commits == 2:  # the unit's (the first stores the clock)
                asyncio.get_running_loop().call_soon(move.cancel)
        return execute(sql, *args)

    connection.execute = cancel_at_commit  # type: ignore[method-assign,assignment]
    target = clock.now_ms() + DAY_MS
    try:
        move = asyncio.create_task(engine.advance_to(target))
        with pytest.raises(asyncio.CancelledError):
            await move
        await engine.advance_to(target)  # returns once the first move is done
    finally:
        connection.execute = execute  # type: ignore[method-assign]
    assert commits >= 2
    assert engine.store.last_sequence("default", "email") == 1
    # The next call gets the next sequence, and the stream's reader sees both.
    await engine.ingest("default", signed_up_and_bought("u2"))
    await engine.advance_to(clock.now_ms() + 2 * DAY_MS)
    assert await calls(engine) == [(1, "u1"), (2, "u2")]
    await engine.store.ack("default", "email", "c", 2)


async def test_a_publish_given_up_on_still_makes_the_journey_live(engine: Engine) -> None:
    await engine.journeys.create("default", journey(*ENTRY_SEND, journey_id="j"))
    await engine.ingest("default", [{"type": "track", "userId": "x", "event": "Noise"}])
    publish = asyncio.create_task(engine.journeys.move("default", "j", Move.PUBLISH))
    await _cancel_while_committing(engine, publish)
    await engine.ingest("default", [{"type": "track", "userId": "u1", "event": "Signed Up"}])
    await engine.settle()
    assert await calls(engine) == [(1, "u1")]


async def test_a_clock_move_waits_for_a_message_still_being_logged(
    engine: Engine, clock: FakeClock
) -> None:
    await engine.journeys.create("default", journey(*basic_steps(), journey_id="j"))
    await engine.journeys.move("default", "j", Move.PUBLISH)
    start = clock.now_ms()
    await engine.ingest("default", [{"type": "track", "userId": "u1", "event": "Signed Up"}])
    await engine.advance_to(start + DAY_MS - 10)
    # Received 10 ms before the wait ends: the split must see it.
    bought = {"type": "track", "userId": "u1", "event": "Order Completed"}
    ingest = asyncio.create_task(engine.ingest("default", [bought]))
    while not engine.store._appends:  # received, and waiting for its group commit
        await asyncio.sleep(0)
    await engine.advance_to(start + DAY_MS + 1)
    await ingest
    assert await calls(engine) == [(1, "u1")]
