"""Hooks through which the engine reports what it does, for metrics.

The engine knows no metrics library: it calls an :class:`EngineObserver` with
plain numbers at the few places where something must be measured as it happens
(a unit committed, wake-ups fired), and leaves everything that can be read at
any moment (resident profiles, queue depths, pending wake-ups) to be read from
its state when asked. The server turns both into Prometheus series
(``journeys_server.metrics``). The calls are one per unit or per batch of
wake-ups, never per message, so an observer costs the hot path next to nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["NO_OBSERVER", "EngineObserver", "NoObserver"]


class EngineObserver(Protocol):
    """Receives measurements from the engine. Calls must be quick and must not raise."""

    def committed(self, seconds: float, actors: int) -> None:
        """A unit of applied work was committed to the store (a snapshot flush).

        Args:
            seconds: How long the commit took (wall time, the event loop's view).
            actors: Profiles whose snapshots the unit wrote.
        """
        ...

    def timers_fired(self, lags_ms: Sequence[int]) -> None:
        """Wake-ups fired: for each, how late after its due instant, in engine
        milliseconds (0 when a manual clock move fires it at its own instant)."""
        ...


class NoObserver:
    """Observes nothing (the default)."""

    def committed(self, seconds: float, actors: int) -> None:
        return None

    def timers_fired(self, lags_ms: Sequence[int]) -> None:
        return None


NO_OBSERVER: EngineObserver = NoObserver()
