"""Hypothesis strategies: type-correct condition trees and profile histories.

The vocabulary is small on purpose (two events, a few properties and traits,
windows of minutes and hours) so that random histories exercise the windows,
reducers and comparators densely.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from journeys_engine.clock import format_ms
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
    Op,
    Or,
    PathRef,
    Reducer,
    ReducerKind,
    Span,
    TimeUnit,
    TraitRef,
    Within,
)
from journeys_engine.conditions.parser import junction
from tests.helpers.reference_conditions import History, Identify, Track

BASE = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE

EVENTS = ("A", "B")
WORDS = ("x", "y", "xy", "zz", "10", "2.5")
numbers = st.integers(min_value=-3, max_value=12) | st.sampled_from([0.5, 2.5, 7.25])
words = st.sampled_from(WORDS)
dates = st.integers(min_value=-8 * HOUR, max_value=12 * HOUR).map(lambda d: format_ms(BASE + d))
spans = st.builds(
    Span,
    st.integers(min_value=1, max_value=4),
    st.sampled_from([TimeUnit.MINUTES, TimeUnit.HOURS]),
)


@st.composite
def windows(draw: st.DrawFn) -> Within | Between | None:
    kind = draw(st.sampled_from(["none", "within", "between"]))
    if kind == "none":
        return None
    if kind == "within":
        return Within(draw(spans))
    a, b = draw(spans), draw(spans)
    if a.ms == b.ms:
        b = Span(b.amount + 1, b.unit)
    return Between(a, b) if a.ms < b.ms else Between(b, a)


def _where() -> st.SearchStrategy[BoolNode]:
    leaf = st.one_of(
        st.builds(
            Comparison,
            st.just(PathRef("property", "p")),
            st.sampled_from([Op.GTE, Op.LT, Op.EQ, Op.NEQ]),
            numbers.map(Literal),
        ),
        st.builds(
            Comparison,
            st.just(PathRef("context", "c.src")),
            st.sampled_from([Op.EQ, Op.NEQ, Op.CONTAINS, Op.IS_SET]),
            words.map(Literal),
        ).map(lambda c: c if c.op is not Op.IS_SET else Comparison(c.left, c.op)),
        st.builds(
            Comparison, st.just(TraitRef("s")), st.sampled_from([Op.EQ, Op.NEQ]), words.map(Literal)
        ),
    )
    return st.one_of(leaf, st.builds(lambda a, b: Or((a, b)), leaf, leaf), leaf.map(Not))


@st.composite
def aggregates(draw: st.DrawFn) -> EventAggregate:
    where = tuple(draw(st.lists(_where(), max_size=1)))
    kind = draw(st.sampled_from(list(ReducerKind)))
    target = None
    min_count = None
    if kind is not ReducerKind.COUNT:
        path = draw(st.sampled_from(["p", "q", "d"]))
        target = PathRef("property", path)
    if kind is ReducerKind.MODE:
        min_count = draw(st.integers(min_value=1, max_value=2))
    return EventAggregate(
        draw(st.sampled_from(EVENTS)), where, (), draw(windows()), Reducer(kind, target, min_count)
    )


_NUMERIC = (ReducerKind.COUNT, ReducerKind.SUM, ReducerKind.AVG, ReducerKind.UNIQUE_COUNT)
_SPAN_OPS = (Op.WITHIN_LAST, Op.BEFORE_LAST, Op.WITHIN_NEXT, Op.AFTER_NEXT)


@st.composite
def comparisons(draw: st.DrawFn, left: Any) -> Comparison:
    numeric = isinstance(left, EventAggregate) and left.reducer.kind in _NUMERIC
    if numeric:
        op = draw(st.sampled_from([Op.EQ, Op.NEQ, Op.GT, Op.GTE, Op.LT, Op.LTE, Op.ONE_OF]))
        if op is Op.ONE_OF:
            values = draw(st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=3))
            return Comparison(left, op, tuple(Literal(v) for v in values))
        return Comparison(left, op, Literal(draw(st.integers(min_value=0, max_value=5))))
    op = draw(st.sampled_from(list(Op)))
    if op in (Op.IS_NULL, Op.IS_SET):
        return Comparison(left, op)
    if op in _SPAN_OPS:
        return Comparison(left, op, draw(spans))
    if op in (Op.BEFORE_DATE, Op.AFTER_DATE):
        return Comparison(left, op, Literal(draw(dates)))
    if op in (Op.ONE_OF, Op.CONTAINS_ONE):
        mixed: list[Any] = draw(st.lists(st.one_of(numbers, words), min_size=1, max_size=3))
        return Comparison(left, op, tuple(Literal(v) for v in mixed))
    if op in (Op.CONTAINS, Op.OMITS, Op.STARTS_WITH, Op.ENDS_WITH):
        return Comparison(left, op, Literal(draw(words)))
    return Comparison(left, op, Literal(draw(numbers | words)))


@st.composite
def leaves(draw: st.DrawFn, with_refs: bool = False) -> BoolNode:
    choice = draw(st.sampled_from(["event", "event", "event", "trait", "ref"] if with_refs else
                                  ["event", "event", "event", "trait"]))  # fmt: skip
    if choice == "event":
        return draw(comparisons(draw(aggregates())))
    if choice == "trait":
        return draw(comparisons(TraitRef(draw(st.sampled_from(["t", "s", "when"])))))
    if draw(st.booleans()):
        return AudienceRef("aud")
    left = ComputedTraitRef("ct")
    op = draw(st.sampled_from([Op.GT, Op.LTE, Op.EQ, Op.IS_NULL]))
    return (
        Comparison(left, op) if op is Op.IS_NULL else Comparison(left, op, Literal(draw(numbers)))
    )


def conditions(with_refs: bool = False, max_leaves: int = 4) -> st.SearchStrategy[BoolNode]:
    """Random boolean condition trees."""
    return st.recursive(
        leaves(with_refs),
        lambda inner: st.one_of(
            # junction() splices nested AND into AND and OR into OR, as the parser does
            st.lists(inner, min_size=2, max_size=3).map(lambda items: junction(And, items)),
            st.lists(inner, min_size=2, max_size=3).map(lambda items: junction(Or, items)),
            inner.map(Not),
        ),
        max_leaves=max_leaves,
    )


def _property_value() -> st.SearchStrategy[Any]:
    return st.one_of(numbers, words, st.none())


@st.composite
def histories(draw: st.DrawFn, max_messages: int = 14) -> History:
    """Messages applied at increasing times; events may be late or slightly early."""
    applied = BASE
    messages: list[Track | Identify] = []
    for _ in range(draw(st.integers(min_value=0, max_value=max_messages))):
        applied += draw(st.integers(min_value=0, max_value=90 * MINUTE))
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            traits = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "t": st.one_of(numbers, words, st.none()),
                        "s": st.one_of(words, st.none()),
                        "when": st.one_of(dates, st.none()),
                    },
                )
            )
            messages.append(Identify(traits, applied))
            continue
        offset = draw(st.integers(min_value=-3 * HOUR, max_value=5 * MINUTE))
        properties = draw(
            st.fixed_dictionaries({}, optional={"p": _property_value(), "q": words, "d": dates})
        )
        context = draw(st.sampled_from([{}, {"c": {"src": "x"}}, {"c": {"src": "xy"}}]))
        name = draw(st.sampled_from(EVENTS))
        messages.append(Track(name, applied + offset, applied, properties, context))
    return History(messages)
