"""Evaluation on hand-made histories: meanings, window edges, reducers, re-checks."""

from __future__ import annotations

from typing import Any

import pytest

from journeys_engine.clock import format_ms, parse_iso_ms
from journeys_engine.conditions import (
    BoolNode,
    Comparison,
    Definitions,
    EventRecord,
    LeafIndex,
    LeafSpec,
    ProfileConditions,
    SpaceConditions,
    evaluate,
    parse_condition,
    parse_expression,
)
from journeys_engine.conditions.evaluator import leaf_spec
from journeys_engine.model.limits import DAY_MS, HOUR_MS, MINUTE_MS

T0 = parse_iso_ms("2026-05-01T12:00:00Z")


class Profile:
    """A profile fed event by event for one condition."""

    def __init__(self, text: str, *, since: int | None = None, defs: Definitions | None = None):
        self.tree: BoolNode = parse_condition(text)
        self.since = since
        self.defs = defs or Definitions()
        self.index = LeafIndex()
        self.index.add_condition(self.tree, since)
        for condition in self.defs.audiences.values():
            self.index.add_condition(condition, None)
        for aggregate in self.defs.computed_traits.values():
            self.index.add(LeafSpec(aggregate))
        self.data = ProfileConditions()

    def track(
        self,
        name: str,
        ts: int,
        *,
        at: int | None = None,
        context: dict[str, Any] | None = None,
        **properties: Any,
    ) -> None:
        event = EventRecord(name, ts, properties, context or {})
        self.data.track(event, ts if at is None else at, self.index)

    def at(self, now: int) -> tuple[bool, int | None]:
        return evaluate(self.tree, self.data, self.defs, now, self.since)


def test_shoes_bought_over_100_in_the_last_7_days() -> None:
    p = Profile("event('Shoes Bought').where(property('price') >= 100).within(7 days).count() >= 1")
    p.track("Shoes Bought", T0, price=50)
    p.track("Shoes Bought", T0 + 1, price="120")  # a numeric string is a number
    p.track("Hat Bought", T0 + 2, price=500)
    assert p.at(T0 + 1) == (True, T0 + 1 + 7 * DAY_MS)
    assert p.at(T0 + 1 + 7 * DAY_MS) == (False, None)


def test_negation_of_a_conjunction() -> None:
    p = Profile("NOT ( event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200 )")
    assert p.at(T0) == (True, None)
    p.track("Shoes Bought", T0)
    assert p.at(T0)[0] is True
    p.data.identify({"total_spend": 250})
    assert p.at(T0) == (False, None)


def test_cart_abandoners() -> None:
    p = Profile(
        "event('Product Added').within(1 days).count() >= 1 AND "
        "event('Order Completed').within(1 days).count() = 0"
    )
    assert p.at(T0) == (False, None)
    p.track("Product Added", T0)
    assert p.at(T0) == (True, T0 + DAY_MS)
    p.track("Order Completed", T0 + HOUR_MS)
    assert p.at(T0 + HOUR_MS)[0] is False
    # After the order leaves the window the cart item has too: nothing to wait for.
    assert p.at(T0 + HOUR_MS + DAY_MS) == (False, None)


def test_low_recency_purchasers() -> None:
    p = Profile("event('Order Completed').within(180 days).count() = 0")
    assert p.at(T0) == (True, None), "zero times holds for a user who never did it"
    p.track("Order Completed", T0)
    assert p.at(T0) == (False, T0 + 180 * DAY_MS)
    assert p.at(T0 + 180 * DAY_MS) == (True, None)


def test_free_trial_and_campaign_context() -> None:
    free = Profile(
        "event('Subscription Started').where(property('Subscription Plan Type') = 'Free')"
        ".count() >= 1"
    )
    free.track("Subscription Started", T0, **{"Subscription Plan Type": "free"})  # type: ignore[arg-type]
    assert free.at(T0)[0] is False, "strings compare case-sensitively"
    free.track("Subscription Started", T0, **{"Subscription Plan Type": "Free"})  # type: ignore[arg-type]
    assert free.at(T0) == (True, None)
    ad = Profile(
        "event('Page Viewed').where(context('campaign.source') = 'facebook')"
        ".within(1 days).count() >= 1"
    )
    ad.track("Page Viewed", T0, context={"campaign": {"source": "google"}})
    ad.track("Page Viewed", T0 + 5, context={"campaign": {"source": "facebook"}})
    assert ad.at(T0 + 5) == (True, T0 + 5 + DAY_MS)


def test_high_value_split_reads_traits_and_computed_traits() -> None:
    clv = parse_expression("event('Order Completed').sum(property('revenue'))")
    p = Profile(
        "trait('Customer Lifetime Value') > 100 OR computed_trait('clv') > 100",
        defs=Definitions(computed_traits={"clv": clv}),
    )
    p.track("Order Completed", T0, revenue=60)
    assert p.at(T0)[0] is False
    p.track("Order Completed", T0 + 1, revenue="45.5")
    assert p.at(T0 + 1) == (True, None)


def test_last_seen_within_the_last_week() -> None:
    p = Profile("trait('last_seen').within_last(7 days)")
    p.data.identify({"last_seen": format_ms(T0)})
    assert p.at(T0 - 1) == (False, T0), "a date in the future enters the range when it is reached"
    assert p.at(T0) == (True, T0 + 7 * DAY_MS + 1)
    assert p.at(T0 + 7 * DAY_MS) == (True, T0 + 7 * DAY_MS + 1)
    assert p.at(T0 + 7 * DAY_MS + 1) == (False, None)
    p.data.identify({"last_seen": "not a date"})
    assert p.at(T0) == (False, None)


@pytest.mark.parametrize(
    ("offset", "inside"),
    [(0, True), (-1, False), (1, True), (DAY_MS - 1, True), (DAY_MS, False)],
)
def test_within_is_half_open(offset: int, inside: bool) -> None:
    """An event at ts is in within(D) iff ts <= now < ts + D."""
    p = Profile("event('A').within(1 days).count() >= 1")
    p.track("A", T0, at=T0 - 10)
    assert p.at(T0 + offset)[0] is inside


@pytest.mark.parametrize(
    ("offset", "inside"),
    [
        (HOUR_MS - 1, False),
        (HOUR_MS, True),
        (3 * HOUR_MS - 1, True),
        (3 * HOUR_MS, False),
    ],
)
def test_between_is_half_open(offset: int, inside: bool) -> None:
    """An event at ts is in between(D1, D2) iff ts + D1 <= now < ts + D2."""
    p = Profile("event('A').between(1 hours, 3 hours).count() >= 1")
    p.track("A", T0)
    value, recheck = p.at(T0 + offset)
    assert value is inside
    assert recheck == (T0 + 3 * HOUR_MS if inside else T0 + HOUR_MS if offset < HOUR_MS else None)


def test_an_event_timestamped_ahead_counts_from_its_own_time() -> None:
    p = Profile("event('A').count() >= 1")
    p.track("A", T0 + 2 * MINUTE_MS, at=T0)  # the sender's clock runs ahead
    assert p.at(T0) == (False, T0 + 2 * MINUTE_MS)
    assert p.at(T0 + 2 * MINUTE_MS) == (True, None)


def test_late_events_count_by_their_own_timestamp() -> None:
    p = Profile("event('A').within(2 hours).count() >= 2")
    p.track("A", T0)
    p.track("A", T0 - 3 * HOUR_MS, at=T0)  # too old for the window
    assert p.at(T0)[0] is False
    p.track("A", T0 - HOUR_MS, at=T0)  # late but inside
    assert p.at(T0) == (True, T0 - HOUR_MS + 2 * HOUR_MS)


def test_since_hides_earlier_events_from_event_leaves_only() -> None:
    audience = parse_condition("event('A').count() >= 1")
    p = Profile(
        "event('A').count() >= 1 OR audience('did-a')",
        since=T0,
        defs=Definitions(audiences={"did-a": audience}),
    )
    p.track("A", T0 - 1)
    tree = parse_condition("event('A').count() >= 1")
    assert evaluate(tree, p.data, p.defs, T0, T0) == (False, None)
    assert p.at(T0)[0] is True, "the audience sees all retained history"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("trait('missing') = 'x'", False),
        ("trait('missing') != 'x'", True),
        ("trait('missing').is_null()", True),
        ("trait('missing').is_set()", False),
        ("trait('missing').omits('x')", True),
        ("trait('missing').contains('x')", False),
        ("trait('missing') < 3", False),
        ("trait('missing').one_of(['x'])", False),
        ("trait('n') = 5", True),
        ("trait('n') = '5'", True),
        ("trait('n') >= '4.5'", True),
        ("trait('s') = 'Pro'", False),
        ("trait('s') > 'pa'", True),
        ("trait('s') > 3", False),
        ("trait('zip').starts_with('90')", True),
        ("trait('s').contains_one(['x', 'ro'])", True),
        ("trait('vip') = true", True),
        ("trait('vip') = 1", False),
        ("trait('nested') = 'x'", False),
        ("trait('date').before_date('2026-02-01')", True),
        ("trait('date').after_date('2026-02-01T00:00:00Z')", False),
    ],
)
def test_comparisons_on_traits(condition: str, expected: bool) -> None:
    p = Profile(condition)
    p.data.identify(
        {
            "n": "5",
            "s": "pro",
            "zip": 90210,
            "vip": True,
            "nested": {"a": 1},
            "date": "2026-01-15T10:00:00Z",
        }
    )
    assert p.at(T0)[0] is expected


EVENTS: list[tuple[int, dict[str, Any]]] = [
    (T0, {"p": 3, "q": "x"}),
    (T0 + 1, {"p": "7", "q": "y"}),
    (T0 + 2, {"q": "x"}),
    (T0 + 3, {"p": -2, "q": "x"}),
    (T0 + 4, {"p": "abc", "q": "z"}),
]


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("event('A').count()", 5),
        ("event('A').sum(property('p'))", 8),
        ("event('A').avg(property('p'))", 8 / 3),
        ("event('A').min(property('p'))", -2),
        ("event('A').max(property('p'))", 7),
        ("event('A').first(property('p'))", 3),
        ("event('A').last(property('p'))", "abc"),
        ("event('A').mode(property('q'), 2)", "x"),
        ("event('A').mode(property('q'), 4)", None),
        ("event('A').unique(property('q')).count()", 3),
        ("event('B').sum(property('p'))", 0),
        ("event('B').avg(property('p'))", None),
    ],
)
def test_reducers(expression: str, value: Any) -> None:
    from journeys_engine.conditions import evaluate_scalar

    aggregate = parse_expression(expression)
    index = LeafIndex()
    index.add(LeafSpec(aggregate))
    data = ProfileConditions()
    for ts, properties in EVENTS:
        data.track(EventRecord("A", ts, properties), ts, index)
    result, recheck = evaluate_scalar(aggregate, data, T0 + 10)
    assert result == pytest.approx(value) if isinstance(value, float) else result == value
    assert recheck is None


def test_a_count_within_keeps_only_n_plus_1_timestamps() -> None:
    p = Profile("event('A').within(7 days).count() >= 3")
    for i in range(50):
        p.track("A", T0 + i * MINUTE_MS)
    comparison = p.tree
    assert isinstance(comparison, Comparison)
    spec = leaf_spec(comparison, None)
    assert spec is not None
    state = p.data.leaf(spec)
    assert state is not None
    assert state.size() == 4
    assert p.at(T0 + 49 * MINUTE_MS) == (True, T0 + 47 * MINUTE_MS + 7 * DAY_MS)


def test_an_all_time_count_keeps_one_number() -> None:
    p = Profile("event('A').count() >= 3")
    for i in range(50):
        p.track("A", T0 + i)
    (state,) = p.data.states.values()
    assert state.size() == 0
    assert state.value(T0 + 100) == 50


def test_a_windowed_sum_keeps_only_events_in_the_window() -> None:
    p = Profile("event('A').within(1 hours).sum(property('p')) > 10")
    for i in range(10):
        p.track("A", T0 + i * 20 * MINUTE_MS, p=i)
    (state,) = p.data.states.values()
    assert state.size() == 3  # the last hour: minutes 140, 160, 180
    # 7+8+9 = 24, then 8+9 = 17 from minute 200, then 9 from minute 220: false from then on
    assert p.at(T0 + 180 * MINUTE_MS) == (True, T0 + 220 * MINUTE_MS)


def test_live_audiences_and_computed_traits_in_dependency_order() -> None:
    space = SpaceConditions(
        audiences={
            "big-spenders": parse_condition("computed_trait('spend') > 100"),
            "active-big-spenders": parse_condition(
                "audience('big-spenders') AND event('Visit').within(1 days).count() >= 1"
            ),
        },
        computed_traits={
            "spend": parse_expression("event('Order').within(2 days).sum(property('total'))")
        },
    )
    assert space.order == ["big-spenders", "active-big-spenders"]
    profile = ProfileConditions()
    profile.track(EventRecord("Order", T0, {"total": 150}), T0, space.index)
    profile.track(EventRecord("Visit", T0 + HOUR_MS, {}), T0 + HOUR_MS, space.index)
    first = space.refresh(profile, T0 + HOUR_MS)
    assert first.computed == {"spend": 150}
    assert first.audiences == {"big-spenders": True, "active-big-spenders": True}
    assert first.recheck_at == T0 + HOUR_MS + DAY_MS  # the visit leaves its window first
    second = space.refresh(profile, T0 + HOUR_MS + DAY_MS)
    assert second.audiences == {"active-big-spenders": False}
    assert second.computed == {}
    assert second.recheck_at == T0 + 2 * DAY_MS
    third = space.refresh(profile, T0 + 2 * DAY_MS)
    assert third.computed == {"spend": 0}
    assert third.audiences == {"big-spenders": False}
    assert third.recheck_at is None
