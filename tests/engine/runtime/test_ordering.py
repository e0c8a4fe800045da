"""Order across shards, timers and catalog changes: each profile sees one timeline.

Every test here failed against an engine that routed anonymous messages by
their anonymous id, fired every profile's timers from any shard, applied a
catalog change before overdue timers, or ordered journeys by publish time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import zlib

from journeys_engine import Engine, Move
from journeys_engine.clock import format_ms
from journeys_engine.model import (
    Audience,
    ComputedTrait,
    Destination,
    DestinationKind,
    EntryStep,
    EventMode,
    Journey,
    JourneySettings,
    SendToDestinationsStep,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)
from journeys_engine.runtime import MemorySink, Unit
from journeys_engine.testing import FakeClock
from tests.helpers.harness import DAY, MINUTE, T0, cond, harness


def entry(text: str = "event('Signup').count() >= 1", nxt: str = "send") -> EntryStep:
    return EntryStep("entry", "Entry", cond(text), False, nxt)


def send(step_id: str = "send", *destinations: str) -> SendToDestinationsStep:
    return SendToDestinationsStep(step_id, step_id, destinations or ("email",), "", None)


def shard(actor_id: str, shards: int = 4) -> int:
    return zlib.crc32(actor_id.encode()) % shards


async def test_a_linked_anonymous_message_keeps_its_place_among_the_users_messages() -> None:
    anonymous = next(f"anon-{i}" for i in range(100) if shard(f"a:anon-{i}") != shard("u:u1"))
    async with harness() as h:
        await h.journey(
            entry("event('X').count() >= 1", nxt="split"),
            TrueFalseSplitStep("split", "Y first?", cond("event('Y').count() >= 1"), "yes", "no"),
            send("yes"),
            send("no"),
        )
        await h.send({"type": "identify", "userId": "u1", "anonymousId": anonymous})
        await h.send(
            {"type": "track", "userId": "u1", "event": "Noise"},
            {"type": "track", "anonymousId": anonymous, "event": "X"},  # u1's: enters
            {"type": "track", "userId": "u1", "event": "Y"},  # after the entry
        )
        assert h.seen() == [("email", "u1", "no", "entered", 0)]


async def test_a_link_and_the_messages_it_routes_in_one_batch() -> None:
    async with harness() as h:
        await h.journey(entry("event('X').count() >= 2"), send())
        await h.send(
            {"type": "track", "anonymousId": "a1", "event": "X"},  # the anonymous profile's
            {"type": "identify", "userId": "u1", "anonymousId": "a1"},
            {"type": "track", "anonymousId": "a1", "event": "X"},  # u1's first X
            {"type": "track", "anonymousId": "a1", "event": "X"},  # u1's second: enters
        )
        assert h.seen() == [("email", "u1", "send", "entered", 0)]
        profile = h.engine.runtime.space("default").actor(anonymous_id="a1")
        assert profile is not None and profile.journeys["j"].run is None


class _SlowShard(MemorySink):
    """Holds up the commit of one unit, as a slow SQLite write would."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_position = 0

    async def commit(self, unit: Unit) -> None:
        await super().commit(unit)
        if self.slow_position in unit.positions:
            await asyncio.sleep(0.05)


async def test_a_lagging_shard_never_sees_a_profile_after_its_later_timers() -> None:
    """u1's Stop at minute 5 is queued behind a slow commit on u1's shard, while another
    shard applies a message at minute 20: u1's wait (due at 10) must not fire first."""
    clock = FakeClock(T0)
    sink = _SlowShard()
    async with await Engine.open(":memory:", clock=clock, sink=sink) as engine:
        await engine.definitions.create(
            "default", Destination("email", "", "Email", DestinationKind.EVENT, EventMode.TRACK)
        )
        journey = Journey(
            id="j",
            space_id="",
            name="J",
            settings=JourneySettings(exit_condition=cond("event('Stop').count() >= 1")),
            steps=(entry(nxt="w"), WaitDurationStep("w", "W", 10 * MINUTE, "send"), send()),
        )
        await engine.journeys.create("default", journey)
        await engine.journeys.move("default", "j", Move.PUBLISH)
        await engine.ingest("default", [{"type": "track", "userId": "u1", "event": "Signup"}])
        await engine.settle()
        same = next(f"x{i}" for i in range(100) if shard(f"u:x{i}") == shard("u:u1"))
        other = next(f"y{i}" for i in range(100) if shard(f"u:y{i}") != shard("u:u1"))
        clock.set(T0 + 5 * MINUTE)
        slow = await engine.ingest("default", [{"type": "track", "userId": same, "event": "N"}])
        sink.slow_position = slow.positions[0] or 0
        await engine.ingest("default", [{"type": "track", "userId": "u1", "event": "Stop"}])
        clock.set(T0 + 20 * MINUTE)
        await engine.ingest("default", [{"type": "track", "userId": other, "event": "N"}])
        await engine.settle()
        assert sink.outputs == []  # u1 left at minute 5, before its wait ended


async def test_overdue_timers_fire_before_a_publish() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="w"), WaitDurationStep("w", "W", 10 * MINUTE, "send"), send(), journey_id="j1"
        )
        await h.identify("u1", plan="pro")
        await h.track("u1", "Signup")  # waits in j1 until minute 10
        h.clock.set(T0 + 60 * MINUTE)  # time passed; no timer has run yet
        await h.journey(
            EntryStep("entry", "E", cond("trait('plan') = 'pro'"), False, "send"),
            send("send", "crm"),
            journey_id="j2",
        )
        await h.at(61)
        # j1's wait ended at minute 10, before j2 existed: j2 is not evaluated then.
        assert h.seen() == [("email", "u1", "send", "entered", 10)]


async def test_overdue_timers_fire_before_an_archive() -> None:
    async with harness() as h:
        await h.journey(entry(), send(), settings=JourneySettings(exit_after_ms=30 * MINUTE))
        await h.track("u1", "Signup")
        h.clock.set(T0 + 60 * MINUTE)
        await h.move("j", Move.ARCHIVE)
        assert h.seen() == [
            ("email", "u1", "send", "entered", 0),
            ("email", "u1", "send", "exited", 30),
        ]
        assert h.stats().in_progress == 0


async def test_overdue_timers_fire_before_a_destination_is_connected() -> None:
    async with harness() as h:
        live = await h.journey(
            entry(), send("send", "email"), settings=JourneySettings(exit_after_ms=30 * MINUTE)
        )
        await h.track("u1", "Signup")
        h.clock.set(T0 + 60 * MINUTE)
        step = live.send_steps()[0]
        connected = dataclasses.replace(step, destination_ids=("email", "crm"))
        await h.engine.journeys.update(
            "default", dataclasses.replace(live, steps=(live.steps[0], connected))
        )
        await h.at(61)
        # The run ended at 30: the new destination has no member to greet.
        assert h.seen() == [
            ("email", "u1", "send", "entered", 0),
            ("email", "u1", "send", "exited", 30),
        ]


async def test_an_updated_audience_is_rechecked_when_its_new_definition_says() -> None:
    async with harness() as h:
        await h.engine.definitions.create(
            "default", Audience("soon", "", "Soon", "", cond("trait('x') = 1"))
        )
        await h.journey(
            entry(nxt="w"), WaitConditionStep("w", "W", cond("audience('soon')"), "send"), send()
        )
        await h.identify("u1", renew=format_ms(T0 + 3 * DAY))
        await h.track("u1", "Signup")  # waits on audience('soon')
        await h.at(1)
        await h.engine.definitions.update(
            "default",
            Audience("soon", "", "Soon", "", cond("trait('renew').within_next(1 days)")),
        )
        await h.at(4 * 24 * 60)
        # The renewal comes within a day from day 2 on: the wait passes then, unprompted.
        assert h.seen() == [("email", "u1", "send", "entered", 2 * 24 * 60)]


async def test_an_updated_audience_that_holds_at_once_moves_waiting_profiles_at_once() -> None:
    async with harness() as h:
        await h.engine.definitions.create(
            "default", Audience("vip", "", "VIP", "", cond("trait('tier') = 'gold'"))
        )
        await h.journey(
            entry(nxt="w"), WaitConditionStep("w", "W", cond("audience('vip')"), "send"), send()
        )
        await h.identify("u1", tier="silver")
        await h.track("u1", "Signup")
        await h.at(5)
        await h.engine.definitions.update(
            "default", Audience("vip", "", "VIP", "", cond("trait('tier') = 'silver'"))
        )
        assert h.seen() == [("email", "u1", "send", "entered", 5)]


async def test_a_computed_trait_going_from_one_to_true_counts_as_a_change() -> None:
    async with harness() as h:
        await h.engine.definitions.create(
            "default",
            ComputedTrait("flag", "", "Flag", "", cond("event('Set').last(property('v'))")),
        )
        await h.journey(entry("computed_trait('flag') = true"), send())
        await h.track("u1", "Set", properties={"v": 1})
        await h.at(1)
        await h.track("u1", "Set", properties={"v": True})
        assert h.seen() == [("email", "u1", "send", "entered", 1)]


async def test_an_alias_is_a_message_like_any_other_for_entry() -> None:
    async with harness() as h:
        await h.identify("u1", plan="pro")  # before publish: nobody is evaluated at publish
        await h.journey(
            EntryStep("entry", "E", cond("trait('plan') = 'pro'"), False, "send"), send()
        )
        await h.send({"type": "alias", "userId": "u1", "previousId": "anon-1"})
        assert h.seen() == [("email", "u1", "send", "entered", 0)]


async def test_deleting_a_journey_hands_the_changed_profiles_to_the_store() -> None:
    units: list[Unit] = []

    class Recording(MemorySink):
        async def commit(self, unit: Unit) -> None:
            units.append(unit)
            await super().commit(unit)

    clock = FakeClock(T0)
    async with await Engine.open(":memory:", clock=clock, sink=Recording()) as engine:
        await engine.definitions.create(
            "default", Destination("email", "", "Email", DestinationKind.EVENT, EventMode.TRACK)
        )
        journey = Journey(
            id="j",
            space_id="",
            name="J",
            steps=(entry(nxt="w"), WaitDurationStep("w", "W", 60 * MINUTE, "send"), send()),
        )
        await engine.journeys.create("default", journey)
        await engine.journeys.move("default", "j", Move.PUBLISH)
        await engine.ingest("default", [{"type": "track", "userId": "u1", "event": "Signup"}])
        await engine.settle()
        units.clear()
        await engine.journeys.delete("default", "j")
    changed = [key for unit in units for key in unit.snapshots]
    assert changed == [("default", "u:u1")]
    assert '"j"' not in units[-1].snapshots[("default", "u:u1")].data


async def test_a_unit_carries_each_profile_as_it_was_when_taken() -> None:
    """A profile changed again before its first unit commits goes out in two units, each
    with the state its own outputs come from."""
    async with harness() as h:
        await h.journey(entry(), send())
        runtime = h.engine.runtime
        space = runtime.space("default")
        await h.engine.ingest("default", [{"type": "track", "userId": "u1", "event": "Noise"}])
        await h.engine.settle()
        runtime.take_units()
        from journeys_engine.messages import parse_message
        from journeys_engine.runtime.identity import Logged

        signup = parse_message({"type": "track", "userId": "u1", "event": "Signup"}, received_at=T0)
        space.apply(Logged(10_000, "u:u1", signup))
        (first,) = runtime.take_units()
        later = parse_message({"type": "track", "userId": "u1", "event": "More"}, received_at=T0)
        space.apply(Logged(10_001, "u:u1", later))
        assert first.snapshots[("default", "u:u1")].position == 10_000
        assert runtime.take_units()[0].snapshots[("default", "u:u1")].position == 10_001


async def test_an_overdue_send_goes_out_before_the_message_that_brings_an_anonymous_id() -> None:
    # The clock is only set (no timer fires), so the wait is overdue when the
    # message arrives: it ends first, and the call shows the profile as it was then.
    async with harness() as h:
        await h.journey(
            entry(nxt="wait"), WaitDurationStep("wait", "Wait", 30 * MINUTE, "send"), send()
        )
        await h.send({"type": "track", "userId": "u1", "event": "Signup"})
        h.clock.set(T0 + 30 * MINUTE)
        await h.send({"type": "track", "userId": "u1", "anonymousId": "a1", "event": "Later"})
        (call,) = h.payloads("email")
        assert (call["userId"], call["anonymousId"]) == ("u1", None)
        assert call["timestamp"] == format_ms(T0 + 30 * MINUTE)
        profile = h.engine.runtime.space("default").actor("u1")
        assert profile is not None and profile.anonymous_id == "a1"
