"""Segment messages on the wire: ``SegmentMessage`` to Segment JSON, outbox records out."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2
from journeys.v1 import ingest_pb2, subscription_pb2

from journeys_engine.clock import format_ms
from journeys_engine.errors import FieldViolation
from journeys_engine.store.durable import OutboxRecord
from journeys_server.convert.common import set_timestamp, timestamp_problem

__all__ = ["call_to_proto", "fill_call", "message_problems", "message_to_json", "struct_to_dict"]

_TYPES = {
    ingest_pb2.MESSAGE_TYPE_TRACK: "track",
    ingest_pb2.MESSAGE_TYPE_IDENTIFY: "identify",
    ingest_pb2.MESSAGE_TYPE_PAGE: "page",
    ingest_pb2.MESSAGE_TYPE_SCREEN: "screen",
    ingest_pb2.MESSAGE_TYPE_ALIAS: "alias",
    ingest_pb2.MESSAGE_TYPE_GROUP: "group",
}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_value(v) for v in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain JSON-like data (whole numbers as ints)."""
    return {key: _value(value) for key, value in struct.fields.items()}


def message_problems(message: ingest_pb2.SegmentMessage, path: str) -> list[FieldViolation]:
    """What only the wire form of a message can get wrong (a Timestamp that is not
    one); :func:`message_to_json` takes a message without such problems."""
    problems = []
    for field in ("timestamp", "sent_at"):
        if message.HasField(field):
            problem = timestamp_problem(getattr(message, field))
            if problem is not None:
                problems.append(FieldViolation(f"{path}.{field}", problem))
    return problems


def message_to_json(message: ingest_pb2.SegmentMessage) -> dict[str, Any]:
    """A wire message as Segment JSON, for the engine's own checks.

    An unknown type becomes a type the engine refuses by name. The message has
    no :func:`message_problems`.
    """
    out: dict[str, Any] = {"type": _TYPES.get(message.type, f"unknown ({message.type})")}
    for field, key in (
        ("message_id", "messageId"),
        ("user_id", "userId"),
        ("anonymous_id", "anonymousId"),
        ("event", "event"),
        ("name", "name"),
        ("previous_id", "previousId"),
        ("group_id", "groupId"),
    ):
        value = getattr(message, field)
        if value:
            out[key] = value
    for field in ("properties", "traits", "context"):
        if message.HasField(field):  # type: ignore[arg-type]
            out[field] = struct_to_dict(getattr(message, field))
    if message.HasField("timestamp"):
        out["timestamp"] = format_ms(message.timestamp.ToMilliseconds())
    if message.HasField("sent_at"):
        out["sentAt"] = format_ms(message.sent_at.ToMilliseconds())
    return out


def call_to_proto(record: OutboxRecord) -> subscription_pb2.DestinationCall:
    return fill_call(subscription_pb2.DestinationCall(), record)


def fill_call(
    call: subscription_pb2.DestinationCall, record: OutboxRecord
) -> subscription_pb2.DestinationCall:
    """Sets the fields of ``call`` (a new message, or one added to a repeated field in
    place: no copy) from ``record``; returns it."""
    call.sequence = record.sequence
    call.message_id = record.message_id
    call.payload = record.payload
    set_timestamp(call.timestamp, record.timestamp)
    call.journey_id = record.journey_id
    call.step_id = record.step_id
    call.profile_key = record.profile_key
    call.run = record.run
    call.change = record.change.value
    return call
