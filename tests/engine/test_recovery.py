"""Durability at scale, in process on real SQLite files: lazy recovery, passivation,
the timer wheel's far level in the store, units cut to a bounded size, and
compaction.

Each test drives the injected clock; outputs come from a :class:`MemorySink`
or from the store itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from journeys_engine import Engine, EngineSettings, MemorySink, Move
from journeys_engine.model import (
    DefinitionKind,
    Destination,
    DestinationKind,
    EntryStep,
    EventMode,
    Journey,
    SendToDestinationsStep,
    Step,
    WaitDurationStep,
)
from journeys_engine.runtime.runtime import UNIT_ACTORS, Unit
from journeys_engine.testing import FakeClock
from tests.helpers.harness import DAY, HOUR, MINUTE, T0, cond


def _steps(wait_ms: int) -> tuple[Step, ...]:
    return (
        EntryStep("entry", "In", cond("event('Signup').count() >= 1"), False, "wait"),
        WaitDurationStep("wait", "Wait", wait_ms, "send"),
        SendToDestinationsStep("send", "Send", ("email", "list")),
    )


@asynccontextmanager
async def _engine(
    path: Path, clock: FakeClock, sink: MemorySink | None = None, **settings: Any
) -> AsyncIterator[Engine]:
    async with await Engine.open(
        path, clock=clock, sink=sink or MemorySink(), settings=EngineSettings(**settings)
    ) as engine:
        await engine.ready()
        yield engine


async def _publish(engine: Engine, wait_ms: int, journey_id: str = "j") -> None:
    defs = engine.definitions
    if not (await defs.list("default", DefinitionKind.DESTINATION)).items:
        await defs.create(
            "default", Destination("email", "", "Email", DestinationKind.EVENT, EventMode.TRACK)
        )
        await defs.create("default", Destination("list", "", "List", DestinationKind.LIST))
    await engine.journeys.create("default", Journey(journey_id, "", "J", steps=_steps(wait_ms)))
    await engine.journeys.move("default", journey_id, Move.PUBLISH)


async def _track(engine: Engine, users: list[str], event: str = "Signup") -> None:
    await engine.ingest("default", [{"type": "track", "userId": u, "event": event} for u in users])
    await engine.settle()


def _sent(sink: MemorySink) -> list[tuple[str, str, int]]:
    """(destination, profile, minutes after T0) of every call, in commit order."""
    return [(o.destination_id, o.profile_key, (o.timestamp - T0) // MINUTE) for o in sink.outputs]


def _resident(engine: Engine) -> int:
    return len(engine.runtime.space("default").actors)


async def test_a_restart_loads_no_profile_and_only_the_near_wake_ups(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    path = tmp_path / "j.db"
    async with _engine(path, clock) as engine:
        await _publish(engine, 30 * MINUTE, "soon")
        await _publish(engine, 2 * DAY, "later")
        await _track(engine, [f"u{i}" for i in range(50)])
    async with _engine(path, clock, timer_horizon_ms=HOUR) as engine:
        assert _resident(engine) == 0
        # Each profile's one wake-up is its "soon" wait's end; none is later than
        # the horizon, so each is in the wheel, yet nothing else is in memory.
        assert len(engine.runtime.wheel) == 50
        report = await engine.reporting.journey("default", "later")
        assert report.steps[1].waiting == 50  # counts come back without profiles
        assert _resident(engine) == 0


async def test_timers_due_while_down_fire_at_their_instants_in_order_before_a_message(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    path = tmp_path / "j.db"
    async with _engine(path, clock) as engine:
        await _publish(engine, HOUR, "first")
        await _publish(engine, 3 * HOUR, "second")
        await _track(engine, ["u1", "u2"])
    clock.set(T0 + DAY)  # down for a day: both waits of both users fell due
    sink = MemorySink()
    async with _engine(path, clock, sink, timer_horizon_ms=MINUTE) as engine:
        await _track(engine, ["u1"], "Later")
        # u1's message was applied after both its waits ended, each at its own
        # instant; u2 has had no message and no timer fired yet.
        assert _sent(sink) == [
            ("email", "u1", 60),
            ("list", "u1", 60),
            ("email", "u1", 180),
            ("list", "u1", 180),
        ]
        await engine.fire_due()
        assert _sent(sink)[4:] == [
            ("email", "u2", 60),
            ("list", "u2", 60),
            ("email", "u2", 180),
            ("list", "u2", 180),
        ]


async def test_passivated_profiles_resume_exactly(tmp_path: Path) -> None:
    async def run(passivate: bool) -> tuple[list[tuple[str, str, int]], Any]:
        clock = FakeClock(T0)
        sink = MemorySink()
        async with _engine(tmp_path / f"{passivate}.db", clock, sink, timer_horizon_ms=MINUTE) as e:
            await _publish(e, 2 * HOUR)
            for minute in range(0, 300, 20):
                clock.set(T0 + minute * MINUTE)
                await _track(e, [f"u{minute % 60}", f"v{minute}"])
                if passivate:
                    assert await e.passivate(0) > 0
                    assert _resident(e) == 0
                await e.advance_to(T0 + (minute + 10) * MINUTE)
            await e.advance_to(T0 + DAY)
            r = await e.reporting.journey("default", "j")
            return _sent(sink), (r.entered_users, r.entered_runs, r.exited_runs, r.steps)

    assert await run(passivate=True) == await run(passivate=False)


async def test_far_wake_ups_stay_on_disk_until_time_approaches(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    sink = MemorySink()
    async with _engine(tmp_path / "j.db", clock, sink, timer_horizon_ms=HOUR) as engine:
        await _publish(engine, 7 * DAY)
        await _track(engine, [f"u{i}" for i in range(200)])
        await engine.passivate(0)
        assert len(engine.runtime.wheel) == 0  # every wait ends in a week: on disk only
        await engine.advance_to(T0 + 7 * DAY - MINUTE)
        assert not sink.outputs and _resident(engine) == 0
        await engine.advance_to(T0 + 8 * DAY)
        assert len(sink.outputs) == 400
        assert {o.timestamp for o in sink.outputs} == {T0 + 7 * DAY}


async def test_large_work_is_committed_in_bounded_consistent_units(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    sink = MemorySink()
    path = tmp_path / "j.db"
    users = [f"u{i}" for i in range(3 * UNIT_ACTORS + 7)]
    async with _engine(path, clock, sink) as engine:
        await _publish(engine, HOUR)
        for start in range(0, len(users), 200):
            await _track(engine, users[start : start + 200])
        await engine.passivate(0)
        before = sink.units
        await engine.advance_to(T0 + 2 * HOUR)  # every wait ends at once
        assert sink.units - before >= 4
        assert len(sink.outputs) == 2 * len(users)
        await engine.journeys.move("default", "j", Move.ARCHIVE)  # every run ends
        stats = await engine.reporting.journey("default", "j")
        assert (stats.in_progress, stats.exited_runs) == (0, len(users))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM members").fetchone() == (0,)


class _UnitSizes(MemorySink):
    """Also records how many profiles each committed unit carried."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    async def commit(self, unit: Unit) -> None:
        self.sizes.append(len(unit.snapshots))
        await super().commit(unit)


async def test_a_large_batch_is_applied_in_bounded_units(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    sink = _UnitSizes()
    async with _engine(tmp_path / "j.db", clock, sink) as engine:
        await _publish(engine, HOUR)
        sink.sizes.clear()
        await _track(engine, [f"u{i}" for i in range(2_500)])  # one batch, the most allowed
        assert max(sink.sizes) <= UNIT_ACTORS
        assert sum(sink.sizes) == 2_500
        stats = await engine.reporting.journey("default", "j")
        assert (stats.entered_users, stats.steps[1].waiting) == (2_500, 2_500)


def _count(path: Path, sql: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(sql).fetchone()[0])


async def test_compaction_keeps_only_what_is_still_needed(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    path = tmp_path / "j.db"
    async with _engine(
        path, clock, timeline_retention_ms=30 * DAY, history_retention_ms=20 * DAY
    ) as engine:
        await _publish(engine, HOUR)
        await _track(engine, [f"u{i}" for i in range(10)])
        await engine.advance_to(T0 + 2 * HOUR)
        store = engine.store
        assert store.last_sequence("default", "email") == 10
        await store.ack("default", "email", "a", 4)
        await store.ack("default", "email", "b", 7)
        await store.ack("default", "list", "a", 10)
        await engine.advance_to(T0 + 3 * HOUR)  # compaction runs after a clock move
        # Acknowledged by every consumer: gone; the rest stays for the retention.
        records = await store.read("default", "email", 0, 100)
        assert [r.sequence for r in records] == [5, 6, 7, 8, 9, 10]
        assert await store.read("default", "list", 0, 100) == []
        assert _count(path, "SELECT count(*) FROM ingest_log") == 10  # the event history
        assert _count(path, "SELECT count(*) FROM dedup") == 10  # within the dedup window
        assert _count(path, "SELECT count(*) FROM timeline") > 0
        await engine.advance_to(T0 + 8 * DAY)
        assert _count(path, "SELECT count(*) FROM dedup") == 0  # past the 7-day window
        assert _count(path, "SELECT count(*) FROM outbox") == 0  # past the retention
        assert await store.dropped("default", "email") == 6  # counted, never silent
        assert _count(path, "SELECT count(*) FROM timeline") > 0
        assert _count(path, "SELECT count(*) FROM ingest_log") == 10
        await engine.advance_to(T0 + 21 * DAY)
        assert _count(path, "SELECT count(*) FROM ingest_log") == 0  # past its retention
        await engine.advance_to(T0 + 31 * DAY)
        assert _count(path, "SELECT count(*) FROM timeline") == 0  # past its retention


async def test_rosters_of_a_database_written_before_they_were_stored_are_rebuilt(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    path = tmp_path / "j.db"
    async with _engine(path, clock) as engine:
        await _publish(engine, HOUR)
        await _track(engine, ["zed", "amy"])
        await engine.advance_to(T0 + 2 * HOUR)
        await _track(engine, ["kim"])
    with sqlite3.connect(path) as db:  # as the previous schema version left it
        db.execute("DROP TABLE members")
        db.execute("DROP TABLE operations")
        db.execute("DROP INDEX ingest_log_by_actor")
        db.execute("DROP TABLE tokens")
        db.execute("DROP TABLE suppressions")
        db.execute("PRAGMA user_version = 3")
    async with _engine(path, clock) as engine:
        send = await engine.reporting.step_users("default", "j", "send")
        wait = await engine.reporting.step_users("default", "j", "wait", waiting=True)
        assert sorted(m.profile_key for m in send.items) == ["amy", "zed"]
        assert [(m.profile_key, m.waiting) for m in wait.items] == [("kim", True)]
