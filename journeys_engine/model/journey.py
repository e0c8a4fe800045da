"""Journeys as plain, frozen data: steps, settings, status (SPEC §4, §6).

A journey's steps form a tree rooted at its single entry step; steps name their
children by id. Field names follow the public API so that validation messages
can name fields by the paths users see.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

__all__ = [
    "relabel_steps",
    "Branch",
    "Condition",
    "EntryStep",
    "Journey",
    "JourneySettings",
    "JourneyStatus",
    "MultiBranchSplitStep",
    "SendToDestinationsStep",
    "Step",
    "TrueFalseSplitStep",
    "WaitConditionStep",
    "WaitDurationStep",
    "child_refs",
]


class JourneyStatus(StrEnum):
    """Where a journey is in its lifecycle (SPEC §6)."""

    DRAFT = "draft"
    PUBLISHED = "published"
    PAUSED = "paused"
    ARCHIVED = "archived"

    @property
    def is_live(self) -> bool:
        """Published or paused: counts toward the space's limit and sends."""
        return self in (JourneyStatus.PUBLISHED, JourneyStatus.PAUSED)


@dataclass(frozen=True, slots=True)
class Condition:
    """A condition in the audience query language, kept as its text."""

    text: str


@dataclass(frozen=True, slots=True)
class EntryStep:
    """The root: users enter when ``condition`` holds."""

    KIND: ClassVar[str] = "entry"
    id: str
    name: str
    condition: Condition
    use_historical_data: bool = False
    next_step_id: str | None = None


@dataclass(frozen=True, slots=True)
class WaitDurationStep:
    """Holds each user for ``duration_ms``."""

    KIND: ClassVar[str] = "wait_duration"
    id: str
    name: str
    duration_ms: int
    next_step_id: str | None = None


@dataclass(frozen=True, slots=True)
class WaitConditionStep:
    """Holds each user until ``condition`` holds."""

    KIND: ClassVar[str] = "wait_condition"
    id: str
    name: str
    condition: Condition
    next_step_id: str | None = None


@dataclass(frozen=True, slots=True)
class TrueFalseSplitStep:
    """Sends each user down one side, decided once at arrival."""

    KIND: ClassVar[str] = "true_false_split"
    id: str
    name: str
    condition: Condition
    true_step_id: str | None = None
    false_step_id: str | None = None


@dataclass(frozen=True, slots=True)
class Branch:
    """One live branch of a multi-branch split."""

    name: str
    condition: Condition
    next_step_id: str | None = None


@dataclass(frozen=True, slots=True)
class MultiBranchSplitStep:
    """Two or more live branches; a user may take several."""

    KIND: ClassVar[str] = "multi_branch_split"
    id: str
    name: str
    branches: tuple[Branch, ...]


@dataclass(frozen=True, slots=True)
class SendToDestinationsStep:
    """Membership of the step's audience ``key``, sent to ``destination_ids``."""

    KIND: ClassVar[str] = "send_to_destinations"
    id: str
    name: str
    destination_ids: tuple[str, ...] = ()
    key: str = ""
    next_step_id: str | None = None


Step = (
    EntryStep
    | WaitDurationStep
    | WaitConditionStep
    | TrueFalseSplitStep
    | MultiBranchSplitStep
    | SendToDestinationsStep
)


def child_refs(step: Step) -> Iterator[tuple[str, str | None]]:
    """Yields ``(field path within the step, child id or None)`` in declared order."""
    kind = step.KIND
    match step:
        case TrueFalseSplitStep():
            yield f"{kind}.true_step_id", step.true_step_id
            yield f"{kind}.false_step_id", step.false_step_id
        case MultiBranchSplitStep():
            for i, branch in enumerate(step.branches):
                yield f"{kind}.branches[{i}].next_step_id", branch.next_step_id
        case _:
            yield f"{kind}.next_step_id", step.next_step_id


@dataclass(frozen=True, slots=True)
class JourneySettings:
    """Run-ending and re-entry settings (SPEC §4)."""

    exit_after_ms: int | None = None
    reentry_after_ms: int | None = None
    exit_condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class Journey:
    """A journey as stored. Times are epoch milliseconds."""

    id: str
    space_id: str
    name: str
    description: str = ""
    status: JourneyStatus = JourneyStatus.DRAFT
    settings: JourneySettings = field(default_factory=JourneySettings)
    steps: tuple[Step, ...] = ()
    create_time_ms: int = 0
    update_time_ms: int = 0
    publish_time_ms: int | None = None

    @property
    def entry(self) -> EntryStep:
        """The entry step (a stored journey has exactly one)."""
        for step in self.steps:
            if isinstance(step, EntryStep):
                return step
        raise LookupError(f"journey {self.id!r} has no entry step")

    def tree_order(self) -> list[Step]:
        """The steps in a depth-first walk from the entry, children and branches in
        declared order (steps not reachable from the entry are left out)."""
        steps = {s.id: s for s in self.steps}
        order: list[Step] = []
        pending = [self.entry.id]
        while pending:
            step = steps[pending.pop()]
            order.append(step)
            children = [c for _, c in child_refs(step) if c is not None and c in steps]
            pending.extend(reversed(children))
        return order

    def send_steps(self) -> tuple[SendToDestinationsStep, ...]:
        """The send steps, in declared order."""
        return tuple(s for s in self.steps if isinstance(s, SendToDestinationsStep))


def relabel_steps(steps: tuple[Step, ...], ids: Mapping[str, str]) -> tuple[Step, ...]:
    """The same tree with the steps in ``ids`` given their new ids, references
    followed; a send step relabelled loses its key (a new one is generated)."""

    def ref(old: str | None) -> str | None:
        return None if old is None else ids.get(old, old)

    relabelled: list[Step] = []
    for step in steps:
        new: Step
        match step:
            case TrueFalseSplitStep():
                new = dataclasses.replace(
                    step, true_step_id=ref(step.true_step_id), false_step_id=ref(step.false_step_id)
                )
            case MultiBranchSplitStep():
                branches = tuple(
                    dataclasses.replace(b, next_step_id=ref(b.next_step_id)) for b in step.branches
                )
                new = dataclasses.replace(step, branches=branches)
            case SendToDestinationsStep() if step.id in ids:
                new = dataclasses.replace(step, key="", next_step_id=ref(step.next_step_id))
            case _:
                new = dataclasses.replace(step, next_step_id=ref(step.next_step_id))
        if step.id in ids:
            new = dataclasses.replace(new, id=ids[step.id])
        relabelled.append(new)
    return tuple(relabelled)
