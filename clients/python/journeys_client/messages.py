"""Segment-spec messages (their JSON form) as ``journeys.v1.SegmentMessage``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from journeys.v1 import ingest_pb2

__all__ = ["segment_message"]

_TYPES = {
    "track": ingest_pb2.MESSAGE_TYPE_TRACK,
    "identify": ingest_pb2.MESSAGE_TYPE_IDENTIFY,
    "page": ingest_pb2.MESSAGE_TYPE_PAGE,
    "screen": ingest_pb2.MESSAGE_TYPE_SCREEN,
    "alias": ingest_pb2.MESSAGE_TYPE_ALIAS,
    "group": ingest_pb2.MESSAGE_TYPE_GROUP,
}
_TEXT = {
    "messageId": "message_id",
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "event": "event",
    "name": "name",
    "previousId": "previous_id",
    "groupId": "group_id",
}


def _timestamp(value: Any) -> Timestamp:
    stamp = Timestamp()
    text = str(value).replace("Z", "+00:00")
    stamp.FromDatetime(datetime.fromisoformat(text))
    return stamp


def segment_message(raw: Mapping[str, Any]) -> ingest_pb2.SegmentMessage:
    """The wire form of a Segment JSON message; a missing ``messageId`` gets a fresh one.

    Fields the server checks (a bad type, an unparsable timestamp) are passed
    on so the server names the problem; only values that cannot be put on the
    wire at all raise ``ValueError`` here.
    """
    message = ingest_pb2.SegmentMessage(
        type=_TYPES.get(str(raw.get("type")), ingest_pb2.MESSAGE_TYPE_UNSPECIFIED)
    )
    for key, field in _TEXT.items():
        value = raw.get(key)
        if value is not None:
            setattr(message, field, str(value))
    if not message.message_id:
        message.message_id = str(uuid.uuid4())
    for key in ("properties", "traits", "context"):
        value = raw.get(key)
        if value is not None:
            if not isinstance(value, Mapping):
                raise ValueError(f"{key} must be a JSON object, not {type(value).__name__}")
            getattr(message, key).update(dict(value))
    for key, field in (("timestamp", "timestamp"), ("sentAt", "sent_at")):
        value = raw.get(key)
        if value is not None:
            getattr(message, field).CopyFrom(_timestamp(value))
    return message
