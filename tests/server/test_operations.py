"""Historical entry, its operation and the entry preview over gRPC, on a real port."""

from __future__ import annotations

import pytest
from journeys.v1 import journey_pb2, operation_pb2
from journeys_client import InvalidArgumentError, JourneysClient, NotFoundError

from tests.server.test_api import EMAIL, proto_journey


def _historical(journey: journey_pb2.Journey) -> journey_pb2.Journey:
    journey.steps[0].entry.use_historical_data = True
    return journey


async def test_publishing_with_history_starts_an_operation_that_can_be_watched(
    client: JourneysClient,
) -> None:
    await client.create_destination(EMAIL)
    users = [f"u{i:03d}" for i in range(600)]
    messages = [{"type": "track", "userId": u, "event": "Signed Up"} for u in users[::2]]
    messages += [{"type": "track", "userId": u, "event": "Noise"} for u in users[1::2]]
    await client.send(messages)
    await client.create_journey(_historical(proto_journey()))
    preview = await client.preview_entry("j", limit=3)
    assert (preview.matching, preview.scanned, list(preview.profile_keys)) == (
        300,
        600,
        ["u000", "u002", "u004"],
    )
    published = await client.publish_journey("j")
    assert published.journey.status == journey_pb2.JOURNEY_STATUS_PUBLISHED
    assert published.operation_id.startswith("op_")
    seen = [op async for op in client.watch_operation(published.operation_id)]
    last = seen[-1]
    assert last.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    assert (last.profiles_total, last.profiles_scanned, last.profiles_entered) == (600, 600, 300)
    assert last.events_read == 300 and last.journey_id == "j"
    assert last.HasField("end_time") and last.profiles_per_second > 0
    scanned = [op.profiles_scanned for op in seen]
    assert scanned == sorted(scanned)
    assert all(op.state == operation_pb2.OPERATION_STATE_RUNNING for op in seen[:-1])
    assert await client.get_operation(published.operation_id) == last
    assert [op.id for op in await client.list_operations()] == [published.operation_id]
    stats = await client.get_journey_stats("j")
    assert stats.entered_users == 300


async def test_operation_and_preview_errors(client: JourneysClient) -> None:
    with pytest.raises(NotFoundError, match="operation 'op_none' not found"):
        await client.get_operation("op_none")
    with pytest.raises(NotFoundError):
        async for _ in client.watch_operation("op_none"):
            pass
    with pytest.raises(NotFoundError, match="journey 'nope' not found"):
        await client.preview_entry("nope")
    await client.create_destination(EMAIL)
    await client.create_journey(proto_journey())
    with pytest.raises(InvalidArgumentError) as caught:
        await client.preview_entry("j", limit=-1)
    assert [v.field for v in caught.value.field_violations] == ["limit"]
    without = await client.publish_journey("j")
    assert without.operation_id == ""
