"""Conditions on the wire: text and the tree form, both ways.

A tree from a request becomes the engine's tree, then its canonical text, which
the engine checks like any text (so a tree gets exactly the text's checks).
Responses carry the text as stored and the tree parsed from it.
"""

from __future__ import annotations

import contextlib
import math

from google.protobuf import struct_pb2
from journeys.v1 import common_pb2

from journeys_engine.conditions import (
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
    parse_condition,
    parse_expression,
    print_condition,
    print_expression,
)
from journeys_engine.conditions.parser import junction
from journeys_engine.errors import ConditionError
from journeys_engine.model import Condition
from journeys_server.convert.common import Problems

__all__ = [
    "condition_from_proto",
    "condition_to_proto",
    "expression_from_proto",
    "expression_to_proto",
]

_OPS = {op: getattr(common_pb2, f"COMPARATOR_{op.name}") for op in Op}
_OPS_BACK = {v: k for k, v in _OPS.items()}
_UNITS = {unit: getattr(common_pb2, f"TIME_UNIT_{unit.name}") for unit in TimeUnit}
_UNITS_BACK = {v: k for k, v in _UNITS.items()}
_REDUCERS = {kind: getattr(common_pb2, f"REDUCER_KIND_{kind.name}") for kind in ReducerKind}
_REDUCERS_BACK = {v: k for k, v in _REDUCERS.items()}
_VALUE_OPS = frozenset(
    {
        Op.EQ,
        Op.NEQ,
        Op.GT,
        Op.GTE,
        Op.LT,
        Op.LTE,
        Op.CONTAINS,
        Op.OMITS,
        Op.STARTS_WITH,
        Op.ENDS_WITH,
        Op.BEFORE_DATE,
        Op.AFTER_DATE,
    }
)
_LIST_OPS = frozenset({Op.ONE_OF, Op.CONTAINS_ONE})
_SPAN_OPS = frozenset({Op.WITHIN_LAST, Op.BEFORE_LAST, Op.WITHIN_NEXT, Op.AFTER_NEXT})
_EXACT_INTEGERS = 2**53


# Requests


def condition_from_proto(message: common_pb2.Condition, path: str, problems: Problems) -> Condition:
    """The engine's condition: the text, or the canonical text of the tree."""
    if not message.HasField("tree"):
        if message.HasField("scalar"):
            problems.report(f"{path}.scalar", "is for computed-trait expressions; use tree")
        return Condition(message.text)
    tree = _node(message.tree, f"{path}.tree", problems)
    if tree is None:
        return Condition(message.text)
    text = print_condition(tree)
    if message.text:
        try:
            same = parse_condition(message.text, max_leaves=1_000_000) == tree
        except ConditionError:
            same = False
        if not same:
            problems.report(path, "text and tree are both set and do not mean the same")
        return Condition(message.text)
    return Condition(text)


def expression_from_proto(
    message: common_pb2.Condition, path: str, problems: Problems
) -> Condition:
    """The engine's computed-trait expression: the text, or the canonical text of the tree."""
    if message.HasField("tree"):
        problems.report(f"{path}.tree", "is for boolean conditions; use scalar")
    if not message.HasField("scalar"):
        return Condition(message.text)
    scalar = _scalar(message.scalar, f"{path}.scalar", problems)
    if scalar is None:
        return Condition(message.text)
    if not isinstance(scalar, EventAggregate):
        problems.report(f"{path}.scalar", "must be an event aggregate")
        return Condition(message.text)
    if message.text:
        try:
            same = parse_expression(message.text) == scalar
        except ConditionError:
            same = False
        if not same:
            problems.report(path, "text and scalar are both set and do not mean the same")
        return Condition(message.text)
    return Condition(print_expression(scalar))


def _node(message: common_pb2.ConditionNode, path: str, problems: Problems) -> BoolNode | None:
    kind = message.WhichOneof("node")
    match kind:
        case "all" | "any":
            nodes = message.all.nodes if kind == "all" else message.any.nodes
            if len(nodes) < 2:
                problems.report(f"{path}.{kind}.nodes", "needs at least 2 nodes")
                return None
            items = [_node(n, f"{path}.{kind}.nodes[{i}]", problems) for i, n in enumerate(nodes)]
            if any(item is None for item in items):
                return None
            return junction(And if kind == "all" else Or, [i for i in items if i is not None])
        case "negate":
            item = _node(message.negate, f"{path}.negate", problems)
            return None if item is None else Not(item)
        case "audience_id":
            return AudienceRef(message.audience_id)
        case "comparison":
            return _comparison(message.comparison, f"{path}.comparison", problems)
    problems.report(path, "must set one of all, any, negate, comparison, audience_id")
    return None


def _comparison(message: common_pb2.Comparison, path: str, problems: Problems) -> Comparison | None:
    op = _OPS_BACK.get(message.comparator)
    left = _scalar(message.left, f"{path}.left", problems)
    if op is None:
        problems.report(f"{path}.comparator", "must be set to a known comparator")
        return None
    if left is None:
        return None
    if op in _VALUE_OPS:
        value = _scalar(message.value, f"{path}.value", problems)
        return None if value is None else Comparison(left, op, value)
    if op in _LIST_OPS:
        items = [_literal(v, f"{path}.values[{i}]", problems) for i, v in enumerate(message.values)]
        if not items:
            problems.report(f"{path}.values", "needs at least one value")
        if not items or any(i is None for i in items):
            return None
        return Comparison(left, op, tuple(i for i in items if i is not None))
    if op in _SPAN_OPS:
        span = _span(message.span, f"{path}.span", problems)
        return None if span is None else Comparison(left, op, span)
    return Comparison(left, op)


def _scalar(message: common_pb2.Scalar, path: str, problems: Problems) -> Scalar | None:
    kind = message.WhichOneof("scalar")
    match kind:
        case "event":
            return _aggregate(message.event, f"{path}.event", problems)
        case "trait":
            return TraitRef(message.trait)
        case "computed_trait":
            return ComputedTraitRef(message.computed_trait)
        case "property":
            return PathRef("property", message.property)
        case "context":
            return PathRef("context", message.context)
        case "literal":
            return _literal(message.literal, f"{path}.literal", problems)
    problems.report(
        path, "must set one of event, trait, computed_trait, property, context, literal"
    )
    return None


def _literal(value: struct_pb2.Value, path: str, problems: Problems) -> Literal | None:
    match value.WhichOneof("kind"):
        case "string_value":
            return Literal(value.string_value)
        case "bool_value":
            return Literal(value.bool_value)
        case "number_value":
            number = value.number_value
            if not math.isfinite(number):
                problems.report(path, "must be a finite number")
                return None
            if number.is_integer() and abs(number) < _EXACT_INTEGERS:
                return Literal(int(number))
            return Literal(number)
    problems.report(path, "must be a string, a number or a boolean")
    return None


def _span(message: common_pb2.TimeSpan, path: str, problems: Problems) -> Span | None:
    unit = _UNITS_BACK.get(message.unit)
    if unit is None:
        problems.report(f"{path}.unit", "must be minutes, hours, days or weeks")
        return None
    if message.amount < 1:
        problems.report(f"{path}.amount", "must be at least 1")
        return None
    return Span(message.amount, unit)


def _aggregate(
    message: common_pb2.EventAggregate, path: str, problems: Problems
) -> EventAggregate | None:
    where = [_node(n, f"{path}.where[{i}]", problems) for i, n in enumerate(message.where)]
    window: Within | Between | None = None
    match message.WhichOneof("window"):
        case "within":
            span = _span(message.within, f"{path}.within", problems)
            window = None if span is None else Within(span)
        case "between":
            start = _span(message.between.start, f"{path}.between.start", problems)
            end = _span(message.between.end, f"{path}.between.end", problems)
            window = None if start is None or end is None else Between(start, end)
    kind = _REDUCERS_BACK.get(message.reducer.kind)
    if kind is None:
        problems.report(f"{path}.reducer.kind", "must be set to a known reducer")
        return None
    target = None
    if message.reducer.HasField("target"):
        scalar = _scalar(message.reducer.target, f"{path}.reducer.target", problems)
        if scalar is not None and not isinstance(scalar, PathRef):
            problems.report(f"{path}.reducer.target", "must be a property or a context path")
            return None
        target = scalar
    min_count = int(message.reducer.min_count) if kind is ReducerKind.MODE else None
    if any(w is None for w in where):
        return None
    return EventAggregate(
        message.event,
        tuple(w for w in where if w is not None),
        tuple(message.exclude_sources),
        window,
        Reducer(kind, target, min_count),
    )


# Responses


def condition_to_proto(condition: Condition | None) -> common_pb2.Condition | None:
    """The text as stored, with its tree when it parses."""
    if condition is None:
        return None
    message = common_pb2.Condition(text=condition.text)
    with contextlib.suppress(ConditionError):  # stored before it was checked: text only
        message.tree.CopyFrom(node_to_proto(parse_condition(condition.text, max_leaves=1_000_000)))
    return message


def expression_to_proto(condition: Condition) -> common_pb2.Condition:
    """A computed-trait expression as stored, with its tree when it parses."""
    message = common_pb2.Condition(text=condition.text)
    with contextlib.suppress(ConditionError):  # stored before it was checked: text only
        message.scalar.CopyFrom(_scalar_proto(parse_expression(condition.text)))
    return message


def node_to_proto(node: BoolNode) -> common_pb2.ConditionNode:
    """The wire form of an engine condition tree."""
    match node:
        case And():
            return common_pb2.ConditionNode(
                all=common_pb2.ConditionNodes(nodes=[node_to_proto(i) for i in node.items])
            )
        case Or():
            return common_pb2.ConditionNode(
                any=common_pb2.ConditionNodes(nodes=[node_to_proto(i) for i in node.items])
            )
        case Not():
            return common_pb2.ConditionNode(negate=node_to_proto(node.item))
        case AudienceRef():
            return common_pb2.ConditionNode(audience_id=node.id)
        case Comparison():
            message = common_pb2.Comparison(left=_scalar_proto(node.left), comparator=_OPS[node.op])
            arg = node.arg
            if isinstance(arg, Span):
                message.span.CopyFrom(_span_proto(arg))
            elif isinstance(arg, tuple):
                message.values.extend(_value_proto(item) for item in arg)
            elif arg is not None:
                message.value.CopyFrom(_scalar_proto(arg))
            return common_pb2.ConditionNode(comparison=message)


def _value_proto(literal: Literal) -> struct_pb2.Value:
    value = literal.value
    if isinstance(value, bool):
        return struct_pb2.Value(bool_value=value)
    if isinstance(value, str):
        return struct_pb2.Value(string_value=value)
    return struct_pb2.Value(number_value=value)


def _span_proto(span: Span) -> common_pb2.TimeSpan:
    return common_pb2.TimeSpan(amount=span.amount, unit=_UNITS[span.unit])


def _scalar_proto(scalar: Scalar) -> common_pb2.Scalar:
    match scalar:
        case EventAggregate():
            message = common_pb2.EventAggregate(
                event=scalar.event,
                where=[node_to_proto(w) for w in scalar.where],
                exclude_sources=list(scalar.exclude_sources),
            )
            if isinstance(scalar.window, Within):
                message.within.CopyFrom(_span_proto(scalar.window.span))
            elif isinstance(scalar.window, Between):
                message.between.CopyFrom(
                    common_pb2.TimeWindow(
                        start=_span_proto(scalar.window.start), end=_span_proto(scalar.window.end)
                    )
                )
            reducer = scalar.reducer
            message.reducer.kind = _REDUCERS[reducer.kind]
            if reducer.target is not None:
                message.reducer.target.CopyFrom(_scalar_proto(reducer.target))
            if reducer.min_count is not None:
                message.reducer.min_count = reducer.min_count
            return common_pb2.Scalar(event=message)
        case TraitRef():
            return common_pb2.Scalar(trait=scalar.name)
        case ComputedTraitRef():
            return common_pb2.Scalar(computed_trait=scalar.id)
        case PathRef():
            if scalar.source == "property":
                return common_pb2.Scalar(property=scalar.path)
            return common_pb2.Scalar(context=scalar.path)
        case Literal():
            return common_pb2.Scalar(literal=_value_proto(scalar))
