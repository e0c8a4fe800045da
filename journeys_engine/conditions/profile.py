"""A profile's condition state, and a space's live audiences and computed traits.

:class:`LeafIndex` knows which event leaves the space's conditions use, by event
name. :class:`ProfileConditions` is one profile's traits and leaf states, fed
by identify and track messages. :class:`SpaceConditions` holds a space's
audiences and computed traits in dependency order and refreshes one profile's
memberships and values at an instant, telling when to refresh again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from journeys_engine.conditions.ast import And, AudienceRef, BoolNode, EventAggregate, Not, Or
from journeys_engine.conditions.evaluator import (
    Definitions,
    evaluate,
    evaluate_scalar,
    leaf_specs,
    where_holds,
)
from journeys_engine.conditions.state import LeafSpec, LeafState, value_key
from journeys_engine.conditions.values import lookup

__all__ = [
    "EventRecord",
    "LeafIndex",
    "ProfileConditions",
    "Refresh",
    "SpaceConditions",
    "audience_order",
    "earliest",
]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A tracked event as conditions see it."""

    name: str
    timestamp: int
    properties: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)


def earliest(*instants: int | None) -> int | None:
    """The earliest of the instants that are set, or None."""
    found = [i for i in instants if i is not None]
    return min(found) if found else None


class LeafIndex:
    """The event leaves in use in a space, by event name, counted per user."""

    def __init__(self) -> None:
        self._by_event: dict[str, dict[LeafSpec, int]] = {}
        self._by_key: dict[str, LeafSpec] = {}

    def add(self, spec: LeafSpec) -> None:
        """Starts keeping state for ``spec`` (counted: add twice, discard twice)."""
        users = self._by_event.setdefault(spec.aggregate.event, {})
        users[spec] = users.get(spec, 0) + 1
        self._by_key[spec.key] = spec

    def discard(self, spec: LeafSpec) -> None:
        """Stops keeping state for ``spec`` once nothing uses it."""
        users = self._by_event.get(spec.aggregate.event, {})
        if spec in users:
            users[spec] -= 1
            if not users[spec]:
                del users[spec]
                del self._by_key[spec.key]

    def add_condition(self, node: BoolNode, since: int | None) -> list[LeafSpec]:
        """Registers every event leaf of a condition; returns them for :meth:`discard`."""
        specs = list(leaf_specs(node, since))
        for spec in specs:
            self.add(spec)
        return specs

    def for_event(self, name: str) -> Iterable[LeafSpec]:
        """The leaves an event of this name feeds."""
        return self._by_event.get(name, {}).keys()

    def spec(self, key: str) -> LeafSpec | None:
        """The spec with this key, if it is in use."""
        return self._by_key.get(key)

    def specs(self) -> list[LeafSpec]:
        """Every spec in use."""
        return list(self._by_key.values())


class ProfileConditions:
    """One profile's traits and leaf states.

    Attributes:
        traits: The profile's traits, merged from identify calls.
        states: Leaf states by :attr:`LeafSpec.key`.
        seq: How many events were applied (orders events of equal timestamps).
        audiences: Audience memberships as last refreshed.
        computed: Computed trait values as last refreshed.
    """

    __slots__ = ("audiences", "computed", "seq", "states", "traits")

    def __init__(self) -> None:
        self.traits: dict[str, Any] = {}
        self.states: dict[str, LeafState] = {}
        self.seq = 0
        self.audiences: dict[str, bool] = {}
        self.computed: dict[str, Any] = {}

    def leaf(self, spec: LeafSpec) -> LeafState | None:
        return self.states.get(spec.key)

    def identify(self, traits: Mapping[str, Any]) -> None:
        """Merges traits (a null value removes the trait)."""
        for name, value in traits.items():
            if value is None:
                self.traits.pop(name, None)
            else:
                self.traits[name] = value

    def track(self, event: EventRecord, now: int, index: LeafIndex) -> bool:
        """Feeds an event applied at ``now`` to every leaf it matches.

        ``where`` conditions are read now, with the traits as they are now, and
        their result is kept with the event. Returns whether any leaf kept it.
        """
        self.seq += 1
        return _feed(self.states, index.for_event(event.name), event, self.seq, self.traits, now)

    def rebuild(
        self, specs: Iterable[LeafSpec], history: Iterable[tuple[int, EventRecord]], now: int
    ) -> bool:
        """Replaces the states of ``specs`` with states built from the profile's
        history as of ``now``: ``(position, event)`` pairs in log order.

        ``where`` conditions read the traits as they are now. Historical events
        are ordered before every event applied later (their sequence numbers are
        below any the profile gives). Returns whether any state is left.
        """
        by_event: dict[str, list[LeafSpec]] = {}
        for spec in specs:
            by_event.setdefault(spec.aggregate.event, []).append(spec)
            self.states.pop(spec.key, None)
        kept = False
        for position, event in history:
            found = by_event.get(event.name)
            if found and _feed(
                self.states, found, event, position - _HISTORY_SEQ, self.traits, now
            ):
                kept = True
        return kept

    def settle(self, now: int) -> None:
        """Lets every leaf drop what can no longer matter as of ``now``."""
        for state in self.states.values():
            state.settle(now)

    def forget(self, index: LeafIndex) -> None:
        """Drops the states of leaves no longer in use."""
        for key in [k for k in self.states if index.spec(k) is None]:
            del self.states[key]

    def to_data(self) -> dict[str, Any]:
        """Plain data for a snapshot."""
        return {
            "traits": self.traits,
            "seq": self.seq,
            "states": {key: state.to_data() for key, state in self.states.items()},
            "audiences": self.audiences,
            "computed": self.computed,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any], index: LeafIndex) -> ProfileConditions:
        """The profile :meth:`to_data` described; states of leaves not in use are dropped."""
        profile = cls()
        profile.traits = dict(data["traits"])
        profile.seq = int(data["seq"])
        for key, state in data["states"].items():
            spec = index.spec(key)
            if spec is not None:
                profile.states[key] = LeafState.from_data(spec, state)
        profile.audiences = dict(data["audiences"])
        profile.computed = dict(data["computed"])
        return profile


_HISTORY_SEQ = 2**62  # historical events' sequence numbers: position - this (< 0)


def _feed(
    states: dict[str, LeafState],
    specs: Iterable[LeafSpec],
    event: EventRecord,
    seq: int,
    traits: Mapping[str, Any],
    now: int,
) -> bool:
    """Adds an event to the states of the leaves it matches; whether any kept it."""
    kept = False
    passed: dict[EventAggregate, bool] = {}
    for spec in specs:
        aggregate = spec.aggregate
        ok = passed.get(aggregate)
        if ok is None:
            ok = all(
                where_holds(w, event.properties, event.context, traits, now)
                for w in aggregate.where
            )
            passed[aggregate] = ok
        if not ok:
            continue
        target = aggregate.reducer.target
        raw = None
        if target is not None:
            source = event.properties if target.source == "property" else event.context
            raw = lookup(source, target.path)
        state = states.get(spec.key)
        if state is None:
            state = LeafState(spec)
            if not state.add(event.timestamp, seq, raw, now):
                continue
            states[spec.key] = state
            kept = True
        elif state.add(event.timestamp, seq, raw, now):
            kept = True
    return kept


@dataclass(frozen=True, slots=True)
class Refresh:
    """What a refresh changed, and when to refresh again."""

    audiences: dict[str, bool]
    computed: dict[str, Any]
    recheck_at: int | None


def audience_order(audiences: Mapping[str, BoolNode]) -> list[str]:
    """Audience ids, each after the audiences it names (the catalog refuses cycles)."""
    order: list[str] = []
    done: set[str] = set()

    def visit(audience_id: str, path: tuple[str, ...]) -> None:
        if audience_id in done or audience_id in path or audience_id not in audiences:
            return
        for ref in _audience_refs(audiences[audience_id]):
            visit(ref, (*path, audience_id))
        done.add(audience_id)
        order.append(audience_id)

    for audience_id in sorted(audiences):
        visit(audience_id, ())
    return order


def _audience_refs(node: BoolNode) -> Iterable[str]:
    match node:
        case And() | Or():
            for item in node.items:
                yield from _audience_refs(item)
        case Not():
            yield from _audience_refs(node.item)
        case AudienceRef():
            yield node.id


class SpaceConditions:
    """A space's audiences and computed traits, and the leaves they use."""

    def __init__(
        self,
        audiences: Mapping[str, BoolNode] | None = None,
        computed_traits: Mapping[str, EventAggregate] | None = None,
    ) -> None:
        self.index = LeafIndex()
        self.definitions = Definitions(dict(audiences or {}), dict(computed_traits or {}))
        self.order = audience_order(self.definitions.audiences)
        for aggregate in self.definitions.computed_traits.values():
            self.index.add(LeafSpec(aggregate))
        for condition in self.definitions.audiences.values():
            self.index.add_condition(condition, None)

    def refresh(self, profile: ProfileConditions, now: int) -> Refresh:
        """Recomputes the profile's computed traits, then its audiences in dependency order.

        Returns what changed and the earliest instant any of them may change
        again without new data.
        """
        recheck: int | None = None
        changed_values: dict[str, Any] = {}
        for trait_id, aggregate in self.definitions.computed_traits.items():
            value, at = evaluate_scalar(aggregate, profile, now)
            recheck = earliest(recheck, at)
            # Type-strict: 1 and true are different values to a condition.
            if trait_id not in profile.computed or value_key(profile.computed[trait_id]) != (
                value_key(value)
            ):
                changed_values[trait_id] = value
                profile.computed[trait_id] = value
        changed_members: dict[str, bool] = {}
        for audience_id in self.order:
            member, at = evaluate(
                self.definitions.audiences[audience_id], profile, self.definitions, now
            )
            recheck = earliest(recheck, at)
            if profile.audiences.get(audience_id, False) != member:
                changed_members[audience_id] = member
            profile.audiences[audience_id] = member
        return Refresh(changed_members, changed_values, recheck)
