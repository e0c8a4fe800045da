"""Hypothesis strategies: valid random journeys and message scripts.

The vocabulary matches :mod:`tests.helpers.condition_strategies`: events ``A``
and ``B``, properties ``p``, ``q``, ``d``, traits ``t``, ``s``, ``when``, the
audience ``aud`` and the computed trait ``ct``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from journeys_engine.clock import format_ms
from journeys_engine.conditions.printer import print_condition
from journeys_engine.messages import corrected_timestamp
from journeys_engine.model import (
    Branch,
    Condition,
    EntryStep,
    Journey,
    JourneySettings,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    Step,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)
from journeys_engine.model.validation import step_cost
from tests.helpers.condition_strategies import HOUR, MINUTE, conditions, dates, numbers, words

DESTINATIONS = ("d-track", "d-identify", "d-list")

ENTRIES = [
    "event('A').count() >= 1",
    "event('A').within(1 hours).count() >= 1",
    "event('B').within(2 hours).count() >= 2",
    "event('A').count() >= 1 AND event('B').within(1 hours).count() = 0",
    "trait('s') = 'x'",
    "audience('aud')",
    "event('A').where(property('p') > 2).count() >= 1 OR computed_trait('ct') > 5",
]

condition_texts = st.one_of(
    st.sampled_from(ENTRIES),
    conditions(with_refs=True, max_leaves=2).map(print_condition),
)


@st.composite
def journeys(draw: st.DrawFn, journey_id: str) -> Journey:
    """A valid journey of at most a dozen steps, every step type possible."""
    steps: list[Step] = []
    budget = [draw(st.integers(min_value=2, max_value=8))]

    def new_id() -> str:
        return f"{journey_id}-s{len(steps) + 1}"

    def build(depth: int) -> str | None:
        if budget[0] <= 0 or depth > 5:
            return None
        budget[0] -= 1
        kind = draw(
            st.sampled_from(
                ["wait_duration", "wait_condition", "split", "branches", "send", "send"]
            )
        )
        step_id = new_id()
        index = len(steps)
        steps.append(SendToDestinationsStep(step_id, "placeholder"))  # keeps the id taken
        name = f"{kind} {step_id}"
        step: Step
        if kind == "wait_duration":
            minutes = draw(st.integers(min_value=1, max_value=180))
            child = build(depth + 1) or _leaf_send(steps, new_id, draw)
            step = WaitDurationStep(step_id, name, minutes * MINUTE, child)
        elif kind == "wait_condition":
            child = build(depth + 1) or _leaf_send(steps, new_id, draw)
            step = WaitConditionStep(step_id, name, Condition(draw(condition_texts)), child)
        elif kind == "split":
            yes = build(depth + 1)
            no = build(depth + 1)
            step = TrueFalseSplitStep(step_id, name, Condition(draw(condition_texts)), yes, no)
        elif kind == "branches":
            branches = []
            for b in range(draw(st.integers(min_value=2, max_value=3))):
                child = build(depth + 1) or _leaf_send(steps, new_id, draw)
                branches.append(Branch(f"b{b}", Condition(draw(condition_texts)), child))
            step = MultiBranchSplitStep(step_id, name, tuple(branches))
        else:
            dests = tuple(
                draw(st.lists(st.sampled_from(DESTINATIONS), min_size=1, max_size=2, unique=True))
            )
            step = SendToDestinationsStep(step_id, name, dests, "", build(depth + 1))
        steps[index] = step
        return step_id

    entry_id = f"{journey_id}-entry"
    steps.append(EntryStep(entry_id, "Entry", Condition(draw(st.sampled_from(ENTRIES)))))
    first = build(1) or _leaf_send(steps, new_id, draw)
    steps[0] = EntryStep(entry_id, "Entry", steps[0].condition, False, first)  # type: ignore[union-attr]
    assume(sum(step_cost(step) for step in steps) <= 20)
    exit_after = draw(st.none() | st.integers(min_value=1, max_value=6).map(lambda h: h * HOUR))
    reentry = None
    if exit_after is not None:
        reentry = draw(
            st.none() | st.integers(min_value=10, max_value=240).map(lambda m: m * MINUTE)
        )
    exit_condition = draw(st.none() | condition_texts.map(Condition))
    return Journey(
        id=journey_id,
        space_id="",
        name=f"Journey {journey_id}",
        settings=JourneySettings(exit_after, reentry, exit_condition),
        steps=tuple(steps),
    )


def _leaf_send(steps: list[Step], new_id: Callable[[], str], draw: st.DrawFn) -> str:
    step_id = new_id()
    dests = tuple(
        draw(st.lists(st.sampled_from(DESTINATIONS), min_size=1, max_size=2, unique=True))
    )
    steps.append(SendToDestinationsStep(step_id, f"send {step_id}", dests))
    return step_id


@dataclass(frozen=True)
class Sent:
    """A message of a script: Segment JSON, when it is received, its corrected time."""

    raw: dict[str, Any]
    received_at: int
    timestamp: int


PROFILES = [
    {"userId": "u1"},
    {"userId": "u1"},
    {"userId": "u2"},
    {"anonymousId": "a1"},
    {"userId": "u1", "anonymousId": "a1"},
    {"anonymousId": "a2"},
]


@st.composite
def scripts(draw: st.DrawFn, start: int) -> tuple[list[Sent], int]:
    """Messages at increasing instants from ``start``, then an end instant."""
    at = start
    sent: list[Sent] = []
    for _ in range(draw(st.integers(min_value=3, max_value=16))):
        at += draw(st.integers(min_value=0, max_value=100)) * MINUTE
        who = dict(draw(st.sampled_from(PROFILES)))
        kind = draw(st.sampled_from(["track"] * 6 + ["identify", "identify", "alias"]))
        raw: dict[str, Any] = {"type": kind, **who}
        timestamp = at
        if kind == "track":
            raw["event"] = draw(st.sampled_from(["A", "A", "B", "B", "Noise"]))
            raw["properties"] = draw(
                st.fixed_dictionaries({}, optional={"p": numbers, "q": words, "d": dates})
            )
            offset = draw(
                st.sampled_from([0, 0, 0, 0])
                | st.integers(min_value=-2 * HOUR, max_value=5 * MINUTE)
            )
            raw["timestamp"] = format_ms(at + offset)
            timestamp = corrected_timestamp(at + offset, None, at)
        elif kind == "identify":
            raw["traits"] = draw(
                st.fixed_dictionaries({}, optional={"t": numbers, "s": words, "when": dates})
            )
        else:
            raw = {"type": "alias", "userId": "u2", "previousId": "a2"}
        sent.append(Sent(raw, at, timestamp))
    end = at + draw(st.integers(min_value=4, max_value=14)) * HOUR
    return sent, end
