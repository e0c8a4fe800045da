"""A subscription whose calls the retention drops while it is streaming them.

Over the wire the timing cannot be forced, so the servicer is driven directly
with a stand-in for gRPC's context whose writes wait on a gate: the first page
is read, then the outbox retention drops everything before the page is written.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from journeys.v1 import subscription_pb2 as pb
from journeys_server.services.subscriptions import SubscriptionServicer

from journeys_engine import Engine, EngineSettings, Move
from journeys_engine.model import Condition, EntryStep, SendToDestinationsStep
from journeys_engine.model.limits import DAY_MS, Limits
from journeys_engine.testing import FakeClock
from tests.helpers.builders import add_destination, journey


class GatedContext:
    """Records what the servicer writes; each write waits until the gate opens."""

    def __init__(self) -> None:
        self.written: list[object] = []
        self.gate = asyncio.Event()

    async def send_initial_metadata(self, metadata: object) -> None:
        pass

    async def write(self, response: pb.SubscribeResponse) -> None:
        await self.gate.wait()
        if response.HasField("gap"):
            self.written.append(("gap", response.gap.first_sequence, response.gap.last_sequence))
        else:
            self.written.append(response.call.sequence)

    async def abort(self, code: object, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


async def test_calls_dropped_mid_stream_are_reported_as_a_gap(
    db_path: Path, clock: FakeClock
) -> None:
    settings = EngineSettings(limits=Limits(outbox_retention_ms=DAY_MS))
    async with await Engine.open(db_path, clock=clock, settings=settings) as engine:
        await add_destination(engine)
        entry = EntryStep(
            "entry", "In", Condition("event('Signed Up').count() >= 1"), False, "send"
        )
        steps = (entry, SendToDestinationsStep("send", "Send", ("email",)))
        await engine.journeys.create("default", journey(*steps, journey_id="j"))
        await engine.journeys.move("default", "j", Move.PUBLISH)
        signups = [{"type": "track", "userId": f"u{i}", "event": "Signed Up"} for i in range(300)]
        await engine.ingest("default", signups)
        await engine.settle()

        reads = 0
        read = engine.store.read

        async def counted_read(*args: object) -> object:
            nonlocal reads
            reads += 1
            return await read(*args)  # type: ignore[arg-type]

        engine.store.read = counted_read  # type: ignore[method-assign,assignment]
        context = GatedContext()
        request = pb.SubscribeRequest(
            space_id="default", destination_id="email", consumer="c", after_sequence=0
        )
        subscription: asyncio.Task[None] = asyncio.create_task(
            SubscriptionServicer(engine).Subscribe(request, context)  # type: ignore[arg-type]
        )
        while reads == 0:  # the first page (1-256) is read; its first write waits
            await asyncio.sleep(0.001)
        await engine.advance_to(clock.now_ms() + DAY_MS + 1)  # every call is past retention
        context.gate.set()
        await asyncio.sleep(0.2)
        reads_while_idle = reads
        await asyncio.sleep(0.3)
        assert reads == reads_while_idle  # waiting, not spinning
        await engine.ingest("default", [{"type": "track", "userId": "late", "event": "Signed Up"}])
        await engine.settle()
        for _ in range(100):
            if len(context.written) > 257:
                break
            await asyncio.sleep(0.01)
        subscription.cancel()
        assert context.written == [*range(1, 257), ("gap", 257, 300), 301]
