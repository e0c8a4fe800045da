"""The incremental evaluator against a brute-force rescan of the whole history."""

from __future__ import annotations

import json

from hypothesis import given, note
from hypothesis import strategies as st

from journeys_engine.conditions import (
    BoolNode,
    Definitions,
    EventAggregate,
    EventRecord,
    LeafIndex,
    ProfileConditions,
    evaluate,
    parse_condition,
    parse_expression,
    print_condition,
)
from journeys_engine.conditions.ast import Comparison
from journeys_engine.conditions.state import LeafSpec
from journeys_engine.conditions.values import as_date
from tests.helpers.condition_strategies import BASE, HOUR, aggregates, conditions, histories
from tests.helpers.reference_conditions import (
    History,
    Identify,
    Track,
    candidate_instants,
    spans_and_paths,
    value_of,
)

AUDIENCE = parse_condition("event('A').within(2 hours).count() >= 2 OR trait('s') = 'x'")
COMPUTED = parse_expression("event('B').within(3 hours).sum(property('p'))")
DEFINITIONS = Definitions({"aud": AUDIENCE}, {"ct": COMPUTED})


def _index(node: BoolNode, since: int | None) -> LeafIndex:
    index = LeafIndex()
    index.add_condition(node, since)
    index.add_condition(AUDIENCE, None)
    index.add(LeafSpec(COMPUTED))
    return index


def _feed(history: History, node: BoolNode, since: int | None) -> ProfileConditions:
    index = _index(node, since)
    profile = ProfileConditions()
    for message in history.messages:
        if isinstance(message, Identify):
            profile.identify(message.traits)
        else:
            event = EventRecord(
                message.name, message.timestamp, message.properties, message.context
            )
            profile.track(event, message.applied, index)
    return profile


def _dates(history: History) -> list[int]:
    found = []
    for message in history.messages:
        values = (
            message.traits.values()
            if isinstance(message, Identify)
            else (message.properties.values())
        )
        found += [d for d in (as_date(v) for v in values) if d is not None]
    return found


@given(
    conditions(with_refs=True),
    histories(),
    st.integers(min_value=0, max_value=8 * HOUR),
    st.sampled_from([None, BASE + HOUR]),
)
def test_incremental_equals_brute_force_and_rechecks_are_never_late(
    node: BoolNode, history: History, after: int, since: int | None
) -> None:
    note(print_condition(node))
    last = max((m.applied for m in history.messages), default=BASE)
    now = last + after
    profile = _feed(history, node, since)
    value, recheck = evaluate(node, profile, DEFINITIONS, now, since)

    def brute(at: int) -> bool:
        return value_of(
            node, history, at, since, DEFINITIONS.audiences, DEFINITIONS.computed_traits
        )

    assert value == brute(now)
    spans = spans_and_paths(node) + spans_and_paths(AUDIENCE) + [3 * HOUR, 2 * HOUR]
    instants = sorted(i for i in candidate_instants(history, spans, _dates(history)) if i > now)
    for instant in instants:
        if recheck is None or instant < recheck:
            assert brute(instant) == value, f"changed at {instant}, before the re-check {recheck}"
    # Evaluating later without new data agrees with the rescan at every instant
    # where anything could change (windows' edges, dates crossing now).
    for instant in instants[:: max(1, len(instants) // 60)]:
        assert evaluate(node, profile, DEFINITIONS, instant, since)[0] == brute(instant), instant
    if recheck is not None:
        assert recheck > now
        if isinstance(node, Comparison):
            assert brute(recheck) != value, "a leaf's re-check is exact"
    else:
        later = [i for i in candidate_instants(history, spans, _dates(history)) if i > now]
        for instant in later:
            assert brute(instant) == value, f"changed at {instant} with no re-check"


@given(conditions(with_refs=True), histories(), st.integers(min_value=0, max_value=4 * HOUR))
def test_snapshot_restore_changes_nothing(node: BoolNode, history: History, after: int) -> None:
    profile = _feed(history, node, None)
    index = _index(node, None)
    data = json.loads(json.dumps(profile.to_data()))
    restored = ProfileConditions.from_data(data, index)
    last = max((m.applied for m in history.messages), default=BASE)
    now = last + after
    assert evaluate(node, restored, DEFINITIONS, now) == evaluate(node, profile, DEFINITIONS, now)
    assert restored.to_data() == data


@given(aggregates(), histories())
def test_state_stays_bounded(aggregate: EventAggregate, history: History) -> None:
    """Only events that can still be visible are kept (windows), or a settled summary."""
    index = LeafIndex()
    spec = LeafSpec(aggregate)
    index.add(spec)
    profile = ProfileConditions()
    for message in history.messages:
        if isinstance(message, Track):
            profile.track(
                EventRecord(message.name, message.timestamp, message.properties, message.context),
                message.applied,
                index,
            )
    last = max((m.applied for m in history.messages), default=BASE)
    profile.settle(last)
    state = profile.leaf(spec)
    if state is None:
        return
    d1, d2 = spec.offsets
    for ts, _, _ in state.items:
        if d2 is not None:
            assert ts + d2 > last, "an event that can never be visible again was kept"
        else:
            assert ts + d1 > last, "a settled event was kept outside the summary"
