"""Journeys on the wire: protobuf messages to and from the engine's journeys."""

from __future__ import annotations

from journeys.v1 import common_pb2, journey_pb2

from journeys_engine.errors import FieldViolation, InvalidArgumentError
from journeys_engine.model import (
    Branch,
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
from journeys_server.convert.common import (
    Problems,
    duration_ms,
    duration_proto,
    timestamp_proto,
)
from journeys_server.convert.conditions import condition_from_proto, condition_to_proto

__all__ = [
    "journey_from_proto",
    "journey_to_proto",
    "status_from_proto",
    "status_to_proto",
    "warnings_to_proto",
]

_STATUS_TO_PROTO = {
    JourneyStatus.DRAFT: journey_pb2.JOURNEY_STATUS_DRAFT,
    JourneyStatus.PUBLISHED: journey_pb2.JOURNEY_STATUS_PUBLISHED,
    JourneyStatus.PAUSED: journey_pb2.JOURNEY_STATUS_PAUSED,
    JourneyStatus.ARCHIVED: journey_pb2.JOURNEY_STATUS_ARCHIVED,
}
_STATUS_FROM_PROTO = {v: k for k, v in _STATUS_TO_PROTO.items()}


def _ref(step_id: str) -> str | None:
    return step_id or None


def status_to_proto(status: JourneyStatus) -> journey_pb2.JourneyStatus.ValueType:
    return _STATUS_TO_PROTO[status]


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


def journey_to_proto(journey: Journey) -> journey_pb2.Journey:
    s = journey.settings
    return journey_pb2.Journey(
        id=journey.id,
        space_id=journey.space_id,
        name=journey.name,
        description=journey.description,
        status=_STATUS_TO_PROTO[journey.status],
        settings=journey_pb2.JourneySettings(
            exit_after=duration_proto(s.exit_after_ms),
            reentry_after=duration_proto(s.reentry_after_ms),
            exit_condition=condition_to_proto(s.exit_condition),
        ),
        steps=[_step_to_proto(step) for step in journey.steps],
        create_time=timestamp_proto(journey.create_time_ms),
        update_time=timestamp_proto(journey.update_time_ms),
        publish_time=timestamp_proto(journey.publish_time_ms),
    )


def _step_to_proto(step: Step) -> journey_pb2.Step:
    out = journey_pb2.Step(id=step.id, name=step.name)
    match step:
        case EntryStep():
            out.entry.CopyFrom(
                journey_pb2.EntryStep(
                    condition=condition_to_proto(step.condition),
                    use_historical_data=step.use_historical_data,
                    next_step_id=step.next_step_id or "",
                )
            )
        case WaitDurationStep():
            out.wait_duration.CopyFrom(
                journey_pb2.WaitDurationStep(
                    duration=duration_proto(step.duration_ms), next_step_id=step.next_step_id or ""
                )
            )
        case WaitConditionStep():
            out.wait_condition.CopyFrom(
                journey_pb2.WaitConditionStep(
                    condition=condition_to_proto(step.condition),
                    next_step_id=step.next_step_id or "",
                )
            )
        case TrueFalseSplitStep():
            out.true_false_split.CopyFrom(
                journey_pb2.TrueFalseSplitStep(
                    condition=condition_to_proto(step.condition),
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
                            condition=condition_to_proto(b.condition),
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


def journey_from_proto(
    message: journey_pb2.Journey, problems: Problems, path: str = "journey"
) -> Journey:
    """The engine's form of a journey in a request; output-only fields are ignored.

    What only the wire form can get wrong (a step without a kind, a duration
    finer than a millisecond, a malformed condition tree) goes to ``problems``.
    """
    s = message.settings
    settings = JourneySettings(
        exit_after_ms=(
            duration_ms(s.exit_after, f"{path}.settings.exit_after", problems)
            if s.HasField("exit_after")
            else None
        ),
        reentry_after_ms=(
            duration_ms(s.reentry_after, f"{path}.settings.reentry_after", problems)
            if s.HasField("reentry_after")
            else None
        ),
        exit_condition=(
            condition_from_proto(s.exit_condition, f"{path}.settings.exit_condition", problems)
            if s.HasField("exit_condition")
            else None
        ),
    )
    steps = []
    positions = []
    for i, step in enumerate(message.steps):
        converted = _step_from_proto(step, f"{path}.steps[{i}]", problems)
        if converted is not None:
            steps.append(converted)
            positions.append(i)
    problems.step_positions = positions
    return Journey(
        id=message.id,
        space_id="",
        name=message.name,
        description=message.description,
        settings=settings,
        steps=tuple(steps),
    )


def _step_from_proto(step: journey_pb2.Step, path: str, problems: Problems) -> Step | None:
    kind = step.WhichOneof("kind")
    sid, name = step.id, step.name
    kind_path = f"{path}.{kind}"
    match kind:
        case "entry":
            e = step.entry
            condition = condition_from_proto(e.condition, f"{kind_path}.condition", problems)
            return EntryStep(sid, name, condition, e.use_historical_data, _ref(e.next_step_id))
        case "wait_duration":
            w = step.wait_duration
            if not w.HasField("duration"):
                problems.report(f"{kind_path}.duration", "is required")
                return WaitDurationStep(sid, name, 1, _ref(w.next_step_id))
            ms = duration_ms(w.duration, f"{kind_path}.duration", problems)
            return WaitDurationStep(sid, name, ms, _ref(w.next_step_id))
        case "wait_condition":
            c = step.wait_condition
            condition = condition_from_proto(c.condition, f"{kind_path}.condition", problems)
            return WaitConditionStep(sid, name, condition, _ref(c.next_step_id))
        case "true_false_split":
            t = step.true_false_split
            condition = condition_from_proto(t.condition, f"{kind_path}.condition", problems)
            return TrueFalseSplitStep(
                sid, name, condition, _ref(t.true_step_id), _ref(t.false_step_id)
            )
        case "multi_branch_split":
            branches = tuple(
                Branch(
                    b.name,
                    condition_from_proto(
                        b.condition, f"{kind_path}.branches[{j}].condition", problems
                    ),
                    _ref(b.next_step_id),
                )
                for j, b in enumerate(step.multi_branch_split.branches)
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
