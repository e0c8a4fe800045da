"""Shards: per-profile order, bounded queues, typed backpressure."""

from __future__ import annotations

import asyncio

import pytest

from journeys_engine import QueueFullError, StoppedError
from journeys_engine.messages import parse_message
from journeys_engine.runtime import Router
from journeys_engine.runtime.identity import Logged
from journeys_engine.runtime.router import Batch


def _messages(user: str, count: int, start: int = 0) -> list[Logged]:
    return [
        Logged(
            start + i,
            f"u:{user}",
            parse_message({"type": "track", "userId": user, "event": f"e{i}"}, received_at=0),
        )
        for i in range(count)
    ]


async def test_each_profiles_messages_stay_in_received_order() -> None:
    applied: dict[str, list[int]] = {}

    async def apply(batch: Batch) -> None:
        for position, _, message in batch.messages:
            applied.setdefault(str(message.user_id), []).append(position)
        await asyncio.sleep(0)  # let other shards interleave

    router = Router(apply, shards=3, capacity=4)
    router.start()
    for round_ in range(10):
        for user in ("u1", "u2", "u3", "u4"):
            await router.put("default", _messages(user, 3, start=round_ * 3))
    await router.settle()
    await router.close()
    assert applied == {user: list(range(30)) for user in ("u1", "u2", "u3", "u4")}


async def test_a_full_shard_makes_put_wait_and_put_nowait_refuse() -> None:
    gate = asyncio.Event()

    async def apply(batch: Batch) -> None:
        await gate.wait()

    router = Router(apply, shards=1, capacity=2)
    router.start()
    await router.put("default", _messages("u1", 1))  # taken by the shard task, held at the gate
    await asyncio.sleep(0)
    await router.put("default", _messages("u1", 1))
    await router.put("default", _messages("u1", 1))  # the queue holds 2
    assert [s.queued for s in router.stats()] == [2]
    with pytest.raises(QueueFullError, match="shard 0 is full"):
        router.put_nowait("default", _messages("u1", 1))
    waiting = asyncio.ensure_future(router.put("default", _messages("u1", 1)))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # backpressure: the sender waits
    gate.set()
    await waiting
    await router.settle()
    assert [s.queued for s in router.stats()] == [0]
    await router.close()


async def test_a_failure_is_raised_to_every_later_caller() -> None:
    async def apply(batch: Batch) -> None:
        raise ValueError("boom")

    router = Router(apply, shards=1)
    router.start()
    await router.put("default", _messages("u1", 1))
    with pytest.raises(StoppedError, match="applying messages failed") as caught:
        await router.settle()
    assert isinstance(caught.value.__cause__, ValueError)
    with pytest.raises(StoppedError):
        await router.put("default", _messages("u1", 1))
    await router.close()


async def test_batches_queued_behind_are_applied_together_up_to_the_merge_limit() -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()
    applied: list[tuple[str, list[int], list[str]]] = []

    async def apply(batch: Batch) -> None:
        entered.set()
        await gate.wait()
        applied.append(
            (
                batch.space_id,
                [logged.position for logged in batch.messages],
                [actor_id for actor_id, _ in batch.wakes],
            )
        )

    router = Router(apply, shards=1, capacity=16, merge=5)
    router.start()
    await router.put("default", _messages("u1", 1, start=0))  # taken at once, held
    await entered.wait()
    await router.put("default", _messages("u1", 2, start=1))
    await router.put("default", _messages("u1", 2, start=3))
    await router.put("default", _messages("u1", 2, start=5))  # past the limit: next
    await router.put("other", _messages("u1", 1, start=7))  # another space: on its own
    await router.put_wakes("other", [("u:u1", 10)])  # wake-ups: never merged
    await router.put("other", _messages("u1", 1, start=8))
    gate.set()
    await router.settle()
    await router.close()
    assert applied == [
        ("default", [0], []),
        ("default", [1, 2, 3, 4], []),
        ("default", [5, 6], []),
        ("other", [7], []),
        ("other", [], ["u:u1"]),
        ("other", [8], []),
    ]
    assert [s.queued for s in router.stats()] == [0]
