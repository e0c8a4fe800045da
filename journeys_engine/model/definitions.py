"""Spaces and the definitions journeys refer to (SPEC §1, §3)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from journeys_engine.model.journey import Condition

__all__ = [
    "Audience",
    "ComputedTrait",
    "Definition",
    "DefinitionKind",
    "Destination",
    "DestinationKind",
    "EventMode",
    "Space",
]


@dataclass(frozen=True, slots=True)
class Space:
    """A tenant. Times are epoch milliseconds."""

    id: str
    display_name: str
    create_time_ms: int = 0


class DefinitionKind(StrEnum):
    """The kinds of definitions, as named in messages and references."""

    AUDIENCE = "audience"
    COMPUTED_TRAIT = "computed_trait"
    DESTINATION = "destination"


class DestinationKind(StrEnum):
    """What a destination receives (SPEC §7)."""

    EVENT = "event"
    LIST = "list"


class EventMode(StrEnum):
    """The call type an event destination receives."""

    TRACK = "track"
    IDENTIFY = "identify"


@dataclass(frozen=True, slots=True)
class Audience:
    """A named condition with live membership, usable as ``audience('ID')``."""

    KIND = DefinitionKind.AUDIENCE
    id: str
    space_id: str
    name: str
    description: str
    condition: Condition
    create_time_ms: int = 0
    update_time_ms: int = 0


@dataclass(frozen=True, slots=True)
class ComputedTrait:
    """A named per-profile value, usable as ``computed_trait('ID')``."""

    KIND = DefinitionKind.COMPUTED_TRAIT
    id: str
    space_id: str
    name: str
    description: str
    expression: Condition
    create_time_ms: int = 0
    update_time_ms: int = 0


@dataclass(frozen=True, slots=True)
class Destination:
    """A named output; ``event_mode`` is set exactly for event destinations.

    ``kind`` is None only in a request that left it out, which validation refuses.
    """

    KIND = DefinitionKind.DESTINATION
    id: str
    space_id: str
    name: str
    kind: DestinationKind | None
    event_mode: EventMode | None = None
    create_time_ms: int = 0
    update_time_ms: int = 0


Definition = Audience | ComputedTrait | Destination
