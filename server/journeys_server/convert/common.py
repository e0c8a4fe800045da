"""Shared pieces of the protobuf edge: collected problems, times, durations."""

from __future__ import annotations

import re
from collections.abc import Iterable

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from journeys_engine.errors import FieldViolation, InvalidArgumentError

__all__ = [
    "Problems",
    "duration_ms",
    "duration_proto",
    "timestamp_ms",
    "timestamp_problem",
    "timestamp_proto",
]

_STEP = re.compile(r"^journey\.steps\[(\d+)\]")
_NANOS_PER_MS = 1_000_000
_NANOS_PER_SECOND = 1_000_000_000
_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z, the first instant a Timestamp holds
_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z, the last


class Problems:
    """Problems found while decoding a request, reported with the engine's own.

    A step the wire form cannot decode is left out of what the engine sees;
    ``step_positions`` remembers where each step the engine sees stood in the
    request, so that the engine's paths can name steps as the request did.
    """

    def __init__(self) -> None:
        self.found: list[FieldViolation] = []
        self.step_positions: list[int] | None = None

    def report(self, path: str, description: str) -> None:
        self.found.append(FieldViolation(path, description))

    def raise_any(self) -> None:
        """Raises the problems found so far, if any."""
        if self.found:
            raise InvalidArgumentError(self.found)

    def as_sent(self, violations: Iterable[FieldViolation]) -> list[FieldViolation]:
        """The engine's violations with step indexes as the request numbered them."""
        positions = self.step_positions
        if positions is None:
            return list(violations)

        def renumber(match: re.Match[str]) -> str:
            index = int(match.group(1))
            return f"journey.steps[{positions[index] if index < len(positions) else index}]"

        return [
            FieldViolation(_STEP.sub(renumber, v.field, count=1), v.description) for v in violations
        ]


def timestamp_proto(ms: int | None) -> Timestamp | None:
    """The wire form of an instant; None (the field unset) for no instant, and for one
    a Timestamp cannot hold. Only a time after 9999-12-31 is such an instant (a wait
    ending past the last day, say): the clock never goes there, so it never comes,
    as an unset time says."""
    if ms is None or not _representable(ms):
        return None
    ts = Timestamp()
    set_timestamp(ts, ms)
    return ts


def set_timestamp(ts: Timestamp, ms: int | None) -> None:
    """Sets ``ts`` (a message's field, in place) to the instant ``ms``; leaves it unset
    where :func:`timestamp_proto` gives None."""
    if ms is not None and _representable(ms):
        seconds, rest = divmod(ms, 1000)
        ts.seconds = seconds
        ts.nanos = rest * 1_000_000


def _representable(ms: int) -> bool:
    return _MIN_SECONDS * 1000 <= ms <= _MAX_SECONDS * 1000 + 999


def duration_proto(ms: int | None) -> Duration | None:
    if ms is None:
        return None
    d = Duration()
    d.FromMilliseconds(ms)
    return d


def timestamp_problem(ts: Timestamp) -> str | None:
    """Why a Timestamp is not one (outside 0001-01-01..9999-12-31, or nanos out of
    range), or None when it is."""
    if not _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS:
        return "is not a valid timestamp (it must be between 0001-01-01 and 9999-12-31)"
    if not 0 <= ts.nanos < _NANOS_PER_SECOND:
        return "is not a valid timestamp (nanos must be from 0 to 999,999,999)"
    return None


def timestamp_ms(ts: Timestamp, path: str, problems: Problems) -> int:
    """A Timestamp in milliseconds; reports one that is not valid (and gives 0 for it)."""
    problem = timestamp_problem(ts)
    if problem is not None:
        problems.report(path, problem)
        return 0
    return ts.ToMilliseconds()


def duration_ms(d: Duration, path: str, problems: Problems) -> int:
    """A Duration in whole milliseconds; reports one that is malformed or finer."""
    if abs(d.nanos) >= _NANOS_PER_SECOND or (
        d.seconds and d.nanos and (d.seconds < 0) != (d.nanos < 0)
    ):
        problems.report(path, "is not a valid duration (seconds and nanos disagree)")
    elif d.nanos % _NANOS_PER_MS:
        problems.report(path, "must be a whole number of milliseconds")
    return d.seconds * 1000 + d.nanos // _NANOS_PER_MS
