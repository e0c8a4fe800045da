"""PrivacyService over a real gRPC server: deletion, its errors, and suppressions."""

from __future__ import annotations

import json

import grpc
import pytest
from journeys.v1 import common_pb2, definition_pb2, journey_pb2
from journeys_client import InvalidArgumentError, JourneysClient, NotFoundError

from tests.helpers.harness import DAY, T0

ADS = definition_pb2.Destination(id="ads", name="Ads", kind=definition_pb2.DESTINATION_KIND_LIST)


def _journey() -> journey_pb2.Journey:
    return journey_pb2.Journey(
        id="j",
        name="Buyers",
        steps=[
            journey_pb2.Step(
                id="entry",
                name="Bought",
                entry=journey_pb2.EntryStep(
                    condition=common_pb2.Condition(text="event('Order Completed').count() >= 1"),
                    next_step_id="list",
                ),
            ),
            journey_pb2.Step(
                id="list",
                name="List",
                send_to_destinations=journey_pb2.SendToDestinationsStep(destination_ids=["ads"]),
            ),
        ],
    )


async def _calls(client: JourneysClient, destination_id: str, count: int) -> list[dict[str, str]]:
    found = []
    async for item in client.subscribe(destination_id, "test", after=0):
        found.append(json.loads(item.call.payload))
        if len(found) == count:
            break
    return found


async def test_delete_profile_round_trip(client: JourneysClient) -> None:
    await client.create_destination(ADS)
    await client.create_journey(_journey())
    await client.publish_journey("j")
    ack = await client.ingest(
        [
            {"type": "track", "userId": "u1", "anonymousId": "a1", "event": "Order Completed"},
            {"type": "track", "userId": "u2", "event": "Order Completed"},
        ]
    )
    assert ack.accepted == 2
    assert [m.profile_key for m in await client.list_members("j", "list")] == ["u1", "u2"]

    done = await client.delete_profile("u1")
    assert (done.deleted, done.profiles_deleted, done.runs_ended, done.memberships_removed) == (
        True,
        1,
        1,
        1,
    )
    assert not done.HasField("suppression_expire_time")
    assert done.identifiers_suppressed == 0
    changes = [(c["userId"], c["change"]) for c in await _calls(client, "ads", 3)]
    assert changes == [("u1", "added"), ("u2", "added"), ("u1", "removed")]
    assert [m.profile_key for m in await client.list_members("j", "list")] == ["u2"]
    stats = await client.get_journey_stats("j")
    assert (stats.in_progress, stats.exited_runs) == (1, 1)
    for ids in ({"user_id": "u1"}, {"anonymous_id": "a1"}):
        with pytest.raises(NotFoundError):
            await client.get_profile(**ids)

    again = await client.delete_profile("u1")
    assert (again.deleted, again.profiles_deleted, again.runs_ended) == (False, 0, 0)


async def test_bad_requests_are_refused_naming_the_fields(client: JourneysClient) -> None:
    for user_id, anonymous_id in ((None, None), ("u1", "a1")):
        with pytest.raises(InvalidArgumentError) as caught:
            await client.delete_profile(user_id, anonymous_id=anonymous_id, suppress=True)
        assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in caught.value.field_violations] == ["user_id", "anonymous_id"]
        with pytest.raises(InvalidArgumentError):
            await client.get_suppression(user_id, anonymous_id=anonymous_id)
        with pytest.raises(InvalidArgumentError):
            await client.delete_suppression(user_id, anonymous_id=anonymous_id)
    with pytest.raises(InvalidArgumentError) as caught:
        await client.delete_profile("u" * 300, suppress=True)
    assert [v.field for v in caught.value.field_violations] == ["user_id"]
    with pytest.raises(NotFoundError, match="space 'nowhere' not found"):
        await client.delete_profile("u1", space="nowhere")
    with pytest.raises(NotFoundError, match="space 'nowhere' not found"):
        await client.get_suppression("u1", space="nowhere")
    # Nothing was suppressed by the refused requests.
    assert not (await client.get_suppression("u1")).suppressed
    assert not (await client.get_suppression("u" * 255)).suppressed


async def test_a_suppression_through_the_api(client: JourneysClient) -> None:
    done = await client.delete_profile("ghost", suppress=True)
    assert (done.deleted, done.identifiers_suppressed) == (False, 1)
    assert done.suppression_expire_time.ToMilliseconds() == T0 + 365 * DAY
    found = await client.get_suppression("ghost")
    assert found.suppressed and found.expire_time == done.suppression_expire_time
    assert not (await client.get_suppression(anonymous_id="ghost")).suppressed

    ack = await client.ingest(
        [
            {"type": "track", "userId": "ghost", "event": "Back"},
            {"type": "track", "userId": "someone", "event": "Page"},
        ]
    )
    assert ack.accepted == 1
    (error,) = ack.errors
    assert error.index == 0
    (problem,) = error.problems
    assert problem.field == "messages[0].userId"
    assert problem.message.startswith("suppressed: the profile of this user id was deleted")

    assert await client.delete_suppression("ghost")
    assert not await client.delete_suppression("ghost")
    assert not (await client.get_suppression("ghost")).suppressed
    back = await client.ingest([{"type": "track", "userId": "ghost", "event": "Back"}])
    assert (back.accepted, list(back.errors)) == (1, [])
