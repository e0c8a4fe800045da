"""Durations as people write them in journey files: ``7d``, ``1d12h``, ``30 minutes``."""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_UNITS = {
    "ms": 1,
    "s": 1_000,
    "sec": 1_000,
    "second": 1_000,
    "m": 60_000,
    "min": 60_000,
    "minute": 60_000,
    "h": 3_600_000,
    "hour": 3_600_000,
    "d": 86_400_000,
    "day": 86_400_000,
    "w": 604_800_000,
    "week": 604_800_000,
}
_PART = re.compile(r"\s*(\d+)\s*([a-z]+)\s*")
_CANONICAL = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))


def parse_duration(text: str) -> int:
    """Milliseconds in a duration such as ``7d``, ``1d12h``, ``90s`` or ``2 weeks``.

    Units: ms, s, m (minutes), h, d, w, and their words (minute, hours, days...).

    Raises:
        ValueError: not a positive duration in those units.
    """
    rest = text.strip().lower()
    if not rest:
        raise ValueError("empty duration")
    total = 0
    position = 0
    while position < len(rest):
        match = _PART.match(rest, position)
        if match is None:
            raise ValueError(f"{text!r} is not a duration such as 7d, 12h, 30m or 1d12h")
        unit = match.group(2)
        factor = _UNITS.get(unit) or _UNITS.get(unit.removesuffix("s"))
        if factor is None:
            raise ValueError(f"{unit!r} in {text!r} is not a unit (use ms, s, m, h, d or w)")
        total += int(match.group(1)) * factor
        position = match.end()
    return total


def format_duration(ms: int) -> str:
    """The shortest canonical spelling, e.g. ``1d12h``; ``0ms`` for zero."""
    if ms <= 0:
        return f"{ms}ms"
    parts = []
    for unit, size in _CANONICAL:
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
