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
from collections.abc import Callable, Iterator, Mapping
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
    "compiled",
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
    condition: BoolNode,
    properties: Mapping[str, Any],
    context: Mapping[str, Any],
    traits: Mapping[str, Any],
    now: int,
) -> bool:
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
    node: object,
    properties: Mapping[str, Any],
    context: Mapping[str, Any],
    traits: Mapping[str, Any],
) -> Any:
    match node:
        case PathRef():
            return lookup(properties if node.source == "property" else context, node.path)
        case TraitRef():
            return lookup(traits, node.name)
        case Literal():
            return node.value
    return None


def _arg(
    comparison: Comparison,
    properties: Mapping[str, Any],
    context: Mapping[str, Any],
    traits: Mapping[str, Any],
) -> Any:
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
    return compiled(node, since)(_Context(profile, definitions), now)


def evaluate_scalar(
    aggregate: EventAggregate, profile: ProfileData, now: int
) -> tuple[Any, int | None]:
    """A computed trait's value at ``now`` and the first later instant it changes."""
    changes = _timeline(profile.leaf(_full_history(aggregate)), aggregate, now)
    _, first = next(changes)
    for at, value in changes:
        if value != first:
            return first, at
    return first, None


_Fn = Callable[["_Context", int], Evaluation]


class _Context:
    """One evaluation: the profile, the definitions, audiences already evaluated."""

    __slots__ = ("audiences", "definitions", "profile", "visiting")

    def __init__(self, profile: ProfileData, definitions: Definitions) -> None:
        self.profile = profile
        self.definitions = definitions
        self.audiences: dict[str, Evaluation] = {}
        self.visiting: set[str] = set()

    def audience(self, audience_id: str, now: int) -> Evaluation:
        found = self.audiences.get(audience_id)
        if found is not None:
            return found
        condition = self.definitions.audiences.get(audience_id)
        if condition is None or audience_id in self.visiting:
            return False, None
        self.visiting.add(audience_id)
        result = compiled(condition, None)(self, now)
        self.visiting.discard(audience_id)
        self.audiences[audience_id] = result
        return result


@lru_cache(maxsize=8192)
def compiled(node: BoolNode, since: int | None) -> _Fn:
    """``node`` as a function of (context, now), with everything static worked out once."""
    match node:
        case And():
            return _junction(tuple(compiled(i, since) for i in node.items), settle_on=False)
        case Or():
            return _junction(tuple(compiled(i, since) for i in node.items), settle_on=True)
        case Not():
            inner = compiled(node.item, since)

            def negate(ctx: _Context, now: int) -> Evaluation:
                value, recheck = inner(ctx, now)
                return not value, recheck

            return negate
        case AudienceRef():
            audience_id = node.id
            return lambda ctx, now: ctx.audience(audience_id, now)
        case Comparison():
            return _comparison(node, since)


def _junction(items: tuple[_Fn, ...], *, settle_on: bool) -> _Fn:
    """AND (``settle_on=False``) or OR (``settle_on=True``)."""

    def junction(ctx: _Context, now: int) -> Evaluation:
        result = not settle_on
        recheck: int | None = None
        for item in items:
            value, at = item(ctx, now)
            if value is settle_on:
                if at is None:
                    return settle_on, None
                result = settle_on
            if at is not None and (recheck is None or at < recheck):
                recheck = at
        return result, recheck

    return junction


def _comparison(node: Comparison, since: int | None) -> _Fn:
    op = node.op
    arg = _arg(node, {}, {}, {})
    left = node.left
    if isinstance(left, EventAggregate):
        spec = leaf_spec(node, since)
        assert spec is not None
        empty = empty_value(left)

        def event_leaf(ctx: _Context, now: int) -> Evaluation:
            state = ctx.profile.leaf(spec)
            if state is None:
                return compare(empty, op, arg, now), next_flip(empty, op, arg, now)
            return _walk(state.changes(now), op, arg)

        return event_leaf
    if isinstance(left, ComputedTraitRef):
        trait_id = left.id

        def computed_leaf(ctx: _Context, now: int) -> Evaluation:
            aggregate = ctx.definitions.computed_traits.get(trait_id)
            if aggregate is None:
                return compare(None, op, arg, now), None
            state = ctx.profile.leaf(_full_history(aggregate))
            return _walk(_timeline(state, aggregate, now), op, arg)

        return computed_leaf
    if isinstance(left, TraitRef):
        name = left.name

        def trait_leaf(ctx: _Context, now: int) -> Evaluation:
            value = lookup(ctx.profile.traits, name)
            return compare(value, op, arg, now), next_flip(value, op, arg, now)

        return trait_leaf
    constant = left.value if isinstance(left, Literal) else None
    return lambda ctx, now: (
        compare(constant, op, arg, now),
        next_flip(constant, op, arg, now),
    )


@lru_cache(maxsize=4096)
def _full_history(aggregate: EventAggregate) -> LeafSpec:
    """The state of a computed trait: all retained history, no cap."""
    return LeafSpec(aggregate)


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
