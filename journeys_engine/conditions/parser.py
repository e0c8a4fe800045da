"""Parser for Segment's audience query language, with type checks.

Grammar (``AND`` binds tighter than ``OR``; keywords in any case)::

    condition  := or
    or         := and ( "OR" and )*
    and        := not ( "AND" not )*
    not        := "NOT" not | "(" or ")" | primary
    primary    := "audience" "(" STRING ")"
                | chain [ OP value ]              -- OP: = == != > >= < <=
    chain      := extractor ( "." method )*
    extractor  := event | trait | computed_trait | property | context | literal
    method     := filter | reducer | comparator     (each checked against the chain's type)

Every error names its line and column and what was expected. Type errors (a
reducer on a trait, ``count()`` on a single value, comparing a list, a
comparison that does not end a condition) are found here, before any
evaluation. Constructs outside the supported subset (account-level ``ANY`` /
``ALL``, ``parent:`` funnels, ``event(...)`` inside ``where``) are refused by
name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NoReturn

from journeys_engine.clock import parse_iso_ms
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
    Scalar,
    Span,
    TimeUnit,
    TraitRef,
    Within,
)
from journeys_engine.conditions.lexer import Kind, Token, tokenize
from journeys_engine.errors import ConditionError

__all__ = ["MAX_DEPTH", "MAX_SPAN_MS", "junction", "parse_condition", "parse_expression"]

MAX_DEPTH = 24
MAX_SPAN_MS = 10 * 365 * 86_400_000

_SUGAR = {"=": Op.EQ, "==": Op.EQ, "!=": Op.NEQ, ">": Op.GT, ">=": Op.GTE, "<": Op.LT, "<=": Op.LTE}
_UNITS = {
    "minute": TimeUnit.MINUTES,
    "minutes": TimeUnit.MINUTES,
    "hour": TimeUnit.HOURS,
    "hours": TimeUnit.HOURS,
    "day": TimeUnit.DAYS,
    "days": TimeUnit.DAYS,
    "week": TimeUnit.WEEKS,
    "weeks": TimeUnit.WEEKS,
}
_EXTRACTORS = ("event", "trait", "computed_trait", "property", "context", "literal", "audience")
_FILTERS = ("where", "sources", "within", "between")
_REDUCERS = {k.value: k for k in ReducerKind}
_VALUE_OPS = (Op.EQ, Op.NEQ, Op.GT, Op.GTE, Op.LT, Op.LTE)
_ORDER_OPS = (Op.GT, Op.GTE, Op.LT, Op.LTE)
_TEXT_OPS = (Op.CONTAINS, Op.OMITS, Op.STARTS_WITH, Op.ENDS_WITH)
_LIST_OPS = (Op.CONTAINS_ONE, Op.ONE_OF)
_DATE_OPS = (Op.BEFORE_DATE, Op.AFTER_DATE)
_SPAN_OPS = (Op.WITHIN_LAST, Op.BEFORE_LAST, Op.WITHIN_NEXT, Op.AFTER_NEXT)
_NUMERIC_REDUCERS = (ReducerKind.COUNT, ReducerKind.SUM, ReducerKind.AVG, ReducerKind.UNIQUE_COUNT)


@lru_cache(maxsize=4096)
def parse_condition(text: str, *, max_leaves: int = 50) -> BoolNode:
    """The checked tree of a boolean condition (an audience, a journey step); cached.

    Raises:
        ConditionError: naming the line, column and what is wrong.
    """
    parser = _Parser(text, max_leaves)
    node = parser.condition()
    parser.finish()
    return node


@lru_cache(maxsize=1024)
def parse_expression(text: str) -> EventAggregate:
    """The checked tree of a computed-trait expression (an event stream reduced to a
    scalar); cached.

    Raises:
        ConditionError: naming the line, column and what is wrong.
    """
    parser = _Parser(text, 1)
    start = parser.peek()
    chain = parser.chain(in_where=False)
    if chain.kind == "comparison" or parser.peek().kind is Kind.OP:
        parser.fail(
            start,
            "a computed trait ends in a reducer such as sum(property('revenue')), "
            "not in a comparison",
        )
    parser.finish()
    if not isinstance(chain.node, EventAggregate) or chain.kind != "scalar":
        parser.fail(
            start,
            "a computed trait is an event stream reduced to a value, for example "
            "event('Order Completed').sum(property('revenue'))",
        )
    return chain.node


@dataclass(slots=True)
class _Chain:
    """A chain being read: what it is so far, and the node."""

    kind: str  # "vector" (event stream), "list" (unique), "scalar", "comparison"
    node: Scalar | Comparison
    start: Token
    aggregate: EventAggregate | None = None
    unique_target: PathRef | None = None


class _Parser:
    def __init__(self, text: str, max_leaves: int) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.leaves = 0
        self.max_leaves = max_leaves

    # Token helpers

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return token

    def fail(self, token: Token, message: str) -> NoReturn:
        raise ConditionError(message, line=token.position.line, column=token.position.column)

    def expect(self, kind: Kind, context: str) -> Token:
        token = self.peek()
        if token.kind is not kind:
            self.fail(token, f"expected {kind.value} {context}, found {token.describe()}")
        return self.take()

    def is_keyword(self, token: Token, word: str) -> bool:
        return token.kind is Kind.IDENT and token.text.upper() == word

    def finish(self) -> None:
        token = self.peek()
        if token.kind is not Kind.END:
            hint = "AND, OR, or the end of the text"
            self.fail(token, f"expected {hint}, found {token.describe()}")

    def nested(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(token, f"the condition is nested too deeply (more than {MAX_DEPTH} levels)")

    # Boolean structure

    def condition(self, in_where: bool = False) -> BoolNode:
        items = [self.conjunction(in_where)]
        while self.is_keyword(self.peek(), "OR"):
            self.take()
            items.append(self.conjunction(in_where))
        return junction(Or, items)

    def conjunction(self, in_where: bool) -> BoolNode:
        items = [self.negation(in_where)]
        while self.is_keyword(self.peek(), "AND"):
            self.take()
            items.append(self.negation(in_where))
        return junction(And, items)

    def negation(self, in_where: bool) -> BoolNode:
        token = self.peek()
        if self.is_keyword(token, "NOT"):
            self.take()
            self.nested(token)
            item = self.negation(in_where)
            self.depth -= 1
            return Not(item)
        if token.kind is Kind.LPAREN:
            self.take()
            self.nested(token)
            item = self.condition(in_where)
            self.expect(Kind.RPAREN, "to close the parenthesis")
            self.depth -= 1
            return item
        return self.primary(in_where)

    def primary(self, in_where: bool) -> BoolNode:
        token = self.peek()
        if self.is_keyword(token, "ANY") or self.is_keyword(token, "ALL"):
            self.fail(
                token,
                f"account-level {token.text.upper()} is not supported: conditions apply to one "
                "user's profile",
            )
        if token.kind is not Kind.IDENT:
            self.fail(
                token,
                "expected a condition such as event('Order Completed').count() >= 1, "
                f"found {token.describe()}",
            )
        if not in_where:
            self.leaves += 1
            if self.leaves > self.max_leaves:
                self.fail(
                    token,
                    f"a condition holds at most {self.max_leaves} primary expressions; "
                    "this is one more",
                )
        if token.text == "audience":
            return self.audience(in_where)
        chain = self.chain(in_where)
        if self.peek().kind is Kind.OP:
            op_token = self.take()
            if chain.kind == "comparison":
                self.fail(op_token, "the comparison is already complete; nothing may follow it")
            compared = self.compare(chain, _SUGAR[op_token.text], op_token, in_where, sugar=True)
            if self.peek().kind in (Kind.OP, Kind.DOT):
                self.fail(self.peek(), "the comparison is already complete; nothing may follow it")
            return compared
        if chain.kind == "comparison":
            assert isinstance(chain.node, Comparison)
            return chain.node
        self.fail(self.peek(), _incomplete(chain))

    def audience(self, in_where: bool) -> AudienceRef:
        token = self.take()
        if in_where:
            self.fail(token, "audience(...) cannot be used inside where(...)")
        self.expect(Kind.LPAREN, "after audience")
        audience_id = self.string("the audience id")
        self.expect(Kind.RPAREN, "after the audience id")
        if self.peek().kind in (Kind.DOT, Kind.OP):
            self.fail(self.peek(), "audience(...) is a condition by itself; nothing may follow it")
        return AudienceRef(audience_id, token.position)

    # Chains

    def chain(self, in_where: bool, *, reducer_target: bool = False) -> _Chain:
        start = self.peek()
        if start.kind is not Kind.IDENT:
            self.fail(start, f"expected a function such as event(...), found {start.describe()}")
        chain = self.extractor(in_where, reducer_target)
        while self.peek().kind is Kind.DOT:
            self.take()
            name = self.expect(Kind.IDENT, "after '.'")
            self.method(chain, name, in_where)
        return chain

    def extractor(self, in_where: bool, reducer_target: bool) -> _Chain:
        token = self.take()
        name = token.text
        if name not in _EXTRACTORS:
            self.fail(
                token,
                f"unknown function {name!r}; a chain starts with one of "
                + ", ".join(f"{n}(...)" for n in _EXTRACTORS),
            )
        if name == "audience":
            self.fail(token, "audience(...) is a condition by itself, not a value")
        self.expect(Kind.LPAREN, f"after {name}")
        node: Scalar
        if name == "event":
            if in_where:
                self.fail(token, "event(...) inside where(...) is not supported")
            if reducer_target:
                self.fail(token, "a reducer takes property(...) or context(...), not event(...)")
            event = EventAggregate(self.string("the event name"))
            self.expect(Kind.RPAREN, "after the event name")
            return _Chain("vector", event, token, aggregate=event)
        if name in ("property", "context"):
            if self.peek().kind is Kind.IDENT and self.peek(1).kind is Kind.COLON:
                self.fail(self.peek(), f"{name}(parent: ...) funnel references are not supported")
            if not (in_where or reducer_target):
                self.fail(token, f"{name}(...) is only valid inside where(...) or a reducer")
            node = PathRef(name, self.string(f"the {name} path"))
        elif name == "trait":
            node = TraitRef(self.string("the trait name"))
        elif name == "computed_trait":
            if in_where:
                self.fail(token, "computed_trait(...) cannot be used inside where(...)")
            node = ComputedTraitRef(self.string("the computed trait id"))
        else:
            node = self.literal("literal")
        self.expect(Kind.RPAREN, f"to close {name}(...)")
        return _Chain("scalar", node, token)

    def method(self, chain: _Chain, token: Token, in_where: bool) -> None:
        name = token.text
        if chain.kind == "comparison":
            self.fail(token, "the comparison is already complete; nothing may follow it")
        if name in _FILTERS or name in _REDUCERS:
            if chain.kind == "list":
                if name != "count":
                    self.fail(token, "unique(...) gives a list; only count() may follow it")
                self.expect(Kind.LPAREN, "after count")
                self.expect(Kind.RPAREN, "count() takes no arguments")
                assert chain.aggregate is not None
                aggregate = replace(
                    chain.aggregate, reducer=Reducer(ReducerKind.UNIQUE_COUNT, chain.unique_target)
                )
                chain.kind, chain.node, chain.aggregate = "scalar", aggregate, aggregate
                return
            if chain.kind != "vector":
                what = _describe(chain)
                kind = "filters an event stream" if name in _FILTERS else "reduces an event stream"
                self.fail(token, f"{name}(...) {kind}; {what} is a single value")
            if name in _FILTERS:
                self.filter(chain, token)
            else:
                self.reducer(chain, token)
            return
        try:
            op = Op(name)
        except ValueError:
            op = None
        if op is None:
            self.fail(token, f"unknown function {name!r}")
        if chain.kind == "vector":
            self.fail(token, _incomplete(chain))
        if chain.kind == "list":
            self.fail(token, "unique(...) gives a list, which cannot be compared; add .count()")
        self.expect(Kind.LPAREN, f"after {name}")
        chain.node = self.compare(chain, op, token, in_where, sugar=False)
        chain.kind = "comparison"
        self.expect(Kind.RPAREN, f"to close {name}(...)")

    def filter(self, chain: _Chain, token: Token) -> None:
        aggregate = chain.aggregate
        assert aggregate is not None
        self.expect(Kind.LPAREN, f"after {token.text}")
        if token.text == "where":
            self.nested(token)
            condition = self.condition(in_where=True)
            self.depth -= 1
            aggregate = replace(aggregate, where=(*aggregate.where, condition))
        elif token.text == "sources":
            key = self.expect(Kind.IDENT, "(sources takes exclude: [...])")
            if key.text != "exclude":
                self.fail(key, "sources(...) takes exclude: [source ids]")
            self.expect(Kind.COLON, "after exclude")
            excluded = tuple(str(v.value) for v in self.array(strings_only=True))
            aggregate = replace(aggregate, exclude_sources=aggregate.exclude_sources + excluded)
        else:
            if aggregate.window is not None:
                self.fail(token, "an event stream takes one within(...) or between(...), not two")
            if self.peek().kind is Kind.IDENT and self.peek(1).kind is Kind.COLON:
                self.fail(
                    self.peek(), f"{token.text}(parent: ...) funnel windows are not supported"
                )
            first = self.span()
            if token.text == "within":
                aggregate = replace(aggregate, window=Within(first))
            else:
                self.expect(Kind.COMMA, "between the two spans of between(...)")
                second = self.span()
                if first.ms >= second.ms:
                    self.fail(token, "between(start, end) needs start shorter than end")
                aggregate = replace(aggregate, window=Between(first, second))
        self.expect(Kind.RPAREN, f"to close {token.text}(...)")
        chain.node = chain.aggregate = aggregate

    def reducer(self, chain: _Chain, token: Token) -> None:
        kind = _REDUCERS[token.text]
        aggregate = chain.aggregate
        assert aggregate is not None
        self.expect(Kind.LPAREN, f"after {token.text}")
        if kind is ReducerKind.COUNT:
            self.expect(Kind.RPAREN, "count() takes no arguments")
            reduced = replace(aggregate, reducer=Reducer(kind))
            chain.kind, chain.node, chain.aggregate = "scalar", reduced, reduced
            return
        target_token = self.peek()
        target = self.chain(in_where=False, reducer_target=True)
        if not isinstance(target.node, PathRef) or target.kind != "scalar":
            self.fail(target_token, f"{token.text}(...) takes property('name') or context('path')")
        assert isinstance(target.node, PathRef)
        min_count = None
        if kind is ReducerKind.MODE:
            self.expect(Kind.COMMA, "before the minimum frequency of mode(...)")
            count_token = self.expect(Kind.NUMBER, "(the minimum frequency)")
            if not isinstance(count_token.value, int) or count_token.value < 1:
                self.fail(count_token, "the minimum frequency of mode(...) is a whole number >= 1")
            assert isinstance(count_token.value, int)
            min_count = count_token.value
        self.expect(Kind.RPAREN, f"to close {token.text}(...)")
        if kind is ReducerKind.UNIQUE_COUNT:
            chain.kind, chain.unique_target = "list", target.node
            return
        reduced = replace(aggregate, reducer=Reducer(kind, target.node, min_count))
        chain.kind, chain.node, chain.aggregate = "scalar", reduced, reduced

    # Comparisons

    def compare(
        self, chain: _Chain, op: Op, token: Token, in_where: bool, *, sugar: bool
    ) -> Comparison:
        if chain.kind == "vector":
            self.fail(token, _incomplete(chain))
        if chain.kind == "list":
            self.fail(token, "unique(...) gives a list, which cannot be compared; add .count()")
        left = chain.node
        assert not isinstance(left, Comparison)
        arg: Scalar | tuple[Literal, ...] | Span | None = None
        at = self.peek()
        if op in _VALUE_OPS:
            arg = self.value(in_where)
            if op in _ORDER_OPS and isinstance(arg, Literal) and isinstance(arg.value, bool):
                self.fail(at, f"{op.value} orders numbers or text; true and false have no order")
        elif op in _TEXT_OPS or op in _DATE_OPS:
            arg = Literal(self.string(f"the text {op.value}(...) looks for"))
            if op in _DATE_OPS:
                try:
                    parse_iso_ms(str(arg.value))
                except ValueError:
                    self.fail(at, f"{op.value}(...) takes an ISO 8601 date, such as '2024-01-31'")
        elif op in _LIST_OPS:
            arg = tuple(self.array(strings_only=False))
        elif op in _SPAN_OPS:
            arg = self.span()
        _check_types(self, chain, op, arg, token)
        return Comparison(left, op, arg, token.position)

    def value(self, in_where: bool) -> Scalar:
        token = self.peek()
        if token.kind is Kind.IDENT and token.text not in ("true", "false"):
            chain = self.chain(in_where)
            if chain.kind != "scalar" or not isinstance(chain.node, Literal | TraitRef | PathRef):
                self.fail(
                    token,
                    "the right side of a comparison is a value"
                    + (" or trait(...), property(...), context(...)" if in_where else ""),
                )
            assert isinstance(chain.node, Literal | TraitRef | PathRef)
            if isinstance(chain.node, TraitRef) and not in_where:
                self.fail(
                    token, "compare with a value; trait(...) on the right is only for where(...)"
                )
            return chain.node
        return self.literal("a value")

    def literal(self, what: str) -> Literal:
        token = self.take()
        if token.kind in (Kind.STRING, Kind.NUMBER):
            assert token.value is not None
            return Literal(token.value)
        if token.kind is Kind.IDENT and token.text in ("true", "false"):
            return Literal(token.text == "true")
        self.fail(
            token, f"expected {what} (a number, 'text', true or false), found {token.describe()}"
        )

    def string(self, what: str) -> str:
        token = self.expect(Kind.STRING, f"({what})")
        assert isinstance(token.value, str)
        return token.value

    def array(self, *, strings_only: bool) -> list[Literal]:
        self.expect(Kind.LBRACK, "to start a list")
        items: list[Literal] = []
        while self.peek().kind is not Kind.RBRACK:
            if items:
                self.expect(Kind.COMMA, "between list items")
            token = self.peek()
            item = self.literal("a list item")
            if strings_only and not isinstance(item.value, str):
                self.fail(token, "expected a quoted string in the list")
            items.append(item)
        self.take()
        if not items:
            self.fail(self.peek(-1), "the list is empty")
        return items

    def span(self) -> Span:
        token = self.expect(Kind.NUMBER, "(a duration such as 7 days)")
        if not isinstance(token.value, int) or token.value < 1:
            self.fail(token, "a duration is a whole number of at least 1")
        unit_token = self.expect(Kind.IDENT, "(the unit: minutes, hours, days or weeks)")
        unit = _UNITS.get(unit_token.text.lower())
        if unit is None:
            self.fail(
                unit_token, f"{unit_token.text!r} is not a unit; use minutes, hours, days or weeks"
            )
        assert isinstance(token.value, int)
        assert unit is not None
        span = Span(token.value, unit)
        if span.ms > MAX_SPAN_MS:
            self.fail(token, "a duration is at most 3650 days")
        return span


def junction(kind: type[And] | type[Or], items: list[BoolNode]) -> BoolNode:
    """``kind`` over ``items``, with nested junctions of the same kind spliced in.

    ``(a OR b) OR c`` and ``a OR b OR c`` are the same tree, so the canonical
    text of either parses back to it.
    """
    flat: list[BoolNode] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


def _describe(chain: _Chain) -> str:
    node = chain.node
    match node:
        case TraitRef():
            return f"trait('{node.name}')"
        case ComputedTraitRef():
            return f"computed_trait('{node.id}')"
        case PathRef():
            return f"{node.source}('{node.path}')"
        case Literal():
            return "a literal"
        case EventAggregate():
            return f"{node.reducer.kind.value}(...)"
    return "this"


def _incomplete(chain: _Chain) -> str:
    if chain.kind == "vector":
        assert chain.aggregate is not None
        return (
            f"event('{chain.aggregate.event}') is a stream of events: reduce it with count(), "
            "sum(...), avg(...) or another reducer before comparing"
        )
    if chain.kind == "list":
        return "unique(...) gives a list; add .count() and compare the count"
    return f"expected a comparison after {_describe(chain)}, such as = 'value' or >= 1"


def _check_types(
    parser: _Parser,
    chain: _Chain,
    op: Op,
    arg: Scalar | tuple[Literal, ...] | Span | None,
    token: Token,
) -> None:
    """Refuses comparisons whose types cannot match, before any evaluation."""
    left = chain.node
    fail: Callable[[Token, str], NoReturn] = parser.fail
    numeric = isinstance(left, EventAggregate) and left.reducer.kind in _NUMERIC_REDUCERS
    if not numeric:
        return
    assert isinstance(left, EventAggregate)
    what = f"{left.reducer.kind.value}(...)"
    if op in _DATE_OPS or op in _SPAN_OPS:
        fail(token, f"{op.value} compares dates; {what} is a number")
    if op in _TEXT_OPS:
        fail(token, f"{op.value} looks inside text; {what} is a number")
    literals = arg if isinstance(arg, tuple) else (arg,) if isinstance(arg, Literal) else ()
    for literal in literals:
        if not _is_number(literal.value):
            fail(token, f"{what} is a number; compare it with a number, not {literal.value!r}")


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            return float(value) == float(value) and abs(float(value)) != float("inf")
        except ValueError:
            return False
    return False
