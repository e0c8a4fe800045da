"""Counts per journey and step, kept as transitions happen (SPEC §8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["JourneyStats", "StepStats", "stats_data", "stats_from"]


@dataclass(slots=True)
class StepStats:
    """Per step.

    Attributes:
        members: Runs that joined the step and have not ended.
        waiting: Runs held at the step now.
        joined_runs: Runs that ever joined it.
        joined_users: Profiles that ever joined it.
        branches: Runs that took each side of a split: ``[true, false]`` for a
            true/false split, one per branch in declared order for a
            multi-branch split; empty for other steps.
    """

    members: int = 0
    waiting: int = 0
    joined_runs: int = 0
    joined_users: int = 0
    branches: list[int] = field(default_factory=list)

    def took(self, branch: int) -> None:
        """A run took branch ``branch`` (0 is a true/false split's true side)."""
        if len(self.branches) <= branch:
            self.branches.extend([0] * (branch + 1 - len(self.branches)))
        self.branches[branch] += 1


@dataclass(slots=True)
class JourneyStats:
    """Per journey.

    Attributes:
        entered_users: Profiles that ever entered.
        entered_runs: Runs started.
        in_progress: Runs not ended.
        exited_runs: Runs ended.
        steps: Per step id.
    """

    entered_users: int = 0
    entered_runs: int = 0
    in_progress: int = 0
    exited_runs: int = 0
    steps: dict[str, StepStats] = field(default_factory=dict)

    def step(self, step_id: str) -> StepStats:
        stats = self.steps.get(step_id)
        if stats is None:
            stats = self.steps[step_id] = StepStats()
        return stats


def stats_data(stats: JourneyStats) -> dict[str, object]:
    """Plain data for the store."""
    return {
        "entered_users": stats.entered_users,
        "entered_runs": stats.entered_runs,
        "in_progress": stats.in_progress,
        "exited_runs": stats.exited_runs,
        "steps": {
            step: [s.members, s.waiting, s.joined_runs, s.joined_users, list(s.branches)]
            for step, s in stats.steps.items()
        },
    }


def stats_from(data: dict[str, Any]) -> JourneyStats:
    """The counts :func:`stats_data` described."""
    return JourneyStats(
        data["entered_users"],
        data["entered_runs"],
        data["in_progress"],
        data["exited_runs"],
        {
            step: StepStats(
                members=values[0],
                waiting=values[1],
                joined_runs=values[2],
                joined_users=values[3],
                branches=list(values[4]) if len(values) > 4 else [],
            )
            for step, values in data["steps"].items()
        },
    )
