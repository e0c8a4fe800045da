"""Protobuf <-> engine conversion keeps every field; wire-only problems are collected."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from hypothesis import given
from hypothesis import strategies as st
from journeys.v1 import definition_pb2, journey_pb2, subscription_pb2
from journeys_server.convert import (
    Problems,
    call_to_proto,
    destination_from_proto,
    fill_call,
    journey_from_proto,
    journey_to_proto,
    status_from_proto,
)
from journeys_server.convert.common import set_timestamp, timestamp_proto

from journeys_engine import InvalidArgumentError
from journeys_engine.model import Journey
from journeys_engine.runtime.outputs import Change
from journeys_engine.store.durable import OutboxRecord
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


@given(
    st.one_of(
        st.none(),
        st.integers(min_value=-62_135_596_800_000 - 10, max_value=253_402_300_799_999 + 10),
        st.integers(),
    )
)
def test_a_timestamp_set_in_place_is_the_one_timestamp_proto_makes(ms: int | None) -> None:
    made = timestamp_proto(ms)
    call = subscription_pb2.DestinationCall()
    set_timestamp(call.timestamp, ms)
    if made is None:
        assert not call.HasField("timestamp")
    else:
        assert call.timestamp == made
        assert call.timestamp.ToMilliseconds() == ms


def test_a_call_filled_in_place_carries_every_field_of_its_record() -> None:
    record = OutboxRecord(
        7, "jm_" + "0" * 32, '{"type":"track"}', 1_767_225_600_123, "j", "s", "u1", 2, Change.EXITED
    )
    batch = subscription_pb2.CallBatch()
    filled = fill_call(batch.calls.add(), record)
    assert filled is batch.calls[0]
    assert filled == call_to_proto(record)
    assert (filled.sequence, filled.message_id, filled.payload, filled.run, filled.change) == (
        7, "jm_" + "0" * 32, '{"type":"track"}', 2, "exited",
    )  # fmt: skip
    assert (filled.journey_id, filled.step_id, filled.profile_key) == ("j", "s", "u1")
    assert filled.timestamp.ToMilliseconds() == 1_767_225_600_123
