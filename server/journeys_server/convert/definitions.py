"""Spaces and definitions on the wire: protobuf messages to and from the engine's."""

from __future__ import annotations

from journeys.v1 import definition_pb2, space_pb2

from journeys_engine.model import (
    Audience,
    ComputedTrait,
    Destination,
    DestinationKind,
    EventMode,
    Space,
)
from journeys_server.convert.common import Problems, timestamp_proto
from journeys_server.convert.conditions import (
    condition_from_proto,
    condition_to_proto,
    expression_from_proto,
    expression_to_proto,
)

__all__ = [
    "audience_from_proto",
    "audience_to_proto",
    "computed_trait_from_proto",
    "computed_trait_to_proto",
    "destination_from_proto",
    "destination_to_proto",
    "space_to_proto",
]

_KIND_TO_PROTO = {
    DestinationKind.EVENT: definition_pb2.DESTINATION_KIND_EVENT,
    DestinationKind.LIST: definition_pb2.DESTINATION_KIND_LIST,
}
_KIND_FROM_PROTO = {v: k for k, v in _KIND_TO_PROTO.items()}
_MODE_TO_PROTO = {
    EventMode.TRACK: definition_pb2.EVENT_MODE_TRACK,
    EventMode.IDENTIFY: definition_pb2.EVENT_MODE_IDENTIFY,
}
_MODE_FROM_PROTO = {v: k for k, v in _MODE_TO_PROTO.items()}


def space_to_proto(space: Space) -> space_pb2.Space:
    return space_pb2.Space(
        id=space.id,
        display_name=space.display_name,
        create_time=timestamp_proto(space.create_time_ms),
    )


def audience_to_proto(audience: Audience) -> definition_pb2.Audience:
    return definition_pb2.Audience(
        id=audience.id,
        space_id=audience.space_id,
        name=audience.name,
        description=audience.description,
        condition=condition_to_proto(audience.condition),
        create_time=timestamp_proto(audience.create_time_ms),
        update_time=timestamp_proto(audience.update_time_ms),
    )


def audience_from_proto(message: definition_pb2.Audience, problems: Problems) -> Audience:
    condition = condition_from_proto(message.condition, "audience.condition", problems)
    return Audience(message.id, "", message.name, message.description, condition)


def computed_trait_to_proto(trait: ComputedTrait) -> definition_pb2.ComputedTrait:
    return definition_pb2.ComputedTrait(
        id=trait.id,
        space_id=trait.space_id,
        name=trait.name,
        description=trait.description,
        expression=expression_to_proto(trait.expression),
        create_time=timestamp_proto(trait.create_time_ms),
        update_time=timestamp_proto(trait.update_time_ms),
    )


def computed_trait_from_proto(
    message: definition_pb2.ComputedTrait, problems: Problems
) -> ComputedTrait:
    expression = expression_from_proto(message.expression, "computed_trait.expression", problems)
    return ComputedTrait(message.id, "", message.name, message.description, expression)


def destination_to_proto(destination: Destination) -> definition_pb2.Destination:
    kind, mode = destination.kind, destination.event_mode
    return definition_pb2.Destination(
        id=destination.id,
        space_id=destination.space_id,
        name=destination.name,
        kind=_KIND_TO_PROTO[kind] if kind else definition_pb2.DESTINATION_KIND_UNSPECIFIED,
        event_mode=_MODE_TO_PROTO[mode] if mode else definition_pb2.EVENT_MODE_UNSPECIFIED,
        create_time=timestamp_proto(destination.create_time_ms),
        update_time=timestamp_proto(destination.update_time_ms),
    )


def destination_from_proto(message: definition_pb2.Destination, problems: Problems) -> Destination:
    """The engine's form of a destination in a request; unknown enum values are problems."""
    kind: DestinationKind | None = None
    mode: EventMode | None = None
    if message.kind != definition_pb2.DESTINATION_KIND_UNSPECIFIED:
        kind = _KIND_FROM_PROTO.get(message.kind)
        if kind is None:
            problems.report("destination.kind", f"{message.kind} is not a destination kind")
    if message.event_mode != definition_pb2.EVENT_MODE_UNSPECIFIED:
        mode = _MODE_FROM_PROTO.get(message.event_mode)
        if mode is None:
            problems.report("destination.event_mode", f"{message.event_mode} is not an event mode")
    return Destination(message.id, "", message.name, kind, mode)
