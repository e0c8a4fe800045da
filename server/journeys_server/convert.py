"""The one edge between protobuf messages and the engine's own types.

Incoming messages are checked for what only the wire form can get wrong (no
step kind set, a duration finer than a millisecond, an unknown enum value);
everything else is the engine's validation. Problems are collected and raised
together as one :class:`InvalidArgumentError`.
"""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from journeys.v1 import common_pb2, definition_pb2, journey_pb2, space_pb2

from journeys_engine.errors import FieldViolation, InvalidArgumentError
from journeys_engine.model import (
    Audience,
    Branch,
    ComputedTrait,
    Condition,
    Destination,
    DestinationKind,
    EntryStep,
    EventMode,
    Journey,
    JourneySettings,
    JourneyStatus,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    Space,
    Step,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)

__all__ = [
    "audience_from_proto",
    "audience_to_proto",
    "computed_trait_from_proto",
    "computed_trait_to_proto",
    "destination_from_proto",
    "destination_to_proto",
    "journey_from_proto",
    "journey_to_proto",
    "space_to_proto",
    "status_from_proto",
    "warnings_to_proto",
]

_STATUS_TO_PROTO = {
    JourneyStatus.DRAFT: journey_pb2.JOURNEY_STATUS_DRAFT,
    JourneyStatus.PUBLISHED: journey_pb2.JOURNEY_STATUS_PUBLISHED,
    JourneyStatus.PAUSED: journey_pb2.JOURNEY_STATUS_PAUSED,
    JourneyStatus.ARCHIVED: journey_pb2.JOURNEY_STATUS_ARCHIVED,
}
_STATUS_FROM_PROTO = {v: k for k, v in _STATUS_TO_PROTO.items()}
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


class _Problems:
    """Collects conversion problems and raises them together."""

    def __init__(self) -> None:
        self.found: list[FieldViolation] = []

    def report(self, path: str, description: str) -> None:
        self.found.append(FieldViolation(path, description))

    def raise_any(self) -> None:
        if self.found:
            raise InvalidArgumentError(self.found)


def _timestamp(ms: int | None) -> Timestamp | None:
    if ms is None:
        return None
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def _duration(ms: int | None) -> Duration | None:
    if ms is None:
        return None
    d = Duration()
    d.FromMilliseconds(ms)
    return d


def _duration_ms(d: Duration, path: str, problems: _Problems) -> int:
    if d.nanos % 1_000_000:
        problems.report(path, "must be a whole number of milliseconds")
    return d.seconds * 1000 + d.nanos // 1_000_000


def _condition_to_proto(condition: Condition | None) -> common_pb2.Condition | None:
    return None if condition is None else common_pb2.Condition(text=condition.text)


def _ref(step_id: str) -> str | None:
    return step_id or None


def space_to_proto(space: Space) -> space_pb2.Space:
    return space_pb2.Space(
        id=space.id,
        display_name=space.display_name,
        create_time=_timestamp(space.create_time_ms),
    )


def status_from_proto(value: int, path: str) -> JourneyStatus | None:
    """A journey status filter: None when unspecified.

    Raises:
        InvalidArgumentError: an unknown enum value.
    """
    if value == journey_pb2.JOURNEY_STATUS_UNSPECIFIED:
        return None
    status = _STATUS_FROM_PROTO.get(journey_pb2.JourneyStatus.ValueType(value))
    if status is None:
        raise InvalidArgumentError.single(path, f"{value} is not a journey status")
    return status


def warnings_to_proto(warnings: tuple[FieldViolation, ...]) -> list[common_pb2.Warning]:
    return [common_pb2.Warning(field=w.field, message=w.description) for w in warnings]


# Journeys


def journey_to_proto(journey: Journey) -> journey_pb2.Journey:
    s = journey.settings
    return journey_pb2.Journey(
        id=journey.id,
        space_id=journey.space_id,
        name=journey.name,
        description=journey.description,
        status=_STATUS_TO_PROTO[journey.status],
        settings=journey_pb2.JourneySettings(
            exit_after=_duration(s.exit_after_ms),
            reentry_after=_duration(s.reentry_after_ms),
            exit_condition=_condition_to_proto(s.exit_condition),
        ),
        steps=[_step_to_proto(step) for step in journey.steps],
        create_time=_timestamp(journey.create_time_ms),
        update_time=_timestamp(journey.update_time_ms),
        publish_time=_timestamp(journey.publish_time_ms),
    )


def _step_to_proto(step: Step) -> journey_pb2.Step:
    out = journey_pb2.Step(id=step.id, name=step.name)
    match step:
        case EntryStep():
            out.entry.CopyFrom(
                journey_pb2.EntryStep(
                    condition=_condition_to_proto(step.condition),
                    use_historical_data=step.use_historical_data,
                    next_step_id=step.next_step_id or "",
                )
            )
        case WaitDurationStep():
            out.wait_duration.CopyFrom(
                journey_pb2.WaitDurationStep(
                    duration=_duration(step.duration_ms), next_step_id=step.next_step_id or ""
                )
            )
        case WaitConditionStep():
            out.wait_condition.CopyFrom(
                journey_pb2.WaitConditionStep(
                    condition=_condition_to_proto(step.condition),
                    next_step_id=step.next_step_id or "",
                )
            )
        case TrueFalseSplitStep():
            out.true_false_split.CopyFrom(
                journey_pb2.TrueFalseSplitStep(
                    condition=_condition_to_proto(step.condition),
                    true_step_id=step.true_step_id or "",
                    false_step_id=step.false_step_id or "",
                )
            )
        case MultiBranchSplitStep():
            out.multi_branch_split.CopyFrom(
                journey_pb2.MultiBranchSplitStep(
                    branches=[
                        journey_pb2.Branch(
                            name=b.name,
                            condition=_condition_to_proto(b.condition),
                            next_step_id=b.next_step_id or "",
                        )
                        for b in step.branches
                    ]
                )
            )
        case SendToDestinationsStep():
            out.send_to_destinations.CopyFrom(
                journey_pb2.SendToDestinationsStep(
                    destination_ids=list(step.destination_ids),
                    key=step.key,
                    next_step_id=step.next_step_id or "",
                )
            )
    return out


def journey_from_proto(message: journey_pb2.Journey, path: str = "journey") -> Journey:
    """The engine's form of a journey in a request; output-only fields are ignored.

    Raises:
        InvalidArgumentError: a step without a kind, or a duration finer than 1 ms.
    """
    problems = _Problems()
    s = message.settings
    settings = JourneySettings(
        exit_after_ms=(
            _duration_ms(s.exit_after, f"{path}.settings.exit_after", problems)
            if s.HasField("exit_after")
            else None
        ),
        reentry_after_ms=(
            _duration_ms(s.reentry_after, f"{path}.settings.reentry_after", problems)
            if s.HasField("reentry_after")
            else None
        ),
        exit_condition=(Condition(s.exit_condition.text) if s.HasField("exit_condition") else None),
    )
    steps = []
    for i, step in enumerate(message.steps):
        converted = _step_from_proto(step, f"{path}.steps[{i}]", problems)
        if converted is not None:
            steps.append(converted)
    problems.raise_any()
    return Journey(
        id=message.id,
        space_id="",
        name=message.name,
        description=message.description,
        settings=settings,
        steps=tuple(steps),
    )


def _step_from_proto(step: journey_pb2.Step, path: str, problems: _Problems) -> Step | None:
    kind = step.WhichOneof("kind")
    sid, name = step.id, step.name
    match kind:
        case "entry":
            e = step.entry
            return EntryStep(
                sid, name, Condition(e.condition.text), e.use_historical_data, _ref(e.next_step_id)
            )
        case "wait_duration":
            w = step.wait_duration
            ms = _duration_ms(w.duration, f"{path}.wait_duration.duration", problems)
            return WaitDurationStep(sid, name, ms, _ref(w.next_step_id))
        case "wait_condition":
            c = step.wait_condition
            return WaitConditionStep(sid, name, Condition(c.condition.text), _ref(c.next_step_id))
        case "true_false_split":
            t = step.true_false_split
            return TrueFalseSplitStep(
                sid,
                name,
                Condition(t.condition.text),
                _ref(t.true_step_id),
                _ref(t.false_step_id),
            )
        case "multi_branch_split":
            branches = tuple(
                Branch(b.name, Condition(b.condition.text), _ref(b.next_step_id))
                for b in step.multi_branch_split.branches
            )
            return MultiBranchSplitStep(sid, name, branches)
        case "send_to_destinations":
            d = step.send_to_destinations
            return SendToDestinationsStep(
                sid, name, tuple(d.destination_ids), d.key, _ref(d.next_step_id)
            )
    problems.report(
        path,
        "must set one step kind: entry, wait_duration, wait_condition, true_false_split, "
        "multi_branch_split or send_to_destinations",
    )
    return None


# Definitions


def audience_to_proto(audience: Audience) -> definition_pb2.Audience:
    return definition_pb2.Audience(
        id=audience.id,
        space_id=audience.space_id,
        name=audience.name,
        description=audience.description,
        condition=_condition_to_proto(audience.condition),
        create_time=_timestamp(audience.create_time_ms),
        update_time=_timestamp(audience.update_time_ms),
    )


def audience_from_proto(message: definition_pb2.Audience) -> Audience:
    return Audience(
        message.id, "", message.name, message.description, Condition(message.condition.text)
    )


def computed_trait_to_proto(trait: ComputedTrait) -> definition_pb2.ComputedTrait:
    return definition_pb2.ComputedTrait(
        id=trait.id,
        space_id=trait.space_id,
        name=trait.name,
        description=trait.description,
        expression=_condition_to_proto(trait.expression),
        create_time=_timestamp(trait.create_time_ms),
        update_time=_timestamp(trait.update_time_ms),
    )


def computed_trait_from_proto(message: definition_pb2.ComputedTrait) -> ComputedTrait:
    return ComputedTrait(
        message.id, "", message.name, message.description, Condition(message.expression.text)
    )


def destination_to_proto(destination: Destination) -> definition_pb2.Destination:
    kind, mode = destination.kind, destination.event_mode
    return definition_pb2.Destination(
        id=destination.id,
        space_id=destination.space_id,
        name=destination.name,
        kind=_KIND_TO_PROTO[kind] if kind else definition_pb2.DESTINATION_KIND_UNSPECIFIED,
        event_mode=_MODE_TO_PROTO[mode] if mode else definition_pb2.EVENT_MODE_UNSPECIFIED,
        create_time=_timestamp(destination.create_time_ms),
        update_time=_timestamp(destination.update_time_ms),
    )


def destination_from_proto(message: definition_pb2.Destination) -> Destination:
    """The engine's form of a destination in a request.

    Raises:
        InvalidArgumentError: an unknown kind or event mode value.
    """
    problems = _Problems()
    kind: DestinationKind | None = None
    mode: EventMode | None = None
    if message.kind != definition_pb2.DESTINATION_KIND_UNSPECIFIED:
        if message.kind in _KIND_FROM_PROTO:
            kind = _KIND_FROM_PROTO[message.kind]
        else:
            problems.report("destination.kind", f"{message.kind} is not a destination kind")
    if message.event_mode != definition_pb2.EVENT_MODE_UNSPECIFIED:
        if message.event_mode in _MODE_FROM_PROTO:
            mode = _MODE_FROM_PROTO[message.event_mode]
        else:
            problems.report("destination.event_mode", f"{message.event_mode} is not an event mode")
    problems.raise_any()
    return Destination(message.id, "", message.name, kind, mode)
