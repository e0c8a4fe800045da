"""Destination calls (SPEC §7) and their deterministic message ids (SPEC §5.8)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum

from journeys_engine.clock import format_ms
from journeys_engine.model.definitions import Destination, DestinationKind, EventMode

__all__ = ["Change", "Output", "build_output", "message_id"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class Change(StrEnum):
    """A membership change of a send step."""

    ENTERED = "entered"
    EXITED = "exited"


@dataclass(frozen=True, slots=True)
class Output:
    """One call for one destination.

    Attributes:
        space_id: The space.
        destination_id: Who receives it.
        profile_key: The profile it is about (its user id, else anonymous id).
        message_id: ``jm_`` + 32 hex digits; the same call always has the same id.
        payload: The call as compact JSON, keys in SPEC §7 order.
        timestamp: The logical instant of the change, ms.
        journey_id, step_id, run, change: What changed.
    """

    space_id: str
    destination_id: str
    profile_key: str
    message_id: str
    payload: str
    timestamp: int
    journey_id: str
    step_id: str
    run: int
    change: Change


def message_id(
    space_id: str,
    journey_id: str,
    step_id: str,
    profile_key: str,
    run: int,
    change: Change,
    destination_id: str,
) -> str:
    """``jm_`` + the first 32 hex digits of SHA-256 over the compact JSON array."""
    array = [space_id, journey_id, step_id, profile_key, run, change.value, destination_id]
    digest = hashlib.sha256(
        json.dumps(array, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    ).hexdigest()
    return "jm_" + digest[:32]


def build_output(
    *,
    space_id: str,
    destination: Destination,
    journey_id: str,
    step_id: str,
    key: str,
    profile_key: str,
    user_id: str | None,
    anonymous_id: str | None,
    run: int,
    change: Change,
    at: int,
) -> Output:
    """The call a destination receives for one membership change."""
    mid = message_id(space_id, journey_id, step_id, profile_key, run, change, destination.id)
    timestamp = format_ms(at)
    entered = change is Change.ENTERED
    if destination.kind is DestinationKind.LIST:
        body: dict[str, object] = {
            "messageId": mid,
            "key": key,
            "stepId": step_id,
            "userId": user_id,
            "anonymousId": anonymous_id,
            "change": "added" if entered else "removed",
            "run": run,
            "timestamp": timestamp,
        }
    else:
        flag = {key: "true" if entered else "false"}
        context = {
            "personas": {
                "computation_class": "journey_step",
                "computation_id": step_id,
                "computation_key": key,
                "space_id": space_id,
                "namespace": "spa_" + space_id,
            }
        }
        integrations = {"All": False, destination.name: True}
        if destination.event_mode is EventMode.IDENTIFY:
            body = {
                "type": "identify",
                "userId": user_id,
                "anonymousId": anonymous_id,
                "messageId": mid,
                "timestamp": timestamp,
                "traits": flag,
                "context": context,
                "integrations": integrations,
            }
        else:
            body = {
                "type": "track",
                "event": "Audience Entered" if entered else "Audience Exited",
                "userId": user_id,
                "anonymousId": anonymous_id,
                "messageId": mid,
                "timestamp": timestamp,
                "properties": flag,
                "context": context,
                "integrations": integrations,
            }
    payload = _ENCODER.encode(body)
    return Output(
        space_id, destination.id, profile_key, mid, payload, at, journey_id, step_id, run, change
    )
