"""The canonical text of a condition tree.

Canonical means: single quotes, comparator sugar (``=``, ``!=``, ``>``, ``>=``,
``<``, ``<=``) where it exists and the method form otherwise, ``where`` before
``sources`` before the window before the reducer, plural units, ``NOT ( … )``,
and parentheses only where ``OR`` sits inside ``AND``. Printing then parsing
gives the same tree; parsing then printing is idempotent.
"""

from __future__ import annotations

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
    ReducerKind,
    Scalar,
    Span,
    TraitRef,
    Within,
)

__all__ = ["print_condition", "print_expression", "quote"]

_SUGAR = {Op.EQ: "=", Op.NEQ: "!=", Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}


def quote(text: str) -> str:
    """A single-quoted string literal; backslash, quote, newline, tab and CR escaped."""
    return "'" + text.translate(_ESCAPES) + "'"


_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"})


def print_condition(node: BoolNode) -> str:
    """The canonical text of a boolean condition."""
    match node:
        case Or():
            return " OR ".join(print_condition(item) for item in node.items)
        case And():
            return " AND ".join(
                f"({print_condition(item)})" if isinstance(item, Or) else print_condition(item)
                for item in node.items
            )
        case Not():
            return f"NOT ( {print_condition(node.item)} )"
        case AudienceRef():
            return f"audience({quote(node.id)})"
        case Comparison():
            return _comparison(node)


def print_expression(aggregate: EventAggregate) -> str:
    """The canonical text of a computed-trait expression."""
    return _scalar(aggregate, left=True)


def _comparison(node: Comparison) -> str:
    left = _scalar(node.left, left=True)
    arg = node.arg
    if node.op in _SUGAR:
        assert isinstance(arg, Literal | TraitRef | ComputedTraitRef | PathRef | EventAggregate)
        return f"{left} {_SUGAR[node.op]} {_scalar(arg, left=False)}"
    if arg is None:
        text = ""
    elif isinstance(arg, Span):
        text = _span(arg)
    elif isinstance(arg, tuple):
        text = "[" + ", ".join(_literal(item) for item in arg) + "]"
    else:
        text = _scalar(arg, left=False)
    return f"{left}.{node.op.value}({text})"


def _literal(literal: Literal) -> str:
    value = literal.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    return repr(value)


def _scalar(node: Scalar, *, left: bool) -> str:
    match node:
        case Literal():
            return f"literal({_literal(node)})" if left else _literal(node)
        case TraitRef():
            return f"trait({quote(node.name)})"
        case ComputedTraitRef():
            return f"computed_trait({quote(node.id)})"
        case PathRef():
            return f"{node.source}({quote(node.path)})"
        case EventAggregate():
            return _aggregate(node)


def _aggregate(node: EventAggregate) -> str:
    parts = [f"event({quote(node.event)})"]
    parts += [f".where({print_condition(condition)})" for condition in node.where]
    if node.exclude_sources:
        ids = ", ".join(quote(s) for s in node.exclude_sources)
        parts.append(f".sources(exclude: [{ids}])")
    match node.window:
        case Within():
            parts.append(f".within({_span(node.window.span)})")
        case Between():
            parts.append(f".between({_span(node.window.start)}, {_span(node.window.end)})")
    reducer = node.reducer
    target = _scalar(reducer.target, left=True) if reducer.target is not None else ""
    if reducer.kind is ReducerKind.COUNT:
        parts.append(".count()")
    elif reducer.kind is ReducerKind.UNIQUE_COUNT:
        parts.append(f".unique({target}).count()")
    elif reducer.kind is ReducerKind.MODE:
        parts.append(f".mode({target}, {reducer.min_count})")
    else:
        parts.append(f".{reducer.kind.value}({target})")
    return "".join(parts)


def _span(span: Span) -> str:
    return f"{span.amount} {span.unit.value}"
