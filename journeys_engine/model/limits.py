"""Limits the engine enforces; each is a server setting with this default (SPEC §10)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DAY_MS", "HOUR_MS", "MINUTE_MS", "SECOND_MS", "WEEK_MS", "Limits"]

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS


@dataclass(frozen=True, slots=True)
class Limits:
    """Size and count limits.

    Attributes:
        max_live_journeys: Published or paused journeys per space.
        max_steps: Steps per journey, counted as SPEC §4 counts them.
        max_journey_name: Characters in a journey name.
        max_step_name: Characters in a step or branch name.
        max_key: Characters in a send step's key.
        max_name: Characters in a space's or definition's name.
        max_description: Characters in a description.
        max_condition_text: Characters in a condition's text.
        max_condition_leaves: Primary expressions in one condition.
        max_wait_ms: Longest wait_duration.
        max_setting_ms: Longest exit_after or reentry_after.
        max_branches: Branches in one multi-branch split.
        max_message_bytes: One ingested message, encoded.
        max_batch_bytes: One ingested batch, encoded.
        max_batch_messages: Messages in one ingested batch.
        dedup_window_ms: How long a message id is remembered per space.
        outbox_retention_ms: How long an unacknowledged destination call is kept.
    """

    max_live_journeys: int = 5
    max_steps: int = 20
    max_journey_name: int = 73
    max_step_name: int = 170
    max_key: int = 255
    max_name: int = 200
    max_description: int = 2000
    max_condition_text: int = 10_000
    max_condition_leaves: int = 50
    max_wait_ms: int = 365 * DAY_MS
    max_setting_ms: int = 10 * 365 * DAY_MS
    max_branches: int = 20
    max_message_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_messages: int = 2500
    dedup_window_ms: int = 7 * DAY_MS
    outbox_retention_ms: int = 7 * DAY_MS
