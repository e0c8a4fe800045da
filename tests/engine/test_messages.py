"""Segment-spec messages: checking, timestamp correction, page and screen (SPEC §1)."""

from __future__ import annotations

import pytest

from journeys_engine import InvalidArgumentError
from journeys_engine.clock import parse_iso_ms
from journeys_engine.messages import MessageType, corrected_timestamp, parse_message

NOW = parse_iso_ms("2026-03-02T09:00:00Z")
MINUTE = 60_000


def test_sent_at_corrects_for_the_senders_clock() -> None:
    # The device clock is 10 minutes fast: it stamped the event at 08:55 by its clock,
    # which was 08:45 in real time, and sent it at 09:10 by its clock (09:00 real).
    message = parse_message(
        {
            "type": "track",
            "userId": "u1",
            "event": "A",
            "timestamp": "2026-03-02T08:55:00Z",
            "sentAt": "2026-03-02T09:10:00Z",
        },
        received_at=NOW,
    )
    assert message.timestamp == NOW - 15 * MINUTE
    assert message.received_at == NOW


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "expected"),
    [
        (None, None, NOW),
        (NOW - MINUTE, None, NOW - MINUTE),
        (NOW + 5 * MINUTE, None, NOW + 5 * MINUTE),  # up to five minutes ahead is kept
        (NOW + 5 * MINUTE + 1, None, NOW),  # beyond: replaced by received_at
        (NOW + 10 * MINUTE, NOW + 10 * MINUTE, NOW),  # corrected first, then checked
    ],
)
def test_corrected_timestamp(timestamp: int | None, sent_at: int | None, expected: int) -> None:
    assert corrected_timestamp(timestamp, sent_at, NOW) == expected


def test_page_and_screen_are_events_with_their_name_kept() -> None:
    page = parse_message(
        {"type": "page", "anonymousId": "a", "name": "Pricing", "properties": {"x": 1}},
        received_at=NOW,
    )
    assert (page.type, page.event, page.properties) == (
        MessageType.PAGE,
        "Page Viewed",
        {"x": 1, "name": "Pricing"},
    )
    screen = parse_message({"type": "screen", "userId": "u", "name": "Home"}, received_at=NOW)
    assert (screen.event, screen.properties["name"]) == ("Screen Viewed", "Home")


def test_a_message_without_an_id_gets_one() -> None:
    first = parse_message({"type": "identify", "userId": "u"}, received_at=NOW)
    second = parse_message({"type": "identify", "userId": "u"}, received_at=NOW)
    assert first.message_id and first.message_id != second.message_id
    kept = parse_message({"type": "identify", "userId": "u", "messageId": "m-1"}, received_at=NOW)
    assert kept.message_id == "m-1"


@pytest.mark.parametrize(
    ("raw", "field", "text"),
    [
        ({"type": "shout", "userId": "u"}, "message.type", "must be one of"),
        ({"type": "track", "userId": "u"}, "message.event", "required for a track call"),
        ({"type": "track", "event": "A"}, "message", "needs a userId or an anonymousId"),
        ({"type": "alias", "userId": "u"}, "message.previousId", "required for an alias call"),
        ({"type": "group", "userId": "u"}, "message.groupId", "required for a group call"),
        ({"type": "identify", "userId": "u", "traits": [1]}, "message.traits", "JSON object"),
        (
            {"type": "track", "userId": "u", "event": "A", "timestamp": "yesterday"},
            "message.timestamp",
            "ISO 8601",
        ),
        ({"type": "identify", "userId": {"id": 1}}, "message.userId", "must be a string"),
        ({"type": "identify", "userId": "x" * 256}, "message.userId", "at most 255"),
        ({"type": "identify", "userId": "a\nb"}, "message.userId", "control characters"),
        (
            {"type": "track", "userId": "u", "event": "A", "properties": {"v": float("nan")}},
            "message.properties",
            "NaN",
        ),
    ],
)
def test_invalid_messages_name_the_field(raw: dict[str, object], field: str, text: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_message(raw, received_at=NOW)
    assert any(v.field == field and text in v.description for v in caught.value.violations), (
        caught.value.violations
    )


def test_to_json_round_trips_the_message() -> None:
    raw = {
        "type": "track", "userId": "u", "anonymousId": "a", "event": "A", "messageId": "m",
        "properties": {"p": [1, {"q": True}]}, "context": {"ip": "1.2.3.4"},
        "timestamp": "2026-03-02T08:00:00.000Z",
    }  # fmt: skip
    message = parse_message(raw, received_at=NOW)
    again = parse_message(message.to_json(), received_at=NOW)
    assert again == message
