"""``SimulationService`` over gRPC: the response, and every refusal with its fields."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from journeys.v1 import common_pb2, journey_pb2, simulation_pb2
from journeys_client import InvalidArgumentError, JourneysClient, NotFoundError
from journeys_server import SERVICE_NAMES

from tests.helpers.harness import HOUR, T0
from tests.server.test_api import EMAIL, proto_journey


def _advance(ms: int = 0, *, nanos: int = 0) -> simulation_pb2.SimulationStep:
    by = Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000 + nanos)
    return simulation_pb2.SimulationStep(advance=by)


def _advance_to(ms: int) -> simulation_pb2.SimulationStep:
    step = simulation_pb2.SimulationStep()
    step.advance_to.FromMilliseconds(ms)
    return step


SIGNED_UP = {"type": "track", "userId": "u1", "event": "Signed Up"}


async def test_a_journey_given_whole_is_simulated(client: JourneysClient) -> None:
    await client.create_destination(EMAIL)
    response = await client.simulate_journey(
        [{**SIGNED_UP, "timestamp": "2026-03-02T10:00:00Z"}, _advance(HOUR)],
        journey=proto_journey(),
        start_time=T0,
        end_time=T0 + 3 * HOUR,
    )
    assert "journeys.v1.SimulationService" in SERVICE_NAMES
    key = response.journey.steps[1].send_to_destinations.key
    assert key.startswith("j_o_welcome__say_hi_")
    assert response.journey.status == journey_pb2.JOURNEY_STATUS_PUBLISHED
    assert response.journey.publish_time.ToMilliseconds() == T0
    assert [c.time.ToMilliseconds() for c in response.counts] == [
        T0,
        T0 + HOUR,
        T0 + 2 * HOUR,
        T0 + 3 * HOUR,
    ]
    assert [c.stats.entered_users for c in response.counts] == [0, 1, 1, 1]
    assert list(response.destination_ids) == ["email"]
    (call,) = response.calls
    assert (call.sequence, call.profile_key, call.step_id, call.change) == (
        1,
        "u1",
        "send",
        "entered",
    )
    assert json.loads(call.payload)["properties"] == {key: "true"}
    assert call.timestamp.ToMilliseconds() == T0 + HOUR
    assert response.end_time.ToMilliseconds() == T0 + 3 * HOUR
    # Nothing was created on the server.
    assert await client.list_journeys() == []


async def test_every_bad_field_is_named_as_the_request_numbers_it(client: JourneysClient) -> None:
    await client.create_destination(EMAIL)
    journey = proto_journey()
    journey.steps.insert(1, journey_pb2.Step(id="nothing", name="No kind"))
    journey.steps[2].send_to_destinations.destination_ids.append("nowhere")
    with pytest.raises(InvalidArgumentError) as caught:
        await client.simulate_journey(
            [
                SIGNED_UP,
                {"type": "track", "userId": "u1"},  # no event
                simulation_pb2.SimulationStep(),  # no kind
                _advance(nanos=500),  # finer than a millisecond
                _advance_to(T0 - HOUR),  # before the clock
                {"type": "identify", "userId": "u2", "traits": {"bio": "x" * 40_000}},
            ],
            journey=journey,
            start_time=T0,
        )
    err = caught.value
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.field_violations] == [
        "journey.steps[1]",
        "steps[2]",
        "steps[3].advance",
        "steps[5].message",
        "journey.steps[2].send_to_destinations.destination_ids[1]",
        "steps[1].message.event",
        "steps[4].advance_to",
    ]
    descriptions = {v.field: v.description for v in err.field_violations}
    assert descriptions["steps[1].message.event"] == "is required for a track call"
    assert descriptions["steps[3].advance"] == "must be a whole number of milliseconds"
    assert descriptions["steps[5].message"].endswith("a message is at most 32768 bytes")
    assert "the clock never goes back" in descriptions["steps[4].advance_to"]
    assert await client.list_journeys() == []


async def test_too_many_steps_and_a_stored_journey_that_is_missing(client: JourneysClient) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await client.simulate_journey([_advance(1)] * 100_001, journey_id="j")
    assert [v.field for v in caught.value.field_violations] == ["steps"]
    assert "at most 100,000" in caught.value.field_violations[0].description
    with pytest.raises(NotFoundError, match="journey 'j' not found"):
        await client.simulate_journey([_advance(1)], journey_id="j")
    with pytest.raises(NotFoundError, match="space 'nowhere' not found"):
        await client.simulate_journey(
            [simulation_pb2.SimulationStep()], journey_id="j", space="nowhere"
        )


async def test_a_stored_journey_keeps_its_ids_and_keys(client: JourneysClient) -> None:
    await client.create_destination(EMAIL)
    stored = (await client.create_journey(proto_journey())).journey
    response = await client.simulate_journey([SIGNED_UP], journey_id="j", start_time=T0)
    assert list(response.journey.steps) == list(stored.steps)
    assert [c.step_id for c in response.calls] == ["send"]
    assert (await client.get_journey("j")).status == journey_pb2.JOURNEY_STATUS_DRAFT
    condition = common_pb2.Condition(text="event('Signed Up').count() >= 1")
    assert response.journey.steps[0].entry.condition.text == condition.text
