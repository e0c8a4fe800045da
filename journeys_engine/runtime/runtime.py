"""Every space's live state, the shared timer wheel, and units of applied work.

The runtime is synchronous: applying a message or a wake-up runs to the end
without awaiting, so a profile is never looked at by two things at once. A
profile's wake-ups due at or before a message's ``received_at`` fire first,
each at its own due instant (SPEC §5.4, §9). The work done since the last
:meth:`Runtime.take_units` — the profiles it changed (snapshotted then), the
outputs it produced, the log positions applied, the counts as they stand — is
handed to the store as units, each committed in one transaction. Work that
touches many profiles at once is cut into units of at most :data:`UNIT_ACTORS`
profiles, each consistent on its own, so no commit is large enough to stall.

Only resident profiles are in memory (:attr:`SpaceRuntime.actors`); the engine
activates the others from their snapshots before anything is applied to them,
and passivates idle ones. The wheel holds every resident profile's wake-up and
every other profile's wake-up due by :attr:`Runtime.horizon`; later ones stay
in the store, indexed by due time, until the horizon moves past them.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice

from journeys_engine.conditions.state import LeafSpec
from journeys_engine.model.definitions import Audience, ComputedTrait, Destination
from journeys_engine.model.journey import Journey
from journeys_engine.runtime.actor import Actor
from journeys_engine.runtime.identity import Logged
from journeys_engine.runtime.outputs import Output
from journeys_engine.runtime.space import ActorKey, SpaceRuntime
from journeys_engine.runtime.stats import JourneyStats, stats_data
from journeys_engine.runtime.timeline import TimelineRow
from journeys_engine.runtime.wheel import TimerWheel

__all__ = [
    "UNIT_ACTORS",
    "ActorSnapshot",
    "Erasure",
    "MemberRow",
    "Runtime",
    "Unit",
    "compact_json",
]

UNIT_ACTORS = 250
"""The most profiles a unit cut from one large piece of work carries."""

MemberRow = tuple[str, str, int, int, int, bool]
"""(journey id, step id, joined at, log position then, run, held there): a run at
a step (SPEC §8)."""


@dataclass(frozen=True, slots=True)
class ActorSnapshot:
    """A profile as it was when its unit was taken: what the store writes."""

    position: int
    wake_at: int | None
    data: str  # compact JSON of Actor.to_data()
    members: tuple[MemberRow, ...] | None  # None: the same as last written


@dataclass(frozen=True, slots=True)
class Erasure:
    """A deleted person: what the store deletes about them, and what it refuses later.

    Attributes:
        space_id: The space.
        actor_ids: The profiles whose every row goes (snapshot, step rows,
            timeline, logged messages), whether stored or not.
        user_id: The user id of the person, if any: their anonymous ids' links
            to it go.
        unlinked: Anonymous ids whose link to ``user_id`` goes.
        suppressed: Hashes of the identifiers whose messages are refused until
            ``expire_at`` (empty: no suppression).
        at: When it was deleted.
        expire_at: When the suppression ends.
    """

    space_id: str
    actor_ids: tuple[str, ...]
    user_id: str | None = None
    unlinked: tuple[str, ...] = ()
    suppressed: tuple[str, ...] = ()
    at: int = 0
    expire_at: int = 0


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
        counts: The same counts as they stood when the unit was taken, as JSON
            (None: the journey is gone).
        timeline: Transitions made, in order.
        forgotten: Journeys whose timelines, rosters and profile state go with
            them (deleted): (space id, journey id).
        erasures: Deleted profiles: every row about them goes, after the
            unit's own rows are written (so its exits are in the outbox and
            its timeline entries for them go too).
    """

    actors: dict[ActorKey, Actor] = field(default_factory=dict)
    snapshots: dict[ActorKey, ActorSnapshot] = field(default_factory=dict)
    outputs: list[Output] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    stats: dict[tuple[str, str], JourneyStats | None] = field(default_factory=dict)
    counts: dict[tuple[str, str], str | None] = field(default_factory=dict)
    timeline: list[TimelineRow] = field(default_factory=list)
    forgotten: list[tuple[str, str]] = field(default_factory=list)
    erasures: list[Erasure] = field(default_factory=list)

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
            or self.erasures
        )


def compact_json(data: object) -> str:
    """JSON as the store keeps it: no spaces, text as is."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def member_rows(actor: Actor) -> tuple[MemberRow, ...]:
    """Where the profile's current runs are: one row per step joined."""
    rows: list[MemberRow] = []
    for journey_id, state in actor.journeys.items():
        run = state.run
        if run is not None:
            waits = run.waits
            for step_id, at, after in zip(run.joined, run.joined_at, run.joined_after, strict=True):
                rows.append((journey_id, step_id, at, after, run.number, step_id in waits))
    return tuple(rows)


def _snapshot(actor: Actor) -> ActorSnapshot:
    members = member_rows(actor) if actor.moved else None
    actor.moved = False
    return ActorSnapshot(actor.position, actor.wake_at, compact_json(actor.to_data()), members)


def _freeze(unit: Unit) -> Unit:
    """Snapshots the unit's profiles and counts as they are now."""
    unit.snapshots = {key: _snapshot(actor) for key, actor in unit.actors.items()}
    unit.counts = {
        key: None if stats is None else compact_json(stats_data(stats))
        for key, stats in unit.stats.items()
    }
    return unit


class Runtime:
    """All spaces at run time, driven by messages and the clock."""

    def __init__(self) -> None:
        self.wheel: TimerWheel[ActorKey] = TimerWheel()
        self.spaces: dict[str, SpaceRuntime] = {}
        # Every wake-up due by then is in the wheel (None: every wake-up is).
        self.horizon: int | None = None
        self._unit = Unit()
        self._ready: list[Unit] = []

    def space(self, space_id: str) -> SpaceRuntime:
        """The space's runtime (created on first use)."""
        space = self.spaces.get(space_id)
        if space is None:
            space = self.spaces[space_id] = SpaceRuntime(
                space_id, self.wheel, self._recorder, self.cut
            )
        return space

    def _recorder(self) -> Unit:
        return self._unit

    def cut(self) -> None:
        """Ends the current unit here if it carries :data:`UNIT_ACTORS` profiles;
        called between profiles by work that touches many."""
        if len(self._unit.actors) >= UNIT_ACTORS:
            self._ready.append(_freeze(self._unit))
            self._unit = Unit()

    @property
    def busy(self) -> dict[ActorKey, Actor]:
        """Profiles changed by work not yet taken into a unit."""
        return self._unit.actors

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
            self.cut()

    def take_due(self, upto: int, limit: int | None = None) -> dict[str, list[tuple[str, int]]]:
        """Takes (at most ``limit``) wake-ups due at or before ``upto``, earliest
        first, without firing them, by space, each (actor id, instant): to be
        fired in turn with the profiles' messages, once the profiles are resident."""
        taken: dict[str, list[tuple[str, int]]] = {}
        for due, (space_id, actor_id) in islice(self.wheel.pop_due(upto), limit):
            taken.setdefault(space_id, []).append((actor_id, due))
        return taken

    def next_due(self) -> int | None:
        """The earliest pending wake-up."""
        return self.wheel.next_due()

    def take_units(self) -> list[Unit]:
        """The work done since the last call, in order, as units whose profiles and
        counts are snapshotted (the last one now)."""
        units, self._ready = self._ready, []
        if self._unit:
            units.append(_freeze(self._unit))
            self._unit = Unit()
        return units

    def idle(self, since: int) -> list[ActorKey]:
        """Resident profiles not used after ``since``."""
        return [
            (space_id, actor_id)
            for space_id, space in self.spaces.items()
            for actor_id, actor in space.actors.items()
            if actor.touched <= since
        ]

    def evict(self, keys: Iterable[ActorKey], busy: Container[ActorKey]) -> int:
        """Drops resident profiles from memory, except those in ``busy`` (their
        work is not committed yet) or changed in work not taken yet; their
        wake-ups after the horizon stay in the store only. Returns how many went."""
        horizon = self.horizon
        changed = set(self._unit.actors)
        for unit in self._ready:  # (cut, not taken: not committed either)
            changed.update(unit.actors)
        dropped = 0
        for key in keys:
            space = self.spaces.get(key[0])
            if space is None or key in busy or key in changed:
                continue
            actor = space.actors.pop(key[1], None)
            if actor is None:
                continue
            dropped += 1
            if horizon is not None and actor.wake_at is not None and actor.wake_at > horizon:
                self.wheel.schedule(key, None)
        return dropped

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
    ) -> list[LeafSpec] | None:
        """A space's definitions changed; see :meth:`SpaceRuntime.set_definitions`."""
        return self.space(space_id).set_definitions(audiences, computed_traits, destinations)
