"""Test doubles shipped with the engine, for this project's tests and yours."""

from __future__ import annotations

from journeys_engine.clock import ManualClock, parse_iso_ms
from journeys_engine.model.limits import DAY_MS, HOUR_MS, MINUTE_MS

__all__ = ["FakeClock", "SteppedClock"]


class FakeClock(ManualClock):
    """A manual clock with readable constructors and steps.

    >>> clock = FakeClock.at("2026-01-01T00:00:00Z")
    >>> clock.advance(days=1)
    >>> clock.now_ms() - FakeClock.at("2026-01-01T00:00:00Z").now_ms()
    86400000
    """

    @classmethod
    def at(cls, iso: str) -> FakeClock:
        """A clock set to an ISO 8601 instant."""
        return cls(parse_iso_ms(iso))

    def advance(self, ms: int = 0, *, minutes: int = 0, hours: int = 0, days: int = 0) -> None:
        """Moves forward by the sum of the given amounts."""
        super().advance(ms + minutes * MINUTE_MS + hours * HOUR_MS + days * DAY_MS)


class SteppedClock(FakeClock):
    """A clock that stands for the system clock, moved by the test.

    An engine on it behaves as on the wall clock — its own timer loop fires
    wake-ups as the time comes, clients cannot set it — but time passes only
    when the test calls :meth:`advance` or :meth:`set`.
    """

    settable = False
