"""Counts and step rosters, kept as users move, equal a recount from the timelines.

Random journeys (waits, splits, multi-branch, exit settings, re-entry) run over
random scripts with lifecycle moves. At the end, every count of every journey
still there — entered users and runs, in progress, exited, and per step members,
waiting, ever joined and each side of its splits — and every step's roster must
equal what a brute-force pass over every profile's stored timeline says.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings

from journeys_engine import Engine, NotFoundError
from journeys_engine.model import Journey, MultiBranchSplitStep, TrueFalseSplitStep
from journeys_engine.reporting import JourneyReport, StepReport
from journeys_engine.runtime.timeline import EntryKind, TimelineEntry
from tests.engine.runtime.test_differential import _run_script
from tests.helpers.journey_strategies import Script, cases

EXAMPLES = int(os.environ.get("DIFFERENTIAL_EXAMPLES", "50"))

Run = tuple[str, int]  # (actor id, run number)


@dataclass
class _Recount:
    """One journey's counts, worked out from timelines alone."""

    entered: list[Run] = field(default_factory=list)
    exited: set[Run] = field(default_factory=set)
    arrived: dict[str, list[Run]] = field(default_factory=lambda: defaultdict(list))
    held: dict[str, set[Run]] = field(default_factory=lambda: defaultdict(set))
    sides: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    def see(self, actor_id: str, entry: TimelineEntry, journey: Journey) -> None:
        run = (actor_id, entry.run)
        step = entry.step_id or ""
        match entry.kind:
            case EntryKind.ENTERED:
                self.entered.append(run)
            case EntryKind.EXITED:
                self.exited.add(run)
            case EntryKind.ARRIVED:
                self.arrived[step].append(run)
            case EntryKind.WAITING:
                self.held[step].add(run)
            case EntryKind.PASSED:
                self.held[step].discard(run)
            case EntryKind.SPLIT:
                self.sides[step][0 if entry.detail["branch"] == "true" else 1] += 1
            case EntryKind.BRANCH_TAKEN:
                branches = next(
                    s.branches for s in journey.steps if isinstance(s, MultiBranchSplitStep)
                    and s.id == step
                )  # fmt: skip
                assert branches[entry.detail["index"]].name == entry.detail["branch"]
                self.sides[step][entry.detail["index"]] += 1

    def members(self, step_id: str) -> set[Run]:
        return {r for r in self.arrived[step_id] if r not in self.exited}

    def waiting(self, step_id: str) -> set[Run]:
        return {r for r in self.held[step_id] if r not in self.exited}

    def step(self, journey: Journey, step_id: str) -> StepReport:
        step = next(s for s in journey.steps if s.id == step_id)
        count = (
            2
            if isinstance(step, TrueFalseSplitStep)
            else len(step.branches)
            if isinstance(step, MultiBranchSplitStep)
            else 0
        )
        return StepReport(
            step_id,
            len(self.members(step_id)),
            len(self.waiting(step_id)),
            len({actor for actor, _ in self.arrived[step_id]}),
            len(self.arrived[step_id]),
            tuple(self.sides[step_id][i] for i in range(count)),
        )

    def report(self, journey: Journey) -> JourneyReport:
        return JourneyReport(
            journey,
            len({actor for actor, _ in self.entered}),
            len(self.entered),
            len([r for r in self.entered if r not in self.exited]),
            len(self.exited),
            tuple(self.step(journey, s.id) for s in journey.tree_order()),
        )


async def _check(engine: Engine, plans: Sequence[Journey], seen: dict[str, int]) -> None:
    journeys = {}
    for plan in plans:
        try:
            journeys[plan.id] = await engine.journeys.get("default", plan.id)
        except NotFoundError:
            continue  # deleted: its counts and timelines went with it
    recounts = {journey_id: _Recount() for journey_id in journeys}
    for actor_id in await engine.store.actor_ids("default", "", 1_000_000):
        for entry in await engine.store.timeline("default", actor_id, None, 0, 1_000_000):
            assert entry.journey_id in recounts, "a deleted journey's timeline was kept"
            recounts[entry.journey_id].see(actor_id, entry, journeys[entry.journey_id])
    for journey_id, journey in journeys.items():
        recount = recounts[journey_id]
        assert await engine.reporting.journey("default", journey_id) == recount.report(journey)
        for step in journey.steps:
            assert await _roster(engine, journey_id, step.id) == recount.members(step.id)
            held = await _roster(engine, journey_id, step.id, waiting=True)
            assert held == recount.waiting(step.id)
        seen["entered"] += len(recount.entered)
        seen["exited"] += len(recount.exited)
        seen["re-entered"] += len(recount.entered) - len({a for a, _ in recount.entered})


async def _roster(
    engine: Engine, journey_id: str, step_id: str, *, waiting: bool = False
) -> set[tuple[str, int]]:
    rows = await engine.store.members(
        "default", journey_id, step_id, waiting=waiting, offset=0, limit=1_000_000
    )
    return {(actor_id, run) for actor_id, run, _ in rows}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_counts_and_rosters_equal_a_recount_from_the_timelines(
    case: tuple[tuple[Journey, ...], Script],
) -> None:
    plans, script = case
    seen: Counter[str] = Counter()

    async def check(engine: Engine) -> None:
        await _check(engine, plans, seen)

    asyncio.run(_run_script(plans, script, inspect=check))
    for what in ("entered", "exited", "re-entered"):
        event(f"{what}: {'some' if seen[what] else 'none'}")
