"""Protobuf <-> engine conversion keeps every field; wire-only problems are collected."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from hypothesis import given
from journeys.v1 import definition_pb2, journey_pb2
from journeys_server.convert import (
    Problems,
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
    problems = Problems()
    assert journey_from_proto(message, problems) == journey
    assert problems.found == []
    assert journey_pb2.Journey.FromString(message.SerializeToString()) == message


def test_a_step_without_a_kind_is_a_problem() -> None:
    message = journey_pb2.Journey(name="x", steps=[journey_pb2.Step(id="a", name="A")])
    problems = Problems()
    assert journey_from_proto(message, problems).steps == ()
    assert problems.found[0].field == "journey.steps[0]"
    assert "must set one step kind" in problems.found[0].description


def test_malformed_durations_are_problems() -> None:
    steps = [
        journey_pb2.Step(
            id="w",
            name="W",
            wait_duration=journey_pb2.WaitDurationStep(duration=Duration(nanos=1500)),
        ),
        journey_pb2.Step(id="v", name="V", wait_duration=journey_pb2.WaitDurationStep()),
        journey_pb2.Step(
            id="u",
            name="U",
            wait_duration=journey_pb2.WaitDurationStep(duration=Duration(seconds=10, nanos=-5)),
        ),
    ]
    message = journey_pb2.Journey(name="x", steps=steps)
    message.settings.exit_after.CopyFrom(Duration(seconds=1, nanos=1))
    problems = Problems()
    journey_from_proto(message, problems)
    assert [(v.field, v.description) for v in problems.found] == [
        ("journey.settings.exit_after", "must be a whole number of milliseconds"),
        ("journey.steps[0].wait_duration.duration", "must be a whole number of milliseconds"),
        ("journey.steps[1].wait_duration.duration", "is required"),
        (
            "journey.steps[2].wait_duration.duration",
            "is not a valid duration (seconds and nanos disagree)",
        ),
    ]


def test_unknown_enum_values_are_problems() -> None:
    problems = Problems()
    destination = destination_from_proto(
        definition_pb2.Destination(kind=99, event_mode=42),  # type: ignore[arg-type]
        problems,
    )
    assert destination.kind is None
    assert [v.field for v in problems.found] == ["destination.kind", "destination.event_mode"]
    assert status_from_proto(0, "status") is None
    with pytest.raises(InvalidArgumentError, match="7 is not a journey status"):
        status_from_proto(7, "status")
