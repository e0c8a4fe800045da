"""Every space's live state, the shared timer wheel, and units of applied work.

The runtime is synchronous: applying a message or a wake-up runs to the end
without awaiting, so a profile is never looked at by two things at once. A
profile's wake-ups due at or before a message's ``received_at`` fire first,
each at its own due instant (SPEC §5.4, §9). The work done since the last
:meth:`Runtime.take_unit` — the profiles it changed (snapshotted then), the
outputs it produced, the log positions applied — is handed to the store as
one unit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from journeys_engine.model.definitions import Audience, ComputedTrait, Destination
from journeys_engine.model.journey import Journey
from journeys_engine.runtime.actor import Actor
from journeys_engine.runtime.identity import Logged
from journeys_engine.runtime.outputs import Output
from journeys_engine.runtime.space import ActorKey, SpaceRuntime
from journeys_engine.runtime.stats import JourneyStats
from journeys_engine.runtime.timeline import TimelineRow
from journeys_engine.runtime.wheel import TimerWheel

__all__ = ["ActorSnapshot", "Runtime", "Unit"]


@dataclass(frozen=True, slots=True)
class ActorSnapshot:
    """A profile as it was when its unit was taken: what the store writes."""

    position: int
    wake_at: int | None
    data: str  # compact JSON of Actor.to_data()


@dataclass(slots=True)
class Unit:
    """Work to commit together: changed profiles, their outputs, the positions applied.

    Attributes:
        actors: Profiles changed, by (space id, actor id).
        snapshots: The same profiles frozen when the unit was taken: later work
            on a profile belongs to a later unit, so a unit never carries state
            whose outputs are not in it.
        outputs: Destination calls produced, in order.
        positions: Log positions of the messages applied.
        stats: Journey counts changed (None: the journey is gone), by (space id, journey id).
        timeline: Transitions made, in order.
        forgotten: Journeys whose timelines go with them (deleted): (space id, journey id).
    """

    actors: dict[ActorKey, Actor] = field(default_factory=dict)
    snapshots: dict[ActorKey, ActorSnapshot] = field(default_factory=dict)
    outputs: list[Output] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    stats: dict[tuple[str, str], JourneyStats | None] = field(default_factory=dict)
    timeline: list[TimelineRow] = field(default_factory=list)
    forgotten: list[tuple[str, str]] = field(default_factory=list)

    @property
    def position(self) -> int:
        """The last log position applied (0 when only timers fired)."""
        return max(self.positions, default=0)

    def __bool__(self) -> bool:
        return bool(
            self.actors
            or self.outputs
            or self.positions
            or self.stats
            or self.timeline
            or self.forgotten
        )


def _snapshot(actor: Actor) -> ActorSnapshot:
    data = json.dumps(actor.to_data(), separators=(",", ":"), ensure_ascii=False)
    return ActorSnapshot(actor.position, actor.wake_at, data)


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

    def apply(self, space_id: str, messages: Sequence[Logged]) -> None:
        """Applies logged messages of a space, in order."""
        space = self.space(space_id)
        for logged in messages:
            space.apply(logged)
            self._unit.positions.append(logged.position)

    def wake(self, space_id: str, wakes: Sequence[tuple[str, int]]) -> None:
        """Fires, for each (actor id, instant), the profile's wake-ups due by then."""
        space = self.space(space_id)
        for actor_id, due in wakes:
            space.catch_up(actor_id, due)

    def fire_due(self, upto: int) -> None:
        """Fires every wake-up due at or before ``upto``, each at its due instant."""
        for due, (space_id, actor_id) in self.wheel.pop_due(upto):
            self.spaces[space_id].catch_up(actor_id, due)

    def take_due(self, upto: int) -> dict[str, list[tuple[str, int]]]:
        """Takes the wake-ups due at or before ``upto`` without firing them, by space,
        each (actor id, instant): for the shards to fire in turn with their messages."""
        taken: dict[str, list[tuple[str, int]]] = {}
        for due, (space_id, actor_id) in self.wheel.pop_due(upto):
            taken.setdefault(space_id, []).append((actor_id, due))
        return taken

    def next_due(self) -> int | None:
        """The earliest pending wake-up."""
        return self.wheel.next_due()

    def take_unit(self) -> Unit:
        """The work done since the last call, its profiles snapshotted now."""
        unit, self._unit = self._unit, Unit()
        unit.snapshots = {key: _snapshot(actor) for key, actor in unit.actors.items()}
        return unit

    # Catalog changes

    def put_journey(self, journey: Journey, now: int) -> None:
        """A journey was published, updated, paused, resumed or archived."""
        self.space(journey.space_id).put_journey(journey, now)

    def drop_journey(self, space_id: str, journey_id: str, *, deleted: bool) -> None:
        """A journey was deleted (or went back to being a draft): its runs are gone."""
        self.space(space_id).drop_journey(journey_id, deleted=deleted)

    def note_created(self, space_id: str, journey_id: str) -> None:
        """A journey was created (any status): it takes the next place in creation order."""
        self.space(space_id).note_created(journey_id)

    def set_definitions(
        self,
        space_id: str,
        audiences: Iterable[Audience],
        computed_traits: Iterable[ComputedTrait],
        destinations: Iterable[Destination],
        now: int,
    ) -> None:
        """A space's definitions changed (at ``now``)."""
        self.space(space_id).set_definitions(audiences, computed_traits, destinations, now)
