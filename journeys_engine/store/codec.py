"""Domain objects to and from the JSON documents stored in the database.

The stored form is the engine's own, independent of protobuf and of journey
files, and it only ever grows: readers accept documents without fields added
later.
"""

from __future__ import annotations

import json
from typing import Any

from journeys_engine.model.definitions import (
    Audience,
    ComputedTrait,
    Definition,
    Destination,
    DestinationKind,
    EventMode,
    Space,
)
from journeys_engine.model.journey import (
    Branch,
    Condition,
    EntryStep,
    Journey,
    JourneySettings,
    JourneyStatus,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    Step,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)

__all__ = [
    "decode_definition",
    "decode_journey",
    "decode_space",
    "encode_definition",
    "encode_journey",
    "encode_space",
]

Doc = dict[str, Any]


def _dumps(doc: Doc) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _cond(condition: Condition | None) -> str | None:
    return None if condition is None else condition.text


def _uncond(text: str | None) -> Condition | None:
    return None if text is None else Condition(text)


def encode_space(space: Space) -> str:
    return _dumps(
        {"id": space.id, "display_name": space.display_name, "create_time": space.create_time_ms}
    )


def decode_space(text: str) -> Space:
    doc = json.loads(text)
    return Space(doc["id"], doc["display_name"], doc["create_time"])


def _encode_step(step: Step) -> Doc:
    doc: Doc = {"kind": step.KIND, "id": step.id, "name": step.name}
    match step:
        case EntryStep():
            doc |= {
                "condition": step.condition.text,
                "use_historical_data": step.use_historical_data,
                "next": step.next_step_id,
            }
        case WaitDurationStep():
            doc |= {"duration": step.duration_ms, "next": step.next_step_id}
        case WaitConditionStep():
            doc |= {"condition": step.condition.text, "next": step.next_step_id}
        case TrueFalseSplitStep():
            doc |= {
                "condition": step.condition.text,
                "true": step.true_step_id,
                "false": step.false_step_id,
            }
        case MultiBranchSplitStep():
            doc["branches"] = [
                {"name": b.name, "condition": b.condition.text, "next": b.next_step_id}
                for b in step.branches
            ]
        case SendToDestinationsStep():
            doc |= {
                "destinations": list(step.destination_ids),
                "key": step.key,
                "next": step.next_step_id,
            }
    return doc


def _decode_step(doc: Doc) -> Step:
    kind, sid, name = doc["kind"], doc["id"], doc["name"]
    if kind == EntryStep.KIND:
        return EntryStep(
            sid, name, Condition(doc["condition"]), doc["use_historical_data"], doc["next"]
        )
    if kind == WaitDurationStep.KIND:
        return WaitDurationStep(sid, name, doc["duration"], doc["next"])
    if kind == WaitConditionStep.KIND:
        return WaitConditionStep(sid, name, Condition(doc["condition"]), doc["next"])
    if kind == TrueFalseSplitStep.KIND:
        return TrueFalseSplitStep(sid, name, Condition(doc["condition"]), doc["true"], doc["false"])
    if kind == MultiBranchSplitStep.KIND:
        branches = tuple(
            Branch(b["name"], Condition(b["condition"]), b["next"]) for b in doc["branches"]
        )
        return MultiBranchSplitStep(sid, name, branches)
    if kind == SendToDestinationsStep.KIND:
        return SendToDestinationsStep(
            sid, name, tuple(doc["destinations"]), doc["key"], doc["next"]
        )
    raise ValueError(f"unknown step kind {kind!r} in stored journey")


def encode_journey(journey: Journey) -> str:
    s = journey.settings
    return _dumps(
        {
            "id": journey.id,
            "space_id": journey.space_id,
            "name": journey.name,
            "description": journey.description,
            "status": journey.status.value,
            "settings": {
                "exit_after": s.exit_after_ms,
                "reentry_after": s.reentry_after_ms,
                "exit_condition": _cond(s.exit_condition),
            },
            "steps": [_encode_step(step) for step in journey.steps],
            "create_time": journey.create_time_ms,
            "update_time": journey.update_time_ms,
            "publish_time": journey.publish_time_ms,
        }
    )


def decode_journey(text: str) -> Journey:
    doc = json.loads(text)
    s = doc["settings"]
    return Journey(
        id=doc["id"],
        space_id=doc["space_id"],
        name=doc["name"],
        description=doc["description"],
        status=JourneyStatus(doc["status"]),
        settings=JourneySettings(s["exit_after"], s["reentry_after"], _uncond(s["exit_condition"])),
        steps=tuple(_decode_step(step) for step in doc["steps"]),
        create_time_ms=doc["create_time"],
        update_time_ms=doc["update_time"],
        publish_time_ms=doc["publish_time"],
    )


def encode_definition(definition: Definition) -> str:
    doc: Doc = {
        "id": definition.id,
        "space_id": definition.space_id,
        "name": definition.name,
        "create_time": definition.create_time_ms,
        "update_time": definition.update_time_ms,
    }
    match definition:
        case Audience():
            doc |= {"description": definition.description, "condition": definition.condition.text}
        case ComputedTrait():
            doc |= {
                "description": definition.description,
                "expression": definition.expression.text,
            }
        case Destination():
            mode, kind = definition.event_mode, definition.kind
            doc |= {"kind": kind and kind.value, "event_mode": mode and mode.value}
    return _dumps(doc)


def decode_definition(kind: str, text: str) -> Definition:
    doc = json.loads(text)
    common = (doc["id"], doc["space_id"], doc["name"])
    times = {"create_time_ms": doc["create_time"], "update_time_ms": doc["update_time"]}
    if kind == Audience.KIND:
        return Audience(*common, doc["description"], Condition(doc["condition"]), **times)
    if kind == ComputedTrait.KIND:
        return ComputedTrait(*common, doc["description"], Condition(doc["expression"]), **times)
    if kind == Destination.KIND:
        mode = doc["event_mode"]
        return Destination(*common, DestinationKind(doc["kind"]), mode and EventMode(mode), **times)
    raise ValueError(f"unknown definition kind {kind!r} in store")
