"""Overload on a real server process: an ingest flood well beyond what the server can
apply, from many concurrent unary calls and streams on several connections, while a
subscriber stalls. The server's memory stays under a bound; the flooders are slowed
(streams, by flow control) or refused with retry advice (unary calls) and see no
other error; a well-behaved client on its own connection is served throughout, its
small ingest never refused; the stalled subscriber is cut off; and every
acknowledged message is applied in the end.

The memory bound, from measurement on a 2-core machine: idle ~54 MB; with the
default limits this flood peaks at ~125-150 MB (~5-8k messages/s applied); with
ingestion admission off (``--max-ingest-messages`` and ``--max-ingest-waiting`` at
10^8) the same flood passes 260 MB and the well-behaved ingest waits ~27 s. The
bounded parts: the engine's shard queues full of this flood's batches (4 shards x
64 batches of ~125-250 messages: at most ~64k messages, ~0.7-0.9 KB each queued,
~60 MB), what admission lets in (5,000 messages taken in, 10,000 waiting in unary
calls, one batch and one 256 KiB window per stream: ~15 MB), and the flood's 1,500
profiles with their runs (~15 MB): ~90 MB over idle, bounded at
:data:`RSS_GROWTH_BOUND_KB`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from journeys.v1 import ingest_pb2, ingest_pb2_grpc, subscription_pb2, subscription_pb2_grpc
from journeys_client import JourneysClient, ResourceExhaustedError
from journeys_client.errors import from_rpc_error

from tests.helpers.live import apply_yaml
from tests.helpers.processes import ServerProcess

pytestmark = pytest.mark.e2e

USERS = 1500
SENDS = 12  # calls per user entering: enough output to fill any client's window
FLOOD_SECONDS = 20.0
UNARY_FLOODERS = 240  # concurrent unary calls, far more than the server takes in at once
UNARY_BATCH = 500
STREAM_FLOODERS = 6
STREAM_BATCH = 1000
CHANNELS = 6  # the flooding "clients"
CALM_DEADLINE = 5.0  # each call of the well-behaved client, retries included
STALL_SECONDS = 2
RSS_GROWTH_BOUND_KB = 150_000  # over idle; see the module docstring
STREAM_WINDOW = 256 * 1024  # journeys serve --stream-window-bytes, default

JOURNEY = """
kind: Destination
id: hooks
name: Hooks
type: track
---
kind: ComputedTrait
id: signups
name: Sign-ups
expression: event('Signed Up').count()
---
kind: Journey
id: flood
name: Flood
steps:
- id: entry
  name: Entry
  type: entry
  condition: event('Signed Up').count() >= 1
  next: send-1
""" + "".join(
    f"""- id: send-{i}
  name: Send {i}
  type: send_to_destinations
  destinations: [hooks]
"""
    + (f"  next: send-{i + 1}\n" if i < SENDS else "")
    for i in range(1, SENDS + 1)
)


@dataclass
class Tally:
    """What the flood's clients saw."""

    accepted: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    other_errors: list[str] = field(default_factory=list)
    retry_delays: set[float] = field(default_factory=set)
    stream_ahead: int = 0  # most bytes one stream had sent and not had acknowledged
    calm_refusals: int = 0
    calm_latency: dict[str, float] = field(default_factory=dict)


_batches = itertools.count()


def _batch(size: int) -> ingest_pb2.IngestRequest:
    """A batch of 'Signed Up' tracks with fresh message ids, over the flood's users."""
    n = next(_batches)
    request = ingest_pb2.IngestRequest(space_id="default", batch_id=str(n))
    first = random.randrange(USERS)
    for j in range(size):
        request.messages.add(
            type=ingest_pb2.MESSAGE_TYPE_TRACK,
            message_id=f"flood-{n}-{j}",
            user_id=f"u{(first + j) % USERS}",
            event="Signed Up",
        )
    return request


async def _unary_flooder(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, stop: asyncio.Event, tally: Tally
) -> None:
    request = _batch(UNARY_BATCH)
    while not stop.is_set():
        try:
            response = await stub.Ingest(request, timeout=120)
        except grpc.aio.AioRpcError as err:
            delay = from_rpc_error(err).retry_delay
            if err.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED or delay is None:
                tally.other_errors.append(f"Ingest: {err.code().name}: {err.details()}")
                return
            tally.refusals[err.details() or ""] += 1
            tally.retry_delays.add(delay)
            # As the advice says: wait, with jitter, then send the same batch again.
            await asyncio.sleep(delay * random.uniform(1.0, 1.5))
            continue
        tally.accepted += response.accepted
        request = _batch(UNARY_BATCH)


async def _stream_flooder(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, stop: asyncio.Event, tally: Tally
) -> None:
    sizes: list[int] = []  # of the batches sent and not acknowledged yet

    async def batches() -> AsyncIterator[ingest_pb2.IngestRequest]:
        while not stop.is_set():
            request = _batch(STREAM_BATCH)
            sizes.append(request.ByteSize())
            tally.stream_ahead = max(tally.stream_ahead, sum(sizes))
            yield request

    try:
        async for response in stub.IngestStream(batches(), timeout=120):
            sizes.pop(0)
            tally.accepted += response.accepted
    except grpc.aio.AioRpcError as err:
        tally.other_errors.append(f"IngestStream: {err.code().name}: {err.details()}")


async def _calm(client: JourneysClient, stop: asyncio.Event, tally: Tally) -> None:
    """A well-behaved client: small calls, each within its deadline, throughout."""
    latency = tally.calm_latency

    async def timed(name: str, call: Awaitable[object]) -> None:
        started = time.monotonic()
        await asyncio.wait_for(call, CALM_DEADLINE)
        latency[name] = max(latency.get(name, 0.0), time.monotonic() - started)

    async def small_ingest(n: int) -> None:
        message = {"type": "track", "userId": "calm", "event": "Signed Up", "messageId": f"c{n}"}
        while True:
            try:
                response = await client.ingest([message])
            except ResourceExhaustedError as err:  # a well-behaved client follows the advice
                tally.calm_refusals += 1
                await asyncio.sleep((err.retry_delay or 1.0) * random.uniform(0.5, 1.0))
                continue
            tally.accepted += response.accepted
            return

    for n in itertools.count():
        if stop.is_set():
            return
        await timed("GetSpace", client.get_space())
        await timed("Ingest", small_ingest(n))
        await timed("Ack", client.ack("hooks", "calm", 1))
        await asyncio.sleep(0.3)


async def test_a_flood_with_a_stalled_subscriber_keeps_memory_bounded_and_serves_others(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    with ServerProcess(
        tmp_path / "journeys.db", "--subscriber-stall", str(STALL_SECONDS)
    ) as server:
        async with JourneysClient(server.target, timeout=60) as setup:
            await apply_yaml(setup, JOURNEY)
            await setup.ingest([{"type": "track", "userId": "calm", "event": "Signed Up"}])
            assert (await setup.get_journey_stats("flood")).entered_users == 1
        idle_kb = server.memory_kb()[0]
        tally = Tally(accepted=1)
        stop = asyncio.Event()
        peak_kb = idle_kb

        async def sample() -> None:  # until the end: the backlog is applied after the flood
            nonlocal peak_kb
            while True:
                peak_kb = max(peak_kb, server.memory_kb()[0])
                await asyncio.sleep(0.2)

        # Each client its own connection, as separate processes would have (channels
        # of one process otherwise share one).
        own = [("grpc.use_local_subchannel_pool", 1)]
        channels = [grpc.aio.insecure_channel(server.target, options=own) for _ in range(CHANNELS)]
        stalled_channel = grpc.aio.insecure_channel(server.target, options=own)
        calm_channel = grpc.aio.insecure_channel(server.target, options=own)
        sampling = asyncio.ensure_future(sample())
        try:
            # The stalled subscriber: takes one call, then never reads again.
            stalled = subscription_pb2_grpc.SubscriptionServiceStub(stalled_channel).Subscribe(
                subscription_pb2.SubscribeRequest(
                    space_id="default", destination_id="hooks", consumer="stalled"
                )
            )
            first = await stalled.read()
            assert isinstance(first, subscription_pb2.SubscribeResponse)
            assert first.call.sequence == 1
            stubs = [ingest_pb2_grpc.IngestServiceStub(channel) for channel in channels]
            async with JourneysClient(channel=calm_channel, timeout=CALM_DEADLINE) as calm:
                flood_started = time.monotonic()
                async with asyncio.TaskGroup() as group:
                    group.create_task(_calm(calm, stop, tally))
                    for i in range(UNARY_FLOODERS):
                        group.create_task(_unary_flooder(stubs[i % CHANNELS], stop, tally))
                    for i in range(STREAM_FLOODERS):
                        group.create_task(_stream_flooder(stubs[i % CHANNELS], stop, tally))
                    await asyncio.sleep(FLOOD_SECONDS)
                    stop.set()
                flood_seconds = time.monotonic() - flood_started

            # Every acknowledged message is applied (a reporting read waits for that).
            async with JourneysClient(server.target, timeout=120) as check:
                stats = await check.get_journey_stats("flood")
                assert stats.entered_users == USERS + 1
                limit = asyncio.Semaphore(32)

                async def signups(user: str) -> int:
                    async with limit:
                        profile = await check.get_profile(user)
                    return int(profile.computed_traits.fields["signups"].number_value)

                counts = await asyncio.gather(
                    *(signups(f"u{i}") for i in range(USERS)), signups("calm")
                )
            assert sum(counts) == tally.accepted
            # The stalled subscriber was cut off: what reached its client before that is
            # there to read, then its call ends (a live one would go on for ever).
            received = 1

            async def drain() -> None:
                nonlocal received
                while await stalled.read() is not grpc.aio.EOF:
                    received += 1

            with pytest.raises(grpc.aio.AioRpcError) as cut:
                await asyncio.wait_for(drain(), 10)
            assert cut.value.code() is grpc.StatusCode.UNAVAILABLE
            assert f"took more than {STALL_SECONDS} s" in (cut.value.details() or "")
            assert received < (USERS + 1) * SENDS
        finally:
            sampling.cancel()
            for channel in (*channels, stalled_channel, calm_channel):
                await channel.close()

        print(
            f"\nidle {idle_kb} kB, peak {peak_kb} kB (+{peak_kb - idle_kb} kB, bound "
            f"+{RSS_GROWTH_BOUND_KB} kB); {tally.accepted} messages accepted in "
            f"{flood_seconds:.1f} s; {sum(tally.refusals.values())} refusals; most a stream "
            f"had in flight {tally.stream_ahead} B; the calm client's slowest calls "
            f"{ {k: round(v, 2) for k, v in tally.calm_latency.items()} }; "
            f"whole test {time.monotonic() - started:.1f} s"
        )
        assert tally.other_errors == []
        # The flood went beyond capacity: unary calls were refused, with advice.
        assert sum(tally.refusals.values()) > 0
        assert tally.retry_delays == {1.0}
        assert all("retry after 1 s" in message for message in tally.refusals)
        # Streams were held back by flow control, not buffered (probed windows would
        # have let megabytes through).
        assert 0 < tally.stream_ahead <= 4 * STREAM_WINDOW
        # The well-behaved client got every call through in time, never refused.
        assert set(tally.calm_latency) == {"GetSpace", "Ingest", "Ack"}
        assert tally.calm_refusals == 0
        assert peak_kb - idle_kb < RSS_GROWTH_BOUND_KB
        assert server.stop() == 0
