"""The condition tree: what the query language's text means, as frozen data.

A condition is a boolean tree (:data:`BoolNode`): :class:`And`, :class:`Or`,
:class:`Not`, and the primary expressions (leaves) :class:`Comparison` and
:class:`AudienceRef`. A comparison's left side is a :data:`Scalar`: an event
stream reduced to one value (:class:`EventAggregate`), a trait, a computed
trait, an event property or context path (inside ``where`` and reducers), or a
literal. Nodes compare and hash by meaning; source positions are kept for
error messages only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "DURATION_UNITS",
    "And",
    "AudienceRef",
    "BoolNode",
    "Between",
    "Comparison",
    "ComputedTraitRef",
    "EventAggregate",
    "Literal",
    "Not",
    "Op",
    "Or",
    "PathRef",
    "Position",
    "Reducer",
    "ReducerKind",
    "Scalar",
    "Span",
    "TimeUnit",
    "TraitRef",
    "Value",
    "Window",
    "Within",
]

Value = str | int | float | bool
"""A literal value in a condition."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where something starts in the condition text (1-based line and column)."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}"


_NOWHERE = Position(0, 0)


class TimeUnit(StrEnum):
    """Units of a span, as written in the text (always plural when printed)."""

    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"
    WEEKS = "weeks"


DURATION_UNITS: dict[TimeUnit, int] = {
    TimeUnit.MINUTES: 60_000,
    TimeUnit.HOURS: 3_600_000,
    TimeUnit.DAYS: 86_400_000,
    TimeUnit.WEEKS: 604_800_000,
}


@dataclass(frozen=True, slots=True)
class Span:
    """A length of time such as ``7 days``."""

    amount: int
    unit: TimeUnit

    @property
    def ms(self) -> int:
        """The span in milliseconds."""
        return self.amount * DURATION_UNITS[self.unit]


@dataclass(frozen=True, slots=True)
class Within:
    """``within(span)``: events with ``ts <= now < ts + span``."""

    span: Span


@dataclass(frozen=True, slots=True)
class Between:
    """``between(start, end)``: events with ``ts + start <= now < ts + end``."""

    start: Span
    end: Span


Window = Within | Between


class ReducerKind(StrEnum):
    """How an event stream becomes one value."""

    COUNT = "count"
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    MODE = "mode"
    FIRST = "first"
    LAST = "last"
    UNIQUE_COUNT = "unique"


@dataclass(frozen=True, slots=True)
class PathRef:
    """``property('a.b')`` or ``context('a.b')``: a value of the event."""

    source: str  # "property" or "context"
    path: str


@dataclass(frozen=True, slots=True)
class Reducer:
    """A reducer; ``target`` is None only for ``count``; ``min_count`` only for ``mode``."""

    kind: ReducerKind
    target: PathRef | None = None
    min_count: int | None = None


@dataclass(frozen=True, slots=True)
class EventAggregate:
    """``event('Name')`` filtered, windowed and reduced to one value."""

    event: str
    where: tuple[BoolNode, ...] = ()
    exclude_sources: tuple[str, ...] = ()
    window: Window | None = None
    reducer: Reducer = Reducer(ReducerKind.COUNT)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Aggregates key the per-profile state and are hashed on every event: once is enough.
        key = (self.event, self.where, self.exclude_sources, self.window, self.reducer)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class TraitRef:
    """``trait('name')``: a profile trait."""

    name: str


@dataclass(frozen=True, slots=True)
class ComputedTraitRef:
    """``computed_trait('id')``: a computed trait's current value."""

    id: str


@dataclass(frozen=True, slots=True, eq=False)
class Literal:
    """A literal value: ``100``, ``'Free'``, ``true``, or ``literal(x)``.

    Literals are equal only with the same type and value: ``true`` is not ``1``,
    and ``1`` is not ``1.0`` (they print differently).
    """

    value: Value

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Literal)
            and type(other.value) is type(self.value)
            and other.value == self.value
        )

    def __hash__(self) -> int:
        return hash((type(self.value).__name__, self.value))


Scalar = EventAggregate | TraitRef | ComputedTraitRef | PathRef | Literal


class Op(StrEnum):
    """Comparators, by their long names."""

    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IS_NULL = "is_null"
    IS_SET = "is_set"
    CONTAINS = "contains"
    OMITS = "omits"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    CONTAINS_ONE = "contains_one"
    ONE_OF = "one_of"
    BEFORE_DATE = "before_date"
    AFTER_DATE = "after_date"
    WITHIN_LAST = "within_last"
    BEFORE_LAST = "before_last"
    WITHIN_NEXT = "within_next"
    AFTER_NEXT = "after_next"


@dataclass(frozen=True, slots=True)
class Comparison:
    """A primary expression: ``left`` compared by ``op``.

    ``arg`` is a scalar for the value comparators, a tuple of literals for
    ``one_of`` and ``contains_one``, a span for the relative date comparators,
    and None for ``is_null`` and ``is_set``.
    """

    left: Scalar
    op: Op
    arg: Scalar | tuple[Literal, ...] | Span | None = None
    position: Position = field(default=_NOWHERE, compare=False, hash=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.left, self.op, self.arg)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class AudienceRef:
    """``audience('id')``: membership of another audience."""

    id: str
    position: Position = field(default=_NOWHERE, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class And:
    """True when every item is true."""

    items: tuple[BoolNode, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """True when any item is true."""

    items: tuple[BoolNode, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """True when its item is false."""

    item: BoolNode


BoolNode = And | Or | Not | Comparison | AudienceRef
