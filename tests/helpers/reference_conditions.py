"""A brute-force condition evaluator: rescans the whole history at every question.

Obviously correct and slow by design: it is what the incremental evaluator is
checked against. It shares only the comparison semantics
(:mod:`journeys_engine.conditions.values`) with the engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from journeys_engine.conditions.ast import (
    And,
    AudienceRef,
    Between,
    BoolNode,
    Comparison,
    ComputedTraitRef,
    EventAggregate,
    Literal,
    Not,
    Or,
    ReducerKind,
    Span,
    TraitRef,
    Within,
)
from journeys_engine.conditions.evaluator import where_holds
from journeys_engine.conditions.values import as_number, compare, lookup


@dataclass(frozen=True)
class Track:
    """An event, applied at ``applied``."""

    name: str
    timestamp: int
    applied: int
    properties: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Identify:
    """A trait update, applied at ``applied``."""

    traits: Mapping[str, Any]
    applied: int


Message = Track | Identify


@dataclass
class History:
    """Every message of one profile, in applied order."""

    messages: list[Message]

    def traits(self, upto: int | None = None) -> dict[str, Any]:
        """Traits after the first ``upto`` messages (all when None)."""
        traits: dict[str, Any] = {}
        for message in self.messages[:upto]:
            if isinstance(message, Identify):
                for name, value in message.traits.items():
                    if value is None:
                        traits.pop(name, None)
                    else:
                        traits[name] = value
        return traits

    def matching(self, aggregate: EventAggregate) -> list[tuple[int, int, Track]]:
        """(ts, seq, event) of every event of the aggregate's name passing its where."""
        found = []
        seq = 0
        for i, message in enumerate(self.messages):
            if not isinstance(message, Track):
                continue
            seq += 1
            if message.name != aggregate.event:
                continue
            traits = self.traits(i)
            if all(
                where_holds(w, message.properties, message.context, traits, message.applied)
                for w in aggregate.where
            ):
                found.append((message.timestamp, seq, message))
        return found


def visible(ts: int, now: int, aggregate: EventAggregate) -> bool:
    """SPEC §2 windows, half-open; no window means all time up to now."""
    window = aggregate.window
    if isinstance(window, Within):
        return ts <= now < ts + window.span.ms
    if isinstance(window, Between):
        return ts + window.start.ms <= now < ts + window.end.ms
    return ts <= now


def reduce(aggregate: EventAggregate, history: History, now: int, since: int | None) -> Any:
    events = sorted(
        (ts, seq, event)
        for ts, seq, event in history.matching(aggregate)
        if (since is None or ts >= since) and visible(ts, now, aggregate)
    )
    reducer = aggregate.reducer
    if reducer.kind is ReducerKind.COUNT:
        return len(events)
    target = reducer.target
    assert target is not None
    values = []
    for _, _, event in events:
        source = event.properties if target.source == "property" else event.context
        value = lookup(source, target.path)
        if value is not None:
            values.append(value)
    numbers = [n for n in (as_number(v) for v in values) if n is not None]
    match reducer.kind:
        case ReducerKind.SUM:
            return sum(numbers)
        case ReducerKind.AVG:
            return sum(numbers) / len(numbers) if numbers else None
        case ReducerKind.MIN:
            return min(numbers) if numbers else None
        case ReducerKind.MAX:
            return max(numbers) if numbers else None
        case ReducerKind.FIRST:
            return values[0] if values else None
        case ReducerKind.LAST:
            return values[-1] if values else None
        case ReducerKind.UNIQUE_COUNT:
            return len({_key(v) for v in values})
        case ReducerKind.MODE:
            counts = Counter(_key(v) for v in values)
            latest = {_key(v): i for i, v in enumerate(values)}
            best = max(counts, key=lambda k: (counts[k], latest[k]), default=None)
            if best is None or counts[best] < (reducer.min_count or 1):
                return None
            return values[latest[best]]
    raise AssertionError(reducer.kind)


def _key(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", float(value))
    return (type(value).__name__, repr(value))


def value_of(
    node: BoolNode,
    history: History,
    now: int,
    since: int | None = None,
    audiences: Mapping[str, BoolNode] | None = None,
    computed: Mapping[str, EventAggregate] | None = None,
) -> bool:
    """The condition's value at ``now``, from the whole history."""
    audiences = audiences or {}
    computed = computed or {}
    match node:
        case And():
            return all(value_of(i, history, now, since, audiences, computed) for i in node.items)
        case Or():
            return any(value_of(i, history, now, since, audiences, computed) for i in node.items)
        case Not():
            return not value_of(node.item, history, now, since, audiences, computed)
        case AudienceRef():
            target = audiences.get(node.id)
            return target is not None and value_of(target, history, now, None, audiences, computed)
        case Comparison():
            left = node.left
            if isinstance(left, EventAggregate):
                value = reduce(left, history, now, since)
            elif isinstance(left, ComputedTraitRef):
                aggregate = computed.get(left.id)
                value = None if aggregate is None else reduce(aggregate, history, now, None)
            elif isinstance(left, TraitRef):
                value = lookup(history.traits(), left.name)
            else:
                assert isinstance(left, Literal)
                value = left.value
            arg = node.arg
            if isinstance(arg, Span):
                arg_value: Any = arg.ms
            elif isinstance(arg, tuple):
                arg_value = tuple(a.value for a in arg)
            elif isinstance(arg, Literal):
                arg_value = arg.value
            else:
                arg_value = None if arg is None else _unexpected(arg)
            return compare(value, node.op, arg_value, now)
    raise AssertionError(node)


def _unexpected(arg: object) -> Any:
    raise AssertionError(f"top-level comparison against {arg!r}")


def candidate_instants(history: History, spans: Sequence[int], dates: Sequence[int]) -> set[int]:
    """Every instant at which a brute-force value can change: event times and date
    values shifted by every span used, and one past each."""
    points = {m.timestamp for m in history.messages if isinstance(m, Track)} | set(dates)
    found: set[int] = set()
    for t in points:
        for s in (0, *spans):
            found.update((t + s, t - s, t + s + 1, t - s + 1))
    return found


def spans_and_paths(node: BoolNode, out: list[int] | None = None) -> list[int]:
    """Every span (ms) a condition uses: windows and relative date comparators."""
    out = [] if out is None else out
    match node:
        case And() | Or():
            for item in node.items:
                spans_and_paths(item, out)
        case Not():
            spans_and_paths(node.item, out)
        case Comparison():
            if isinstance(node.arg, Span):
                out.append(node.arg.ms)
            left = node.left
            if isinstance(left, EventAggregate):
                if isinstance(left.window, Within):
                    out.append(left.window.span.ms)
                elif isinstance(left.window, Between):
                    out += [left.window.start.ms, left.window.end.ms]
    return out


__all__ = [
    "History",
    "Identify",
    "Track",
    "candidate_instants",
    "reduce",
    "spans_and_paths",
    "value_of",
    "visible",
]
