"""A late event (an older timestamp, applied later) counts by its own time in every
reducer, also once events are folded into a leaf's summary."""

from __future__ import annotations

import pytest

from journeys_engine.conditions.parser import parse_expression
from journeys_engine.conditions.state import LeafSpec, LeafState
from tests.helpers.reference_conditions import History, Track, reduce

NOW = 100

# (timestamp, value) applied in this order, all at NOW: later ones are older.
LATE = [(20, "X"), (15, "Y"), (3, "Y"), (2, "X"), (30, "Z"), (1, "W")]


@pytest.mark.parametrize(
    "expression",
    [
        "event('E').first(property('v'))",
        "event('E').last(property('v'))",
        "event('E').mode(property('v'), 1)",
        "event('E').mode(property('v'), 2)",
        "event('E').unique(property('v')).count()",
    ],
)
def test_a_summary_folds_late_events_by_their_time(expression: str) -> None:
    aggregate = parse_expression(expression)
    state = LeafState(LeafSpec(aggregate))
    history = []
    for seq, (ts, value) in enumerate(LATE, 1):
        state.add(ts, seq, value, NOW)
        history.append(Track("E", ts, NOW, {"v": value}))
        assert state.value(NOW) == reduce(aggregate, History(list(history)), NOW, None), history


def test_first_and_last_follow_event_time() -> None:
    first = LeafState(LeafSpec(parse_expression("event('E').first(property('v'))")))
    last = LeafState(LeafSpec(parse_expression("event('E').last(property('v'))")))
    for seq, (ts, value) in enumerate([(20, "late? no"), (5, "earliest"), (30, "latest")], 1):
        first.add(ts, seq, value, NOW)
        last.add(ts, seq, value, NOW)
    assert (first.value(NOW), last.value(NOW)) == ("earliest", "latest")
