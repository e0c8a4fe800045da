"""Historical entry (SPEC §5.1), entry preview (SPEC §6) and the event history."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeys_engine import Engine, EngineSettings, Move
from journeys_engine.clock import format_ms
from journeys_engine.conditions.ast import BoolNode
from journeys_engine.conditions.printer import print_condition
from journeys_engine.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from journeys_engine.model import (
    Audience,
    ComputedTrait,
    Condition,
    EntryStep,
    SendToDestinationsStep,
    WaitDurationStep,
)
from journeys_engine.model.operation import Operation, OperationState
from journeys_engine.runtime.timeline import CauseKind
from journeys_engine.testing import FakeClock
from tests.helpers.condition_strategies import BASE, HOUR, conditions, histories
from tests.helpers.harness import DAY, MINUTE, T0, Harness, cond, harness
from tests.helpers.reference_conditions import History, Identify, Track, value_of

ORDERED_TWICE = "event('Order Completed').count() >= 2"


def _entry(text: str, *, historical: bool = True, then: str = "send") -> EntryStep:
    return EntryStep("entry", "Entry", cond(text), historical, then)


SEND = SendToDestinationsStep("send", "Send", ("email",))


async def _publish(h: Harness, *, journey_id: str = "j") -> Operation:
    _, operation = await h.engine.publish_journey("default", journey_id)
    assert operation is not None
    return operation


async def _finish(h: Harness, operation: Operation) -> Operation:
    done = await h.engine.operations.wait("default", operation.id)
    await h.engine.settle()
    return done


async def test_profiles_whose_history_matches_enter_at_the_publish_time() -> None:
    async with harness() as h:
        await h.track("a", "Order Completed")
        await h.track("a", "Order Completed")
        await h.track("b", "Order Completed")
        await h.identify("c", plan="pro")
        await h.at(60)
        await h.journey(_entry(ORDERED_TWICE), SEND, publish=False)
        operation = await _publish(h)
        assert (operation.state, operation.at, operation.profiles_total) == (
            OperationState.RUNNING,
            T0 + 60 * MINUTE,
            3,
        )
        await h.at(90)  # the walk may end later than the publish: entries are at the publish
        done = await _finish(h, operation)
        assert (done.state, done.profiles_scanned, done.profiles_entered, done.events_read) == (
            OperationState.SUCCEEDED,
            3,
            1,
            3,
        )
        assert h.seen() == [("email", "a", "send", "entered", 60)]
        # b's history counts from now on: one more order and b enters, live.
        await h.track("b", "Order Completed")
        assert h.seen()[1:] == [("email", "b", "send", "entered", 90)]
        timeline = await h.engine.store.timeline("default", "u:a", "j", 0, 10)
        assert timeline[0].cause.kind is CauseKind.HISTORY
        assert timeline[0].at == T0 + 60 * MINUTE


async def test_without_historical_data_history_is_not_seen() -> None:
    async with harness() as h:
        await h.track("a", "Order Completed")
        await h.track("a", "Order Completed")
        await h.journey(_entry(ORDERED_TWICE, historical=False), SEND, publish=False)
        _, operation = await h.engine.publish_journey("default", "j")
        assert operation is None
        await h.track("a", "Order Completed")
        assert h.seen() == []


async def test_a_profile_new_since_the_publish_enters_live() -> None:
    async with harness() as h:
        await h.track("old", "Noise")
        await h.journey(_entry("event('Order Completed').count() = 0"), SEND, publish=False)
        h.engine.operations.pace = asyncio.Event().wait  # the walk never gets anywhere
        operation = await _publish(h)
        await h.at(5)
        await h.track("new", "Noise")  # no history to look at: enters now
        await h.track("old", "Noise")  # looked at first: entered at the publish
        assert h.seen() == [
            ("email", "new", "send", "entered", 5),
            ("email", "old", "send", "entered", 0),
        ]
        assert h.stats().entered_users == 2
        await h.move("j", Move.ARCHIVE)
        cancelled = await h.engine.operations.wait("default", operation.id)
        assert (cancelled.state, cancelled.detail) == (
            OperationState.CANCELLED,
            "the journey was archived first",
        )
        assert cancelled.profiles_entered == 1


async def test_the_walk_and_waits_keep_their_instants() -> None:
    async with harness() as h:
        await h.track("a", "Order Completed")
        await h.track("a", "Order Completed")
        await h.journey(
            _entry(ORDERED_TWICE, then="wait"),
            WaitDurationStep("wait", "Wait", DAY, "send"),
            SEND,
            publish=False,
        )
        gate = asyncio.Event()
        h.engine.operations.pace = gate.wait
        operation = await _publish(h)
        await h.at(3 * 24 * 60)  # the walk is held: a reaches the wait only afterwards
        gate.set()
        await _finish(h, operation)
        await h.at(3 * 24 * 60 + 1)
        assert h.seen() == [("email", "a", "send", "entered", 24 * 60)]


async def test_operations_are_read_watched_and_listed() -> None:
    async with harness() as h:
        for user in ("a", "b", "c", "d", "e"):
            await h.track(user, "Order Completed")
        await h.journey(_entry("event('Order Completed').count() >= 1"), SEND, publish=False)
        gate = asyncio.Semaphore(0)
        h.engine.operations.pace = gate.acquire
        h.engine.operations.unit = 2
        operation = await _publish(h)
        seen: list[Operation] = []

        async def watch() -> None:
            async for op in h.engine.operations.watch("default", operation.id):
                seen.append(op)
                gate.release()

        await asyncio.wait_for(watch(), 10)
        assert [op.profiles_scanned for op in seen] == [0, 2, 4, 5, 5]
        assert seen[-1].state is OperationState.SUCCEEDED
        assert [op.state for op in seen[:-1]] == [OperationState.RUNNING] * 4
        got = await h.engine.operations.get("default", operation.id)
        assert got.profiles_entered == 5 and got.end_ms is not None
        page = await h.engine.operations.list("default")
        assert [op.id for op in page.items] == [operation.id]
        with pytest.raises(NotFoundError, match="operation 'op_nope' not found"):
            await h.engine.operations.get("default", "op_nope")
        with pytest.raises(NotFoundError):
            await h.engine.operations.get("other", operation.id)
        with pytest.raises(InvalidArgumentError, match="operation_id: is required"):
            await h.engine.operations.get("default", "")


# Backfill against brute force, and against live traffic


def _reference(history: History, at: int) -> History:
    """The history as a historical entry sees it: every event applied at the publish,
    with the traits of that instant."""
    traits = history.traits()
    events: list[Track | Identify] = [
        Track(m.name, m.timestamp, at, m.properties, m.context)
        for m in history.messages
        if isinstance(m, Track)
    ]
    return History([Identify(traits, at), *events])


def _messages(user: str, history: History) -> list[tuple[int, dict[str, Any]]]:
    out: list[tuple[int, dict[str, Any]]] = []
    for message in history.messages:
        if isinstance(message, Identify):
            out.append(
                (message.applied, {"type": "identify", "userId": user, "traits": message.traits})
            )
        else:
            body: dict[str, Any] = {
                "type": "track",
                "userId": user,
                "event": message.name,
                "timestamp": format_ms(message.timestamp),
                "properties": dict(message.properties),
                "context": dict(message.context),
            }
            out.append((message.applied, body))
    return out


async def _replay(h: Harness, users: Sequence[History]) -> None:
    """Sends every user's messages at their applied instants, in time order."""
    timed = [
        (applied, i, body)
        for i, history in enumerate(users)
        for applied, body in _messages(f"u{i}", history)
    ]
    for applied, _, body in sorted(timed, key=lambda item: (item[0], item[1])):
        if applied > h.clock.now_ms():
            await h.engine.advance_to(applied)
        await h.send(body)


async def _historical_journey(h: Harness, condition: BoolNode) -> None:
    await h.journey(_entry(print_condition(condition)), SEND, publish=False)


@settings(max_examples=40)
@given(
    condition=conditions(),
    users=st.lists(histories(max_messages=8), min_size=1, max_size=4),
    after=st.integers(min_value=0, max_value=6 * HOUR),
)
async def test_backfill_enters_exactly_the_profiles_a_brute_force_scan_matches(
    condition: BoolNode, users: list[History], after: int
) -> None:
    async with harness(clock_at=BASE - HOUR) as h:
        await _replay(h, users)
        publish_at = max(BASE, h.clock.now_ms()) + after
        await h.engine.advance_to(publish_at)
        await _historical_journey(h, condition)
        done = await _finish(h, await _publish(h))
        entered = {key for _, key, _, change, _ in h.seen() if change == "entered"}
        expected = {
            f"u{i}"
            for i, history in enumerate(users)
            if history.messages and value_of(condition, _reference(history, publish_at), publish_at)
        }
        assert entered == expected
        assert done.profiles_entered == len(expected)
        assert done.profiles_scanned == sum(1 for history in users if history.messages)
        # The preview says the same, and changes nothing.
        preview = await h.engine.preview_entry("default", "j", limit=1000)
        assert preview.matching == len(expected)


Action = tuple[str, int, str]  # ("walk", 0, "") or ("send", user, event)

actions = st.lists(
    st.one_of(
        st.just(("walk", 0, "")),
        st.tuples(st.just("send"), st.integers(0, 4), st.sampled_from(["A", "B", "Noise"])),
    ),
    max_size=12,
)


async def _run_with_traffic(
    condition: BoolNode, users: list[History], script: list[Action], *, interleave: bool
) -> tuple[dict[str, list[Any]], Any]:
    """Publishes with history, then plays the script of live messages (one minute
    apart); the walk goes a profile at a time, either where the script says or all
    of it first."""
    async with harness(clock_at=BASE - HOUR) as h:
        await _replay(h, users)
        publish_at = max(BASE, h.clock.now_ms()) + MINUTE
        await h.engine.advance_to(publish_at)
        await _historical_journey(h, condition)
        operations = h.engine.operations
        operations.unit = 1
        steps = asyncio.Semaphore(0)
        if interleave:
            operations.pace = steps.acquire
        operation = await _publish(h)
        if not interleave:
            await _finish(h, operation)
        for i, (kind, user, event) in enumerate(script):
            if kind == "walk":
                steps.release()
                for _ in range(20):  # (the walk's unit goes through a few awaits)
                    await asyncio.sleep(0)
                continue
            await h.engine.advance_to(publish_at + (i + 1) * MINUTE)
            await h.send({"type": "track", "userId": f"u{user}", "event": event})
        operations.pace = None
        steps.release()
        await _finish(h, operation)
        await h.engine.advance_to(publish_at + DAY)
        # Order is kept per profile; across profiles it may differ (SPEC §7).
        per_profile: dict[str, list[Any]] = {}
        for seen in h.seen():
            per_profile.setdefault(seen[1], []).append(seen)
        return per_profile, h.stats()


@settings(max_examples=30)
@given(
    condition=conditions(),
    users=st.lists(histories(max_messages=6), min_size=1, max_size=4),
    script=actions,
)
async def test_live_messages_racing_the_walk_neither_double_nor_miss_an_entry(
    condition: BoolNode, users: list[History], script: list[Action]
) -> None:
    first = await _run_with_traffic(condition, users, script, interleave=False)
    raced = await _run_with_traffic(condition, users, script, interleave=True)
    assert raced == first
    for seen in first[0].values():  # one run each: no reentry
        assert [s[3] for s in seen].count("entered") <= 1


# Restarts


async def test_a_walk_stopped_by_a_restart_goes_on_where_it_was(
    db_path: Path, clock: FakeClock
) -> None:
    async with await Engine.open(db_path, clock=clock) as engine:
        h = Harness(engine, clock)
        await _destination(engine)
        for i in range(7):
            await h.track(f"u{i}", "Order Completed")
        await h.journey(_entry("event('Order Completed').count() >= 1"), SEND, publish=False)
        gate = asyncio.Semaphore(3)  # three units, then the process stops
        engine.operations.unit = 2
        engine.operations.pace = gate.acquire
        operation = await _publish(h)
        # Three units done and their place stored: the walk waits for the fourth.
        while (stored := await engine.history.operation("default", operation.id)) is None or (
            stored.profiles_scanned < 6
        ):
            await asyncio.sleep(0)
    async with await Engine.open(db_path, clock=clock) as engine:
        done = await engine.operations.wait("default", operation.id)
        await engine.settle()
        assert (done.state, done.profiles_scanned, done.profiles_entered) == (
            OperationState.SUCCEEDED,
            7,
            7,
        )
        stats = engine.runtime.space("default").stats["j"]
        assert (stats.entered_users, stats.entered_runs) == (7, 7)
        rows = await engine.store.read("default", "email", 0, 100)
        assert sorted(r.profile_key for r in rows) == [f"u{i}" for i in range(7)]


async def test_a_journey_published_just_before_a_crash_gets_its_historical_entry(
    db_path: Path, clock: FakeClock
) -> None:
    async with await Engine.open(db_path, clock=clock) as engine:
        h = Harness(engine, clock)
        await _destination(engine)
        await h.track("u1", "Order Completed")
        await h.journey(_entry("event('Order Completed').count() >= 1"), SEND, publish=False)
        await engine.publish_journey("default", "j")
    with sqlite3.connect(db_path) as conn:  # as if the process died before the walk began
        conn.execute("DELETE FROM operations")
    async with await Engine.open(db_path, clock=clock) as engine:
        (operation,) = (await engine.operations.list("default")).items
        done = await engine.operations.wait("default", operation.id)
        assert (done.state, done.profiles_entered) == (OperationState.SUCCEEDED, 1)


async def _destination(engine: Engine) -> None:
    from tests.helpers.builders import add_destination

    await add_destination(engine)


# Preview


async def test_the_preview_counts_and_names_without_changing_anything(
    db_path: Path, clock: FakeClock
) -> None:
    async with await Engine.open(db_path, clock=clock) as engine:
        h = Harness(engine, clock)
        await _destination(engine)
        for user in ("c", "a", "b", "d"):
            await h.track(user, "Order Completed")
        await h.track("d", "Order Completed")
        await h.send({"type": "track", "anonymousId": "x", "event": "Order Completed"})
        await h.journey(_entry(ORDERED_TWICE, historical=False), SEND, publish=False)
        await h.journey(
            _entry("event('Order Completed').count() = 1", historical=False),
            SEND,
            journey_id="once",
            publish=False,
        )
        before = _dump(db_path)
        once = await engine.preview_entry("default", "once", limit=2)
        assert (once.matching, once.scanned, once.profile_keys) == (4, 5, ("x", "a"))
        twice = await engine.preview_entry("default", "j")
        assert (twice.matching, twice.profile_keys, twice.at) == (1, ("d",), clock.now_ms())
        assert _dump(db_path) == before
        assert engine.runtime.space("default").journeys == {}
        with pytest.raises(InvalidArgumentError, match="limit"):
            await engine.preview_entry("default", "j", limit=-1)
        with pytest.raises(NotFoundError):
            await engine.preview_entry("default", "nope")
        await engine.journeys.move("default", "j", Move.PUBLISH)
        assert (await engine.preview_entry("default", "j")).matching == 1
        await engine.journeys.move("default", "j", Move.ARCHIVE)
        with pytest.raises(FailedPreconditionError, match="archived"):
            await engine.preview_entry("default", "j")


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


# Retention


async def test_history_older_than_the_retention_is_compacted_away(
    db_path: Path, clock: FakeClock
) -> None:
    settings_ = EngineSettings(manual_clock=True, history_retention_ms=30 * DAY)
    async with await Engine.open(db_path, clock=clock, settings=settings_) as engine:
        h = Harness(engine, clock)
        await _destination(engine)
        await h.track("u1", "Order Completed")
        await h.track("u2", "Order Completed")
        await engine.advance(20 * DAY)
        await h.track("u2", "Order Completed")
        await engine.advance(15 * DAY)  # the first two are 35 days old now
        with sqlite3.connect(db_path) as conn:
            left = conn.execute("SELECT actor_id FROM ingest_log").fetchall()
        assert left == [("u:u2",)]
        await h.journey(_entry("event('Order Completed').count() >= 1"), SEND, publish=False)
        preview = await engine.preview_entry("default", "j")
        assert preview.profile_keys == ("u2",)  # u1's order is past the retention


# Definitions see the history too


async def test_audiences_and_computed_traits_made_later_see_the_retained_history() -> None:
    async with harness() as h:
        await h.track("a", "Order Completed", properties={"revenue": 60})
        await h.track("a", "Order Completed", properties={"revenue": 70})
        await h.track("b", "Order Completed", properties={"revenue": 20})
        await h.at(10)
        defs = h.engine.definitions
        clv = Condition("event('Order Completed').sum(property('revenue'))")
        await defs.create("default", ComputedTrait("clv", "", "CLV", "", clv))
        big = Condition("computed_trait('clv') > 100")
        await defs.create("default", Audience("big", "", "Big spenders", "", big))
        await h.journey(_entry("audience('big')", historical=False), SEND)
        await h.at(20)
        await h.track("a", "Noise")
        await h.track("b", "Noise")
        assert h.seen() == [("email", "a", "send", "entered", 20)]
        a = await h.engine.reporting.profile("default", user_id="a")
        b = await h.engine.reporting.profile("default", user_id="b")
        assert (a.computed_traits, b.computed_traits) == ({"clv": 130}, {"clv": 20})
        assert (list(a.audiences), list(b.audiences)) == (["big"], [])
        # An update takes effect from then on, over the whole history again.
        count = Condition("event('Order Completed').count()")
        await defs.update("default", ComputedTrait("clv", "", "CLV", "", count))
        await h.track("b", "Noise")
        b = await h.engine.reporting.profile("default", user_id="b")
        assert b.computed_traits == {"clv": 1}
