"""A profile's timeline: what happened to it in each journey, and why (SPEC §8).

Every transition the runtime makes is recorded with its instant, the run, the
step and its cause — the message applied, a timer, a definition change or a
journey change. Entries are committed with the unit of work that made them,
so the timeline never shows a transition the profile's state does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Cause", "CauseKind", "EntryKind", "TimelineEntry", "TimelineRow"]


class EntryKind(StrEnum):
    """What happened."""

    ENTERED = "entered"  # a run began (the entry condition held)
    ARRIVED = "arrived"  # the run arrived at a step
    WAITING = "waiting"  # held at a step: a duration, a condition, untaken branches
    RECHECKED = "rechecked"  # a due re-check found the wait still holds the run
    PASSED = "passed"  # the wait is over: duration elapsed, condition held, all branches taken
    SPLIT = "split"  # a true/false split sent the run down one side
    BRANCH_TAKEN = "branch_taken"  # a multi-branch split's branch was taken
    SENT = "sent"  # a destination call was produced
    EXITED = "exited"  # the run ended


class CauseKind(StrEnum):
    """What made it happen."""

    MESSAGE = "message"  # a message was applied
    TIMER = "timer"  # a wake-up fell due
    DEFINITIONS = "definitions"  # an audience or computed trait was changed
    JOURNEY = "journey"  # the journey was changed (a destination connected)
    HISTORY = "history"  # published with historical data: the history matched
    DELETION = "deletion"  # the profile was deleted (its timeline goes with it)


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a transition happened at its instant.

    Attributes:
        kind: A message, a timer, a definition change or a journey change.
        message_id: For a message: its id.
        message_type: For a message: track, identify, page, ….
        event: For a track, page or screen message: the event name.
    """

    kind: CauseKind
    message_id: str | None = None
    message_type: str | None = None
    event: str | None = None

    def to_data(self) -> list[Any]:
        return [self.kind.value, self.message_id, self.message_type, self.event]

    @classmethod
    def from_data(cls, data: list[Any]) -> Cause:
        return cls(CauseKind(data[0]), data[1], data[2], data[3])


TIMER = Cause(CauseKind.TIMER)
DEFINITIONS = Cause(CauseKind.DEFINITIONS)
JOURNEY = Cause(CauseKind.JOURNEY)
HISTORY = Cause(CauseKind.HISTORY)
DELETION = Cause(CauseKind.DELETION)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One transition of one profile in one journey.

    Attributes:
        at: The logical instant, ms.
        journey_id: The journey.
        run: The run's number.
        kind: What happened.
        step_id: The step, or None for a run entering or exiting.
        cause: Why.
        detail: By kind — WAITING: ``until`` (a duration's end) or ``recheck_at``
            (a condition's next re-check; None when only new data can help) and
            ``branches`` (untaken branch indexes); RECHECKED: ``recheck_at``;
            PASSED: ``reason`` (``duration``, ``condition``, ``branches``); SPLIT:
            ``branch`` (``true`` or ``false``); BRANCH_TAKEN: ``branch`` (its
            name) and ``index``; SENT: ``destination_id``, ``message_id``, ``change``; EXITED:
            ``reason`` (``exit_after``, ``exit_condition``, ``archived`` or
            ``deleted``).
        sequence: Its place in the profile's timeline once stored (0 before).
    """

    at: int
    journey_id: str
    run: int
    kind: EntryKind
    step_id: str | None
    cause: Cause
    detail: dict[str, Any] = field(default_factory=dict)
    sequence: int = 0

    @classmethod
    def from_row(
        cls,
        sequence: int,
        at: int,
        journey_id: str,
        run: int,
        kind: str,
        step_id: str | None,
        cause: list[Any],
        detail: dict[str, Any] | None,
    ) -> TimelineEntry:
        """The entry a stored row describes."""
        return cls(
            at, journey_id, run, EntryKind(kind), step_id, Cause.from_data(cause), detail or {},
            sequence,
        )  # fmt: skip


TimelineRow = tuple[str, str, int, str, int, EntryKind, "str | None", Cause, dict[str, Any]]
"""An entry as the runtime records it, cheaply: (space id, actor id, at, journey id,
run, kind, step id, cause, detail)."""
