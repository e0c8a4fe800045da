"""Where units of applied work go: the store seam."""

from __future__ import annotations

from typing import Protocol

from journeys_engine.runtime.outputs import Output
from journeys_engine.runtime.runtime import Unit

__all__ = ["MemorySink", "Sink"]


class Sink(Protocol):
    """Commits a unit of work: changed profiles, outputs and position, all or nothing."""

    async def commit(self, unit: Unit) -> None:
        """Makes the unit durable (or, in memory, keeps it)."""
        ...


class MemorySink:
    """Keeps every output in memory, in order: for tests and the in-process engine."""

    def __init__(self) -> None:
        self.outputs: list[Output] = []
        self.units = 0
        self.position = 0

    async def commit(self, unit: Unit) -> None:
        self.outputs.extend(unit.outputs)
        self.units += 1
        self.position = max(self.position, unit.position)

    def for_destination(self, destination_id: str) -> list[Output]:
        """The outputs one destination received, in order."""
        return [o for o in self.outputs if o.destination_id == destination_id]

    def take(self) -> list[Output]:
        """The outputs so far, forgetting them."""
        taken, self.outputs = self.outputs, []
        return taken
