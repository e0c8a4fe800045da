"""A reference interpreter of SPEC §5: slow, plain, and checked against the engine.

It keeps each profile's whole history and, at every instant where anything
could change — every message, and every instant at which an event enters or
leaves a window, a date crosses now, a wait ends or a run may exit or re-enter
— looks at every profile in every journey, evaluating every condition by
rescanning the history (:mod:`tests.helpers.reference_conditions`). It shares
no runtime code with the engine: no timer wheel, no re-check times, no leaf
state, no shards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from journeys_engine.conditions.ast import Between, BoolNode, EventAggregate, Within
from journeys_engine.conditions.parser import parse_condition
from journeys_engine.conditions.values import as_date
from journeys_engine.model.journey import (
    EntryStep,
    Journey,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    Step,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)
from tests.helpers.reference_conditions import (
    History,
    Identify,
    Track,
    candidate_instants,
    spans_and_paths,
    value_of,
)

Emitted = tuple[str, str, str, str, int, str, int]
"""(destination id, profile key, journey id, step id, run, "entered"/"exited", instant)."""


def _children(step: Step) -> list[str]:
    match step:
        case TrueFalseSplitStep():
            return [c for c in (step.true_step_id, step.false_step_id) if c]
        case MultiBranchSplitStep():
            return [b.next_step_id for b in step.branches if b.next_step_id]
        case _:
            return [step.next_step_id] if step.next_step_id else []


@dataclass
class RefRun:
    number: int
    entered_at: int
    memberships: list[str] = field(default_factory=list)
    waits: dict[str, Any] = field(default_factory=dict)  # step -> due | None | [untaken]


@dataclass
class RefStanding:
    runs: int = 0
    run: RefRun | None = None
    exited_at: int | None = None


@dataclass
class RefProfile:
    key: str
    user_id: str | None
    anonymous_id: str | None
    history: History = field(default_factory=lambda: History([]))
    standings: dict[str, RefStanding] = field(default_factory=dict)


class ReferenceSpace:
    """Published journeys of one space, run the slow way."""

    def __init__(
        self,
        journeys: list[Journey],
        audiences: Mapping[str, str],
        computed: Mapping[str, EventAggregate],
        destinations: Mapping[str, str],
    ) -> None:
        self.journeys = journeys
        self.steps = {j.id: {s.id: s for s in j.steps} for j in journeys}
        self.audiences = {k: parse_condition(v) for k, v in audiences.items()}
        self.computed = dict(computed)
        self.destinations = destinations
        self.profiles: dict[str, RefProfile] = {}
        self.links: dict[str, str] = {}
        self.outputs: list[Emitted] = []
        self.now = 0
        self.trees: dict[str, BoolNode] = {}
        self.order: dict[str, list[str]] = {}
        for journey in journeys:
            order: list[str] = []
            pending = [journey.entry.id]
            while pending:
                step_id = pending.pop(0)
                order.append(step_id)
                pending[:0] = _children(self.steps[journey.id][step_id])
            self.order[journey.id] = order

    # Conditions, rescanned

    def _tree(self, text: str) -> BoolNode:
        if text not in self.trees:
            self.trees[text] = parse_condition(text, max_leaves=1000)
        return self.trees[text]

    def _holds(self, profile: RefProfile, text: str, t: int, since: int | None) -> bool:
        return value_of(self._tree(text), profile.history, t, since, self.audiences, self.computed)

    # Driving

    def message(self, raw: Mapping[str, Any], received_at: int, timestamp: int) -> None:
        """Applies one Segment-spec message received at ``received_at``, event time
        ``timestamp`` (already corrected for the sender's clock)."""
        self.advance_to(received_at)
        profile = self._route(raw)
        kind = raw["type"]
        if kind == "identify":
            profile.history.messages.append(Identify(dict(raw.get("traits", {})), received_at))
        elif kind == "track":
            profile.history.messages.append(
                Track(raw["event"], timestamp, received_at, dict(raw.get("properties", {})), {})
            )
        elif kind == "alias":
            return
        self._look(profile, received_at)

    def _route(self, raw: Mapping[str, Any]) -> RefProfile:
        user_id: str | None = raw.get("userId")
        anonymous_id: str | None = raw.get("anonymousId")
        if raw["type"] == "alias":
            self.links[raw["previousId"]] = str(user_id)
            anonymous_id = None
        elif user_id and anonymous_id:
            self.links[anonymous_id] = user_id
        elif not user_id and anonymous_id in self.links:
            user_id = self.links[anonymous_id]
        pid = f"u:{user_id}" if user_id else f"a:{anonymous_id}"
        if pid not in self.profiles:
            self.profiles[pid] = RefProfile(str(user_id or anonymous_id), user_id, anonymous_id)
        elif self.profiles[pid].anonymous_id is None and anonymous_id:
            self.profiles[pid].anonymous_id = anonymous_id
        return self.profiles[pid]

    def advance_to(self, target: int) -> None:
        """Looks at every profile at every instant up to ``target`` where anything may change."""
        while True:
            nxt = self._next_instant()
            if nxt is None or nxt > target:
                break
            self.now = nxt
            for profile in self.profiles.values():
                self._look(profile, nxt)
        self.now = max(self.now, target)

    def _next_instant(self) -> int | None:
        spans: list[int] = []
        for journey in self.journeys:
            for text in self._texts(journey):
                spans += spans_and_paths(self._tree(text))
        for tree in self.audiences.values():
            spans += spans_and_paths(tree)
        for aggregate in self.computed.values():
            spans += _window_spans(aggregate)
        found: set[int] = set()
        for profile in self.profiles.values():
            found |= candidate_instants(profile.history, spans, _dates(profile.history))
            for journey in self.journeys:
                standing = profile.standings.get(journey.id)
                if standing is None:
                    continue
                settings = journey.settings
                if standing.run is not None:
                    if settings.exit_after_ms is not None:
                        found.add(standing.run.entered_at + settings.exit_after_ms)
                    for wait in standing.run.waits.values():
                        if isinstance(wait, int):
                            found.add(wait)
                elif standing.exited_at is not None and settings.reentry_after_ms is not None:
                    found.add(standing.exited_at + settings.reentry_after_ms)
        later = [i for i in found if i > self.now]
        return min(later) if later else None

    def _texts(self, journey: Journey) -> list[str]:
        texts = []
        if journey.settings.exit_condition is not None:
            texts.append(journey.settings.exit_condition.text)
        for step in journey.steps:
            if isinstance(step, EntryStep | WaitConditionStep | TrueFalseSplitStep):
                texts.append(step.condition.text)
            elif isinstance(step, MultiBranchSplitStep):
                texts += [b.condition.text for b in step.branches]
        return texts

    # SPEC §5, plainly

    def _look(self, profile: RefProfile, t: int) -> None:
        for journey in self.journeys:
            standing = profile.standings.setdefault(journey.id, RefStanding())
            if standing.run is not None:
                if not self._exit(profile, journey, standing, t):
                    self._advance(profile, journey, standing, t)
            else:
                self._entry(profile, journey, standing, t)

    def _since(self, journey: Journey) -> int:
        assert journey.publish_time_ms is not None
        return journey.publish_time_ms

    def _exit(self, profile: RefProfile, journey: Journey, standing: RefStanding, t: int) -> bool:
        run = standing.run
        assert run is not None
        settings = journey.settings
        ends = settings.exit_after_ms is not None and t >= run.entered_at + settings.exit_after_ms
        if not ends and settings.exit_condition is not None:
            ends = self._holds(profile, settings.exit_condition.text, t, self._since(journey))
        if ends:
            for step_id in run.memberships:
                step = self.steps[journey.id][step_id]
                assert isinstance(step, SendToDestinationsStep)
                for dest in step.destination_ids:
                    self.outputs.append(
                        (dest, profile.key, journey.id, step_id, run.number, "exited", t)
                    )
            standing.run = None
            standing.exited_at = t
        return ends

    def _entry(self, profile: RefProfile, journey: Journey, standing: RefStanding, t: int) -> None:
        settings = journey.settings
        if standing.runs:
            if settings.reentry_after_ms is None or standing.exited_at is None:
                return
            if t < standing.exited_at + settings.reentry_after_ms:
                return
        if settings.exit_condition is not None and self._holds(
            profile, settings.exit_condition.text, t, self._since(journey)
        ):
            return
        entry = journey.entry
        since = None if entry.use_historical_data else self._since(journey)
        if self._holds(profile, entry.condition.text, t, since):
            standing.runs += 1
            standing.run = RefRun(standing.runs, t)
            self._arrive(profile, journey, standing, entry.id, t)

    def _arrive(
        self, profile: RefProfile, journey: Journey, standing: RefStanding, step_id: str, t: int
    ) -> None:
        run = standing.run
        assert run is not None
        step = self.steps[journey.id][step_id]
        since = self._since(journey)
        match step:
            case WaitDurationStep():
                run.waits[step_id] = t + step.duration_ms
            case WaitConditionStep():
                if self._holds(profile, step.condition.text, t, since):
                    self._go(profile, journey, standing, step.next_step_id, t)
                else:
                    run.waits[step_id] = None
            case TrueFalseSplitStep():
                holds = self._holds(profile, step.condition.text, t, since)
                self._go(
                    profile,
                    journey,
                    standing,
                    step.true_step_id if holds else step.false_step_id,
                    t,
                )
            case MultiBranchSplitStep():
                untaken = []
                for i, branch in enumerate(step.branches):
                    if self._holds(profile, branch.condition.text, t, since):
                        self._go(profile, journey, standing, branch.next_step_id, t)
                    else:
                        untaken.append(i)
                if untaken:
                    run.waits[step_id] = untaken
            case SendToDestinationsStep():
                run.memberships.append(step_id)
                for dest in step.destination_ids:
                    self.outputs.append(
                        (dest, profile.key, journey.id, step_id, run.number, "entered", t)
                    )
                self._go(profile, journey, standing, step.next_step_id, t)
            case EntryStep():
                self._go(profile, journey, standing, step.next_step_id, t)

    def _go(
        self,
        profile: RefProfile,
        journey: Journey,
        standing: RefStanding,
        child: str | None,
        t: int,
    ) -> None:
        if child is not None:
            self._arrive(profile, journey, standing, child, t)

    def _advance(
        self, profile: RefProfile, journey: Journey, standing: RefStanding, t: int
    ) -> None:
        run = standing.run
        assert run is not None
        since = self._since(journey)
        for step_id in [s for s in self.order[journey.id] if s in run.waits]:
            step = self.steps[journey.id][step_id]
            wait = run.waits[step_id]
            match step:
                case WaitDurationStep():
                    if wait <= t:
                        del run.waits[step_id]
                        self._go(profile, journey, standing, step.next_step_id, t)
                case WaitConditionStep():
                    if self._holds(profile, step.condition.text, t, since):
                        del run.waits[step_id]
                        self._go(profile, journey, standing, step.next_step_id, t)
                case MultiBranchSplitStep():
                    untaken = []
                    for i in wait:
                        branch = step.branches[i]
                        if self._holds(profile, branch.condition.text, t, since):
                            self._go(profile, journey, standing, branch.next_step_id, t)
                        else:
                            untaken.append(i)
                    if untaken:
                        run.waits[step_id] = untaken
                    else:
                        del run.waits[step_id]


def _window_spans(aggregate: EventAggregate) -> list[int]:
    window = aggregate.window
    if isinstance(window, Within):
        return [window.span.ms]
    if isinstance(window, Between):
        return [window.start.ms, window.end.ms]
    return []


def _dates(history: History) -> list[int]:
    found = []
    for message in history.messages:
        values = (
            message.traits.values()
            if isinstance(message, Identify)
            else (message.properties.values())
        )
        found += [d for d in (as_date(v) for v in values) if d is not None]
    return found
