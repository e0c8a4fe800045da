"""A journey as the runtime runs it: its tree and conditions worked out once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from journeys_engine.conditions.ast import (
    And,
    AudienceRef,
    BoolNode,
    Comparison,
    ComputedTraitRef,
    EventAggregate,
    Not,
    Or,
)
from journeys_engine.conditions.parser import parse_condition
from journeys_engine.conditions.profile import LeafIndex
from journeys_engine.conditions.state import LeafSpec
from journeys_engine.model.journey import (
    Journey,
    JourneyStatus,
    MultiBranchSplitStep,
    Step,
    TrueFalseSplitStep,
    WaitConditionStep,
)

__all__ = ["LiveJourney"]

_UNLIMITED = 1_000_000


def _tree(text: str) -> BoolNode:
    return parse_condition(text, max_leaves=_UNLIMITED)


@dataclass(eq=False)
class LiveJourney:
    """A published, paused or archived journey, compiled for the runtime.

    Attributes:
        journey: The stored journey.
        since: Later steps see events at or after this (the publish time).
        entry_since: The entry's lower bound: ``since``, or None with historical data.
        steps: Each step by id.
        order: Each step id's position in a depth-first walk of the tree, children
            and branches in declared order: waits are looked at in this order.
        entry: The entry condition.
        exit_condition: The exit condition, if any.
        conditions: Conditions of wait_condition and true/false steps, by step id.
        branches: Branch conditions of multi-branch steps, by step id.
        event_names: Events any of its conditions counts.
        audiences: Audiences its conditions name.
        computed_traits: Computed traits its conditions name.
        specs: Leaf states it registered in the space's index.
    """

    journey: Journey
    since: int
    entry_since: int | None
    steps: dict[str, Step] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    entry: BoolNode | None = None
    exit_condition: BoolNode | None = None
    conditions: dict[str, BoolNode] = field(default_factory=dict)
    branches: dict[str, tuple[BoolNode, ...]] = field(default_factory=dict)
    event_names: frozenset[str] = frozenset()
    audiences: frozenset[str] = frozenset()
    computed_traits: frozenset[str] = frozenset()
    specs: list[LeafSpec] = field(default_factory=list)

    @classmethod
    def compile(cls, journey: Journey) -> LiveJourney:
        """Works out the tree order and parses every condition (already checked)."""
        assert journey.publish_time_ms is not None
        entry_step = journey.entry
        live = cls(
            journey,
            since=journey.publish_time_ms,
            entry_since=None if entry_step.use_historical_data else journey.publish_time_ms,
        )
        live.steps = {s.id: s for s in journey.steps}
        live.order = {step.id: i for i, step in enumerate(journey.tree_order())}
        live.entry = _tree(entry_step.condition.text)
        if journey.settings.exit_condition is not None:
            live.exit_condition = _tree(journey.settings.exit_condition.text)
        for step in journey.steps:
            if isinstance(step, WaitConditionStep | TrueFalseSplitStep):
                live.conditions[step.id] = _tree(step.condition.text)
            elif isinstance(step, MultiBranchSplitStep):
                live.branches[step.id] = tuple(_tree(b.condition.text) for b in step.branches)
        names: set[str] = set()
        audiences: set[str] = set()
        traits: set[str] = set()
        for tree in live.all_conditions():
            for node in _leaves(tree):
                if isinstance(node, AudienceRef):
                    audiences.add(node.id)
                elif isinstance(node.left, EventAggregate):
                    names.add(node.left.event)
                elif isinstance(node.left, ComputedTraitRef):
                    traits.add(node.left.id)
        live.event_names = frozenset(names)
        live.audiences = frozenset(audiences)
        live.computed_traits = frozenset(traits)
        return live

    @property
    def id(self) -> str:
        return self.journey.id

    @property
    def status(self) -> JourneyStatus:
        return self.journey.status

    def step(self, step_id: str) -> Step:
        return self.steps[step_id]

    def all_conditions(self) -> Iterator[BoolNode]:
        """Every condition of the journey, entry first."""
        if self.entry is not None:
            yield self.entry
        if self.exit_condition is not None:
            yield self.exit_condition
        yield from self.conditions.values()
        for branches in self.branches.values():
            yield from branches

    def register(self, index: LeafIndex) -> None:
        """Adds its event leaves to the space's index (entry at ``entry_since``)."""
        self.specs = []
        if self.entry is not None:
            self.specs += index.add_condition(self.entry, self.entry_since)
        for tree in self.all_conditions():
            if tree is not self.entry:
                self.specs += index.add_condition(tree, self.since)

    def unregister(self, index: LeafIndex) -> None:
        """Removes its event leaves from the index."""
        for spec in self.specs:
            index.discard(spec)
        self.specs = []

    def is_relevant(self, event: str | None, audiences: set[str], traits: set[str]) -> bool:
        """Whether an event or changed audiences / computed traits can change a condition."""
        return (
            (event is not None and event in self.event_names)
            or not self.audiences.isdisjoint(audiences)
            or not self.computed_traits.isdisjoint(traits)
        )


def _leaves(node: BoolNode) -> Iterator[Comparison | AudienceRef]:
    match node:
        case And() | Or():
            for item in node.items:
                yield from _leaves(item)
        case Not():
            yield from _leaves(node.item)
        case Comparison() | AudienceRef():
            yield node
