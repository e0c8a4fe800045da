"""A profile as the runtime keeps it: identity, condition state, runs per journey.

An actor is a plain object in a dict, not a task: a profile's messages are
ordered by the shard queue that owns it, and its timers by the shared wheel.
Everything here snapshots to plain JSON-able data and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from journeys_engine.conditions.profile import LeafIndex, ProfileConditions

__all__ = ["Actor", "JourneyState", "Run", "Wait", "WaitKind"]


class WaitKind(StrEnum):
    """What a run is waiting for at a step."""

    DURATION = "duration"
    CONDITION = "condition"
    BRANCHES = "branches"


@dataclass(slots=True)
class Wait:
    """A run held at a step.

    Attributes:
        kind: Duration, condition, or untaken branches.
        due: For a duration, the instant the run moves on; otherwise the next
            re-check of the condition(s), or None when only new data can help.
        untaken: For a multi-branch split, the branches not taken yet.
    """

    kind: WaitKind
    due: int | None
    untaken: list[int] = field(default_factory=list)

    @property
    def until(self) -> int | None:
        """For a duration: when the run moves on."""
        return self.due if self.kind is WaitKind.DURATION else None

    @property
    def recheck_at(self) -> int | None:
        """For a condition or branches: the next re-check (None: only new data helps)."""
        return None if self.kind is WaitKind.DURATION else self.due

    def to_data(self) -> list[Any]:
        return [self.kind.value, self.due, self.untaken]

    @classmethod
    def from_data(cls, data: list[Any]) -> Wait:
        return cls(WaitKind(data[0]), data[1], list(data[2]))


@dataclass(slots=True)
class Run:
    """One run of a profile through a journey.

    Attributes:
        number: 1, 2, … per (journey, profile).
        entered_at: The entry instant.
        joined: Steps joined, in the order joined.
        joined_at: The instant each of ``joined`` was joined.
        joined_after: For each of ``joined``, the last log position applied to
            the profile when it joined (orders runs that joined at one instant).
        memberships: Send steps joined, in the order joined.
        waits: Steps the run is held at, by step id.
    """

    number: int
    entered_at: int
    joined: list[str] = field(default_factory=list)
    memberships: list[str] = field(default_factory=list)
    waits: dict[str, Wait] = field(default_factory=dict)
    joined_at: list[int] = field(default_factory=list)
    joined_after: list[int] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "entered_at": self.entered_at,
            "joined": self.joined,
            "memberships": self.memberships,
            "waits": {step: wait.to_data() for step, wait in self.waits.items()},
            "joined_at": self.joined_at,
            "joined_after": self.joined_after,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Run:
        return cls(
            data["number"],
            data["entered_at"],
            list(data["joined"]),
            list(data["memberships"]),
            {step: Wait.from_data(w) for step, w in data["waits"].items()},
            # (snapshots written before join instants were kept: the entry instant)
            list(data.get("joined_at") or [data["entered_at"]] * len(data["joined"])),
            list(data.get("joined_after") or [0] * len(data["joined"])),
        )


@dataclass(slots=True)
class JourneyState:
    """A profile's standing in one journey.

    Attributes:
        runs: Runs started so far (the last run's number).
        run: The current run, if any.
        exited_at: When the last run ended.
        blocked: The entry condition must be false once before the profile may
            enter (it held while the journey was paused; SPEC §6 resume).
        entry_recheck: When to look at the entry (and exit) condition again
            while not in a run.
        exit_recheck: When to look at the exit condition again during a run.
        ever_joined: Steps this profile joined in any run (for user counts).
    """

    runs: int = 0
    run: Run | None = None
    exited_at: int | None = None
    blocked: bool = False
    entry_recheck: int | None = None
    exit_recheck: int | None = None
    ever_joined: set[str] = field(default_factory=set)

    def to_data(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "run": None if self.run is None else self.run.to_data(),
            "exited_at": self.exited_at,
            "blocked": self.blocked,
            "entry_recheck": self.entry_recheck,
            "exit_recheck": self.exit_recheck,
            "ever_joined": sorted(self.ever_joined),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> JourneyState:
        run = data["run"]
        return cls(
            data["runs"],
            None if run is None else Run.from_data(run),
            data["exited_at"],
            data["blocked"],
            data["entry_recheck"],
            data["exit_recheck"],
            set(data["ever_joined"]),
        )


class Actor:
    """One profile of a space.

    Attributes:
        key: The profile key: its user id, or its anonymous id when it has none.
        id: The runtime's id for it: ``u:USER`` or ``a:ANONYMOUS``.
        user_id: The user id, or None for an anonymous profile.
        anonymous_id: The first anonymous id recorded for it.
        conditions: Traits, leaf states, audiences and computed traits.
        journeys: Standing per journey id.
        groups: Group ids with their traits (recorded, not used by conditions).
        position: The last ingest-log position applied to it.
        wake_at: Its next wake-up instant, if any.
        touched: When it was last used (for passivation; not snapshotted).
        moved: Its runs joined, left or were held at or released from a step
            since its last snapshot (not snapshotted: the store's rows of who is
            at each step need rewriting).
    """

    __slots__ = (
        "anonymous_id",
        "conditions",
        "groups",
        "id",
        "journeys",
        "key",
        "moved",
        "position",
        "touched",
        "user_id",
        "wake_at",
    )

    def __init__(self, key: str, user_id: str | None, anonymous_id: str | None) -> None:
        self.key = key
        self.id = f"u:{user_id}" if user_id is not None else f"a:{key}"
        self.user_id = user_id
        self.anonymous_id = anonymous_id
        self.position = 0
        self.wake_at: int | None = None
        self.touched = 0
        self.moved = False
        self.conditions = ProfileConditions()
        self.journeys: dict[str, JourneyState] = {}
        self.groups: dict[str, dict[str, Any]] = {}

    def state(self, journey_id: str) -> JourneyState:
        """The profile's standing in a journey (created on first use)."""
        state = self.journeys.get(journey_id)
        if state is None:
            state = self.journeys[journey_id] = JourneyState()
        return state

    def to_data(self) -> dict[str, Any]:
        """Plain data for a snapshot."""
        return {
            "key": self.key,
            "user_id": self.user_id,
            "anonymous_id": self.anonymous_id,
            "conditions": self.conditions.to_data(),
            "journeys": {jid: state.to_data() for jid, state in self.journeys.items()},
            "groups": self.groups,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any], index: LeafIndex) -> Actor:
        """The actor :meth:`to_data` described."""
        actor = cls(data["key"], data["user_id"], data["anonymous_id"])
        actor.conditions = ProfileConditions.from_data(data["conditions"], index)
        actor.journeys = {
            jid: JourneyState.from_data(state) for jid, state in data["journeys"].items()
        }
        actor.groups = {gid: dict(traits) for gid, traits in data["groups"].items()}
        return actor
