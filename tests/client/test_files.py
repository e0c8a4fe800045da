"""Journey files: parsing, canonical writing, every format error named."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from journeys.v1 import definition_pb2, journey_pb2
from journeys_client.durations import format_duration, parse_duration
from journeys_client.files import (
    FileFormatError,
    dump_documents,
    from_doc,
    parse_documents,
    to_doc,
)
from journeys_server.convert import journey_to_proto

from journeys_engine.model import Journey
from tests.helpers.builders import EXAMPLE_FILES
from tests.helpers.strategies import journeys

MINIMAL = """
kind: Journey
id: j
name: J
steps:
- id: e
  name: E
  type: entry
  condition: event('A').count() >= 1
  next: w
- id: w
  name: W
  type: wait_duration
  duration: 1d12h
  next: s
- id: s
  name: S
  type: send_to_destinations
  destinations: []
"""


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1ms", 1),
        ("90s", 90_000),
        ("30m", 1_800_000),
        ("1h", 3_600_000),
        ("7d", 604_800_000),
        ("2w", 1_209_600_000),
        ("1d12h", 129_600_000),
        ("7 days", 604_800_000),
        ("1 hour 30 minutes", 5_400_000),
        (" 3 D ", 259_200_000),
    ],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "7", "seven days", "5 fortnights", "1d-2h", "-1d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked elsewhere
        parse_duration(text)


@given(__import__("hypothesis").strategies.integers(min_value=1, max_value=10**13))
def test_format_then_parse_is_identity(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms


def test_minimal_journey() -> None:
    (doc,) = parse_documents(MINIMAL)
    assert isinstance(doc, journey_pb2.Journey)
    assert doc.steps[1].wait_duration.duration.ToMilliseconds() == 129_600_000
    assert doc.steps[0].entry.next_step_id == "w"
    assert list(doc.steps[2].send_to_destinations.destination_ids) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("kind: Journey\nname: [unclosed", "<input>:2:"),
        ("just text", "must be a mapping"),
        ("name: x", "kind: is required"),
        ("kind: Jorney\nname: x", "'Jorney' is not one of"),
        (
            "kind: Journey\nname: x\nstep: []\nsteps: [{}]",
            "step: is not a known field (did you mean 'steps'?)",
        ),
        (
            MINIMAL.replace("duration: 1d12h", "duration: soon"),
            "steps[1].duration: 'soon' is not a duration",
        ),
        (MINIMAL.replace("duration: 1d12h", "duration: 86400"), "must be a duration such as"),
        (MINIMAL.replace("type: entry", "type: start"), "'start' is not a step type"),
        (
            MINIMAL.replace("  next: w\n", "  nxt: w\n"),
            "steps[0].nxt: is not a known field (did you mean 'next'?)",
        ),
        (
            MINIMAL.replace("destinations: []", "destinations: email"),
            "destinations: must be a list",
        ),
        (MINIMAL.replace("name: J\n", "name: 7\n"), "name: must be text (got a number)"),
        (
            MINIMAL.replace("  next: w\n", "  next: w\n  use_historical_data: yes please\n"),
            "must be true or false",
        ),
        (
            "kind: Destination\nid: d\nname: D\ntype: carrier-pigeon",
            "'carrier-pigeon' is not one of",
        ),
        ("kind: Audience\nid: a\nname: A", "condition: is required"),
        (
            "kind: Journey\nname: x\nsettings: {exit_after: 1d, exit_when: x}\nsteps: [{}]",
            "settings.exit_when: is not a known field",
        ),
    ],
)
def test_format_errors_name_the_place(text: str, problem: str) -> None:
    with pytest.raises(FileFormatError) as caught:
        parse_documents(text)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_problems_name_the_document() -> None:
    text = MINIMAL + "---\nkind: Destination\nid: d\nname: D\ntype: nope\n"
    with pytest.raises(FileFormatError) as caught:
        parse_documents(text, "f.yaml")
    assert caught.value.problems == [
        "f.yaml: document 2.type: 'nope' is not one of track, identify, list"
    ]


def test_empty_file() -> None:
    with pytest.raises(FileFormatError, match="holds no documents"):
        parse_documents("# nothing\n")


def _without_output_fields(message: journey_pb2.Journey) -> journey_pb2.Journey:
    copy = journey_pb2.Journey()
    copy.CopyFrom(message)
    names: tuple[Literal["space_id", "status", "create_time", "update_time", "publish_time"], ...]
    names = ("space_id", "status", "create_time", "update_time", "publish_time")
    for name in names:
        copy.ClearField(name)
    if copy.settings == journey_pb2.JourneySettings():
        copy.ClearField("settings")
    return copy


@given(journeys)
def test_any_journey_round_trips_through_the_file_form(journey: Journey) -> None:
    message = journey_to_proto(journey)
    expected = _without_output_fields(message)
    assert from_doc(to_doc(message, include_output=True)) == expected
    assert parse_documents(dump_documents([message], include_output=True)) == [expected]


def test_output_fields_are_written_on_request_and_accepted_back() -> None:
    (doc,) = parse_documents(MINIMAL)
    assert isinstance(doc, journey_pb2.Journey)
    doc.status = journey_pb2.JOURNEY_STATUS_PUBLISHED
    doc.steps[2].send_to_destinations.key = "j_o_j__s_abc123"
    plain = to_doc(doc)
    assert "status" not in plain and "key" not in plain["steps"][2]
    full = to_doc(doc, include_output=True)
    assert full["status"] == "published" and full["steps"][2]["key"] == "j_o_j__s_abc123"
    back = from_doc(full)
    assert isinstance(back, journey_pb2.Journey)
    assert back.status == journey_pb2.JOURNEY_STATUS_UNSPECIFIED  # status is never sent
    assert back.steps[2].send_to_destinations.key == "j_o_j__s_abc123"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_are_canonical(path: object) -> None:
    """Each example parses and writes back to the same documents (comments aside)."""
    from pathlib import Path

    import yaml

    assert isinstance(path, Path)
    text = path.read_text()
    docs = parse_documents(text, path.name)
    assert [to_doc(d) for d in docs] == [d for d in yaml.safe_load_all(text) if d]


def test_destination_types() -> None:
    docs = parse_documents(
        "kind: Destination\nid: a\nname: A\ntype: track\n---\n"
        "kind: Destination\nid: b\nname: B\ntype: identify\n---\n"
        "kind: Destination\nid: c\nname: C\ntype: list\n"
    )
    kinds = [(d.kind, d.event_mode) for d in docs if isinstance(d, definition_pb2.Destination)]
    assert kinds == [
        (definition_pb2.DESTINATION_KIND_EVENT, definition_pb2.EVENT_MODE_TRACK),
        (definition_pb2.DESTINATION_KIND_EVENT, definition_pb2.EVENT_MODE_IDENTIFY),
        (definition_pb2.DESTINATION_KIND_LIST, definition_pb2.EVENT_MODE_UNSPECIFIED),
    ]
