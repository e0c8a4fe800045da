"""A batched subscription's responses stay within their byte budget, whatever
``max_batch`` allows, and carry every call once, in order.

The servicer is driven directly with a stand-in for gRPC's context that records
what is written: the budget is the servicer's own (a quarter of the server's
largest message), and a small one shows it with a handful of calls.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from journeys.v1 import subscription_pb2 as pb
from journeys_server.services.subscriptions import SubscriptionServicer

from journeys_engine import Engine, Move
from journeys_engine.model import Condition, EntryStep, SendToDestinationsStep
from journeys_engine.testing import FakeClock
from tests.helpers.builders import add_destination, journey


class RecordingContext:
    def __init__(self) -> None:
        self.written: list[pb.SubscribeResponse] = []

    async def send_initial_metadata(self, metadata: object) -> None:
        pass

    async def write(self, response: pb.SubscribeResponse) -> None:
        self.written.append(response)

    async def abort(self, code: object, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


@pytest.mark.parametrize("filler", ["x", "\N{GRINNING FACE}"])  # 1 and 4 bytes of UTF-8
async def test_a_batch_is_sent_once_its_calls_reach_the_byte_budget(
    db_path: Path, clock: FakeClock, filler: str
) -> None:
    async with await Engine.open(db_path, clock=clock) as engine:
        await add_destination(engine)
        entry = EntryStep(
            "entry", "In", Condition("event('Signed Up').count() >= 1"), False, "send"
        )
        steps = (entry, SendToDestinationsStep("send", "Send", ("email",)))
        await engine.journeys.create("default", journey(*steps, journey_id="j"))
        await engine.journeys.move("default", "j", Move.PUBLISH)
        users = [f"u{i:03d}-" + filler * 200 for i in range(40)]  # calls of 1 to 3 KB
        await engine.ingest(
            "default", [{"type": "track", "userId": u, "event": "Signed Up"} for u in users]
        )
        await engine.settle()

        budget = 4_000
        context = RecordingContext()
        request = pb.SubscribeRequest(
            space_id="default",
            destination_id="email",
            consumer="c",
            after_sequence=0,
            max_batch=1_000,
        )
        servicer = SubscriptionServicer(engine, batch_bytes=budget)
        subscription: asyncio.Task[None] = asyncio.create_task(
            servicer.Subscribe(request, context)  # type: ignore[arg-type]
        )
        for _ in range(200):
            if sum(len(r.calls.calls) for r in context.written) >= len(users):
                break
            await asyncio.sleep(0.01)
        subscription.cancel()

    calls = [call for response in context.written for call in response.calls.calls]
    assert [c.sequence for c in calls] == list(range(1, len(users) + 1))
    assert sorted(c.profile_key for c in calls) == sorted(users)
    sizes = [r.ByteSize() for r in context.written]
    largest_call = max(c.ByteSize() for c in calls)
    assert len(context.written) > 1  # (40 calls would fit one response by count)
    assert all(size <= budget + largest_call + 16 for size in sizes)
    # Each response but the last is full: it was sent because the budget was reached.
    assert all(size >= budget - 16 for size in sizes[:-1])
