"""The whole-journey simulator: a script simulated does what it does played live.

Each example journey gets a scripted history (messages before the publish,
messages and clock moves over days after it); the simulation must give exactly
the outputs and final counts of the same script played on a real engine on a
manual clock. The live engine a simulation reads is left as it was.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from journeys_engine import (
    Engine,
    InvalidArgumentError,
    MemorySink,
    Move,
    NotFoundError,
)
from journeys_engine.clock import format_ms, parse_iso_ms
from journeys_engine.model import (
    Condition,
    Destination,
    DestinationKind,
    EntryStep,
    EventMode,
    Journey,
    SendToDestinationsStep,
    WaitDurationStep,
)
from journeys_engine.reporting import JourneyReport
from journeys_engine.runtime import Output
from journeys_engine.simulation import (
    MAX_STEPS,
    Advance,
    AdvanceTo,
    Receive,
    ScriptStep,
    Simulation,
    _publish,
    simulate_journey,
)
from journeys_engine.testing import FakeClock
from tests.helpers.examples import load_example
from tests.helpers.harness import DAY, HOUR, MINUTE, T0

# Scripts: (steps, end). Every example is published at T0; messages before it are history.


def _at(ms: int) -> str:
    return format_ms(ms)


def track(
    user: str, event: str, at: int | None = None, properties: dict[str, Any] | None = None
) -> Receive:
    message: dict[str, Any] = {"type": "track", "userId": user, "event": event}
    if properties:
        message["properties"] = properties
    if at is not None:
        message["timestamp"] = _at(at)
    return Receive(message)


def identify(user: str, at: int | None = None, **traits: Any) -> Receive:
    message: dict[str, Any] = {"type": "identify", "userId": user, "traits": traits}
    if at is not None:
        message["timestamp"] = _at(at)
    return Receive(message)


SCRIPTS: dict[str, tuple[list[ScriptStep], int]] = {
    "cart-abandonment": (
        [
            track("u3", "Order Completed", T0 - 3 * DAY, {"revenue": 150}),  # history: clv 150
            identify("u1", T0 - 2 * DAY, preferred_channel="email"),
            identify("u2", T0, preferred_channel="sms"),
            track("u1", "Product Added", T0),
            track("u2", "Product Added", T0),
            identify("u3", T0, preferred_channel="sms"),
            track("u3", "Product Added", T0 + 5 * MINUTE),
            Advance(30 * MINUTE),
            track("u2", "Order Completed", None, {"revenue": 20}),  # exits before any send
            AdvanceTo(T0 + 2 * DAY),
            track("u4", "Product Added"),
            track("u4", "Order Completed", T0 + DAY),  # late: received now, timestamp kept
            Advance(3 * DAY),
            identify("u5", preferred_channel="email"),
            track("u5", "Product Added"),
        ],
        T0 + 12 * DAY,
    ),
    "winback": (
        [
            track("u1", "Order Completed", T0 - 181 * DAY, {"revenue": 150}),
            track("u2", "Page Viewed", T0 - 10 * DAY),
            track("u3", "Order Completed", T0 - 10 * DAY, {"revenue": 10}),
            AdvanceTo(T0 + 2 * HOUR),
            track("u4", "Noise"),
            Advance(DAY),
            Receive(
                {
                    "type": "page",
                    "userId": "u1",
                    "name": "Sale",
                    "context": {"campaign": {"source": "facebook"}},
                }
            ),
        ],
        T0 + 5 * DAY,
    ),
    "trial-to-paid": (
        [
            track("u3", "Subscription Started", T0 - 5 * DAY),  # history the entry does not see
            track("u1", "Trial Started", T0),
            track("u2", "Trial Started", T0 + HOUR),
            track("u3", "Trial Started", T0 + 2 * HOUR),
            Advance(2 * DAY),
            track("u1", "Subscription Started"),
            AdvanceTo(T0 + 4 * DAY),
            track("u4", "Trial Started"),
        ],
        T0 + 10 * DAY,
    ),
    "onboarding": (
        [
            track("u3", "Tutorial Completed", T0 - DAY),  # history the audience sees
            track("u1", "Account Created", T0),
            track("u2", "Account Created", T0),
            track("u3", "Account Created", T0 + 5 * MINUTE),
            Advance(15 * MINUTE),
            track("u1", "Tutorial Completed"),
            AdvanceTo(T0 + 2 * HOUR),
            track("u4", "Account Created"),
            Advance(DAY),
        ],
        T0 + 3 * DAY,
    ),
    "paid-subscription": (
        [
            track("u1", "Subscription Started", T0, {"Subscription Plan Type": "Free"}),
            track("u2", "Subscription Started", T0, {"Subscription Plan Type": "Free"}),
            AdvanceTo(T0 + 3 * DAY),
            track("u1", "Subscription Started", None, {"Subscription Plan Type": "paid"}),
            Advance(2 * DAY),
            track("u3", "Subscription Started", None, {"Subscription Plan Type": "Free"}),
        ],
        T0 + 20 * DAY,
    ),
}


def _timestamp(step: Receive) -> int | None:
    stamp = step.message.get("timestamp")
    return parse_iso_ms(stamp) if isinstance(stamp, str) else None


def _clock_start(steps: Sequence[ScriptStep], start: int) -> int:
    stamps = [s for s in (_timestamp(x) for x in steps if isinstance(x, Receive)) if s is not None]
    return min(start, stamps[0]) if stamps else start


async def _play_live(
    engine: Engine, journey_id: str, steps: Sequence[ScriptStep], start: int, end: int
) -> None:
    """The script as it would have happened live: each message sent at its timestamp
    (or at the clock's time), the journey published when the clock reaches ``start``."""
    assert isinstance(engine.clock, FakeClock)
    clock = engine.clock
    published = False

    async def reach(instant: int) -> None:
        nonlocal published
        if not published and instant >= start:
            if start > clock.now_ms():
                await engine.advance_to(start)
            # The simulator's publish, so that whatever it waits for is waited for here too.
            await _publish(engine, "default", journey_id)
            published = True
        if instant > clock.now_ms():
            await engine.advance_to(instant)

    for step in steps:
        match step:
            case Receive():
                stamp = _timestamp(step)
                await reach(clock.now_ms() if stamp is None else max(stamp, clock.now_ms()))
                result = await engine.ingest("default", [step.message])
                assert result.accepted == 1
                await engine.settle()
            case Advance(ms=ms):
                await reach(clock.now_ms() + ms)
            case AdvanceTo(instant=instant):
                await reach(instant)
    await reach(max(clock.now_ms(), start))
    await engine.advance_to(end)


def _counts(report: JourneyReport) -> tuple[Any, ...]:
    return (
        report.entered_users,
        report.entered_runs,
        report.in_progress,
        report.exited_runs,
        report.steps,
    )


def _by_destination(outputs: Sequence[Output]) -> dict[str, list[Output]]:
    found: dict[str, list[Output]] = {}
    for output in outputs:
        found.setdefault(output.destination_id, []).append(output)
    return found


@pytest.mark.parametrize("name", sorted(SCRIPTS))
async def test_each_example_simulated_does_what_it_does_live(tmp_path: Path, name: str) -> None:
    steps, end = SCRIPTS[name]
    clock = FakeClock(_clock_start(steps, T0))
    sink = MemorySink()
    async with await Engine.open(tmp_path / "live.db", clock=clock, sink=sink) as live:
        await load_example(live, name)
        stored = await live.journeys.get("default", name)
        simulated = await simulate_journey(
            live, "default", journey_id=name, steps=steps, start_time=T0, end_time=end
        )
        assert sink.outputs == []  # the simulation sent nothing from the live engine
        await _play_live(live, name, steps, T0, end)
        report = await live.reporting.journey("default", name)

    assert sink.outputs, "the script makes the journey send something"
    assert _by_destination([c.output for c in simulated.calls]) == _by_destination(sink.outputs)
    assert [c.output.payload for c in simulated.calls if c.destination_id == "email"] == [
        o.payload for o in sink.for_destination("email")
    ]
    for destination, outputs in _by_destination(sink.outputs).items():
        sequences = [c.sequence for c in simulated.calls if c.destination_id == destination]
        assert sequences == list(range(1, len(outputs) + 1))
    assert _counts(simulated.counts[-1].report) == _counts(report)
    assert simulated.counts[-1].time == simulated.end_time == end
    # The journey as simulated: the stored one's ids and keys, published at the start.
    assert simulated.journey.id == name
    assert simulated.journey.publish_time_ms == T0
    assert simulated.journey.steps == stored.steps
    keys = {s.key for s in stored.send_steps()}
    for call in simulated.calls:
        payload = json.loads(call.output.payload)
        assert (payload.get("key") or payload["context"]["personas"]["computation_key"]) in keys


async def test_onboarding_history_publish_and_counts_per_instant() -> None:
    steps, end = SCRIPTS["onboarding"]
    async with await Engine.open(":memory:", clock=FakeClock(T0 + 30 * DAY)) as live:
        await load_example(live, "onboarding")
        simulated = await simulate_journey(
            live, "default", journey_id="onboarding", steps=steps, start_time=T0, end_time=end
        )
    seen = [
        (c.destination_id, c.output.profile_key, c.output.step_id, c.sequence)
        for c in simulated.calls
        if c.output.timestamp == T0 + HOUR
    ]
    assert seen == [
        ("email", "u1", "engaged", 1),
        ("support", "u1", "engaged", 1),
        ("in-app", "u1", "engaged", 1),
        ("email", "u2", "needs-help", 2),
        ("support", "u2", "needs-help", 2),
        ("in-app", "u2", "needs-help", 2),
        ("advertising", "u2", "needs-help", 1),
    ]
    # u3 completed the tutorial the day before the publish: the audience saw it.
    assert [c.output.step_id for c in simulated.calls if c.output.profile_key == "u3"] == [
        "engaged"
    ] * 3
    # One entry per instant a step reached, from the publish (the history's instant is
    # before it) to the end; the clock moved by 15 minutes after the message at T0+5m.
    times = [c.time for c in simulated.counts]
    assert times == [T0, T0 + 5 * MINUTE, T0 + 20 * MINUTE, T0 + 2 * HOUR, T0 + 26 * HOUR, end]
    first = simulated.counts[0].report
    assert (first.entered_users, first.in_progress) == (2, 2)
    waiting = {s.step_id: s.waiting for s in simulated.counts[1].report.steps}
    assert waiting["wait-1h"] == 3
    last = simulated.counts[-1].report
    assert (last.entered_users, last.in_progress, last.exited_runs) == (4, 4, 0)


async def test_one_entry_per_instant_even_when_steps_repeat_it() -> None:
    async with await Engine.open(":memory:", clock=FakeClock(T0)) as live:
        await load_example(live, "onboarding")
        simulated = await simulate_journey(
            live,
            "default",
            journey_id="onboarding",
            steps=[
                track("u0", "Account Created", T0 - 2 * DAY),  # history: before the publish
                track("u1", "Account Created", T0 + HOUR),
                track("u2", "Account Created", T0 + HOUR),
                AdvanceTo(T0 + HOUR),
                track("u3", "Account Created", T0),  # before the clock: received at it
                AdvanceTo(T0 + 3 * HOUR),
            ],
            start_time=T0,
        )
    assert [c.time for c in simulated.counts] == [T0, T0 + HOUR, T0 + 3 * HOUR]
    assert simulated.end_time == T0 + 3 * HOUR
    assert [c.report.entered_users for c in simulated.counts] == [0, 3, 3]
    # u0 sent its event before the publish: without historical data it never enters.
    assert {c.output.profile_key for c in simulated.calls} == {"u1", "u2", "u3"}


async def test_the_start_defaults_to_the_first_timestamp_and_publishes_before_later_steps() -> None:
    async with await Engine.open(":memory:", clock=FakeClock(T0)) as live:
        await load_example(live, "onboarding")
        simulated = await simulate_journey(
            live,
            "default",
            journey_id="onboarding",
            steps=[track("u1", "Account Created", T0 - 10 * DAY), Advance(2 * HOUR)],
        )
        untimed = await simulate_journey(
            live,
            "default",
            journey_id="onboarding",
            steps=[track("u1", "Account Created"), Advance(2 * HOUR)],
        )
    assert simulated.journey.publish_time_ms == T0 - 10 * DAY
    assert [c.output.timestamp for c in simulated.calls] == [T0 - 10 * DAY + HOUR] * 4
    assert untimed.journey.publish_time_ms == T0  # the live engine's clock
    assert untimed.end_time == T0 + 2 * HOUR


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(db.execute(f"SELECT * FROM {t}"), key=repr) for t in tables}


async def test_a_simulation_leaves_the_live_engine_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    clock = FakeClock(T0)
    sink = MemorySink()
    async with await Engine.open(path, clock=clock, sink=sink) as live:
        await load_example(live, "onboarding")
        await live.journeys.move("default", "onboarding", Move.PUBLISH)
        await live.ingest("default", [track("u1", "Account Created").message])
        await live.advance_to(T0 + 2 * HOUR)
        await live.settle()
        before_stats = await live.reporting.journey("default", "onboarding")
        before_outputs = list(sink.outputs)
        before_rows = _rows(path)
        steps, end = SCRIPTS["onboarding"]
        simulated = await simulate_journey(
            live, "default", journey_id="onboarding", steps=steps, start_time=T0, end_time=end
        )
        inline = dataclasses.replace(await live.journeys.get("default", "onboarding"), id="copy")
        await simulate_journey(live, "default", journey=inline, steps=steps, end_time=end)
        assert simulated.calls
        assert clock.now_ms() == T0 + 2 * HOUR
        assert await live.reporting.journey("default", "onboarding") == before_stats
        assert sink.outputs == before_outputs
        with pytest.raises(NotFoundError):
            await live.journeys.get("default", "copy")
        assert _rows(path) == before_rows


async def test_a_renamed_stored_journey_keeps_its_keys(tmp_path: Path) -> None:
    async with await Engine.open(":memory:", clock=FakeClock(T0)) as live:
        await live.definitions.create(
            "default",
            Destination("email", "", "Email", DestinationKind.EVENT, EventMode.TRACK),
        )
        entry = EntryStep("entry", "Signed up", Condition("event('Signed Up').count() >= 1"))
        first = SendToDestinationsStep("hello", "Say hello", ("email",))
        created = await live.journeys.create(
            "default",
            Journey(
                id="welcome",
                space_id="",
                name="Welcome",
                steps=(dataclasses.replace(entry, next_step_id="hello"), first),
            ),
        )
        # Renamed, then a step added: its key comes from the new name, the first one's does not.
        added = (
            dataclasses.replace(entry, next_step_id="hello"),
            dataclasses.replace(
                created.journey.send_steps()[0], name="Say hi", next_step_id="wait"
            ),
            WaitDurationStep("wait", "Wait", DAY, "again"),
            SendToDestinationsStep("again", "Say it again", ("email",)),
        )
        renamed = dataclasses.replace(created.journey, name="Welcome v2", steps=added)
        stored = (await live.journeys.update("default", renamed)).journey
        await live.journeys.move("default", "welcome", Move.PUBLISH)
        await live.journeys.move("default", "welcome", Move.ARCHIVE)
        keys = [s.key for s in stored.send_steps()]
        assert keys[0].startswith("j_o_welcome__say_hello_")
        assert keys[1].startswith("j_o_welcome_v2__say_it_again_")
        simulated = await simulate_journey(
            live,
            "default",
            journey_id="welcome",
            steps=[track("u1", "Signed Up"), Advance(2 * DAY)],
        )
    assert simulated.journey.name == "Welcome v2"
    assert simulated.journey.steps == stored.steps
    flags = [json.loads(c.output.payload)["properties"] for c in simulated.calls]
    assert flags == [{keys[0]: "true"}, {keys[1]: "true"}]


async def test_another_space_keeps_its_id_in_outputs() -> None:
    async with await Engine.open(":memory:", clock=FakeClock(T0)) as live:
        await live.spaces.create("acme", "Acme")
        await load_example(live, "trial-to-paid", space="acme")
        simulated = await simulate_journey(
            live,
            "acme",
            journey_id="trial-to-paid",
            steps=[track("u1", "Trial Started")],
            end_time=T0 + 6 * DAY,
        )
        with pytest.raises(NotFoundError, match="journey 'trial-to-paid' not found"):
            await simulate_journey(live, "default", journey_id="trial-to-paid")
    payload = json.loads(simulated.calls[0].output.payload)
    assert payload["context"]["personas"]["space_id"] == "acme"


# Bad input


@pytest.fixture
async def live() -> AsyncIterator[Engine]:
    async with await Engine.open(":memory:", clock=FakeClock(T0)) as engine:
        await load_example(engine, "onboarding")
        yield engine


async def _refused(live: Engine, **kwargs: Any) -> InvalidArgumentError:
    kwargs.setdefault("journey_id", "onboarding")
    with pytest.raises(InvalidArgumentError) as caught:
        await simulate_journey(live, "default", **kwargs)
    return caught.value


def _fields(err: InvalidArgumentError) -> list[str]:
    return [v.field for v in err.violations]


async def test_a_bad_message_is_named_by_its_step(live: Engine) -> None:
    err = await _refused(
        live,
        steps=[
            track("u1", "Account Created"),
            Advance(HOUR),
            Receive({"type": "track", "userId": "u1"}),
            Receive({"type": "shout", "anonymousId": "a1", "timestamp": "yesterday"}),
        ],
    )
    assert _fields(err) == [
        "steps[2].message.event",
        "steps[3].message.type",
        "steps[3].message.timestamp",
    ]
    assert "is required for a track call" in err.message


async def test_clock_moves_must_go_forward(live: Engine) -> None:
    err = await _refused(
        live,
        steps=[
            track("u1", "Account Created", T0 + DAY),
            Advance(0),
            AdvanceTo(T0),
            Advance(HOUR),
        ],
        end_time=T0 + HOUR,
    )
    assert _fields(err) == ["steps[1].advance", "steps[2].advance_to", "end_time"]
    assert (
        "before the clock's time there (2026-03-03T09:00:00.000Z)" in err.violations[1].description
    )


async def test_at_most_a_hundred_thousand_steps(live: Engine) -> None:
    err = await _refused(live, steps=[Advance(1)] * (MAX_STEPS + 1))
    assert _fields(err) == ["steps"]
    assert "at most 100,000" in err.message
    ok = await simulate_journey(live, "default", journey_id="onboarding", steps=[Advance(1)] * 50)
    assert ok.end_time == T0 + 50


async def test_unknown_space_and_journey_are_not_found(live: Engine) -> None:
    with pytest.raises(NotFoundError, match="space 'nowhere' not found"):
        await simulate_journey(live, "nowhere", journey_id="onboarding", steps=[Advance(0)])
    with pytest.raises(NotFoundError, match="journey 'missing' not found"):
        await simulate_journey(live, "default", journey_id="missing")
    err = await _refused(live, journey_id="")
    assert _fields(err) == ["journey_id"]


async def test_an_inline_journey_is_checked_as_create_checks_it(live: Engine) -> None:
    stored = await live.journeys.get("default", "onboarding")
    keyless = tuple(
        dataclasses.replace(s, key="") if isinstance(s, SendToDestinationsStep) else s
        for s in stored.steps
    )
    send = keyless[4]
    assert isinstance(send, SendToDestinationsStep)
    bad_send = dataclasses.replace(send, destination_ids=("email", "nowhere"))
    bad = dataclasses.replace(stored, id="other", name="", steps=(*keyless[:4], bad_send))
    err = await _refused(live, journey_id="", journey=bad, steps=[Advance(-1)])
    assert _fields(err) == [
        "journey.name",
        "journey.steps[4].send_to_destinations.destination_ids[1]",
        "steps[0].advance",
    ]
    with pytest.raises(InvalidArgumentError) as caught:
        await live.journeys.create("default", bad, validate_only=True)
    assert _fields(caught.value) == _fields(err)[:2]
    # A valid one without keys gets new ones; the stored journey is untouched.
    fresh = dataclasses.replace(stored, id="", steps=keyless)
    simulated = await simulate_journey(live, "default", journey=fresh, steps=[Advance(HOUR)])
    assert simulated.journey.id.startswith("jr_")
    assert all(s.key.startswith("j_o_onboarding_flow__") for s in simulated.journey.send_steps())
    assert await live.journeys.get("default", "onboarding") == stored


async def test_validate_only_checks_and_runs_nothing(live: Engine) -> None:
    checked = await simulate_journey(
        live,
        "default",
        journey_id="onboarding",
        steps=[track("u1", "Account Created"), Advance(2 * HOUR)],
        validate_only=True,
    )
    assert isinstance(checked, Simulation)
    assert (checked.counts, checked.calls, checked.end_time) == ((), (), T0 + 2 * HOUR)
