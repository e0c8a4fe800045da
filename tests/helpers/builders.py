"""Small builders for journeys and definitions in the engine's own types."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar, cast

from journeys_engine import Engine
from journeys_engine.model import (
    Condition,
    Destination,
    DestinationKind,
    EntryStep,
    EventMode,
    Journey,
    JourneySettings,
    SendToDestinationsStep,
    Step,
    TrueFalseSplitStep,
    WaitDurationStep,
)
from journeys_engine.model.limits import DAY_MS

T = TypeVar("T")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))

BOUGHT = Condition("event('Order Completed').count() >= 1")


def journey(
    *steps: Step,
    name: str = "Welcome",
    journey_id: str = "",
    settings: JourneySettings | None = None,
) -> Journey:
    """A journey of the given steps (a small valid one when none are given)."""
    if not steps:
        steps = basic_steps()
    return Journey(
        id=journey_id,
        space_id="",
        name=name,
        settings=settings or JourneySettings(),
        steps=steps,
    )


def basic_steps(destination: str = "email") -> tuple[Step, ...]:
    """entry -> wait 1 day -> split -> send (true side)."""
    return (
        EntryStep(
            "entry", "Signed up", Condition("event('Signed Up').count() >= 1"), False, "wait"
        ),
        WaitDurationStep("wait", "Wait a day", DAY_MS, "split"),
        TrueFalseSplitStep("split", "Bought", BOUGHT, "send", None),
        SendToDestinationsStep("send", "Thank buyers", (destination,)),
    )


async def add_destination(
    engine: Engine, dest_id: str = "email", *, space: str = "default"
) -> Destination:
    created = await engine.definitions.create(
        space, Destination(dest_id, "", dest_id.title(), DestinationKind.EVENT, EventMode.TRACK)
    )
    assert isinstance(created, Destination)
    return created


def with_(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` for any member of a union of dataclasses."""
    return cast(T, dataclasses.replace(cast(Any, obj), **changes))
