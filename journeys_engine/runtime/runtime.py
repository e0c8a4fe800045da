"""Every space's live state, the shared timer wheel, and units of applied work.

The runtime is synchronous: applying a message or a wake-up runs to the end
without awaiting, so a profile is never looked at by two things at once.
Timers due at or before a message's ``received_at`` fire first, each at its
own due instant (SPEC §5.4, §9). The work done since the last
:meth:`Runtime.take_unit` — the profiles it changed, the outputs it produced,
the last message position applied — is handed to the store as one unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from journeys_engine.messages import Message
from journeys_engine.model.definitions import Audience, ComputedTrait, Destination
from journeys_engine.model.journey import Journey
from journeys_engine.runtime.actor import Actor
from journeys_engine.runtime.outputs import Output
from journeys_engine.runtime.space import ActorKey, SpaceRuntime
from journeys_engine.runtime.stats import JourneyStats
from journeys_engine.runtime.wheel import TimerWheel

__all__ = ["Runtime", "Unit"]


@dataclass(slots=True)
class Unit:
    """Work to commit together: changed profiles, their outputs, the position applied.

    Attributes:
        actors: Profiles changed, by (space id, actor id).
        outputs: Destination calls produced, in order.
        positions: Log positions of the messages applied.
        links: Identity links made, by (space id, anonymous id).
        stats: Journey counts changed (None: the journey is gone), by (space id, journey id).
    """

    actors: dict[ActorKey, Actor] = field(default_factory=dict)
    outputs: list[Output] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    links: dict[tuple[str, str], str] = field(default_factory=dict)
    stats: dict[tuple[str, str], JourneyStats | None] = field(default_factory=dict)

    @property
    def position(self) -> int:
        """The last log position applied (0 when only timers fired)."""
        return max(self.positions, default=0)

    def __bool__(self) -> bool:
        return bool(self.actors or self.outputs or self.positions or self.links or self.stats)


class Runtime:
    """All spaces at run time, driven by messages and the clock."""

    def __init__(self) -> None:
        self.wheel: TimerWheel[ActorKey] = TimerWheel()
        self.spaces: dict[str, SpaceRuntime] = {}
        self._unit = Unit()

    def space(self, space_id: str) -> SpaceRuntime:
        """The space's runtime (created on first use)."""
        space = self.spaces.get(space_id)
        if space is None:
            space = self.spaces[space_id] = SpaceRuntime(space_id, self.wheel, self._recorder)
        return space

    def _recorder(self) -> Unit:
        return self._unit

    def apply(self, space_id: str, messages: Sequence[tuple[int, Message]]) -> None:
        """Applies messages of a space, each with its log position, in order."""
        space = self.space(space_id)
        for position, message in messages:
            self.fire_due(message.received_at)
            space.apply(message, position)
            self._unit.positions.append(position)

    def fire_due(self, upto: int) -> None:
        """Fires every wake-up due at or before ``upto``, each at its due instant."""
        for due, (space_id, actor_id) in self.wheel.pop_due(upto):
            self.spaces[space_id].wake(actor_id, due)

    def next_due(self) -> int | None:
        """The earliest pending wake-up."""
        return self.wheel.next_due()

    def take_unit(self) -> Unit:
        """The work done since the last call."""
        unit, self._unit = self._unit, Unit()
        return unit

    # Catalog changes

    def put_journey(self, journey: Journey, now: int) -> None:
        """A journey was published, updated, paused, resumed or archived."""
        self.space(journey.space_id).put_journey(journey, now)

    def drop_journey(self, space_id: str, journey_id: str) -> None:
        """A journey was deleted, or went back to being a draft."""
        self.space(space_id).drop_journey(journey_id)

    def set_definitions(
        self,
        space_id: str,
        audiences: Iterable[Audience],
        computed_traits: Iterable[ComputedTrait],
        destinations: Iterable[Destination],
    ) -> None:
        """A space's definitions changed."""
        self.space(space_id).set_definitions(audiences, computed_traits, destinations)
