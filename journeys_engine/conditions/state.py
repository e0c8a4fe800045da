"""Per-profile state of one event leaf, kept as small as SPEC §2 allows.

A leaf is an :class:`EventAggregate` seen from one lower time bound (``since``:
a journey's publish time, or None for all retained history) and, for a count
compared inside ``within``, a cap ``k``. Its state holds the matching events'
``(ts, seq, value)`` that can still matter:

* no window: a settled aggregate of every event already at or before "now",
  plus the few timestamped later (a sender's clock may run a little ahead);
* ``within(D)``: events younger than D — only the ``k`` most recent when a
  count is compared with ``k - 1``;
* ``between(D1, D2)``: events younger than D2.

An event at ``ts`` is visible at ``now`` iff ``ts + d1 <= now < ts + d2``
(``d1 = 0`` and ``d2`` infinite without a window, ``d1 = 0, d2 = D`` for
``within``, ``d1 = D1, d2 = D2`` for ``between``). Visible events always form a
contiguous run of the ts-sorted items, entering and leaving in order, so the
value at every later instant follows from one forward walk:
:meth:`LeafState.changes`.
"""

from __future__ import annotations

import bisect
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from journeys_engine.conditions.ast import Between, EventAggregate, ReducerKind, Within
from journeys_engine.conditions.printer import print_expression
from journeys_engine.conditions.values import as_number

__all__ = ["Item", "LeafSpec", "LeafState", "value_key"]

Item = tuple[int, int, Any]
"""A matching event: (timestamp ms, apply sequence number, reducer input value)."""


@dataclass(frozen=True, eq=False)
class LeafSpec:
    """Which state a leaf needs: the aggregate, its lower time bound, its count cap.

    Specs are equal when their ``key`` (stable text, also used in snapshots) is.
    """

    aggregate: EventAggregate
    since: int | None = None
    k: int | None = None
    key: str = field(init=False)
    offsets: tuple[int, int | None] = field(init=False)
    """(d1, d2): an event is visible iff ``ts + d1 <= now < ts + d2`` (d2 None: forever)."""

    def __post_init__(self) -> None:
        key = f"{print_expression(self.aggregate)}|{self.since}|{self.k}"
        object.__setattr__(self, "key", key)
        window = self.aggregate.window
        offsets: tuple[int, int | None] = (0, None)
        if isinstance(window, Within):
            offsets = (0, window.span.ms)
        elif isinstance(window, Between):
            offsets = (window.start.ms, window.end.ms)
        object.__setattr__(self, "offsets", offsets)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LeafSpec) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


class _Aggregator:
    """Reduces a multiset of items that grows at the new end and shrinks at the old end."""

    __slots__ = ()

    def add(self, item: Item) -> None:
        raise NotImplementedError

    def remove(self, item: Item) -> None:
        raise NotImplementedError

    def value(self) -> Any:
        raise NotImplementedError

    def compact(self) -> None:
        """Forgets what only removals would need (for settled, never-removed items)."""

    def copy(self) -> _Aggregator:
        raise NotImplementedError

    def to_data(self) -> Any:
        raise NotImplementedError


class _Count(_Aggregator):
    __slots__ = ("n",)

    def __init__(self, n: int = 0) -> None:
        self.n = n

    def add(self, item: Item) -> None:
        self.n += 1

    def remove(self, item: Item) -> None:
        self.n -= 1

    def value(self) -> Any:
        return self.n

    def copy(self) -> _Count:
        return _Count(self.n)

    def to_data(self) -> Any:
        return self.n


class _Sum(_Aggregator):
    """Sum (``average=False``) or average of the numeric inputs."""

    __slots__ = ("average", "n", "total")

    def __init__(self, average: bool, total: int | float = 0, n: int = 0) -> None:
        self.average = average
        self.total = total
        self.n = n

    def add(self, item: Item) -> None:
        self.total += item[2]
        self.n += 1

    def remove(self, item: Item) -> None:
        self.total -= item[2]
        self.n -= 1

    def value(self) -> Any:
        if self.average:
            return self.total / self.n if self.n else None
        return self.total

    def copy(self) -> _Sum:
        return _Sum(self.average, self.total, self.n)

    def to_data(self) -> Any:
        return [self.total, self.n]


class _Extreme(_Aggregator):
    """Min or max over a sliding run: a monotonic deque of (ts, seq, value)."""

    __slots__ = ("lowest", "run")

    def __init__(self, lowest: bool, run: deque[Item] | None = None) -> None:
        self.lowest = lowest
        self.run: deque[Item] = run if run is not None else deque()

    def add(self, item: Item) -> None:
        run = self.run
        if self.lowest:
            while run and run[-1][2] >= item[2]:
                run.pop()
        else:
            while run and run[-1][2] <= item[2]:
                run.pop()
        run.append(item)

    def remove(self, item: Item) -> None:
        if self.run and self.run[0][:2] == item[:2]:
            self.run.popleft()

    def value(self) -> Any:
        return self.run[0][2] if self.run else None

    def compact(self) -> None:
        while len(self.run) > 1:
            self.run.pop()

    def copy(self) -> _Extreme:
        return _Extreme(self.lowest, deque(self.run))

    def to_data(self) -> Any:
        return [list(i) for i in self.run]


class _Ends(_Aggregator):
    """First or last by event time: the visible run itself."""

    __slots__ = ("first", "run")

    def __init__(self, first: bool, run: deque[Item] | None = None) -> None:
        self.first = first
        self.run: deque[Item] = run if run is not None else deque()

    def add(self, item: Item) -> None:
        # Kept in (ts, seq) order: a late event folded into a leaf without a
        # window arrives after events it precedes.
        run = self.run
        i = len(run)
        while i and run[i - 1][:2] > item[:2]:
            i -= 1
        run.insert(i, item)

    def remove(self, item: Item) -> None:
        if self.run and self.run[0][:2] == item[:2]:
            self.run.popleft()

    def value(self) -> Any:
        if not self.run:
            return None
        return self.run[0][2] if self.first else self.run[-1][2]

    def compact(self) -> None:
        if len(self.run) > 2:
            self.run = deque((self.run[0], self.run[-1]))

    def copy(self) -> _Ends:
        return _Ends(self.first, deque(self.run))

    def to_data(self) -> Any:
        return [list(i) for i in self.run]


def value_key(value: Any) -> str:
    """A key that tells 1, 1.0, '1' and true apart only where they differ as JSON."""
    if isinstance(value, bool):
        return f"b:{value}"
    if isinstance(value, int | float):
        return f"n:{float(value)!r}"
    if isinstance(value, str):
        return f"s:{value}"
    return "j:" + json.dumps(value, sort_keys=True, separators=(",", ":"))


class _Counter(_Aggregator):
    """Mode (with a minimum frequency) or the number of distinct values.

    Per distinct value: [occurrences, the value, the (ts, seq) of each occurrence].
    Mode ties go to the value with the latest event (by event time).
    """

    __slots__ = ("counts", "min_count", "mode")

    def __init__(
        self, mode: bool, min_count: int, counts: dict[str, list[Any]] | None = None
    ) -> None:
        self.mode = mode
        self.min_count = min_count
        self.counts: dict[str, list[Any]] = counts if counts is not None else {}

    def add(self, item: Item) -> None:
        key = value_key(item[2])
        entry = self.counts.get(key)
        if entry is None:
            self.counts[key] = [1, item[2], deque([(item[0], item[1])])]
        else:
            entry[0] += 1
            entry[2].append((item[0], item[1]))

    def remove(self, item: Item) -> None:
        key = value_key(item[2])
        entry = self.counts[key]
        entry[0] -= 1
        entry[2].popleft()
        if not entry[0]:
            del self.counts[key]

    def value(self) -> Any:
        if not self.mode:
            return len(self.counts)
        best = None
        for count, value, seen in self.counts.values():
            rank = (count, max(seen))  # ties: the value with the latest event
            if count >= self.min_count and (best is None or rank > best[0]):
                best = (rank, value)
        return None if best is None else best[1]

    def compact(self) -> None:
        for entry in self.counts.values():
            if len(entry[2]) > 1:
                entry[2] = deque((max(entry[2]),))

    def copy(self) -> _Counter:
        return _Counter(
            self.mode,
            self.min_count,
            {k: [c, v, deque(seen)] for k, (c, v, seen) in self.counts.items()},
        )

    def to_data(self) -> Any:
        return [[c, v, [list(s) for s in seen]] for c, v, seen in self.counts.values()]


def _new_aggregator(spec: LeafSpec, data: Any = None) -> _Aggregator:
    reducer = spec.aggregate.reducer
    kind = reducer.kind
    if kind is ReducerKind.COUNT:
        return _Count(data or 0)
    if kind in (ReducerKind.SUM, ReducerKind.AVG):
        total, n = data or (0, 0)
        return _Sum(kind is ReducerKind.AVG, total, n)
    if kind in (ReducerKind.MIN, ReducerKind.MAX):
        run = deque(tuple(i) for i in data or ())
        return _Extreme(kind is ReducerKind.MIN, run)
    if kind in (ReducerKind.FIRST, ReducerKind.LAST):
        run = deque(tuple(i) for i in data or ())
        return _Ends(kind is ReducerKind.FIRST, run)
    counter = _Counter(kind is ReducerKind.MODE, reducer.min_count or 1)
    for count, value, seen in data or ():
        counter.counts[value_key(value)] = [count, value, deque(tuple(s) for s in seen)]
    return counter


def reducer_input(spec: LeafSpec, raw: Any) -> tuple[bool, Any]:
    """Whether an event's target value feeds the reducer, and the value it feeds.

    ``count`` takes every event; ``sum``/``avg``/``min``/``max`` take numeric
    values (numbers and numeric strings); the others take any set value.
    """
    kind = spec.aggregate.reducer.kind
    if kind is ReducerKind.COUNT:
        return True, None
    if raw is None:
        return False, None
    if kind in (ReducerKind.SUM, ReducerKind.AVG, ReducerKind.MIN, ReducerKind.MAX):
        number = as_number(raw)
        return number is not None, number
    return True, raw


class LeafState:
    """The events of one leaf that can still matter, for one profile."""

    __slots__ = ("base", "items", "spec")

    def __init__(self, spec: LeafSpec) -> None:
        self.spec = spec
        self.items: list[Item] = []
        # Settled events of a leaf without a window, folded once and for all.
        self.base: _Aggregator | None = (
            _new_aggregator(spec) if spec.aggregate.window is None else None
        )

    def add(self, ts: int, seq: int, raw: Any, now: int) -> bool:
        """Adds a matching event (its reducer input ``raw``) applied at ``now``.

        Returns whether the event was kept (events before ``since`` and
        reducer inputs of the wrong kind are not).
        """
        if self.spec.since is not None and ts < self.spec.since:
            return False
        keep, value = reducer_input(self.spec, raw)
        if not keep:
            return False
        bisect.insort(self.items, (ts, seq, value), key=lambda i: (i[0], i[1]))
        self.settle(now)
        return True

    def settle(self, now: int) -> None:
        """Drops or folds what can no longer change, as of ``now`` (monotonic)."""
        items = self.items
        d1, d2 = self.spec.offsets
        if self.base is not None:
            cut = bisect.bisect_right(items, now - d1, key=lambda i: i[0])
            if cut:
                for item in items[:cut]:
                    self.base.add(item)
                self.base.compact()
                del items[:cut]
            return
        if d2 is not None:
            gone = bisect.bisect_right(items, now - d2, key=lambda i: i[0])
            if gone:
                del items[:gone]
        k = self.spec.k
        if k is not None:
            visible_or_past = bisect.bisect_right(items, now - d1, key=lambda i: i[0])
            extra = visible_or_past - k
            if extra > 0:
                del items[:extra]

    def changes(self, now: int) -> Iterator[tuple[int, Any]]:
        """The reducer's value at ``now``, then each later instant it may change and the
        value from then on, in time order (assumes ``now`` is not before the last
        :meth:`settle`)."""
        items = self.items
        d1, d2 = self.spec.offsets
        aggregator = self.base.copy() if self.base is not None else _new_aggregator(self.spec)
        n = len(items)
        lo = 0 if d2 is None else bisect.bisect_right(items, now - d2, key=lambda i: i[0])
        hi = bisect.bisect_right(items, now - d1, key=lambda i: i[0])
        for i in range(lo, hi):
            aggregator.add(items[i])
        yield now, aggregator.value()
        while True:
            enter = items[hi][0] + d1 if hi < n else None
            leave = items[lo][0] + d2 if d2 is not None and lo < hi else None
            if enter is None and leave is None:
                return
            t = min(x for x in (enter, leave) if x is not None)
            while hi < n and items[hi][0] + d1 == t:
                aggregator.add(items[hi])
                hi += 1
            while d2 is not None and lo < hi and items[lo][0] + d2 == t:
                aggregator.remove(items[lo])
                lo += 1
            yield t, aggregator.value()

    def value(self, now: int) -> Any:
        """The reducer's value at ``now``."""
        return next(self.changes(now))[1]

    def size(self) -> int:
        """How many events the state holds (for memory accounting)."""
        return len(self.items)

    def to_data(self) -> dict[str, Any]:
        """Plain data for a snapshot."""
        data: dict[str, Any] = {"items": [list(i) for i in self.items]}
        if self.base is not None:
            data["base"] = self.base.to_data()
        return data

    @classmethod
    def from_data(cls, spec: LeafSpec, data: dict[str, Any]) -> LeafState:
        """The state :meth:`to_data` described."""
        state = cls(spec)
        state.items = [(int(ts), int(seq), value) for ts, seq, value in data["items"]]
        if "base" in data:
            state.base = _new_aggregator(spec, data["base"])
        return state


def empty_value(aggregate: EventAggregate) -> Any:
    """The value of a reducer over no events: 0 for count, sum and unique; else missing."""
    if aggregate.reducer.kind in (ReducerKind.COUNT, ReducerKind.SUM, ReducerKind.UNIQUE_COUNT):
        return 0
    return None
