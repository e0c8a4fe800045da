"""Reporting (SPEC §8): journey and step counts, who is at a step, profiles, timelines.

Counts are kept by the runtime as transitions happen, and who is at each step
is stored with the profiles' snapshots (indexed by step); nothing here scans
profiles. Every read first lets the messages received before it be
applied, so a caller sees what it sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from journeys_engine.catalog import Journeys, Page, Spaces
from journeys_engine.catalog.paging import PageRequest
from journeys_engine.errors import FieldViolation, InvalidArgumentError, NotFoundError
from journeys_engine.model.journey import (
    Journey,
    JourneyStatus,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    Step,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)
from journeys_engine.runtime import Runtime, WaitKind
from journeys_engine.runtime.actor import Actor, JourneyState, Wait
from journeys_engine.runtime.identity import profile_id
from journeys_engine.runtime.space import SpaceRuntime
from journeys_engine.runtime.stats import JourneyStats, StepStats
from journeys_engine.runtime.timeline import TimelineEntry
from journeys_engine.store.durable import DurableStore

__all__ = [
    "JourneyReport",
    "Member",
    "ProfileJourney",
    "ProfileView",
    "Reporting",
    "StepReport",
    "StepWait",
]

_HOLDING = (WaitDurationStep, WaitConditionStep, MultiBranchSplitStep)  # steps that hold runs


@dataclass(frozen=True, slots=True)
class StepReport:
    """A step's counts (SPEC §8).

    Attributes:
        step_id: The step.
        members: Runs that joined it and have not ended.
        waiting: Runs held at it now.
        joined_users: Profiles that ever joined it.
        joined_runs: Runs that ever joined it.
        branches: Runs that took each side: ``(true, false)`` for a true/false
            split, one per branch for a multi-branch split, empty otherwise.
    """

    step_id: str
    members: int
    waiting: int
    joined_users: int
    joined_runs: int
    branches: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class JourneyReport:
    """A journey's counts, its steps in tree order.

    Attributes:
        journey: The journey as stored now.
        entered_users: Profiles that ever entered.
        entered_runs: Runs started.
        in_progress: Runs not ended.
        exited_runs: Runs ended.
        steps: Per step, depth-first from the entry.
    """

    journey: Journey
    entered_users: int
    entered_runs: int
    in_progress: int
    exited_runs: int
    steps: tuple[StepReport, ...]


@dataclass(frozen=True, slots=True)
class Member:
    """A run at a step: the profile and its run number; ``waiting`` when held there."""

    profile_key: str
    user_id: str | None
    anonymous_id: str | None
    run: int
    waiting: bool = False


@dataclass(frozen=True, slots=True)
class StepWait:
    """A run held at a step now.

    Attributes:
        step_id: The step.
        kind: A duration, a condition, or untaken branches.
        until: For a duration: when the run moves on.
        recheck_at: For a condition or branches: the next re-check, or None when
            only new data can change it.
        untaken: For a multi-branch split: the indexes of the branches not taken.
        step_name: The step's name.
        condition: For a condition: its text.
        untaken_names: For a multi-branch split: the names of the branches not taken.
    """

    step_id: str
    kind: WaitKind
    until: int | None
    recheck_at: int | None
    untaken: tuple[int, ...]
    step_name: str = ""
    condition: str | None = None
    untaken_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProfileJourney:
    """A profile's standing in a journey it was looked at in (entered or not).

    Attributes:
        journey_id: The journey.
        name: The journey's name.
        status: The journey's status.
        runs: Runs started.
        run: The current run's number, or None outside a run.
        entered_at: The current run's entry instant.
        exited_at: When the last run ended, if one did.
        steps: Steps joined in the current run, in order (ids).
        step_names: Their names.
        waits: Where the current run is held.
        next_check: When the engine looks at the profile in this journey again
            without new data (a wait's end, a re-check, exit_after, re-entry).
        entry_blocked: The entry condition held while the journey was paused:
            it must turn false once before the profile may enter (SPEC §6).
        reentry_at: Outside a run, with ``reentry_after``: the earliest instant
            it may enter again (None when it may not, or may already).
    """

    journey_id: str
    name: str
    status: JourneyStatus
    runs: int
    run: int | None
    entered_at: int | None
    exited_at: int | None
    steps: tuple[str, ...]
    step_names: tuple[str, ...]
    waits: tuple[StepWait, ...]
    next_check: int | None
    entry_blocked: bool = False
    reentry_at: int | None = None


@dataclass(frozen=True, slots=True)
class ProfileView:
    """A profile now (SPEC §8).

    Attributes:
        profile_key: Its user id, or its anonymous id when it has none.
        user_id: Its user id, if any.
        anonymous_id: The first anonymous id recorded for it.
        linked_user_id: When asked for by an anonymous id since linked to a
            user: that user (their profile receives the id's later messages).
        traits: Traits, merged from identify calls.
        computed_traits: Computed trait values by id.
        audiences: Ids of the audiences it is a member of.
        journeys: The live and archived journeys it was looked at in, in creation
            order, entered or not.
    """

    profile_key: str
    user_id: str | None
    anonymous_id: str | None
    linked_user_id: str | None
    traits: Mapping[str, Any]
    computed_traits: Mapping[str, Any]
    audiences: tuple[str, ...]
    journeys: tuple[ProfileJourney, ...]


class Reporting:
    """Reads of the runtime's counts, rosters and profiles, and stored timelines.

    Args:
        spaces: The spaces catalog.
        journeys: The journeys catalog.
        runtime: The live runtime.
        store: The durable store (timelines, identity links).
        settle: Waits until the messages received so far are applied.
        activate: Makes stored profiles resident (space id, actor ids).
        now: The engine clock's time.
    """

    def __init__(
        self,
        spaces: Spaces,
        journeys: Journeys,
        runtime: Runtime,
        store: DurableStore,
        settle: Callable[[], Awaitable[None]],
        activate: Callable[[str, Collection[str]], Awaitable[None]],
        now: Callable[[], int],
    ) -> None:
        self._now = now
        self._activate = activate
        self._spaces = spaces
        self._journeys = journeys
        self._runtime = runtime
        self._store = store
        self._settle = settle

    async def journey(self, space_id: str, journey_id: str) -> JourneyReport:
        """A journey's counts (all zero for a draft).

        Raises:
            NotFoundError: no such space or journey.
        """
        journey = await self._journeys.get(space_id, journey_id)
        await self._settle()
        stats = self._runtime.space(space_id).stats.get(journey_id) or JourneyStats()
        return JourneyReport(
            journey,
            stats.entered_users,
            stats.entered_runs,
            stats.in_progress,
            stats.exited_runs,
            tuple(_step_report(step, stats.steps.get(step.id)) for step in journey.tree_order()),
        )

    async def step_users(
        self,
        space_id: str,
        journey_id: str,
        step_id: str,
        *,
        waiting: bool = False,
        send_only: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Member]:
        """The runs at a step (joined and not ended), or only those held there, in the
        order they came, paged.

        Raises:
            NotFoundError: no such space, journey or step.
            InvalidArgumentError: a bad page size or token; with ``send_only``, the
                step is not a send step.
        """
        journey = await self._journeys.get(space_id, journey_id)
        if not step_id:
            raise InvalidArgumentError.single("step_id", "is required")
        step = next((s for s in journey.steps if s.id == step_id), None)
        if step is None:
            raise NotFoundError(
                kind="step", id=step_id, space_id=space_id, parent=f"journey {journey_id!r}"
            )
        if send_only and not isinstance(step, SendToDestinationsStep):
            raise InvalidArgumentError.single(
                "step_id", f"{step_id!r} is not a send step of journey {journey_id!r}"
            )
        if waiting and not isinstance(step, _HOLDING):
            raise InvalidArgumentError.single(
                "waiting_only",
                f"step {step_id!r} is a {step.KIND} step, which never holds anyone: only "
                "wait_duration, wait_condition and multi_branch_split steps do",
            )
        request = PageRequest.parse(page_size, page_token)
        await self._settle()
        found = await self._store.members(
            space_id,
            journey_id,
            step_id,
            waiting=waiting,
            offset=request.after,
            limit=request.size + 1,
        )
        await self._activate(space_id, [actor_id for actor_id, _, _ in found])
        actors = self._runtime.space(space_id).actors
        rows = []
        for offset, (actor_id, run, held) in enumerate(found):
            actor = actors.get(actor_id)
            if actor is None:
                continue  # deleted since the rows were read
            member = Member(actor.key, actor.user_id, actor.anonymous_id, run, held)
            rows.append((request.after + offset + 1, member))
        return request.page(rows)

    async def profile(
        self, space_id: str, *, user_id: str = "", anonymous_id: str = ""
    ) -> ProfileView:
        """A profile's traits, computed traits, audiences and journeys now.

        Raises:
            NotFoundError: no such space or profile.
            InvalidArgumentError: not exactly one of the ids given.
        """
        space, actor, linked = await self._find(space_id, user_id, anonymous_id)
        conditions = actor.conditions
        journeys = []
        for journey_id, live in space.journeys.items():  # in creation order
            state = actor.journeys.get(journey_id)
            if state is not None:
                due = space.runner.next_due(state, live)
                reentry = live.journey.settings.reentry_after_ms
                reentry_at = None
                if reentry is not None and state.run is None and state.exited_at is not None:
                    reentry_at = state.exited_at + reentry
                    reentry_at = reentry_at if reentry_at > self._now() else None
                journeys.append(_profile_journey(live.journey, state, due, reentry_at))
        return ProfileView(
            actor.key,
            actor.user_id,
            actor.anonymous_id,
            linked,
            dict(conditions.traits),
            dict(conditions.computed),
            tuple(sorted(a for a, member in conditions.audiences.items() if member)),
            tuple(journeys),
        )

    async def timeline(
        self,
        space_id: str,
        *,
        user_id: str = "",
        anonymous_id: str = "",
        journey_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[TimelineEntry]:
        """A profile's timeline, oldest first, paged; one journey's when named. Each
        entry's detail also names its step (``step_name``), the condition a wait or
        split looks at (``condition``) and the untaken branches' names
        (``untaken_names``), from the journey, which cannot change while live.

        Raises:
            NotFoundError: no such space, profile or journey.
            InvalidArgumentError: not exactly one of the ids given; a bad page
                size or token.
        """
        space, actor, _ = await self._find(space_id, user_id, anonymous_id)
        if journey_id:
            await self._journeys.get(space_id, journey_id)
        request = PageRequest.parse(page_size, page_token)
        entries = await self._store.timeline(
            space_id, actor.id, journey_id or None, request.after, request.size + 1
        )
        rows = []
        for stored in entries:
            live = space.journeys.get(stored.journey_id)
            step = None if live is None else live.steps.get(stored.step_id or "")
            entry = stored
            if step is not None:
                named = _named(step, stored.detail.get("branches", ()))
                entry = dataclasses.replace(stored, detail={**stored.detail, **named})
            rows.append((entry.sequence, entry))
        return request.page(rows)

    async def _find(
        self, space_id: str, user_id: str, anonymous_id: str
    ) -> tuple[SpaceRuntime, Actor, str | None]:
        """The profile of a user id, or of an anonymous id; for an anonymous id
        linked to a user, also that user id. An anonymous id that never had a
        profile of its own (its first message named the user) finds the user's."""
        await self._spaces.get(space_id)
        if bool(user_id) == bool(anonymous_id):
            problem = "give either a user id or an anonymous id (exactly one)"
            raise InvalidArgumentError(
                [FieldViolation("user_id", problem), FieldViolation("anonymous_id", problem)]
            )
        await self._settle()
        space = self._runtime.space(space_id)
        linked = self._store.linked_user(space_id, anonymous_id) if anonymous_id else None
        own = profile_id(user_id or None, anonymous_id or None)
        candidates = [own] if linked is None else [own, profile_id(linked, None)]
        await self._activate(space_id, candidates)
        actor = space.actors.get(own)
        if actor is None and linked is not None:
            actor = space.actors.get(profile_id(linked, None))
        if actor is None:
            raise NotFoundError(kind="profile", id=user_id or anonymous_id, space_id=space_id)
        return space, actor, linked


def _step_report(step: Step, stats: StepStats | None) -> StepReport:
    stats = stats or StepStats()
    branches: tuple[int, ...] = ()
    sides = (
        2
        if isinstance(step, TrueFalseSplitStep)
        else len(step.branches)
        if isinstance(step, MultiBranchSplitStep)
        else 0
    )
    if sides:
        taken = stats.branches + [0] * (sides - len(stats.branches))
        branches = tuple(taken[:sides])
    return StepReport(
        step.id, stats.members, stats.waiting, stats.joined_users, stats.joined_runs, branches
    )


def _named(step: Step, untaken: Iterable[int]) -> dict[str, Any]:
    """A step's name, the condition it looks at, and untaken branches' names."""
    named: dict[str, Any] = {"step_name": step.name}
    if isinstance(step, WaitConditionStep | TrueFalseSplitStep):
        named["condition"] = step.condition.text
    elif isinstance(step, MultiBranchSplitStep):
        named["untaken_names"] = [step.branches[i].name for i in untaken]
    return named


def _step_wait(step: Step, wait: Wait) -> StepWait:
    named = _named(step, wait.untaken)
    return StepWait(
        step.id,
        wait.kind,
        wait.until,
        wait.recheck_at,
        tuple(wait.untaken),
        step.name,
        named.get("condition"),
        tuple(named.get("untaken_names", ())),
    )


def _profile_journey(
    journey: Journey, state: JourneyState, due: int | None, reentry_at: int | None
) -> ProfileJourney:
    run = state.run
    steps = {s.id: s for s in journey.steps}
    waits: tuple[StepWait, ...] = ()
    if run is not None:
        waits = tuple(_step_wait(steps[step_id], wait) for step_id, wait in run.waits.items())
    return ProfileJourney(
        journey.id,
        journey.name,
        journey.status,
        state.runs,
        None if run is None else run.number,
        None if run is None else run.entered_at,
        state.exited_at,
        () if run is None else tuple(run.joined),
        () if run is None else tuple(steps[s].name for s in run.joined),
        waits,
        due,
        state.blocked,
        reentry_at,
    )
