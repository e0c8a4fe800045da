"""Segment-spec messages as the engine applies them (SPEC §1).

A message arrives as Segment JSON (``type``, ``userId``, ``anonymousId``,
``event``, ``properties``, ``traits``, ``context``, ``timestamp``, ``sentAt``,
``messageId``, …). :func:`parse_message` checks it and corrects its timestamp
for the sender's clock: ``timestamp = received_at - (sent_at - timestamp)``; a
timestamp still more than five minutes ahead of ``received_at`` becomes
``received_at``. ``page`` and ``screen`` calls are recorded as the events
``Page Viewed`` and ``Screen Viewed`` with their name kept as the ``name``
property.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from journeys_engine.clock import format_ms, parse_iso_ms
from journeys_engine.errors import FieldViolation, InvalidArgumentError

__all__ = [
    "MAX_CLOCK_AHEAD_MS",
    "Message",
    "MessageType",
    "corrected_timestamp",
    "parse_message",
]

MAX_CLOCK_AHEAD_MS = 5 * 60_000


class MessageType(StrEnum):
    """The Segment calls."""

    TRACK = "track"
    IDENTIFY = "identify"
    PAGE = "page"
    SCREEN = "screen"
    ALIAS = "alias"
    GROUP = "group"


_EVENT_OF = {MessageType.PAGE: "Page Viewed", MessageType.SCREEN: "Screen Viewed"}
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_PLAIN = frozenset((str, int, bool, type(None)))  # (never NaN or infinite)


@dataclass(frozen=True, slots=True)
class Message:
    """One checked message of a space. Times are epoch milliseconds.

    ``event`` is set for track, page and screen; ``traits`` for identify and
    group; ``previous_id`` for alias; ``group_id`` for group.
    """

    type: MessageType
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    timestamp: int
    received_at: int
    event: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    traits: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    previous_id: str | None = None
    group_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The message as Segment JSON, timestamps corrected, ``receivedAt`` set."""
        out: dict[str, Any] = {"type": self.type.value, "messageId": self.message_id}
        if self.user_id is not None:
            out["userId"] = self.user_id
        if self.anonymous_id is not None:
            out["anonymousId"] = self.anonymous_id
        if self.type is MessageType.TRACK:
            out["event"] = self.event
        if self.type in _EVENT_OF:
            out["name"] = self.properties.get("name")
        if self.properties:
            out["properties"] = dict(self.properties)
        if self.traits:
            out["traits"] = dict(self.traits)
        if self.context:
            out["context"] = dict(self.context)
        if self.previous_id is not None:
            out["previousId"] = self.previous_id
        if self.group_id is not None:
            out["groupId"] = self.group_id
        out["timestamp"] = format_ms(self.timestamp)
        out["receivedAt"] = format_ms(self.received_at)
        return out


def corrected_timestamp(timestamp: int | None, sent_at: int | None, received_at: int) -> int:
    """Event time corrected for the sender's clock (SPEC §1)."""
    if timestamp is None:
        return received_at
    if sent_at is not None:
        timestamp = received_at - (sent_at - timestamp)
    if timestamp > received_at + MAX_CLOCK_AHEAD_MS:
        return received_at
    return timestamp


def parse_message(raw: Mapping[str, Any], *, received_at: int, path: str = "message") -> Message:
    """A checked message from Segment JSON, received at ``received_at``.

    Raises:
        InvalidArgumentError: naming every problem by path (``message.userId``).
    """
    problems: list[FieldViolation] = []

    def report(name: str, description: str) -> None:
        problems.append(FieldViolation(f"{path}.{name}" if name else path, description))

    if not isinstance(raw, Mapping):
        raise InvalidArgumentError([FieldViolation(path, "must be a JSON object")])
    type_name = raw.get("type")
    try:
        kind: MessageType | None = MessageType(str(type_name))
    except ValueError:
        report("type", f"must be one of {', '.join(t.value for t in MessageType)}")
        kind = None
    user_id = _identifier(raw, "userId", report)
    anonymous_id = _identifier(raw, "anonymousId", report)
    message_id = _identifier(raw, "messageId", report) or f"srv-{uuid.uuid4()}"
    properties = _object(raw, "properties", report)
    traits = _object(raw, "traits", report)
    context = _object(raw, "context", report)
    timestamp = _instant(raw, "timestamp", report)
    sent_at = _instant(raw, "sentAt", report)
    event = None
    previous_id = None
    group_id = None
    if kind is MessageType.TRACK:
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip():
            report("event", "is required for a track call")
            event = None
    elif kind in _EVENT_OF:
        assert kind is not None
        event = _EVENT_OF[kind]
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            report("name", "must be a string")
        elif name is not None:
            properties = {**properties, "name": name}
    elif kind is MessageType.ALIAS:
        previous_id = _identifier(raw, "previousId", report)
        if previous_id is None:
            report("previousId", "is required for an alias call")
        if user_id is None:
            report("userId", "is required for an alias call")
    elif kind is MessageType.GROUP:
        group_id = _identifier(raw, "groupId", report)
        if group_id is None:
            report("groupId", "is required for a group call")
    if kind is not MessageType.ALIAS and user_id is None and anonymous_id is None:
        report("", "needs a userId or an anonymousId")
    if problems or kind is None:
        raise InvalidArgumentError(problems)
    return Message(
        type=kind,
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=corrected_timestamp(timestamp, sent_at, received_at),
        received_at=received_at,
        event=event,
        properties=properties,
        traits=traits,
        context=context,
        previous_id=previous_id,
        group_id=group_id,
    )


def _identifier(raw: Mapping[str, Any], name: str, report: Any) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        report(name, "must be a string")
        return None
    text = str(value)
    if len(text) > 255:
        report(name, "must be at most 255 characters")
        return None
    if _CONTROL.search(text):
        report(name, "must not contain control characters")
        return None
    return text


def _object(raw: Mapping[str, Any], name: str, report: Any) -> dict[str, Any]:
    value = raw.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        report(name, "must be a JSON object")
        return {}
    if not _finite(value):
        report(name, "must not hold NaN or infinite numbers")
        return {}
    return dict(value)


def _finite(value: Any) -> bool:
    kind = type(value)
    if kind in _PLAIN:  # (the usual cases first, without the abstract check below)
        return True
    if kind is dict:
        return all(map(_finite, value.values()))
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(map(_finite, value))
    if isinstance(value, Mapping):
        return all(map(_finite, value.values()))
    return True


def _instant(raw: Mapping[str, Any], name: str, report: Any) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        report(name, "must be an ISO 8601 date-time")
        return None
    try:
        return parse_iso_ms(value)
    except ValueError:
        report(name, "must be an ISO 8601 date-time")
        return None
