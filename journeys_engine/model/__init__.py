"""The domain model: journeys, definitions, validation, keys, lifecycle, limits."""

from journeys_engine.model.definitions import (
    Audience,
    ComputedTrait,
    Definition,
    DefinitionKind,
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
    child_refs,
)
from journeys_engine.model.limits import Limits

__all__ = [
    "Audience",
    "Branch",
    "ComputedTrait",
    "Condition",
    "Definition",
    "DefinitionKind",
    "Destination",
    "DestinationKind",
    "EntryStep",
    "EventMode",
    "Journey",
    "JourneySettings",
    "JourneyStatus",
    "Limits",
    "MultiBranchSplitStep",
    "SendToDestinationsStep",
    "Space",
    "Step",
    "TrueFalseSplitStep",
    "WaitConditionStep",
    "WaitDurationStep",
    "child_refs",
]
