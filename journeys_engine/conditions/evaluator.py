"""Time-aware evaluation: a condition's value now and when to look again (SPEC §2).

:func:`evaluate` returns ``(value, recheck_at)``. For a single leaf,
``recheck_at`` is exactly the first instant after ``now`` at which the leaf's
value changes if no new data arrives (None if it never does): the leaf's
value is walked forward through every instant its events enter or leave the
window, and relative date comparators add the instant they cross. For ``AND``
/ ``OR`` / ``NOT`` it is the earliest of the children's instants — possibly
earlier than the composite's own change, never later — except that a child
that settles the composite for good (a false that never changes under
``AND``, a true under ``OR``) settles it with no re-check.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from journeys_engine.conditions.ast import (
    And,
    AudienceRef,
    BoolNode,
    Comparison,
    ComputedTraitRef,
    EventAggregate,
    Literal,
    Not,
    Op,
    Or,
    PathRef,
    ReducerKind,
    Span,
    TraitRef,
    Within,
)
from journeys_engine.conditions.state import LeafSpec, LeafState, empty_value
from journeys_engine.conditions.values import as_number, compare, lookup, next_flip

__all__ = [
    "Definitions",
    "Evaluation",
    "ProfileData",
    "evaluate",
    "evaluate_scalar",
    "leaf_specs",
    "leaf_spec",
    "where_holds",
]


class ProfileData(Protocol):
    """What evaluation reads of a profile."""

    @property
    def traits(self) -> Mapping[str, Any]: ...

    def leaf(self, spec: LeafSpec) -> LeafState | None:
        """The state of a leaf, or None when no matching event was ever kept."""
        ...


@dataclass(frozen=True, slots=True)
class Definitions:
    """A space's audiences and computed traits, as checked trees."""

    audiences: Mapping[str, BoolNode] = field(default_factory=dict)
    computed_traits: Mapping[str, EventAggregate] = field(default_factory=dict)


Evaluation = tuple[bool, int | None]


@lru_cache(maxsize=65_536)
def leaf_spec(comparison: Comparison, since: int | None) -> LeafSpec | None:
    """The state a comparison on an event stream needs (None for other comparisons).

    A count compared with ``N`` inside ``within`` keeps at most ``floor(N) + 1``
    timestamps: the comparison cannot tell more apart.
    """
    left = comparison.left
    if not isinstance(left, EventAggregate):
        return None
    k = None
    if left.reducer.kind is ReducerKind.COUNT and isinstance(left.window, Within):
        k = _count_cap(comparison)
    return LeafSpec(left, since, k)


def _count_cap(comparison: Comparison) -> int | None:
    arg = comparison.arg
    literals = arg if isinstance(arg, tuple) else (arg,) if isinstance(arg, Literal) else ()
    numbers = [as_number(lit.value) for lit in literals]
    if not numbers or any(n is None for n in numbers):
        return None
    return max(0, math.floor(max(n for n in numbers if n is not None)) + 1)


def leaf_specs(node: BoolNode, since: int | None) -> Iterator[LeafSpec]:
    """Every event leaf state ``node`` reads at ``since`` (not those of audiences it names)."""
    match node:
        case And() | Or():
            for item in node.items:
                yield from leaf_specs(item, since)
        case Not():
            yield from leaf_specs(node.item, since)
        case Comparison():
            spec = leaf_spec(node, since)
            if spec is not None:
                yield spec


def where_holds(
    condition: BoolNode, properties: Mapping[str, Any], context: Mapping[str, Any],
    traits: Mapping[str, Any], now: int,
) -> bool:  # fmt: skip
    """Whether an event passes a ``where`` condition, read as the event is applied."""
    match condition:
        case And():
            return all(where_holds(i, properties, context, traits, now) for i in condition.items)
        case Or():
            return any(where_holds(i, properties, context, traits, now) for i in condition.items)
        case Not():
            return not where_holds(condition.item, properties, context, traits, now)
        case Comparison():
            value = _event_scalar(condition.left, properties, context, traits)
            return compare(value, condition.op, _arg(condition, properties, context, traits), now)
    return False


def _event_scalar(
    node: object, properties: Mapping[str, Any], context: Mapping[str, Any],
    traits: Mapping[str, Any],
) -> Any:  # fmt: skip
    match node:
        case PathRef():
            return lookup(properties if node.source == "property" else context, node.path)
        case TraitRef():
            return lookup(traits, node.name)
        case Literal():
            return node.value
    return None


def _arg(
    comparison: Comparison, properties: Mapping[str, Any], context: Mapping[str, Any],
    traits: Mapping[str, Any],
) -> Any:  # fmt: skip
    arg = comparison.arg
    if isinstance(arg, Span):
        return arg.ms
    if isinstance(arg, tuple):
        return tuple(item.value for item in arg)
    return _event_scalar(arg, properties, context, traits)


def evaluate(
    node: BoolNode,
    profile: ProfileData,
    definitions: Definitions,
    now: int,
    since: int | None = None,
) -> Evaluation:
    """The value of ``node`` for ``profile`` at ``now`` and the instant to re-check it.

    Args:
        node: The condition.
        profile: The profile's traits and leaf states.
        definitions: Audiences and computed traits the condition may name.
        now: The engine's current time, ms.
        since: Event leaves see only events timestamped at or after this (a
            journey's publish time); None for all retained history. Audience and
            computed-trait leaves always see all retained history.
    """
    return _Evaluator(profile, definitions).node(node, now, since)


def evaluate_scalar(
    aggregate: EventAggregate, profile: ProfileData, now: int
) -> tuple[Any, int | None]:
    """A computed trait's value at ``now`` and the first later instant it changes."""
    changes = _timeline(profile.leaf(LeafSpec(aggregate)), aggregate, now)
    _, first = next(changes)
    for at, value in changes:
        if value != first:
            return first, at
    return first, None


class _Evaluator:
    def __init__(self, profile: ProfileData, definitions: Definitions) -> None:
        self.profile = profile
        self.definitions = definitions
        self.audiences: dict[str, Evaluation] = {}
        self.visiting: set[str] = set()

    def node(self, node: BoolNode, now: int, since: int | None) -> Evaluation:
        match node:
            case And():
                return self.junction(node.items, now, since, settle_on=False)
            case Or():
                return self.junction(node.items, now, since, settle_on=True)
            case Not():
                value, recheck = self.node(node.item, now, since)
                return not value, recheck
            case AudienceRef():
                return self.audience(node.id, now)
            case Comparison():
                return self.comparison(node, now, since)

    def junction(
        self, items: tuple[BoolNode, ...], now: int, since: int | None, *, settle_on: bool
    ) -> Evaluation:
        """AND (``settle_on=False``) or OR (``settle_on=True``)."""
        result = not settle_on
        recheck: int | None = None
        for item in items:
            value, at = self.node(item, now, since)
            if value is settle_on:
                if at is None:
                    return settle_on, None
                result = settle_on
            if at is not None and (recheck is None or at < recheck):
                recheck = at
        return result, recheck

    def audience(self, audience_id: str, now: int) -> Evaluation:
        if audience_id in self.audiences:
            return self.audiences[audience_id]
        condition = self.definitions.audiences.get(audience_id)
        if condition is None or audience_id in self.visiting:
            return False, None
        self.visiting.add(audience_id)
        result = self.node(condition, now, None)
        self.visiting.discard(audience_id)
        self.audiences[audience_id] = result
        return result

    def comparison(self, node: Comparison, now: int, since: int | None) -> Evaluation:
        left = node.left
        if isinstance(left, EventAggregate):
            spec = leaf_spec(node, since)
            assert spec is not None
            changes = _timeline(self.profile.leaf(spec), left, now)
        elif isinstance(left, ComputedTraitRef):
            aggregate = self.definitions.computed_traits.get(left.id)
            if aggregate is None:
                changes = iter(((now, None),))
            else:
                changes = _timeline(self.profile.leaf(LeafSpec(aggregate)), aggregate, now)
        else:
            value = (
                lookup(self.profile.traits, left.name)
                if isinstance(left, TraitRef)
                else (left.value if isinstance(left, Literal) else None)
            )
            changes = iter(((now, value),))
        arg = _arg(node, {}, {}, self.profile.traits)
        return _walk(changes, node.op, arg)


def _timeline(
    state: LeafState | None, aggregate: EventAggregate, now: int
) -> Iterator[tuple[int, Any]]:
    if state is None:
        return iter(((now, empty_value(aggregate)),))
    return state.changes(now)


def _walk(changes: Iterator[tuple[int, Any]], op: Op, arg: Any) -> Evaluation:
    """The comparison's value at the first instant, and the first instant it differs.

    ``changes`` yields (instant, value) with the value constant until the next
    instant; between two instants only a relative date comparator can flip.
    """
    start, value = next(changes)
    truth = compare(value, op, arg, start)
    at = start
    for following, next_value in changes:
        flip = next_flip(value, op, arg, at)
        if flip is not None and flip < following:
            return truth, flip
        at, value = following, next_value
        if compare(value, op, arg, at) != truth:
            return truth, at
    return truth, next_flip(value, op, arg, at)
