"""How a profile moves through one journey at one instant (SPEC §5).

:meth:`StepRunner.process` looks at one profile in one journey at instant
``t``: exit first (``exit_after``, then the exit condition), then the steps the
run is held at, in tree order; or, outside a run, entry. Arrivals cascade at
once, depth-first, children and branches in declared order. Every condition is
evaluated with its re-check instant, kept so the profile can be woken exactly
when something may change. Each transition is counted (SPEC §8) and recorded on
the profile's timeline; who is at which step follows from the runs themselves
(stored with each snapshot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from journeys_engine.conditions.ast import BoolNode
from journeys_engine.conditions.evaluator import evaluate
from journeys_engine.conditions.profile import earliest
from journeys_engine.model.journey import (
    JourneyStatus,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)
from journeys_engine.runtime.actor import Actor, JourneyState, Run, Wait, WaitKind
from journeys_engine.runtime.live import LiveJourney
from journeys_engine.runtime.timeline import CauseKind, EntryKind

if TYPE_CHECKING:
    from journeys_engine.runtime.space import SpaceRuntime

__all__ = ["StepRunner"]


class StepRunner:
    """The journey rules of SPEC §5, applied to one profile of a space."""

    def __init__(self, space: SpaceRuntime) -> None:
        self.space = space

    def _eval(
        self, node: BoolNode, actor: Actor, t: int, since: int | None
    ) -> tuple[bool, int | None]:
        return evaluate(node, actor.conditions, self.space.conditions.definitions, t, since)

    # Entry and exit

    def process(self, actor: Actor, live: LiveJourney, t: int) -> None:
        """Looks at ``actor`` in ``live`` at instant ``t`` (a message or a re-check)."""
        state = actor.state(live.id)
        run = state.run
        if run is not None:
            if self._exits(actor, live, state, run, t):
                return
            self._advance(actor, live, run, t)
            return
        self._maybe_enter(actor, live, state, t)

    def _exits(
        self, actor: Actor, live: LiveJourney, state: JourneyState, run: Run, t: int
    ) -> bool:
        settings = live.journey.settings
        if settings.exit_after_ms is not None and t >= run.entered_at + settings.exit_after_ms:
            self.end_run(actor, live, state, t, reason="exit_after")
            return True
        if live.exit_condition is not None:
            holds, state.exit_recheck = self._eval(live.exit_condition, actor, t, live.since)
            if holds:
                self.end_run(actor, live, state, t, reason="exit_condition")
                return True
        return False

    def _maybe_enter(self, actor: Actor, live: LiveJourney, state: JourneyState, t: int) -> None:
        state.entry_recheck = None
        settings = live.journey.settings
        if state.runs:
            if settings.reentry_after_ms is None or state.exited_at is None:
                return  # at most one run without reentry_after
            if t < state.exited_at + settings.reentry_after_ms:
                state.entry_recheck = state.exited_at + settings.reentry_after_ms
                return
        assert live.entry is not None
        if live.status is JourneyStatus.PAUSED or state.blocked:
            # Became true while paused: after resuming, only a false -> true
            # change admits (SPEC §6), whatever the exit condition says meanwhile.
            state.blocked, state.entry_recheck = self._eval(live.entry, actor, t, live.entry_since)
            return
        exit_recheck = None
        if live.exit_condition is not None:
            blocking, exit_recheck = self._eval(live.exit_condition, actor, t, live.since)
            if blocking:  # while the exit condition holds, nobody enters
                state.entry_recheck = exit_recheck
                return
        holds, recheck = self._eval(live.entry, actor, t, live.entry_since)
        state.entry_recheck = earliest(exit_recheck, recheck)
        if holds:
            state.exit_recheck = exit_recheck
            self._enter(actor, live, state, t)

    def _enter(self, actor: Actor, live: LiveJourney, state: JourneyState, t: int) -> None:
        state.runs += 1
        state.entry_recheck = None
        run = state.run = Run(state.runs, t)
        stats = self.space.stats_of(live.id)
        if state.runs == 1:
            stats.entered_users += 1
        stats.entered_runs += 1
        stats.in_progress += 1
        self.space.record(actor, live.id, run.number, EntryKind.ENTERED, None, t)
        self._arrive(actor, live, state, run, live.journey.entry.id, t)

    def end_run(
        self,
        actor: Actor,
        live: LiveJourney,
        state: JourneyState,
        t: int,
        *,
        reason: str,
    ) -> None:
        """Ends the current run (``exit_after``, ``exit_condition``, or the journey
        ``archived``): it leaves every step, and each send step's destinations get
        "exited" — none for an archived journey, which sends nothing."""
        run = state.run
        assert run is not None
        space = self.space
        stats = space.stats_of(live.id)
        space.record(actor, live.id, run.number, EntryKind.EXITED, None, t, reason=reason)
        for step_id in run.memberships:
            space.leave_membership(actor, live, step_id, run.number, t)
        for step_id in run.joined:
            stats.step(step_id).members -= 1
        for step_id in run.waits:
            stats.step(step_id).waiting -= 1
        stats.in_progress -= 1
        stats.exited_runs += 1
        state.run = None
        actor.moved = True
        state.exited_at = t
        state.exit_recheck = None
        if live.journey.settings.reentry_after_ms is not None:
            state.entry_recheck = t + live.journey.settings.reentry_after_ms

    # Steps

    def _arrive(
        self, actor: Actor, live: LiveJourney, state: JourneyState, run: Run, step_id: str, t: int
    ) -> None:
        step = live.step(step_id)
        space = self.space
        stats = space.stats_of(live.id)
        step_stats = stats.step(step_id)
        run.joined.append(step_id)
        run.joined_at.append(t)
        run.joined_after.append(actor.position)
        actor.moved = True
        space.record(actor, live.id, run.number, EntryKind.ARRIVED, step_id, t)
        step_stats.members += 1
        step_stats.joined_runs += 1
        if step_id not in state.ever_joined:
            state.ever_joined.add(step_id)
            step_stats.joined_users += 1
        match step:
            case WaitDurationStep():
                self._hold(
                    actor, live, run, step_id, Wait(WaitKind.DURATION, t + step.duration_ms), t
                )
            case WaitConditionStep():
                holds, recheck = self._eval(live.conditions[step_id], actor, t, live.since)
                if holds:
                    self._passed(actor, live, run, step_id, t, "condition")
                    self._next(actor, live, state, run, step.next_step_id, t)
                else:
                    self._hold(actor, live, run, step_id, Wait(WaitKind.CONDITION, recheck), t)
            case TrueFalseSplitStep():
                holds, _ = self._eval(live.conditions[step_id], actor, t, live.since)
                step_stats.took(0 if holds else 1)
                space.record(
                    actor, live.id, run.number, EntryKind.SPLIT, step_id, t,
                    branch="true" if holds else "false",
                )  # fmt: skip
                child = step.true_step_id if holds else step.false_step_id
                self._next(actor, live, state, run, child, t)
            case MultiBranchSplitStep():
                wait = Wait(WaitKind.BRANCHES, None)
                self._take_branches(
                    actor, live, state, run, step, wait, range(len(step.branches)), t
                )
                if wait.untaken:
                    self._hold(actor, live, run, step_id, wait, t)
                else:
                    self._passed(actor, live, run, step_id, t, "branches")
            case SendToDestinationsStep():
                run.memberships.append(step_id)
                self.space.join_membership(actor, live, step, run.number, t)
                self._next(actor, live, state, run, step.next_step_id, t)
            case _:  # the entry step
                self._next(actor, live, state, run, step.next_step_id, t)

    def _next(
        self,
        actor: Actor,
        live: LiveJourney,
        state: JourneyState,
        run: Run,
        child: str | None,
        t: int,
    ) -> None:
        if child is not None and state.run is run:
            self._arrive(actor, live, state, run, child, t)

    def _hold(
        self, actor: Actor, live: LiveJourney, run: Run, step_id: str, wait: Wait, t: int
    ) -> None:
        run.waits[step_id] = wait
        actor.moved = True
        space = self.space
        space.stats_of(live.id).step(step_id).waiting += 1
        detail: dict[str, object]
        if wait.kind is WaitKind.DURATION:
            detail = {"until": wait.until}
        elif wait.kind is WaitKind.CONDITION:
            detail = {"recheck_at": wait.recheck_at}
        else:
            detail = {"recheck_at": wait.recheck_at, "branches": list(wait.untaken)}
        space.record(actor, live.id, run.number, EntryKind.WAITING, step_id, t, **detail)

    def _release(
        self, actor: Actor, live: LiveJourney, run: Run, step_id: str, t: int, reason: str
    ) -> None:
        del run.waits[step_id]
        actor.moved = True
        self.space.stats_of(live.id).step(step_id).waiting -= 1
        self._passed(actor, live, run, step_id, t, reason)

    def _passed(
        self, actor: Actor, live: LiveJourney, run: Run, step_id: str, t: int, reason: str
    ) -> None:
        self.space.record(actor, live.id, run.number, EntryKind.PASSED, step_id, t, reason=reason)

    def _rechecked(
        self, actor: Actor, live: LiveJourney, run: Run, step_id: str, due: int | None, t: int
    ) -> None:
        """A wait whose own re-check fell due still holds the run: noted with the next one.

        (Re-checks prompted by messages are not noted: a wait is looked at on
        every message that can change it, and the timeline would fill with them.)
        """
        if due is not None and due <= t and self.space.cause.kind is CauseKind.TIMER:
            recheck_at = run.waits[step_id].recheck_at
            self.space.record(
                actor, live.id, run.number, EntryKind.RECHECKED, step_id, t, recheck_at=recheck_at
            )

    def _take_branches(
        self,
        actor: Actor,
        live: LiveJourney,
        state: JourneyState,
        run: Run,
        step: MultiBranchSplitStep,
        wait: Wait,
        candidates: range | list[int],
        t: int,
    ) -> None:
        """Takes, in declared order, every candidate branch whose condition holds."""
        untaken: list[int] = []
        recheck: int | None = None
        conditions = live.branches[step.id]
        for i in candidates:
            holds, at = self._eval(conditions[i], actor, t, live.since)
            if holds:
                self.space.stats_of(live.id).step(step.id).took(i)
                self.space.record(
                    actor, live.id, run.number, EntryKind.BRANCH_TAKEN, step.id, t,
                    branch=step.branches[i].name, index=i,
                )  # fmt: skip
                self._next(actor, live, state, run, step.branches[i].next_step_id, t)
            else:
                untaken.append(i)
                recheck = earliest(recheck, at)
        wait.untaken = untaken
        wait.due = recheck

    def _advance(self, actor: Actor, live: LiveJourney, run: Run, t: int) -> None:
        """Moves the run on from every step it is held at where it now may, in tree order."""
        state = actor.state(live.id)
        for step_id in sorted(run.waits, key=live.order.__getitem__):
            wait = run.waits.get(step_id)
            if wait is None or state.run is not run:
                continue
            step = live.step(step_id)
            match step:
                case WaitDurationStep():
                    if wait.due is not None and wait.due <= t:
                        self._release(actor, live, run, step_id, wait.due, "duration")
                        self._next(actor, live, state, run, step.next_step_id, wait.due)
                case WaitConditionStep():
                    due = wait.due
                    holds, wait.due = self._eval(live.conditions[step_id], actor, t, live.since)
                    if holds:
                        self._release(actor, live, run, step_id, t, "condition")
                        self._next(actor, live, state, run, step.next_step_id, t)
                    else:
                        self._rechecked(actor, live, run, step_id, due, t)
                case MultiBranchSplitStep():
                    due = wait.due
                    self._take_branches(actor, live, state, run, step, wait, wait.untaken, t)
                    if not wait.untaken:
                        self._release(actor, live, run, step_id, t, "branches")
                    else:  # (a cascade never ends the run: it is still current)
                        self._rechecked(actor, live, run, step_id, due, t)

    # Wake-ups

    def next_due(self, state: JourneyState, live: LiveJourney) -> int | None:
        """The earliest instant this profile must be looked at again in this journey."""
        if live.status is JourneyStatus.ARCHIVED:
            return None  # runs are frozen
        run = state.run
        if run is None:
            return state.entry_recheck
        due = state.exit_recheck
        exit_after = live.journey.settings.exit_after_ms
        if exit_after is not None:
            due = earliest(due, run.entered_at + exit_after)
        for wait in run.waits.values():
            due = earliest(due, wait.due)
        return due
