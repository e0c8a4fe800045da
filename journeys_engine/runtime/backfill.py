"""A historical entry in progress, as the runtime sees it (SPEC §5.1).

Publishing a journey whose entry uses historical data enters every existing
profile whose retained history matches the entry condition at the publish
time. Profiles are looked at one by one in the background while messages keep
flowing, so until one has been, the journey leaves it alone: no message, timer
or change may look at its entry with only the events since the publish. A
profile is *covered* once it has been looked at (it then has a standing in the
journey), once the walk over stored profiles has passed its id, or when it is
new (it has no history to look at).
"""

from __future__ import annotations

from dataclasses import dataclass

from journeys_engine.runtime.actor import Actor

__all__ = ["Backfill"]


@dataclass(slots=True)
class Backfill:
    """One journey's historical entry, while it runs.

    Attributes:
        operation_id: The operation that reports on it.
        journey_id: The journey.
        at: The publish time: profiles whose history matches enter at this instant.
        keys: The entry's event leaves not in use before the publish: their
            states are built from each profile's history (leaves already in use
            keep the states they have).
        cursor: Every stored profile with an id up to this one has been looked at.
    """

    operation_id: str
    journey_id: str
    at: int
    keys: frozenset[str]
    cursor: str = ""

    def covers(self, actor: Actor) -> bool:
        """Whether the profile was looked at already (or needs not be)."""
        return actor.id <= self.cursor or self.journey_id in actor.journeys
