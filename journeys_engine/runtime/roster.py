"""Who is at each step now: the runs that joined it, and those held there (SPEC §8).

Kept as transitions happen, so listing a step's users pages through a dict
rather than scanning profiles. A send step's joined runs are exactly its list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["Roster"]

StepKey = tuple[str, str]  # (journey id, step id)


class Roster:
    """Per step of each live journey: actor id -> run number, in the order they came.

    Attributes:
        members: Runs that joined the step and have not ended.
        waiting: Runs held at the step now.
    """

    def __init__(self) -> None:
        self.members: dict[StepKey, dict[str, int]] = {}
        self.waiting: dict[StepKey, dict[str, int]] = {}

    def join(self, journey_id: str, step_id: str, actor_id: str, run: int) -> None:
        _add(self.members, (journey_id, step_id), actor_id, run)

    def hold(self, journey_id: str, step_id: str, actor_id: str, run: int) -> None:
        _add(self.waiting, (journey_id, step_id), actor_id, run)

    def release(self, journey_id: str, step_id: str, actor_id: str) -> None:
        _discard(self.waiting, (journey_id, step_id), actor_id)

    def leave(
        self, journey_id: str, actor_id: str, joined: Iterable[str], waits: Iterable[str]
    ) -> None:
        """A run ended: it leaves every step it joined and every wait."""
        for step_id in joined:
            _discard(self.members, (journey_id, step_id), actor_id)
        for step_id in waits:
            _discard(self.waiting, (journey_id, step_id), actor_id)

    def drop_journey(self, journey_id: str) -> None:
        for table in (self.members, self.waiting):
            for key in [k for k in table if k[0] == journey_id]:
                del table[key]

    def at(self, journey_id: str, step_id: str, *, waiting: bool = False) -> Mapping[str, int]:
        """The runs at a step (or held there): actor id -> run, in the order they came."""
        return (self.waiting if waiting else self.members).get((journey_id, step_id), {})


def _add(table: dict[StepKey, dict[str, int]], key: StepKey, actor_id: str, run: int) -> None:
    found = table.get(key)
    if found is None:
        table[key] = {actor_id: run}
    else:
        found[actor_id] = run


def _discard(table: dict[StepKey, dict[str, int]], key: StepKey, actor_id: str) -> None:
    found = table.get(key)
    if found is not None:
        found.pop(actor_id, None)
        if not found:
            del table[key]
