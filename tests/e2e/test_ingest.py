"""IngestService on a real server process: per-message errors, dedup, limits, flow control."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from journeys.v1 import ingest_pb2, ingest_pb2_grpc
from journeys_client import (
    InvalidArgumentError,
    JourneysClient,
    NotFoundError,
    segment_message,
)

from tests.helpers.live import (
    DAY,
    HOUR,
    START,
    apply_yaml,
    connect,
    entry_journey,
    identify,
    iso,
    read_items,
    read_nothing,
    track,
)
from tests.helpers.processes import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client(manual: ServerProcess) -> AsyncIterator[JourneysClient]:
    async with connect(manual, at=START) as connected:
        yield connected


def users(items: list) -> list[str]:  # type: ignore[type-arg]
    return [json.loads(item.call.payload)["userId"] for item in items]


async def test_a_mixed_batch_reports_bad_messages_by_index_and_accepts_the_rest(
    client: JourneysClient,
) -> None:
    await apply_yaml(client, entry_journey("event('Signed Up').count() >= 1"))
    too_big = track("u3", "Signed Up", note="x" * (33 * 1024))
    ack = await client.ingest(
        [
            identify("u1", plan="pro"),
            {"type": "track", "event": "Signed Up"},  # neither id
            {"type": "bogus", "userId": "u2", "event": "Signed Up"},
            too_big,
            track("u1", "Signed Up"),
            {"type": "track", "userId": "u4"},  # no event name
            track("u5", "Signed Up"),
        ]
    )
    assert ack.accepted == 3
    assert list(ack.duplicates) == []
    assert len(ack.positions) == 3 and list(ack.positions) == sorted(ack.positions)
    problems = {e.index: [(p.field, p.message) for p in e.problems] for e in ack.errors}
    assert sorted(problems) == [1, 2, 3, 5]
    assert problems[1] == [("messages[1]", "needs a userId or an anonymousId")]
    assert problems[2][0][0] == "messages[2].type"
    assert "must be one of track, identify" in problems[2][0][1]
    assert problems[3][0][0] == "messages[3]"
    assert "a message is at most 32768 bytes" in problems[3][0][1]
    assert problems[5][0][0] == "messages[5].event"
    # The good messages took effect; the refused ones did not.
    items = await read_items(client, "hooks", 2)
    assert sorted(users(items)) == ["u1", "u5"]
    await read_nothing(client, "hooks", after=2)


async def test_properties_and_traits_keep_numbers_booleans_and_nesting(
    client: JourneysClient,
) -> None:
    condition = (
        "event('Order Completed').where(property('cart.total') >= 100 "
        "AND property('gift') = true).count() >= 1 AND trait('age') >= 18"
    )
    await apply_yaml(client, entry_journey(condition))
    messages = []
    for user, total, gift, age in (
        ("u1", 150, True, 30),
        ("u2", 99.5, True, 30),  # total too low
        ("u3", 150, False, 30),  # not a gift
        ("u4", 150, True, 17),  # too young
        ("u5", 100, True, 18.0),  # both bounds met exactly
    ):
        messages.append(identify(user, age=age))
        messages.append(
            track(user, "Order Completed", cart={"total": total, "items": ["a", "b"]}, gift=gift)
        )
    ack = await client.ingest(messages)
    assert ack.accepted == 10 and not ack.errors
    items = await read_items(client, "hooks", 2)
    assert sorted(users(items)) == ["u1", "u5"]
    await read_nothing(client, "hooks", after=2)


async def test_sent_at_corrects_a_device_clock(client: JourneysClient) -> None:
    await apply_yaml(client, entry_journey("event('Product Added').within(1 days).count() >= 1"))
    now = START + 3 * DAY  # the entry counts events since it was published, at START
    await client.set_time(now)
    three_days_ago = iso(now - 3 * DAY)
    ack = await client.ingest(
        [
            # The device's clock is three days behind: timestamp and sentAt agree,
            # so the event happened as it was sent, now.
            {**track("u1", "Product Added"), "timestamp": three_days_ago, "sentAt": three_days_ago},
            # Held on that device for an hour: an hour ago.
            {
                **track("u2", "Product Added"),
                "timestamp": three_days_ago,
                "sentAt": iso(now - 3 * DAY + HOUR),
            },
            # No sentAt: the timestamp stands, three days ago, outside the window.
            {**track("u3", "Product Added"), "timestamp": three_days_ago},
            # A clock two days fast that held the event for two days and an hour:
            # the recent-looking timestamp is two days and an hour ago.
            {
                **track("u4", "Product Added"),
                "timestamp": iso(now - HOUR),
                "sentAt": iso(now + 2 * DAY),
            },
        ]
    )
    assert ack.accepted == 4
    items = await read_items(client, "hooks", 2)
    assert sorted(users(items)) == ["u1", "u2"]
    await read_nothing(client, "hooks", after=2)


async def test_a_repeated_message_id_is_acknowledged_as_a_duplicate_with_no_effect(
    client: JourneysClient,
) -> None:
    await apply_yaml(client, entry_journey("event('Signed Up').count() >= 2"))
    first = await client.ingest([track("u1", "Signed Up", message_id="m-1")])
    assert (first.accepted, list(first.duplicates)) == (1, [])
    again = await client.ingest([track("u2", "Noise"), track("u1", "Signed Up", message_id="m-1")])
    assert (again.accepted, list(again.duplicates), len(again.positions)) == (1, [1], 1)
    within = await client.ingest(
        [track("u3", "Signed Up", message_id="m-3"), track("u3", "Signed Up", message_id="m-3")]
    )
    assert (within.accepted, list(within.duplicates)) == (1, [1])
    await read_nothing(client, "hooks", after=0)  # u1 and u3 counted one event each
    await client.ingest([track("u1", "Signed Up", message_id="m-2")])
    items = await read_items(client, "hooks", 1)
    assert users(items) == ["u1"]


async def test_a_message_id_is_forgotten_after_the_dedup_window(client: JourneysClient) -> None:
    await apply_yaml(client, entry_journey("event('Signed Up').count() >= 2"))
    await client.ingest([track("u1", "Signed Up", message_id="m-1")])
    await client.set_time(START + 7 * DAY - 1)
    assert list((await client.ingest([track("u1", "Signed Up", message_id="m-1")])).duplicates)
    await client.set_time(START + 7 * DAY + 1)
    later = await client.ingest([track("u1", "Signed Up", message_id="m-1")])
    assert (later.accepted, list(later.duplicates)) == (1, [])
    assert users(await read_items(client, "hooks", 1)) == ["u1"]


async def test_a_batch_over_a_limit_is_refused_whole(
    manual: ServerProcess, client: JourneysClient
) -> None:
    await apply_yaml(client, entry_journey("event('Signed Up').count() >= 1"))
    signed = track("u1", "Signed Up")
    with pytest.raises(InvalidArgumentError) as caught:
        await client.ingest([signed] + [track(f"n{i}", "Noise") for i in range(2500)])
    assert [(v.field, v.description) for v in caught.value.field_violations] == [
        ("messages", "holds 2501 messages; at most 2500 per batch")
    ]
    bulky = [track(f"n{i}", "Noise", pad="x" * 30_000) for i in range(20)]
    with pytest.raises(InvalidArgumentError) as caught:
        await client.ingest([signed, *bulky])
    assert caught.value.field_violations[0].field == "messages"
    assert "a batch is at most 512000 bytes" in caught.value.field_violations[0].description
    with pytest.raises(NotFoundError):
        await client.ingest([signed], space="nowhere")
    await read_nothing(client, "hooks", after=0)
    # The largest batch allowed goes through.
    full = await client.ingest([signed] + [track(f"n{i}", "Noise") for i in range(2499)])
    assert full.accepted == 2500
    assert users(await read_items(client, "hooks", 1)) == ["u1"]


async def test_a_stream_acknowledges_every_batch_and_reports_refusals_by_input_index(
    client: JourneysClient,
) -> None:
    await apply_yaml(client, entry_journey("event('Signed Up').count() >= 1"))
    messages = [track(f"u{i}", "Signed Up") for i in range(1000)]
    messages[417] = {"type": "track", "userId": "bad"}
    messages[998] = {"type": "identify"}
    report = await client.send(messages, batch_size=100, window=4)
    assert (report.batches, report.accepted, report.duplicates) == (10, 998, 0)
    assert [p.index for p in report.rejected] == [417, 998]
    assert report.rejected[0].problems[0].field == "messages[17].event"
    items = await read_items(client, "hooks", 998)
    assert sorted(users(items)) == sorted(f"u{i}" for i in range(1000) if i not in (417, 998))
    assert [item.call.sequence for item in items] == list(range(1, 999))


async def test_a_refused_batch_ends_the_stream_after_the_batches_before_it(
    manual: ServerProcess, client: JourneysClient
) -> None:
    await apply_yaml(client, entry_journey("event('Signed Up').count() >= 1"))
    async with grpc.aio.insecure_channel(manual.target) as channel:
        call = ingest_pb2_grpc.IngestServiceStub(channel).IngestStream()
        good = ingest_pb2.IngestRequest(
            space_id="default", batch_id="b1", messages=[segment_message(track("u1", "Signed Up"))]
        )
        await call.write(good)
        first = await call.read()
        assert isinstance(first, ingest_pb2.IngestResponse)
        assert (first.batch_id, first.accepted) == ("b1", 1)
        await call.write(ingest_pb2.IngestRequest(space_id="nowhere", batch_id="b2"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert users(await read_items(client, "hooks", 1)) == ["u1"]


async def test_a_fast_producer_is_held_back_and_server_memory_stays_bounded(
    manual: ServerProcess, client: JourneysClient
) -> None:
    """A producer that writes as fast as it can: the server reads the next batch only
    once the last is logged, so what is in flight, and the server's memory, stay
    bounded while far more data goes through."""
    batches, per_batch, pad = 400, 16, "x" * 30_000  # about 190 MB in all
    _, peak_before = manual.memory_kb()
    async with grpc.aio.insecure_channel(manual.target) as channel:
        call = ingest_pb2_grpc.IngestServiceStub(channel).IngestStream()
        acked = 0

        async def read_acks() -> None:
            nonlocal acked
            while (response := await call.read()) is not grpc.aio.EOF:
                assert isinstance(response, ingest_pb2.IngestResponse)
                assert response.accepted == per_batch
                acked += 1

        reader = asyncio.create_task(read_acks())
        messages = [segment_message(track(f"u{i}", "Noise", pad=pad)) for i in range(per_batch)]
        most_in_flight = 0
        for b in range(batches):
            for i, message in enumerate(messages):
                message.message_id = f"{b}-{i}"
            await call.write(ingest_pb2.IngestRequest(space_id="default", messages=messages))
            most_in_flight = max(most_in_flight, b + 1 - acked)
        await call.done_writing()
        await reader
    assert acked == batches
    sent_mb = batches * per_batch * len(pad) / 1e6
    _, peak_after = manual.memory_kb()
    growth_mb = (peak_after - peak_before) / 1024
    assert most_in_flight <= 40, most_in_flight
    assert growth_mb < sent_mb / 2, (growth_mb, sent_mb)


def test_timestamps_on_the_wire_are_instants() -> None:
    """The client puts a Segment ISO timestamp on the wire as the same instant."""
    message = segment_message({**track("u1", "X"), "timestamp": "2040-01-02T10:00:00.250+01:00"})
    expected = Timestamp()
    expected.FromJsonString("2040-01-02T09:00:00.250Z")
    assert message.timestamp == expected
