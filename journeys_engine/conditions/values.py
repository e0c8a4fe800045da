"""What comparisons mean on profile data (SPEC §2).

Numbers compare numerically, and a string that parses as a finite number
compares as that number against a number; strings compare exactly and
case-sensitively; a missing value (absent or JSON null) satisfies only
``is_null``, ``!=`` (``neq``) and ``omits``. Dates are ISO 8601 strings.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from journeys_engine.clock import parse_iso_ms
from journeys_engine.conditions.ast import Op

__all__ = [
    "as_date",
    "as_number",
    "compare",
    "date_truth_interval",
    "equals",
    "lookup",
    "next_flip",
]

_MISSING = None


def lookup(data: Mapping[str, Any] | None, path: str) -> Any:
    """The value at ``path``: the key itself if present, else a dotted path; None if absent."""
    if data is None:
        return None
    if path in data:
        return data[path]
    current: Any = data
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def as_number(value: Any) -> int | float | None:
    """A finite number, or a string that parses as one; None otherwise (booleans too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _parse_number(value)
    return None


@lru_cache(maxsize=4096)
def _parse_number(text: str) -> int | float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@lru_cache(maxsize=4096)
def _parse_date(text: str) -> int | None:
    try:
        return parse_iso_ms(text)
    except ValueError:
        return None


def as_date(value: Any) -> int | None:
    """Epoch milliseconds of an ISO 8601 string; None for anything else."""
    return _parse_date(value) if isinstance(value, str) else None


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def equals(left: Any, right: Any) -> bool:
    """Equality with numeric coercion when either side is a number."""
    if left is None or right is None:
        return False
    if _is_real(left) or _is_real(right):
        a, b = as_number(left), as_number(right)
        return a is not None and b is not None and a == b
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return type(left) is type(right) and bool(left == right)


def _order(left: Any, right: Any) -> int | None:
    """-1, 0 or 1 when the two can be ordered, else None."""
    if left is None or right is None:
        return None
    if _is_real(left) or _is_real(right):
        a, b = as_number(left), as_number(right)
        if a is None or b is None:
            return None
        return (a > b) - (a < b)
    if isinstance(left, str) and isinstance(right, str):
        return (left > right) - (left < right)
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if _is_real(value):
        return repr(value)
    return None


_WHOLE_NUMBER_OPS = {
    Op.EQ: operator.eq,
    Op.NEQ: operator.ne,
    Op.GT: operator.gt,
    Op.GTE: operator.ge,
    Op.LT: operator.lt,
    Op.LTE: operator.le,
}
_SPAN_OPS = frozenset({Op.WITHIN_LAST, Op.BEFORE_LAST, Op.WITHIN_NEXT, Op.AFTER_NEXT})


def compare(value: Any, op: Op, arg: Any, now: int) -> bool:
    """Whether ``value`` satisfies ``op`` with ``arg`` at ``now``.

    ``arg`` is a value, a tuple of values (``one_of``, ``contains_one``) or a
    span in milliseconds (the relative date comparators).
    """
    if type(value) is int and type(arg) is int and op in _WHOLE_NUMBER_OPS:
        return bool(_WHOLE_NUMBER_OPS[op](value, arg))  # a count against a whole number
    match op:
        case Op.EQ:
            return equals(value, arg)
        case Op.NEQ:
            return not equals(value, arg)
        case Op.GT | Op.GTE | Op.LT | Op.LTE:
            order = _order(value, arg)
            if order is None:
                return False
            return {Op.GT: order > 0, Op.GTE: order >= 0, Op.LT: order < 0, Op.LTE: order <= 0}[op]
        case Op.IS_NULL:
            return value is None
        case Op.IS_SET:
            return value is not None
        case Op.CONTAINS | Op.OMITS:
            text = _text(value)
            found = text is not None and str(arg) in text
            return found if op is Op.CONTAINS else not found
        case Op.STARTS_WITH:
            text = _text(value)
            return text is not None and text.startswith(str(arg))
        case Op.ENDS_WITH:
            text = _text(value)
            return text is not None and text.endswith(str(arg))
        case Op.CONTAINS_ONE:
            text = _text(value)
            return text is not None and any(str(a) in text for a in arg)
        case Op.ONE_OF:
            return any(equals(value, a) for a in arg)
        case Op.BEFORE_DATE | Op.AFTER_DATE:
            date, bound = as_date(value), as_date(arg)
            if date is None or bound is None:
                return False
            return date < bound if op is Op.BEFORE_DATE else date > bound
    interval = date_truth_interval(value, op, arg)
    if interval is None:
        return False
    start, end = interval
    return (start is None or start <= now) and (end is None or now <= end)


def date_truth_interval(value: Any, op: Op, span: int) -> tuple[int | None, int | None] | None:
    """For a relative date comparator, the closed range of ``now`` where it holds.

    ``within_last(D)``: ``now - D <= date <= now``; ``before_last(D)``:
    ``date <= now - D``; ``within_next(D)``: ``now <= date <= now + D``;
    ``after_next(D)``: ``date >= now + D``. None bounds are open-ended; None
    as a whole means never (the value is not a date).
    """
    date = as_date(value)
    if date is None:
        return None
    match op:
        case Op.WITHIN_LAST:
            return date, date + span
        case Op.BEFORE_LAST:
            return date + span, None
        case Op.WITHIN_NEXT:
            return date - span, date
        case Op.AFTER_NEXT:
            return None, date - span
    raise ValueError(f"{op} is not a relative date comparator")


def next_flip(value: Any, op: Op, arg: Any, now: int) -> int | None:
    """The first instant after ``now`` at which ``compare`` changes for a fixed value.

    Only the relative date comparators change with time; for every other
    comparator this is None.
    """
    if op not in _SPAN_OPS:
        return None
    interval = date_truth_interval(value, op, arg)
    if interval is None:
        return None
    start, end = interval
    if start is not None and now < start:
        return start
    if end is not None and now <= end:
        return end + 1
    return None
