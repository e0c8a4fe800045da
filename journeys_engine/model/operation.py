"""Long-running work another call started, and its progress."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Operation", "OperationKind", "OperationState"]


class OperationKind(StrEnum):
    """What an operation does."""

    HISTORICAL_ENTRY = "historical_entry"  # a journey published with historical data


class OperationState(StrEnum):
    """Where an operation is."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"  # its journey was archived or deleted first
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        return self is not OperationState.RUNNING


@dataclass(frozen=True, slots=True)
class Operation:
    """An operation as it stands.

    Attributes:
        id: ``op_`` and 12 characters of ``[a-z0-9]``.
        space_id: Its space.
        kind: What it does.
        journey_id: The journey it works for.
        state: Running, or how it ended.
        start_ms: When it began (engine clock).
        end_ms: When it ended, if it has.
        profiles_total: Stored profiles when it began.
        profiles_scanned: Profiles looked at so far.
        profiles_entered: Profiles that entered the journey.
        events_read: History events read.
        detail: Why it was cancelled or failed.
        at: The instant profiles enter at (the journey's publish time).
        keys: The entry leaves built from history (see ``Backfill``).
        cursor: Stored profiles with ids up to this one have been looked at.
        profiles_per_second: Rate of the work so far in this process (stored
            once it ended).
        events_per_second: Likewise, in events.
    """

    id: str
    space_id: str
    kind: OperationKind
    journey_id: str
    state: OperationState
    start_ms: int
    at: int
    keys: tuple[str, ...] = ()
    end_ms: int | None = None
    profiles_total: int = 0
    profiles_scanned: int = 0
    profiles_entered: int = 0
    events_read: int = 0
    detail: str = ""
    cursor: str = ""
    profiles_per_second: float = 0.0
    events_per_second: float = 0.0

    def replace(self, **changes: Any) -> Operation:
        return dataclasses.replace(self, **changes)

    def to_data(self) -> dict[str, Any]:
        """Plain data for storage."""
        data = dataclasses.asdict(self)
        data["keys"] = list(self.keys)
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Operation:
        return cls(
            **{
                **data,
                "kind": OperationKind(data["kind"]),
                "state": OperationState(data["state"]),
                "keys": tuple(data["keys"]),
            }
        )
