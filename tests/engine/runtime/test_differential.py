"""The engine against the reference interpreter, on random journeys and message scripts.

Both run the same published journeys over the same messages and clock moves;
their destination calls must be the same, per (destination, profile) in order,
and as sets per instant.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict

from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from journeys_engine import Engine, MemorySink, Move
from journeys_engine.conditions import parse_expression
from journeys_engine.model import (
    Audience,
    ComputedTrait,
    Condition,
    Destination,
    DestinationKind,
    EventMode,
    Journey,
)
from journeys_engine.testing import FakeClock
from tests.helpers.condition_strategies import BASE
from tests.helpers.journey_strategies import Sent, journeys, scripts
from tests.helpers.reference_journeys import Emitted, ReferenceSpace

AUDIENCE = "event('A').within(2 hours).count() >= 2 OR trait('s') = 'x'"
COMPUTED = "event('B').within(3 hours).sum(property('p'))"


async def _run_engine(
    plans: list[Journey], sent: list[Sent], end: int
) -> tuple[list[Emitted], list[Journey]]:
    clock = FakeClock(BASE)
    sink = MemorySink()
    async with await Engine.open(":memory:", clock=clock, sink=sink) as engine:
        defs = engine.definitions
        await defs.create(
            "default", Destination("d-track", "", "Track", DestinationKind.EVENT, EventMode.TRACK)
        )
        await defs.create(
            "default",
            Destination("d-identify", "", "Ident", DestinationKind.EVENT, EventMode.IDENTIFY),
        )
        await defs.create("default", Destination("d-list", "", "List", DestinationKind.LIST))
        await defs.create("default", Audience("aud", "", "Aud", "", Condition(AUDIENCE)))
        await defs.create("default", ComputedTrait("ct", "", "CT", "", Condition(COMPUTED)))
        published = []
        for plan in plans:
            await engine.journeys.create("default", plan)
            published.append(await engine.journeys.move("default", plan.id, Move.PUBLISH))
        for message in sent:
            await engine.advance_to(message.received_at)
            await engine.ingest("default", [message.raw])
            await engine.settle()
        await engine.advance_to(end)
        outputs = [
            (
                o.destination_id,
                o.profile_key,
                o.journey_id,
                o.step_id,
                o.run,
                o.change.value,
                o.timestamp,
            )
            for o in sink.outputs
        ]
    return outputs, published


def _run_reference(published: list[Journey], sent: list[Sent], end: int) -> list[Emitted]:
    reference = ReferenceSpace(
        published,
        {"aud": AUDIENCE},
        {"ct": parse_expression(COMPUTED)},
        {"d-track": "Track", "d-identify": "Ident", "d-list": "List"},
    )
    for message in sent:
        reference.message(message.raw, message.received_at, message.timestamp)
    reference.advance_to(end)
    return reference.outputs


def _by_stream(outputs: list[Emitted]) -> dict[tuple[str, str], list[Emitted]]:
    streams: dict[tuple[str, str], list[Emitted]] = defaultdict(list)
    for output in outputs:
        streams[(output[0], output[1])].append(output)
    return dict(streams)


def _by_instant(outputs: list[Emitted]) -> dict[int, set[Emitted]]:
    instants: dict[int, set[Emitted]] = defaultdict(set)
    for output in outputs:
        instants[output[6]].add(output)
    return dict(instants)


@settings(max_examples=int(os.environ.get("DIFFERENTIAL_EXAMPLES", "40")))
@given(
    st.lists(st.sampled_from(["j1", "j2"]), min_size=1, max_size=2, unique=True).flatmap(
        lambda ids: st.tuples(*[journeys(i) for i in ids])
    ),
    scripts(BASE + 3 * 3_600_000),
)
def test_the_engine_sends_what_the_reference_sends(
    plans: tuple[Journey, ...], script: tuple[list[Sent], int]
) -> None:
    sent, end = script
    for plan in plans:
        note(f"journey {plan.id}: {plan.settings}")
        for step in plan.steps:
            note(f"  {step}")
    for message in sent:
        note(f"at {message.received_at - BASE}: {message.raw}")
    engine_outputs, published = asyncio.run(_run_engine(list(plans), sent, end))
    reference_outputs = _run_reference(published, sent, end)
    event(f"outputs: {min(len(engine_outputs), 5)}{'+' if len(engine_outputs) >= 5 else ''}")
    event(f"exits: {sum(1 for o in engine_outputs if o[5] == 'exited') > 0}")
    assert _by_stream(engine_outputs) == _by_stream(reference_outputs)
    assert _by_instant(engine_outputs) == _by_instant(reference_outputs)
