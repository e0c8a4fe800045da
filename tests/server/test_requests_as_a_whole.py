"""Requests are judged as a whole: the space first, then every problem at once."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import pytest
from google.protobuf import struct_pb2
from google.protobuf.duration_pb2 import Duration
from journeys.v1 import (
    common_pb2,
    definition_pb2,
    definition_pb2_grpc,
    journey_pb2,
    journey_pb2_grpc,
)
from journeys_client import InvalidArgumentError, JourneysClient
from journeys_server import JourneysServer

EMAIL = definition_pb2.Destination(
    id="email",
    name="Email",
    kind=definition_pb2.DESTINATION_KIND_EVENT,
    event_mode=definition_pb2.EVENT_MODE_TRACK,
)
SIGNED_UP_TEXT = "event('Signed Up').count() >= 1"
SIGNED_UP_TREE = common_pb2.ConditionNode(
    comparison=common_pb2.Comparison(
        left=common_pb2.Scalar(
            event=common_pb2.EventAggregate(
                event="Signed Up",
                reducer=common_pb2.Reducer(kind=common_pb2.REDUCER_KIND_COUNT),
            )
        ),
        comparator=common_pb2.COMPARATOR_GTE,
        value=common_pb2.Scalar(literal=struct_pb2.Value(number_value=1)),
    )
)


def _entry(next_step_id: str, condition: common_pb2.Condition | None = None) -> journey_pb2.Step:
    return journey_pb2.Step(
        id="entry",
        name="Signed up",
        entry=journey_pb2.EntryStep(
            condition=condition or common_pb2.Condition(text=SIGNED_UP_TEXT),
            next_step_id=next_step_id,
        ),
    )


def _wait(duration: Duration, next_step_id: str = "send") -> journey_pb2.Step:
    return journey_pb2.Step(
        id="wait",
        name="Wait",
        wait_duration=journey_pb2.WaitDurationStep(duration=duration, next_step_id=next_step_id),
    )


def _send() -> journey_pb2.Step:
    return journey_pb2.Step(
        id="send",
        name="Say hi",
        send_to_destinations=journey_pb2.SendToDestinationsStep(destination_ids=["email"]),
    )


KINDLESS = journey_pb2.Step(id="kindless", name="No kind")
SUB_MILLISECOND = Duration(seconds=60, nanos=1500)


async def _status_of(call: Awaitable[object]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code()


# The space is checked before the body


async def test_an_unknown_space_is_not_found_even_with_a_malformed_body(
    server: JourneysServer, client: JourneysClient
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        journeys = journey_pb2_grpc.JourneyServiceStub(channel)
        definitions = definition_pb2_grpc.DefinitionServiceStub(channel)
        kindless_step = journey_pb2.CreateJourneyRequest(
            space_id="nowhere",
            journey=journey_pb2.Journey(name="J", steps=[_entry("kindless"), KINDLESS]),
        )
        unknown_status = journey_pb2.ListJourneysRequest(
            space_id="nowhere", status=journey_pb2.JourneyStatus.ValueType(9)
        )
        unknown_kind = definition_pb2.CreateDestinationRequest(
            space_id="nowhere",
            destination=definition_pb2.Destination(
                id="d", name="D", kind=definition_pb2.DestinationKind.ValueType(7)
            ),
        )
        sub_millisecond = journey_pb2.UpdateJourneyRequest(
            space_id="nowhere",
            journey=journey_pb2.Journey(
                id="j", name="J", steps=[_entry("wait"), _wait(SUB_MILLISECOND), _send()]
            ),
        )
        codes = [
            await _status_of(journeys.CreateJourney(kindless_step, timeout=10)),
            await _status_of(journeys.ListJourneys(unknown_status, timeout=10)),
            await _status_of(definitions.CreateDestination(unknown_kind, timeout=10)),
            await _status_of(journeys.UpdateJourney(sub_millisecond, timeout=10)),
        ]
        # The same bodies in a space that exists are refused for what they hold.
        for request in (kindless_step, unknown_status, unknown_kind):
            request.space_id = "default"
        known_space = [
            await _status_of(journeys.CreateJourney(kindless_step, timeout=10)),
            await _status_of(journeys.ListJourneys(unknown_status, timeout=10)),
            await _status_of(definitions.CreateDestination(unknown_kind, timeout=10)),
        ]
    assert codes == [grpc.StatusCode.NOT_FOUND] * 4
    assert known_space == [grpc.StatusCode.INVALID_ARGUMENT] * 3
    assert [s.id for s in await client.list_spaces()] == ["default"]
    assert await client.list_journeys() == []
    assert await client.list_destinations() == []


# Every problem in one answer


async def test_wire_and_engine_problems_come_back_together(client: JourneysClient) -> None:
    await client.create_destination(EMAIL)
    bad = journey_pb2.Journey(
        id="j",
        name="",
        steps=[_entry("wait"), KINDLESS, _wait(SUB_MILLISECOND), _send()],
    )
    with pytest.raises(InvalidArgumentError) as caught:
        await client.create_journey(bad)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    fields = [v.field for v in caught.value.field_violations]
    assert "journey.name" in fields  # found by the engine
    assert "journey.steps[1]" in fields  # the step with no kind, found on the wire
    assert "journey.steps[2].wait_duration.duration" in fields  # finer than 1 ms, on the wire
    assert await client.list_journeys() == []


async def test_engine_problems_after_a_kindless_step_name_the_step_as_sent(
    client: JourneysClient,
) -> None:
    await client.create_destination(EMAIL)
    too_long = Duration(seconds=400 * 24 * 3600)
    bad = journey_pb2.Journey(
        id="j", name="J", steps=[_entry("wait"), KINDLESS, _wait(too_long), _send()]
    )
    with pytest.raises(InvalidArgumentError) as caught:
        await client.create_journey(bad)
    fields = [v.field for v in caught.value.field_violations]
    assert "journey.steps[1]" in fields
    assert "journey.steps[2].wait_duration.duration" in fields, fields
    assert "journey.steps[1].wait_duration.duration" not in fields, fields


# Conditions as trees


async def test_a_condition_given_as_a_tree_is_stored_as_its_canonical_text(
    client: JourneysClient,
) -> None:
    await client.create_destination(EMAIL)
    tree_only = journey_pb2.Journey(
        id="j",
        name="Welcome",
        steps=[_entry("send", common_pb2.Condition(tree=SIGNED_UP_TREE)), _send()],
    )
    created = (await client.create_journey(tree_only)).journey
    fetched = await client.get_journey("j")
    assert fetched == created
    condition = fetched.steps[0].entry.condition
    assert condition.text == SIGNED_UP_TEXT
    assert condition.tree == SIGNED_UP_TREE


async def test_a_tree_and_text_that_disagree_are_refused(client: JourneysClient) -> None:
    await client.create_destination(EMAIL)
    both = common_pb2.Condition(text="event('Signed Up').count() >= 2", tree=SIGNED_UP_TREE)
    disagreeing = journey_pb2.Journey(id="j", name="Welcome", steps=[_entry("send", both), _send()])
    with pytest.raises(InvalidArgumentError) as caught:
        await client.create_journey(disagreeing)
    assert [v.field for v in caught.value.field_violations] == ["journey.steps[0].entry.condition"]
    assert await client.list_journeys() == []


# CheckCondition


async def test_check_condition_returns_the_canonical_text(client: JourneysClient) -> None:
    checked = await client.check_condition('event("A").count()>=1')
    assert checked.text == "event('A').count() >= 1"
    assert checked.tree.comparison.comparator == common_pb2.COMPARATOR_GTE


async def test_check_condition_points_at_a_syntax_error(client: JourneysClient) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await client.check_condition("event('A').count() >=")
    (violation,) = caught.value.field_violations
    assert violation.field == "condition"
    assert violation.description.startswith("line 1, column"), violation.description


async def test_check_condition_for_a_computed_trait(client: JourneysClient) -> None:
    checked = await client.check_condition("event('A').sum(property('p'))", computed_trait=True)
    assert checked.text == "event('A').sum(property('p'))"
    assert checked.scalar.event.reducer.kind == common_pb2.REDUCER_KIND_SUM
    with pytest.raises(InvalidArgumentError) as caught:
        await client.check_condition("event('A').count() >= 1", computed_trait=True)
    assert [v.field for v in caught.value.field_violations] == ["condition"]
