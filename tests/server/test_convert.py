"""Protobuf <-> engine conversion keeps every field; wire-only problems are refused."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from hypothesis import given
from journeys.v1 import definition_pb2, journey_pb2
from journeys_server.convert import (
    destination_from_proto,
    journey_from_proto,
    journey_to_proto,
    status_from_proto,
)

from journeys_engine import InvalidArgumentError
from journeys_engine.model import Journey
from tests.helpers.strategies import journeys


@given(journeys)
def test_journeys_round_trip_through_protobuf(journey: Journey) -> None:
    message = journey_to_proto(journey)
    assert journey_from_proto(message) == journey
    assert journey_pb2.Journey.FromString(message.SerializeToString()) == message


def test_a_step_without_a_kind_is_refused() -> None:
    message = journey_pb2.Journey(name="x", steps=[journey_pb2.Step(id="a", name="A")])
    with pytest.raises(InvalidArgumentError) as caught:
        journey_from_proto(message)
    assert caught.value.violations[0].field == "journey.steps[0]"
    assert "must set one step kind" in caught.value.violations[0].description


def test_durations_finer_than_a_millisecond_are_refused() -> None:
    step = journey_pb2.Step(
        id="w", name="W", wait_duration=journey_pb2.WaitDurationStep(duration=Duration(nanos=1500))
    )
    message = journey_pb2.Journey(name="x", steps=[step])
    message.settings.exit_after.CopyFrom(Duration(seconds=1, nanos=1))
    with pytest.raises(InvalidArgumentError) as caught:
        journey_from_proto(message)
    assert [v.field for v in caught.value.violations] == [
        "journey.settings.exit_after",
        "journey.steps[0].wait_duration.duration",
    ]


def test_unknown_enum_values_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="99 is not a destination kind"):
        destination_from_proto(definition_pb2.Destination(kind=99))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="7 is not a journey status"):
        status_from_proto(7, "status")
    assert status_from_proto(0, "status") is None
