"""The query language: conformance examples, canonical text, errors with positions."""

from __future__ import annotations

import pytest
from hypothesis import given

from journeys_engine import ConditionError
from journeys_engine.conditions import (
    And,
    AudienceRef,
    BoolNode,
    Comparison,
    EventAggregate,
    Literal,
    Not,
    Op,
    Or,
    ReducerKind,
    TraitRef,
    Within,
    parse_condition,
    parse_expression,
    print_condition,
    print_expression,
)
from journeys_engine.conditions.parser import MAX_DEPTH
from tests.helpers.condition_strategies import conditions

# QUERY_LANGUAGE.md's conformance examples: each is already canonical.
CONFORMANCE = [
    "event('Shoes Bought').where(property('price') >= 100).within(7 days).count() >= 1",
    "NOT ( event('Shoes Bought').count() >= 1 AND trait('total_spend') > 200 )",
    "event('Product Added').within(1 days).count() >= 1 AND "
    "event('Order Completed').within(1 days).count() = 0",
    "event('Order Completed').within(180 days).count() = 0",
    "event('Subscription Started').where(property('Subscription Plan Type') = 'Free').count() >= 1",
    "event('Page Viewed').where(context('campaign.source') = 'facebook').within(1 days).count() >= 1",
    "trait('Customer Lifetime Value') > 100 OR computed_trait('clv') > 100",
    "trait('last_seen').within_last(7 days)",
]
EXPRESSIONS = [
    "event('Shoes Bought').within(30 days).avg(property('spend'))",
    "event('Shoes Bought').within(30 days).mode(property('spend'), 2)",
]


@pytest.mark.parametrize("text", CONFORMANCE)
def test_conformance_examples_parse_and_print_back(text: str) -> None:
    tree = parse_condition(text)
    assert print_condition(tree) == text
    assert parse_condition(print_condition(tree)) == tree


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_conformance_expressions_parse_and_print_back(text: str) -> None:
    tree = parse_expression(text)
    assert print_expression(tree) == text


def test_the_first_example_means_what_it_says() -> None:
    tree = parse_condition(CONFORMANCE[0])
    assert isinstance(tree, Comparison)
    aggregate = tree.left
    assert isinstance(aggregate, EventAggregate)
    assert aggregate.event == "Shoes Bought"
    assert aggregate.reducer.kind is ReducerKind.COUNT
    assert isinstance(aggregate.window, Within)
    assert aggregate.window.span.ms == 7 * 86_400_000
    assert tree.op is Op.GTE
    assert tree.arg == Literal(1)
    (where,) = aggregate.where
    assert isinstance(where, Comparison)
    assert where.op is Op.GTE


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        # the long comparator names and the sugar are one thing
        ("event('A').count().gte(1)", "event('A').count() >= 1"),
        ("event('A').count() == 1", "event('A').count() = 1"),
        ("trait('a').eq('x')", "trait('a') = 'x'"),
        ("trait('a').neq(3)", "trait('a') != 3"),
        ("trait('a').lt(3) OR trait('a').lte(3)", "trait('a') < 3 OR trait('a') <= 3"),
        # quotes: double, typographic single and double
        ('event("A").count() >= 1', "event('A').count() >= 1"),
        ("event(\u2018Shoes Bought\u2019).count() >= 1", "event('Shoes Bought').count() >= 1"),
        ("event(\u201cShoes\u201d).count() >= 1", "event('Shoes').count() >= 1"),
        # whitespace and newlines
        (
            "event( 'A' ) . count( )>=1\n AND\ttrait('b')='c'",
            "event('A').count() >= 1 AND trait('b') = 'c'",
        ),
        # keywords in any case; NOT without parentheses
        ("trait('a') = 1 and not trait('b') = 2", "trait('a') = 1 AND NOT ( trait('b') = 2 )"),
        # AND binds tighter than OR; parentheses kept only where needed
        (
            "(trait('a') = 1 AND trait('b') = 2) OR trait('c') = 3",
            "trait('a') = 1 AND trait('b') = 2 OR trait('c') = 3",
        ),
        (
            "trait('a') = 1 AND (trait('b') = 2 OR trait('c') = 3)",
            "trait('a') = 1 AND (trait('b') = 2 OR trait('c') = 3)",
        ),
        (
            "(trait('a') = 1 OR trait('b') = 2) OR trait('c') = 3",
            "trait('a') = 1 OR trait('b') = 2 OR trait('c') = 3",
        ),
        # filters in any order print where, sources, window, reducer
        (
            "event('A').within(2 hours).where(property('x') = 1).count() > 0",
            "event('A').where(property('x') = 1).within(2 hours).count() > 0",
        ),
        (
            "event('A').sources(exclude: ['s1']).count() > 0",
            "event('A').sources(exclude: ['s1']).count() > 0",
        ),
        # units: singular and plural, minutes and weeks
        ("event('A').within(1 day).count() > 0", "event('A').within(1 days).count() > 0"),
        (
            "event('A').between(30 minute, 2 weeks).count() > 0",
            "event('A').between(30 minutes, 2 weeks).count() > 0",
        ),
        # literals
        ("literal(5) = 5", "literal(5) = 5"),
        ("trait('a') = literal('x')", "trait('a') = 'x'"),
        ("trait('a') = -1.5", "trait('a') = -1.5"),
        ("trait('vip') = true", "trait('vip') = true"),
        ("trait('a').one_of(['x', 2, false])", "trait('a').one_of(['x', 2, false])"),
        # strings with quotes and escapes
        ("trait('a') = \"it's\"", "trait('a') = 'it\\'s'"),
        ("trait('a') = 'back\\\\slash'", "trait('a') = 'back\\\\slash'"),
        # unique(...).count() and the date comparators
        (
            "event('A').unique(property('p')).count() >= 2",
            "event('A').unique(property('p')).count() >= 2",
        ),
        ("trait('d').before_date('2024-01-31')", "trait('d').before_date('2024-01-31')"),
        (
            "trait('d').after_next(3 hours) OR trait('d').is_set()",
            "trait('d').after_next(3 hours) OR trait('d').is_set()",
        ),
        # extensions
        (
            "audience('vips') AND computed_trait('clv') > 100",
            "audience('vips') AND computed_trait('clv') > 100",
        ),
    ],
)
def test_canonical_form(written: str, canonical: str) -> None:
    tree = parse_condition(written)
    assert print_condition(tree) == canonical
    assert parse_condition(canonical) == tree


def test_nested_junctions_are_one_tree() -> None:
    a, b, c = (parse_condition(f"trait('{n}') = 1") for n in "abc")
    assert parse_condition("trait('a') = 1 OR (trait('b') = 1 OR trait('c') = 1)") == Or((a, b, c))
    assert parse_condition("(trait('a') = 1 AND trait('b') = 1) AND trait('c') = 1") == And(
        (a, b, c)
    )
    assert parse_condition("NOT ( audience('x') )") == Not(AudienceRef("x"))


@given(conditions(with_refs=True, max_leaves=6))
def test_print_then_parse_gives_the_same_tree(tree: BoolNode) -> None:
    text = print_condition(tree)
    assert parse_condition(text) == tree
    assert print_condition(parse_condition(text)) == text


def _error(text: str, **kwargs: int) -> ConditionError:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("event('A').count() >= 1 AND", 1, 28, "expected a condition"),
        ("event('A').count() >=", 1, 22, "expected a value"),
        ("event('A'.count() >= 1", 1, 10, "expected ')' after the event name"),
        ("event('A).count() >= 1", 1, 7, "unterminated string"),
        ("event('A').count() >= 1\n  OR trait('x') ~ 3", 2, 17, "unexpected character '~'"),
        ("event('A').count() >= 1 trait('b') = 1", 1, 25, "expected AND, OR, or the end"),
        ("(trait('a') = 1", 1, 16, "expected ')' to close the parenthesis"),
        ("event('A').within(7 parsecs).count() > 1", 1, 21, "'parsecs' is not a unit"),
        ("event('A').within(0 days).count() > 1", 1, 19, "at least 1"),
        ("event('A').within(1.5 days).count() > 1", 1, 19, "whole number"),
        ("event('A').mode(property('p'), 0) = 1", 1, 32, "minimum frequency"),
        ("trait('a').one_of([])", 1, 20, "the list is empty"),
        ("trait('a').before_date('soon')", 1, 24, "ISO 8601 date"),
        ("sneeze('A') = 1", 1, 1, "unknown function 'sneeze'"),
        ("event('A').sneeze() = 1", 1, 12, "unknown function 'sneeze'"),
        ("", 1, 1, "expected a condition"),
    ],
)
def test_syntax_errors_name_line_column_and_what_was_expected(
    text: str, line: int, column: int, fragment: str
) -> None:
    err = _error(text)
    assert (err.line, err.column) == (line, column), err.message
    assert fragment in err.detail
    assert err.message.startswith(f"line {line}, column {column}: ")


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("ANY ( event('A').count() >= 1 )", 1, "account-level ANY is not supported"),
        ("ALL NOT event('A').count() >= 1", 1, "account-level ALL is not supported"),
        ("event('A').within(parent: 5 days).count() >= 1", 19, "within(parent: ...) funnel"),
        (
            "event('A').where(property(parent: 'p') = 1).count() >= 1",
            27,
            "property(parent: ...) funnel",
        ),
        (
            "event('A').where(event('B').count() >= 1).count() >= 1",
            18,
            "event(...) inside where(...)",
        ),
    ],
)
def test_out_of_scope_constructs_are_named(text: str, column: int, fragment: str) -> None:
    err = _error(text)
    assert err.column == column
    assert fragment in err.detail


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("event('A') >= 1", "is a stream of events: reduce it"),
        ("event('A').where(property('x') = 1) = 2", "is a stream of events"),
        (
            "trait('a').count() > 1",
            "count(...) reduces an event stream; trait('a') is a single value",
        ),
        ("trait('a').within(7 days).count() > 1", "within(...) filters an event stream"),
        (
            "event('A').count().count() > 1",
            "count(...) reduces an event stream; count(...) is a single value",
        ),
        ("event('A').unique(property('p')) = 3", "gives a list, which cannot be compared"),
        ("event('A').unique(property('p')).sum(property('p')) = 3", "only count() may follow"),
        ("event('A').count()", "expected a comparison after count(...)"),
        ("trait('a')", "expected a comparison after trait('a')"),
        ("event('A').count() >= 'many'", "is a number; compare it with a number"),
        (
            "event('A').count().within_last(2 days)",
            "within_last compares dates; count(...) is a number",
        ),
        ("event('A').sum(property('p')).contains('x')", "contains looks inside text"),
        ("event('A').sum(trait('p')) > 1", "takes property('name') or context('path')"),
        ("property('x') = 1", "only valid inside where(...) or a reducer"),
        ("trait('a') > true", "true and false have no order"),
        ("trait('a') = trait('b')", "trait(...) on the right is only for where(...)"),
        ("event('A').count() >= 1 = 2", "already complete"),
        ("event('A').count().gte(1).lt(2)", "already complete"),
        ("audience('x').count() > 1", "condition by itself"),
        (
            "event('A').within(2 days).between(1 days, 3 days).count() > 0",
            "one within(...) or between(...)",
        ),
        ("event('A').between(3 days, 1 days).count() > 0", "start shorter than end"),
        ("event('A').where(audience('x')).count() > 0", "cannot be used inside where"),
        ("event('A').where(computed_trait('x') > 1).count() > 0", "cannot be used inside where"),
    ],
)
def test_type_errors_are_caught_before_evaluation(text: str, fragment: str) -> None:
    assert fragment in _error(text).detail


def test_trait_inside_where_is_allowed() -> None:
    tree = parse_condition(
        "event('Shoes Bought').where(property('price') >= trait('avg_spend')).count() >= 1"
    )
    assert isinstance(tree, Comparison)
    assert isinstance(tree.left, EventAggregate)
    (where,) = tree.left.where
    assert isinstance(where, Comparison)
    assert where.arg == TraitRef("avg_spend")


def test_at_most_50_primary_expressions() -> None:
    fifty = " OR ".join(f"trait('t{i}') = {i}" for i in range(50))
    assert len(parse_condition(fifty).items) == 50  # type: ignore[union-attr]
    err = _error(fifty + " OR trait('one_more') = 1")
    assert "at most 50 primary expressions" in err.detail
    assert err.column == len(fifty) + 5
    assert (
        "at most 3"
        in _error(
            "trait('a') = 1 OR trait('b') = 1 OR audience('c') OR audience('d')", max_leaves=3
        ).detail
    )


def test_comparisons_inside_where_are_not_primary_expressions() -> None:
    wheres = " AND ".join(f"property('p{i}') = {i}" for i in range(60))
    parse_condition(f"event('A').where({wheres}).count() >= 1")


def test_nesting_depth_is_bounded() -> None:
    deep = "(" * MAX_DEPTH + "trait('a') = 1" + ")" * MAX_DEPTH
    parse_condition(deep)
    err = _error("(" * (MAX_DEPTH + 1) + "trait('a') = 1" + ")" * (MAX_DEPTH + 1))
    assert "nested too deeply" in err.detail
    nots = "NOT " * (MAX_DEPTH + 1) + "trait('a') = 1"
    assert "nested too deeply" in _error(nots).detail


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("event('A').count() >= 1", "ends in a reducer"),
        ("trait('a')", "is an event stream reduced to a value"),
        ("event('A')", "is an event stream reduced to a value"),
        ("event('A').count() AND trait('b') = 1", "expected AND, OR, or the end"),
    ],
)
def test_computed_trait_expressions_end_in_a_reducer(text: str, fragment: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_expression(text)
    assert fragment in caught.value.detail


def test_unicode_names() -> None:
    text = "event('Commande passée ✓').where(property('größe') = '日本').count() >= 1"
    assert print_condition(parse_condition(text)) == text
