"""The injected clock: the only source of "now" in the engine.

Time is integer milliseconds since the Unix epoch, UTC. Engine code never reads
``time.time()`` or the event loop's clock for business time; it asks a
:class:`Clock`. :class:`SystemClock` follows the wall clock, :class:`ManualClock`
moves only when told to (tests, the simulator, a server in manual-clock mode).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "format_ms", "parse_iso_ms"]


class Clock(Protocol):
    """Where the engine reads the current time, and waits for it to pass."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch, UTC."""
        ...

    async def sleep(self, ms: int) -> None:
        """Returns once ``ms`` milliseconds of this clock's time have passed (or soon
        after; the engine's timer loop also wakes for other reasons)."""
        ...


class SystemClock:
    """The wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, ms: int) -> None:
        await asyncio.sleep(max(ms, 0) / 1000)


class ManualClock:
    """A clock that moves only when set or advanced; never backwards.

    An engine on it fires timers only when told to move (SPEC §9), and lets
    clients set it, unless ``settable`` is false (a stand-in for the system clock).
    """

    settable = True

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._moved: asyncio.Event | None = None

    def now_ms(self) -> int:
        return self._now

    async def sleep(self, ms: int) -> None:
        """Waits until the clock has been moved ``ms`` forward."""
        until = self._now + ms
        while self._now < until:
            moved = self._moved = self._moved if self._moved is not None else asyncio.Event()
            await moved.wait()

    def _notify(self) -> None:
        if self._moved is not None:
            self._moved.set()
            self._moved = None

    def set(self, ms: int) -> None:
        """Moves the clock to ``ms``; refuses to go backwards."""
        if ms < self._now:
            raise ValueError(f"cannot move the clock backwards ({format_ms(ms)} < now)")
        self._now = ms
        self._notify()

    def advance(self, ms: int) -> None:
        """Moves the clock forward by ``ms`` milliseconds."""
        if ms < 0:
            raise ValueError("cannot advance the clock by a negative duration")
        self._now += ms
        self._notify()


MAX_INSTANT_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the last instant the engine can write (and so keep)."""


_SECONDS: dict[int, str] = {}  # epoch second -> its text up to the milliseconds
_SECONDS_KEPT = 4096


def format_ms(ms: int) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, e.g. ``2026-01-02T03:04:05.006Z``."""
    # Messages come in runs of nearby instants (a batch shares its received time),
    # so the text of each second is kept for the next ones.
    second, milli = divmod(ms, 1000)
    text = _SECONDS.get(second)
    if text is None:
        if len(_SECONDS) >= _SECONDS_KEPT:
            _SECONDS.clear()
        dt = datetime.fromtimestamp(second, tz=UTC)
        # (%Y does not pad years before 1000 to four digits everywhere; ISO 8601 wants them.)
        text = _SECONDS[second] = f"{dt.year:04d}" + dt.strftime("-%m-%dT%H:%M:%S")
    return f"{text}.{milli:03d}Z"


def parse_iso_ms(text: str) -> int:
    """Parses an ISO 8601 instant to epoch milliseconds; a missing offset means UTC.

    Raises:
        ValueError: ``text`` is not an ISO 8601 date or date-time.
    """
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
