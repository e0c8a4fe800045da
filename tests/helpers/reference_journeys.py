"""A reference interpreter of SPEC §1, §5 and §6: slow, plain, and checked against the engine.

It keeps each profile's whole history and, at every instant where anything
could change — every message, and every instant at which an event enters or
leaves a window, a date crosses now, a wait ends or a run may exit or re-enter
— looks at every profile in every live journey, evaluating every condition by
rescanning the history (:mod:`tests.helpers.reference_conditions`). It shares
no runtime code with the engine: no timer wheel, no re-check times, no leaf
state, no shards, no relevance skipping. Message ids are worked out from the
SPEC §5.8 formula here.

Lifecycle (SPEC §6): a draft is not run; a paused journey runs its runs but
admits nobody; an archived one is frozen and sends nothing; a deleted one is
forgotten. On resume, a profile whose entry condition became true while the
journey was paused (a false → true change during the pause) is held back until
the condition has been false. SPEC leaves one case open — a profile whose entry
was true all through the pause and that became free to enter during it (its
exit condition stopped holding, its re-entry wait ended) — and there the
reference follows docs/decisions.md: held back too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from journeys_engine.conditions.ast import Between, BoolNode, EventAggregate, Within
from journeys_engine.conditions.parser import parse_condition, parse_expression
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

SPACE = "default"


class Emitted(NamedTuple):
    """One destination call, as both the engine and the reference describe it."""

    destination: str
    profile: str
    journey: str
    step: str
    run: int
    change: str  # "entered" / "exited"
    at: int
    message_id: str
    user_id: str | None
    anonymous_id: str | None


def spec_message_id(
    journey: str, step: str, profile: str, run: int, change: str, destination: str
) -> str:
    """SPEC §5.8: ``jm_`` + 32 hex digits of SHA-256 over the compact JSON array."""
    array = [SPACE, journey, step, profile, run, change, destination]
    text = json.dumps(array, separators=(",", ":"), ensure_ascii=False)
    return "jm_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _children(step: Step) -> list[str]:
    match step:
        case TrueFalseSplitStep():
            return [c for c in (step.true_step_id, step.false_step_id) if c]
        case MultiBranchSplitStep():
            return [b.next_step_id for b in step.branches if b.next_step_id]
        case _:
            return [step.next_step_id] if step.next_step_id else []


Status = Literal["draft", "published", "paused", "archived"]


@dataclass
class RefJourney:
    journey: Journey
    steps: dict[str, Step]
    order: list[str]  # depth-first, children and branches in declared order
    status: Status = "draft"
    since: int = 0  # publish time

    @property
    def id(self) -> str:
        return self.journey.id


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
    held: bool = False  # held back after a pause (SPEC §6 resume)
    was_true: bool = False  # the entry's value at the last look while paused
    doubt: bool = False  # see ReferenceSpace.known_deviations


@dataclass
class RefProfile:
    key: str
    user_id: str | None
    anonymous_id: str | None
    history: History = field(default_factory=lambda: History([]))
    standings: dict[str, RefStanding] = field(default_factory=dict)


class ReferenceSpace:
    """The journeys of one space, run the slow way.

    Attributes:
        outputs: Every destination call, in order.
        known_deviations: Entry decisions after a resume where the engine is
            known to read SPEC §6 differently (docs/decisions.md, "Resume"):
            the profile's entry became true while paused when it was not free
            to enter (in a run, waiting to re-enter, or kept out by the exit
            condition), which
            the engine may not notice; or its entry was true while only the
            exit condition kept it out, which the engine holds against it if it
            happened to look. Tests skip examples that reach one.
    """

    def __init__(
        self,
        journeys: Sequence[Journey],
        audiences: Mapping[str, str],
        computed: Mapping[str, str],
    ) -> None:
        self.journeys: dict[str, RefJourney] = {}  # in creation order
        for journey in journeys:
            steps = {s.id: s for s in journey.steps}
            order: list[str] = []
            pending = [journey.entry.id]
            while pending:
                step_id = pending.pop(0)
                order.append(step_id)
                pending[:0] = _children(steps[step_id])
            self.journeys[journey.id] = RefJourney(journey, steps, order)
        self.audiences = {k: parse_condition(v) for k, v in audiences.items()}
        self.computed = {k: parse_expression(v) for k, v in computed.items()}
        self.profiles: dict[str, RefProfile] = {}
        self.links: dict[str, str] = {}
        self.seen_ids: set[str] = set()
        self.outputs: list[Emitted] = []
        self.known_deviations: list[str] = []
        self.now = 0
        self.trees: dict[str, BoolNode] = {}

    # Conditions, rescanned

    def _tree(self, text: str) -> BoolNode:
        if text not in self.trees:
            self.trees[text] = parse_condition(text, max_leaves=1000)
        return self.trees[text]

    def _holds(self, profile: RefProfile, text: str, t: int, since: int | None) -> bool:
        return value_of(self._tree(text), profile.history, t, since, self.audiences, self.computed)

    def _entry_holds(self, profile: RefProfile, ref: RefJourney, t: int) -> bool:
        entry = ref.journey.entry
        since = None if entry.use_historical_data else ref.since
        return self._holds(profile, entry.condition.text, t, since)

    def _exit_holds(self, profile: RefProfile, ref: RefJourney, t: int) -> bool:
        condition = ref.journey.settings.exit_condition
        return condition is not None and self._holds(profile, condition.text, t, ref.since)

    def _live(self) -> list[RefJourney]:
        return [r for r in self.journeys.values() if r.status in ("published", "paused")]

    # Driving: messages

    def message(self, raw: Mapping[str, Any], received_at: int, timestamp: int) -> None:
        """Applies one Segment-spec message received at ``received_at``, event time
        ``timestamp`` (already corrected for the sender's clock)."""
        self.advance_to(received_at)
        message_id = raw.get("messageId")
        if message_id is not None:
            if message_id in self.seen_ids:
                return  # a duplicate: no effect (SPEC §1)
            self.seen_ids.add(message_id)
        profile = self._route(raw)
        kind = raw["type"]
        if kind == "identify":
            profile.history.messages.append(Identify(dict(raw.get("traits", {})), received_at))
        elif kind in ("track", "page", "screen"):
            properties = dict(raw.get("properties", {}))
            if kind == "track":
                name = raw["event"]
            else:
                name = "Page Viewed" if kind == "page" else "Screen Viewed"
                if "name" in raw:
                    properties["name"] = raw["name"]
            profile.history.messages.append(Track(name, timestamp, received_at, properties, {}))
        # group and alias change no condition, but every message is a chance to enter
        self._look(profile, received_at)

    def _route(self, raw: Mapping[str, Any]) -> RefProfile:
        """SPEC §1: a user id, else the user an anonymous id was linked to, else
        the anonymous id; a message with both ids (or an alias) links them."""
        user_id: str | None = raw.get("userId")
        anonymous_id: str | None = raw.get("anonymousId")
        if raw["type"] == "alias":
            self.links[raw["previousId"]] = str(user_id)
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

    # Driving: the catalog (SPEC §6); each change happens at ``at``, after what fell due

    def publish(self, journey_id: str, at: int) -> None:
        """Nobody is evaluated at publish; later steps see events from ``at`` on."""
        self.advance_to(at)
        ref = self.journeys[journey_id]
        ref.status, ref.since = "published", at

    def pause(self, journey_id: str, at: int) -> None:
        self.advance_to(at)
        ref = self.journeys[journey_id]
        ref.status = "paused"
        for profile in self.profiles.values():
            standing = profile.standings.setdefault(journey_id, RefStanding())
            standing.was_true = self._entry_holds(profile, ref, at)

    def resume(self, journey_id: str, at: int) -> None:
        self.advance_to(at)
        self.journeys[journey_id].status = "published"

    def archive(self, journey_id: str, at: int) -> None:
        """Runs frozen, nothing sent, ever."""
        self.advance_to(at)
        self.journeys[journey_id].status = "archived"

    def delete(self, journey_id: str, at: int) -> None:
        """The journey and its runs are gone; nothing is sent."""
        self.advance_to(at)
        del self.journeys[journey_id]
        for profile in self.profiles.values():
            profile.standings.pop(journey_id, None)

    def connect(
        self, journey_id: str, step_id: str, destination_ids: tuple[str, ...], at: int
    ) -> None:
        """The send step now has ``destination_ids``: each new one gets "entered"
        for every current member (the member's entry message id); a removed one
        gets nothing more."""
        self.advance_to(at)
        ref = self.journeys[journey_id]
        step = ref.steps[step_id]
        assert isinstance(step, SendToDestinationsStep)
        added = [d for d in destination_ids if d not in step.destination_ids]
        ref.steps[step_id] = dataclasses.replace(step, destination_ids=destination_ids)
        for profile in self.profiles.values():
            standing = profile.standings.get(journey_id)
            run = None if standing is None else standing.run
            if run is not None and step_id in run.memberships:
                for dest in added:
                    self._emit(dest, profile, ref, step_id, run.number, "entered", at)

    # Driving: time

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
        live = self._live()
        for ref in live:
            for text in _texts(ref.journey):
                spans += spans_and_paths(self._tree(text))
        for tree in self.audiences.values():
            spans += spans_and_paths(tree)
        for aggregate in self.computed.values():
            spans += _window_spans(aggregate)
        found: set[int] = set()
        for profile in self.profiles.values():
            found |= candidate_instants(profile.history, spans, _dates(profile.history))
            for ref in live:
                standing = profile.standings.get(ref.id)
                if standing is None:
                    continue
                settings = ref.journey.settings
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

    # SPEC §5 and §6, plainly

    def _look(self, profile: RefProfile, t: int) -> None:
        for ref in self._live():  # in creation order
            standing = profile.standings.setdefault(ref.id, RefStanding())
            if ref.status == "published" and standing.held:
                standing.held = self._entry_holds(profile, ref, t)
                standing.doubt = standing.doubt and standing.held
            if standing.run is not None:
                if not self._exit(profile, ref, standing, t):
                    self._advance(profile, ref, standing, t)
            elif ref.status == "published":
                self._entry(profile, ref, standing, t)
            if ref.status == "paused":
                self._note_while_paused(profile, ref, standing, t)

    def _allowed(self, ref: RefJourney, standing: RefStanding, t: int) -> bool:
        """Not in a run and allowed another one now (SPEC §5.6)."""
        settings = ref.journey.settings
        if standing.run is not None:
            return False
        if standing.runs:
            if settings.reentry_after_ms is None or standing.exited_at is None:
                return False
            return t >= standing.exited_at + settings.reentry_after_ms
        return True

    def _note_while_paused(
        self, profile: RefProfile, ref: RefJourney, standing: RefStanding, t: int
    ) -> None:
        holds = self._entry_holds(profile, ref, t)
        allowed = self._allowed(ref, standing, t)
        free = allowed and not self._exit_holds(profile, ref, t)
        if not holds:
            standing.held = standing.doubt = False
        else:
            if not standing.was_true:  # became true while paused
                standing.held = True
                standing.doubt = standing.doubt or not free
            if free:  # true all along and free to enter now: held (docs/decisions.md)
                standing.held = True
            elif allowed and not standing.held:  # only the exit condition keeps it out
                standing.doubt = True
        standing.was_true = holds

    def _emit(
        self,
        dest: str,
        profile: RefProfile,
        ref: RefJourney,
        step_id: str,
        run: int,
        change: str,
        t: int,
    ) -> None:
        mid = spec_message_id(ref.id, step_id, profile.key, run, change, dest)
        self.outputs.append(
            Emitted(
                dest,
                profile.key,
                ref.id,
                step_id,
                run,
                change,
                t,
                mid,
                profile.user_id,
                profile.anonymous_id,
            )
        )

    def _exit(self, profile: RefProfile, ref: RefJourney, standing: RefStanding, t: int) -> bool:
        run = standing.run
        assert run is not None
        settings = ref.journey.settings
        ends = settings.exit_after_ms is not None and t >= run.entered_at + settings.exit_after_ms
        if not ends:
            ends = self._exit_holds(profile, ref, t)
        if ends:
            for step_id in run.memberships:
                step = ref.steps[step_id]
                assert isinstance(step, SendToDestinationsStep)
                for dest in step.destination_ids:
                    self._emit(dest, profile, ref, step_id, run.number, "exited", t)
            standing.run = None
            standing.exited_at = t
        return ends

    def _entry(self, profile: RefProfile, ref: RefJourney, standing: RefStanding, t: int) -> None:
        if not self._allowed(ref, standing, t) or self._exit_holds(profile, ref, t):
            return  # while the exit condition holds, nobody enters (SPEC §5.1)
        holds = self._entry_holds(profile, ref, t)
        if standing.doubt and (holds or standing.held):
            self.known_deviations.append(
                f"{profile.key} in {ref.id} at {t}: the resume rule (SPEC §6) after a "
                "pause the engine did not see the same way"
            )
        if standing.held or not holds:
            return
        standing.runs += 1
        standing.run = RefRun(standing.runs, t)
        self._arrive(profile, ref, standing, ref.journey.entry.id, t)

    def _arrive(
        self, profile: RefProfile, ref: RefJourney, standing: RefStanding, step_id: str, t: int
    ) -> None:
        run = standing.run
        assert run is not None
        step = ref.steps[step_id]
        since = ref.since
        match step:
            case WaitDurationStep():
                run.waits[step_id] = t + step.duration_ms
            case WaitConditionStep():
                if self._holds(profile, step.condition.text, t, since):
                    self._go(profile, ref, standing, step.next_step_id, t)
                else:
                    run.waits[step_id] = None
            case TrueFalseSplitStep():
                holds = self._holds(profile, step.condition.text, t, since)
                child = step.true_step_id if holds else step.false_step_id
                self._go(profile, ref, standing, child, t)
            case MultiBranchSplitStep():
                untaken = []
                for i, branch in enumerate(step.branches):
                    if self._holds(profile, branch.condition.text, t, since):
                        self._go(profile, ref, standing, branch.next_step_id, t)
                    else:
                        untaken.append(i)
                if untaken:
                    run.waits[step_id] = untaken
            case SendToDestinationsStep():
                run.memberships.append(step_id)
                for dest in step.destination_ids:
                    self._emit(dest, profile, ref, step_id, run.number, "entered", t)
                self._go(profile, ref, standing, step.next_step_id, t)
            case EntryStep():
                self._go(profile, ref, standing, step.next_step_id, t)

    def _go(
        self,
        profile: RefProfile,
        ref: RefJourney,
        standing: RefStanding,
        child: str | None,
        t: int,
    ) -> None:
        if child is not None:
            self._arrive(profile, ref, standing, child, t)

    def _advance(self, profile: RefProfile, ref: RefJourney, standing: RefStanding, t: int) -> None:
        run = standing.run
        assert run is not None
        since = ref.since
        for step_id in [s for s in ref.order if s in run.waits]:
            step = ref.steps[step_id]
            wait = run.waits[step_id]
            match step:
                case WaitDurationStep():
                    if wait <= t:
                        del run.waits[step_id]
                        self._go(profile, ref, standing, step.next_step_id, t)
                case WaitConditionStep():
                    if self._holds(profile, step.condition.text, t, since):
                        del run.waits[step_id]
                        self._go(profile, ref, standing, step.next_step_id, t)
                case MultiBranchSplitStep():
                    untaken = []
                    for i in wait:
                        branch = step.branches[i]
                        if self._holds(profile, branch.condition.text, t, since):
                            self._go(profile, ref, standing, branch.next_step_id, t)
                        else:
                            untaken.append(i)
                    if untaken:
                        run.waits[step_id] = untaken
                    else:
                        del run.waits[step_id]


def _texts(journey: Journey) -> list[str]:
    texts = []
    if journey.settings.exit_condition is not None:
        texts.append(journey.settings.exit_condition.text)
    for step in journey.steps:
        if isinstance(step, EntryStep | WaitConditionStep | TrueFalseSplitStep):
            texts.append(step.condition.text)
        elif isinstance(step, MultiBranchSplitStep):
            texts += [b.condition.text for b in step.branches]
    return texts


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
