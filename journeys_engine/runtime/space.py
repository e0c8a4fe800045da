"""One space at run time: its profiles, live journeys, definitions and memberships.

Applying a message to a profile updates, in order (SPEC §5.4): its identity
and traits, its events, its computed traits and audiences (in dependency
order), then each journey in creation order. A wake-up does the same without
a message. Afterwards the profile's next wake-up is handed to the shared
timer wheel. What happens is recorded, with its cause, on the profile's
timeline.

Only resident profiles are here: work that concerns profiles at large (a
definition change, archiving a journey, connecting a destination) runs over
the resident ones, and the engine makes every profile concerned resident
first.

A deleted profile (:meth:`SpaceRuntime.erase`) leaves memory at once, but a
load of stored profiles begun before its deletion was committed may still have
read its snapshot: until no such load is in progress, :attr:`SpaceRuntime.erased`
keeps the id, and :meth:`SpaceRuntime.activate` does not bring it back.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from journeys_engine.conditions.ast import BoolNode, EventAggregate
from journeys_engine.conditions.evaluator import leaf_specs
from journeys_engine.conditions.parser import parse_condition, parse_expression
from journeys_engine.conditions.profile import EventRecord, SpaceConditions, earliest
from journeys_engine.conditions.state import LeafSpec
from journeys_engine.messages import MessageType
from journeys_engine.model.definitions import Audience, ComputedTrait, Destination
from journeys_engine.model.journey import Journey, JourneyStatus, SendToDestinationsStep
from journeys_engine.runtime.actor import Actor
from journeys_engine.runtime.backfill import Backfill
from journeys_engine.runtime.identity import Logged, profile_id
from journeys_engine.runtime.live import LiveJourney
from journeys_engine.runtime.outputs import Change, build_output
from journeys_engine.runtime.stats import JourneyStats
from journeys_engine.runtime.steps import StepRunner
from journeys_engine.runtime.timeline import (
    DEFINITIONS,
    DELETION,
    HISTORY,
    JOURNEY,
    TIMER,
    Cause,
    CauseKind,
    EntryKind,
)
from journeys_engine.runtime.wheel import TimerWheel

if TYPE_CHECKING:
    from journeys_engine.runtime.runtime import Unit

__all__ = ["ActorKey", "SpaceRuntime"]

ActorKey = tuple[str, str]
"""(space id, actor id) — the wheel's key for a profile's wake-up."""

_UNLIMITED = 1_000_000
_PENDING = 2**63  # an erasure not committed yet: every load in progress may have read it


class SpaceRuntime:
    """The live state of one space."""

    def __init__(
        self,
        space_id: str,
        wheel: TimerWheel[ActorKey],
        unit: Callable[[], Unit],
        cut: Callable[[], None],
    ) -> None:
        self.space_id = space_id
        self.wheel = wheel
        self.unit = unit
        self.cut = cut
        self.conditions = SpaceConditions()
        self.journeys: dict[str, LiveJourney] = {}  # in creation order
        self.created: dict[str, int] = {}  # journey id -> rank in creation order
        self._ranks = itertools.count()
        self._definition_texts: tuple[tuple[tuple[str, str], ...], ...] = ((), ())
        self.destinations: dict[str, Destination] = {}
        self.actors: dict[str, Actor] = {}  # resident ones
        self.stats: dict[str, JourneyStats] = {}
        self.backfills: dict[str, Backfill] = {}  # historical entries running, by journey
        self.cause = TIMER  # what the transitions being made now follow from
        self.runner = StepRunner(self)
        # Deleted profiles a load begun before their deletion was committed must not
        # bring back: actor id -> the erasure's number (_PENDING until committed).
        self.erased: dict[str, int] = {}
        self._erasures = 0  # erasures committed so far
        self._loads: Counter[int] = Counter()  # loads in progress, by the count when begun

    # Definitions and journeys

    def set_definitions(
        self,
        audiences: Iterable[Audience],
        computed_traits: Iterable[ComputedTrait],
        destinations: Iterable[Destination],
    ) -> list[LeafSpec] | None:
        """Replaces the audiences, computed traits and destinations.

        Returns None when no audience or computed trait changed. Otherwise every
        profile in a journey must be looked at again (:meth:`recheck`), and the
        event leaves not in use before, returned, must be built from each
        profile's history first (audiences and computed traits see all of it).
        """
        texts = (
            tuple((a.id, a.condition.text) for a in audiences),
            tuple((t.id, t.expression.text) for t in computed_traits),
        )
        self.destinations = {d.id: d for d in destinations}
        if texts == self._definition_texts:
            return None
        self._definition_texts = texts
        trees: dict[str, BoolNode] = {
            audience_id: parse_condition(text, max_leaves=_UNLIMITED)
            for audience_id, text in texts[0]
        }
        scalars: dict[str, EventAggregate] = {
            trait_id: parse_expression(text) for trait_id, text in texts[1]
        }
        before = {spec.key for spec in self.conditions.index.specs()}
        self.conditions = SpaceConditions(trees, scalars)
        for live in self.journeys.values():
            if live.status is not JourneyStatus.ARCHIVED:
                live.register(self.conditions.index)
        return [spec for spec in self.conditions.index.specs() if spec.key not in before]

    def recheck(self, actor_ids: Iterable[str], now: int) -> None:
        """Looks at resident profiles in a journey again at ``now``, after the
        definitions changed: they may hold now, or change at other instants than
        the old ones (the wake-up is worked out again)."""
        for actor_id in actor_ids:
            actor = self.actors.get(actor_id)
            if actor is not None and actor.journeys:
                self._catch_up(actor, now)
                self.cause = DEFINITIONS
                self._step(actor, now, event=None, all_journeys=True)
                self.cut()

    def changed(self, actor: Actor) -> None:
        """The profile's state changed outside a step: it goes with the next unit."""
        self.unit().actors[(self.space_id, actor.id)] = actor
        self.cut()

    def put_journey(self, journey: Journey, now: int) -> None:
        """Starts, updates or archives a live journey (published, paused or archived).

        A send step that gains a destination while live sends "entered", at
        ``now``, for every current member to that destination. Archiving ends
        every run at ``now`` and sends nothing; the journey is then frozen.
        """
        old = self.journeys.get(journey.id)
        if old is not None:
            old.unregister(self.conditions.index)
        live = LiveJourney.compile(journey)
        self.journeys[journey.id] = live
        self.note_created(journey.id)
        ranks = self.created
        self.journeys = dict(sorted(self.journeys.items(), key=lambda kv: ranks[kv[0]]))
        self.stats.setdefault(journey.id, JourneyStats())
        if journey.status is not JourneyStatus.ARCHIVED:
            live.register(self.conditions.index)
        if old is not None and journey.status is not JourneyStatus.ARCHIVED:
            self._connect(old, live, now)
        elif old is not None and old.status is not JourneyStatus.ARCHIVED:
            self.backfills.pop(journey.id, None)
            self._end_runs(live, now)

    def put_historical(self, journey: Journey, operation_id: str, now: int) -> Backfill:
        """Publishes a journey whose entry uses historical data: existing profiles are
        left alone until :meth:`seed` looks at their history (SPEC §5.1)."""
        assert journey.publish_time_ms is not None
        old = self.journeys.pop(journey.id, None)
        if old is not None:  # (after a restart: put already, without its history)
            old.unregister(self.conditions.index)
        entry = parse_condition(journey.entry.condition.text, max_leaves=_UNLIMITED)
        index = self.conditions.index
        building = {key for b in self.backfills.values() for key in b.keys}
        keys = frozenset(
            spec.key
            for spec in leaf_specs(entry, None)
            if index.spec(spec.key) is None or spec.key in building
        )
        self.put_journey(journey, now)
        backfill = self.backfills[journey.id] = Backfill(
            operation_id, journey.id, journey.publish_time_ms, keys
        )
        return backfill

    def uncovered(self, actor: Actor) -> bool:
        """Whether a historical entry has yet to look at this profile."""
        return any(not b.covers(actor) for b in self.backfills.values())

    def history_names(self) -> set[str]:
        """The events whose history :meth:`seed` reads."""
        index = self.conditions.index
        return {
            spec.aggregate.event
            for b in self.backfills.values()
            for key in b.keys
            if (spec := index.spec(key)) is not None
        }

    def seed(self, actor: Actor, history: Sequence[tuple[int, EventRecord]]) -> list[str]:
        """Looks at an existing profile for each historical entry that has not yet:
        builds the new leaves from its history (``(position, event)`` in log order,
        up to the last position applied to it), then lets it enter each journey at
        its publish time if the entry condition held then. Returns the journeys
        it entered."""
        pending = [b for b in self.backfills.values() if not b.covers(actor)]
        if not pending:
            return []
        index = self.conditions.index
        specs = {spec.key: spec for b in pending for key in b.keys if (spec := index.spec(key))}
        changed = bool(specs) and actor.conditions.rebuild(
            specs.values(), history, min(b.at for b in pending)
        )
        entered: list[str] = []
        wake = actor.wake_at
        self.cause = HISTORY
        for backfill in pending:
            live = self.journeys[backfill.journey_id]
            self.runner.process(actor, live, backfill.at)
            state = actor.journeys[live.id]
            if state.run is not None:
                entered.append(live.id)
            wake = earliest(wake, self.runner.next_due(state, live))
        key = (self.space_id, actor.id)
        if wake != actor.wake_at:
            actor.wake_at = wake
            self.wheel.schedule(key, wake)
            changed = True
        if changed or entered:
            self.unit().actors[key] = actor
            self.cut()
        return entered

    def _end_runs(self, live: LiveJourney, now: int) -> None:
        """The journey was archived: every run ends now and nothing is sent (SPEC §5.5)."""
        self.cause = JOURNEY
        for actor in self._in_runs(live.id):
            state = actor.journeys[live.id]
            if state.run is not None:
                self.runner.end_run(actor, live, state, now, reason="archived")
                self.unit().actors[(self.space_id, actor.id)] = actor
                self.cut()

    def _in_runs(self, journey_id: str) -> list[Actor]:
        """Resident profiles in a run of the journey, in the order their runs began."""
        found = [
            actor
            for actor in self.actors.values()
            if (state := actor.journeys.get(journey_id)) is not None and state.run is not None
        ]
        found.sort(key=lambda a: a.journeys[journey_id].run.entered_at)  # type: ignore[union-attr]
        return found

    def note_created(self, journey_id: str) -> None:
        """Records a journey's place in creation order (SPEC §5.4), if new."""
        if journey_id not in self.created:
            self.created[journey_id] = next(self._ranks)

    def drop_journey(self, journey_id: str, *, deleted: bool) -> None:
        """Forgets a journey and its runs (deleted, or back to draft); nothing is sent."""
        if deleted:
            self.created.pop(journey_id, None)
        live = self.journeys.pop(journey_id, None)
        if live is not None:
            live.unregister(self.conditions.index)
        self.stats.pop(journey_id, None)
        self.backfills.pop(journey_id, None)
        self.forget(journey_id)
        for actor_id, actor in self.actors.items():
            if actor.journeys.pop(journey_id, None) is not None:
                actor.moved = True
                self.unit().actors[(self.space_id, actor_id)] = actor
                self.cut()

    def forget(self, journey_id: str) -> None:
        """The journey's stored counts, timeline entries, rosters and profile state
        go with the next unit."""
        unit = self.unit()
        if (self.space_id, journey_id) not in unit.forgotten:
            unit.stats[(self.space_id, journey_id)] = None
            unit.forgotten.append((self.space_id, journey_id))

    def _connect(self, old: LiveJourney, new: LiveJourney, now: int) -> None:
        for step in new.journey.send_steps():
            before = old.steps.get(step.id)
            had = (
                set(before.destination_ids) if isinstance(before, SendToDestinationsStep) else set()
            )
            added = [d for d in step.destination_ids if d not in had]
            if not added:
                continue
            self.cause = JOURNEY
            for actor in self._in_runs(new.id):
                run = actor.journeys[new.id].run
                if run is not None and step.id in run.joined:
                    number = run.number
                    for destination_id in added:
                        self._send(actor, new, step, destination_id, number, Change.ENTERED, now)
                    self.unit().actors[(self.space_id, actor.id)] = actor
                    self.cut()

    # Memberships and outputs

    def stats_of(self, journey_id: str) -> JourneyStats:
        """A journey's counts, marked as changed in the current unit."""
        stats = self.stats.get(journey_id)
        if stats is None:
            stats = self.stats[journey_id] = JourneyStats()
        self.unit().stats[(self.space_id, journey_id)] = stats
        return stats

    def record(
        self,
        actor: Actor,
        journey_id: str,
        run: int,
        kind: EntryKind,
        step_id: str | None,
        at: int,
        **detail: object,
    ) -> None:
        """Notes a transition on the profile's timeline, with the current cause."""
        self.unit().timeline.append(
            (self.space_id, actor.id, at, journey_id, run, kind, step_id, self.cause, detail)
        )

    def join_membership(
        self, actor: Actor, live: LiveJourney, step: SendToDestinationsStep, run: int, t: int
    ) -> None:
        """The profile became a member of a send step: each destination gets "entered"."""
        for destination_id in step.destination_ids:
            self._send(actor, live, step, destination_id, run, Change.ENTERED, t)

    def leave_membership(
        self, actor: Actor, live: LiveJourney, step_id: str, run: int, t: int
    ) -> None:
        """The profile's run ended: each destination gets "exited"."""
        step = live.steps.get(step_id)
        if isinstance(step, SendToDestinationsStep):
            for destination_id in step.destination_ids:
                self._send(actor, live, step, destination_id, run, Change.EXITED, t)

    def _send(
        self,
        actor: Actor,
        live: LiveJourney,
        step: SendToDestinationsStep,
        destination_id: str,
        run: int,
        change: Change,
        at: int,
    ) -> None:
        if live.status is JourneyStatus.ARCHIVED:
            return
        destination = self.destinations.get(destination_id)
        if destination is None:
            return
        output = build_output(
            space_id=self.space_id,
            destination=destination,
            journey_id=live.id,
            step_id=step.id,
            key=step.key,
            profile_key=actor.key,
            user_id=actor.user_id,
            anonymous_id=actor.anonymous_id,
            run=run,
            change=change,
            at=at,
        )
        self.unit().outputs.append(output)
        self.record(
            actor, live.id, run, EntryKind.SENT, step.id, at,
            destination_id=destination_id, message_id=output.message_id, change=change.value,
        )  # fmt: skip

    # Profiles

    def _actor(self, logged: Logged) -> Actor:
        """The profile the log says the message is about (created on first use)."""
        actor = self.actors.get(logged.actor_id)
        if actor is None:
            kind, _, ident = logged.actor_id.partition(":")
            user = kind == "u"
            actor = Actor(ident, ident if user else None, None if user else ident)
            self.actors[logged.actor_id] = actor
        return actor

    def apply(self, logged: Logged) -> None:
        """Applies a logged message at its ``received_at``, after the profile's wake-ups
        due by then — unless the profile applied that position before a restart."""
        message = logged.message
        now = message.received_at
        actor = self._actor(logged)
        if logged.position <= actor.position:
            return  # applied before a restart: recovery skips it
        fresh = actor.position == 0  # (no history: a historical entry has nothing to see)
        self._catch_up(actor, now)  # wake-ups due by now see the profile as it was
        if actor.anonymous_id is None and message.anonymous_id is not None:
            actor.anonymous_id = message.anonymous_id  # the first one recorded (SPEC §7)
        actor.position = logged.position
        self.cause = Cause(CauseKind.MESSAGE, message.message_id, message.type.value, message.event)
        conditions = actor.conditions
        event: str | None = None
        match message.type:
            case MessageType.IDENTIFY:
                conditions.identify(message.traits)
            case MessageType.TRACK | MessageType.PAGE | MessageType.SCREEN:
                event = message.event
                conditions.track(
                    EventRecord(str(event), message.timestamp, message.properties, message.context),
                    now,
                    self.conditions.index,
                )
            case MessageType.GROUP:
                actor.groups[str(message.group_id)] = dict(message.traits)
            case MessageType.ALIAS:
                pass
        self._step(
            actor,
            now,
            event=event,
            all_journeys=message.type is MessageType.IDENTIFY,
            fresh=fresh,
        )

    def catch_up(self, actor_id: str, upto: int) -> None:
        """Fires the profile's wake-ups due at or before ``upto``, each at its instant."""
        actor = self.actors.get(actor_id)
        if actor is not None:
            self._catch_up(actor, upto)

    def _catch_up(self, actor: Actor, upto: int) -> None:
        while actor.wake_at is not None and actor.wake_at <= upto:
            at = actor.wake_at
            self.cause = TIMER
            self._step(actor, at, event=None, all_journeys=True)
            if actor.wake_at is not None and actor.wake_at <= at:
                break  # (a wake-up never schedules one at or before itself)

    def _step(
        self, actor: Actor, t: int, *, event: str | None, all_journeys: bool, fresh: bool = False
    ) -> None:
        conditions = actor.conditions
        conditions.settle(t)
        refresh = self.conditions.refresh(conditions, t)
        changed_audiences = set(refresh.audiences)
        changed_traits = set(refresh.computed)
        wake = refresh.recheck_at
        runner = self.runner
        backfills = self.backfills
        for live in self.journeys.values():
            if live.status is JourneyStatus.ARCHIVED or t < live.since:
                continue  # (before its publish: only ever a message replayed after a restart)
            if backfills and not fresh:
                backfill = backfills.get(live.id)
                if backfill is not None and not backfill.covers(actor):
                    continue  # (its history is looked at first: :meth:`seed`)
            state = actor.journeys.get(live.id)
            if (
                all_journeys
                or state is None  # never looked at: every message is a chance to enter
                or live.is_relevant(event, changed_audiences, changed_traits)
            ):
                runner.process(actor, live, t)
                state = actor.journeys[live.id]
            wake = earliest(wake, runner.next_due(state, live))
        key = (self.space_id, actor.id)
        actor.touched = t
        actor.wake_at = wake
        self.wheel.schedule(key, wake)
        self.unit().actors[key] = actor

    def activate(self, actors: Iterable[tuple[Actor, int | None]], now: int, since: int) -> None:
        """Makes profiles resident from their snapshots, with their wake-ups (a
        profile already resident is kept as it is: it is newer). ``since`` is the
        mark :meth:`loading` gave the load that read them: a profile deleted
        since is not brought back."""
        wheel = self.wheel
        erased = self.erased
        for actor, wake_at in actors:
            if actor.id in self.actors or (erased and erased.get(actor.id, -1) >= since):
                continue
            self.actors[actor.id] = actor
            actor.wake_at = wake_at
            actor.touched = now
            wheel.schedule((self.space_id, actor.id), wake_at)
            gone = [j for j in actor.journeys if j not in self.journeys]
            for journey_id in gone:  # deleted while the runtime was not told (a crash)
                del actor.journeys[journey_id]
                actor.moved = True
                self.unit().actors[(self.space_id, actor.id)] = actor
                self.forget(journey_id)

    # Deleted profiles

    def loading(self) -> int:
        """A load of stored profiles begins: its mark, for :meth:`activate` (end it
        with :meth:`loaded`)."""
        mark = self._erasures
        self._loads[mark] += 1
        return mark

    def loaded(self, mark: int) -> None:
        """The load :meth:`loading` marked is over."""
        self._loads[mark] -= 1
        if self._loads[mark] <= 0:
            del self._loads[mark]
        self._prune()

    def erase(self, actor: Actor, now: int) -> tuple[int, int]:
        """Deletes a resident profile: its current runs end at ``now`` as a run
        ending does (SPEC §5.5) — each send-step membership sends "exited" to its
        destinations and the run counts as exited — and it leaves memory and the
        wheel. The store deletes its rows with the unit (:meth:`erasing` names
        them). Returns (runs ended, memberships ended)."""
        self.cause = DELETION
        current = []
        for journey_id, state in actor.journeys.items():
            live = self.journeys.get(journey_id)
            if state.run is not None and live is not None:
                rank = self.created.get(journey_id, 0)
                current.append((state.run.entered_at, rank, live, state))
        # Exits emit in the order the memberships were entered (SPEC §5.4).
        current.sort(key=lambda run: run[:2])
        runs = memberships = 0
        for _, _, live, state in current:
            assert state.run is not None
            if live.status is not JourneyStatus.ARCHIVED:
                memberships += len(state.run.memberships)
            self.runner.end_run(actor, live, state, now, reason="deleted")
            runs += 1
        key = (self.space_id, actor.id)
        self.actors.pop(actor.id, None)
        self.wheel.schedule(key, None)
        self.unit().actors.pop(key, None)  # (its snapshot is not written: its rows go)
        return runs, memberships

    def erasing(self, actor_ids: Iterable[str]) -> None:
        """These profiles are being deleted: no load in progress brings them back."""
        for actor_id in actor_ids:
            self.erased[actor_id] = _PENDING

    def erased_committed(self, actor_ids: Iterable[str]) -> None:
        """Their deletion is committed: loads begun from now on cannot read them."""
        number = self._erasures
        self._erasures += 1
        for actor_id in actor_ids:
            self.erased[actor_id] = number
        self._prune()

    def _prune(self) -> None:
        if self.erased:
            oldest = min(self._loads, default=self._erasures)
            self.erased = {i: n for i, n in self.erased.items() if n >= oldest}

    def actor(self, user_id: str | None = None, anonymous_id: str | None = None) -> Actor | None:
        """The profile with this user id (or, without one, this anonymous id)."""
        return self.actors.get(profile_id(user_id, anonymous_id))

    def describe(self) -> dict[str, Any]:
        """Sizes, for metrics and benchmarks."""
        return {"actors": len(self.actors), "journeys": len(self.journeys)}
