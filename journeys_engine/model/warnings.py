"""Remarks about a journey that do not stop it from being saved (SPEC §4)."""

from __future__ import annotations

from collections.abc import Iterator

from journeys_engine.conditions.evaluator import Definitions, evaluate
from journeys_engine.conditions.parser import parse_condition
from journeys_engine.conditions.profile import ProfileConditions
from journeys_engine.errors import ConditionError, FieldViolation
from journeys_engine.model.journey import EntryStep, Journey

__all__ = ["journey_warnings"]


def journey_warnings(journey: Journey, now: int) -> Iterator[FieldViolation]:
    """Warnings for a valid journey.

    An entry condition that an empty profile already satisfies (a zero-count
    event condition, for example) without historical data lets in every
    profile that sends anything after publish.
    """
    for i, step in enumerate(journey.steps):
        if not isinstance(step, EntryStep) or step.use_historical_data:
            continue
        try:
            tree = parse_condition(step.condition.text, max_leaves=1_000_000)
        except ConditionError:
            continue
        matches_nobody_yet, _ = evaluate(tree, ProfileConditions(), Definitions(), now)
        if matches_nobody_yet:
            yield FieldViolation(
                f"journey.steps[{i}].entry.condition",
                "a profile with no events already matches this entry condition, so without "
                "historical data every profile that sends anything after publish will enter",
            )
