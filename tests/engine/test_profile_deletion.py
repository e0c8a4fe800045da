"""Profile deletion (privacy): a deleted person leaves no trace in any table, their
lists are told, their counts stay consistent, nothing brings them back, and a
suppression refuses their later messages for its period.

Engines run in process on real SQLite files (the database is read directly),
on a fake clock, with outputs kept in a :class:`MemorySink`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeys_engine import Engine, EngineSettings, InvalidArgumentError, MemorySink, NotFoundError
from journeys_engine.model import (
    Audience,
    ComputedTrait,
    Condition,
    Destination,
    DestinationKind,
    EntryStep,
    EventMode,
    SendToDestinationsStep,
    WaitConditionStep,
    WaitDurationStep,
)
from journeys_engine.runtime import Change
from journeys_engine.runtime.identity import profile_id
from journeys_engine.testing import FakeClock
from tests.helpers.harness import DAY, HOUR, MINUTE, T0, Harness, cond, harness

USER = "erase-me-7f3"  # ids that occur in no other string of the database
ANON = "anon-erase-9c1"
OTHER = "keep-5b2"
SPACE = "default"


@asynccontextmanager
async def opened(path: Path, clock: FakeClock, **settings: Any) -> AsyncIterator[Harness]:
    async with await Engine.open(
        path, clock=clock, sink=MemorySink(), settings=EngineSettings(**settings)
    ) as engine:
        await engine.ready()
        yield Harness(engine, clock)


async def _define(h: Harness) -> None:
    """Destinations, an audience, a computed trait and two journeys: ``welcome``
    sends to email and crm, then holds its runs at a wait; ``buyers`` puts the
    audience's members on the ``ads`` list."""
    defs = h.engine.definitions
    await defs.create(
        SPACE, Destination("email", "", "Email", DestinationKind.EVENT, EventMode.TRACK)
    )
    await defs.create(
        SPACE, Destination("crm", "", "CRM", DestinationKind.EVENT, EventMode.IDENTIFY)
    )
    await defs.create(SPACE, Destination("ads", "", "Ads", DestinationKind.LIST))
    await defs.create(
        SPACE,
        Audience("buyers", "", "Buyers", "", Condition("event('Order Completed').count() >= 1")),
    )
    await defs.create(
        SPACE,
        ComputedTrait(
            "clv", "", "CLV", "", Condition("event('Order Completed').sum(property('revenue'))")
        ),
    )
    await h.journey(
        EntryStep("entry", "Signed up", cond("event('Signed Up').count() >= 1"), False, "hi"),
        SendToDestinationsStep("hi", "Say hi", ("email", "crm"), next_step_id="wait"),
        WaitConditionStep(
            "wait", "Second order", cond("event('Order Completed').count() >= 2"), "thanks"
        ),
        SendToDestinationsStep("thanks", "Thank", ("email",)),
        journey_id="welcome",
        name="Welcome",
    )
    await h.journey(
        EntryStep("entry", "Bought", cond("audience('buyers')"), False, "list"),
        SendToDestinationsStep("list", "Buyers list", ("ads",)),
        journey_id="buyers",
        name="Buyers",
    )


async def _history(h: Harness) -> None:
    """The person browses anonymously, identifies (linking the anonymous id),
    signs up and buys; another user does the same under their own ids."""
    await h.send({"type": "track", "anonymousId": ANON, "event": "Browsed"})
    await h.send(
        {"type": "identify", "userId": USER, "anonymousId": ANON, "traits": {"plan": "pro"}}
    )
    await h.track(USER, "Signed Up")
    await h.track(USER, "Order Completed", properties={"revenue": 50})
    await h.send({"type": "group", "userId": USER, "groupId": "g1", "traits": {"size": 3}})
    await h.identify(OTHER, plan="free")
    await h.track(OTHER, "Signed Up")
    await h.track(OTHER, "Order Completed", properties={"revenue": 20})


def _rows_naming(path: Path, *needles: str) -> dict[str, int]:
    """Per table, the rows of the database whose any column mentions a needle."""
    found: dict[str, int] = {}
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                text = " ".join(str(value) for value in row)
                if any(needle in text for needle in needles):
                    found[table] = found.get(table, 0) + 1
    return found


def _stats_consistent(h: Harness, journey_id: str) -> None:
    stats = h.stats(journey_id)
    assert stats.in_progress == stats.entered_runs - stats.exited_runs


async def _members(h: Harness, journey_id: str, step_id: str) -> set[str]:
    return set(await h.members(step_id, journey_id))


async def test_deletion_tells_each_destination_and_leaves_nothing_but_outbox_calls(
    db_path: Path, clock: FakeClock
) -> None:
    async with opened(db_path, clock) as h:
        await _define(h)
        await _history(h)
        assert await _members(h, "welcome", "wait") == {f"u:{USER}", f"u:{OTHER}"}
        assert await _members(h, "buyers", "list") == {f"u:{USER}", f"u:{OTHER}"}
        last = {d: h.engine.store.last_sequence(SPACE, d) for d in ("email", "crm", "ads")}
        h.sink.take()
        clock.advance(minutes=5)
        done = await h.engine.delete_profile(SPACE, user_id=USER)
        assert (done.deleted, done.profiles, done.runs_ended, done.memberships_removed) == (
            True,
            2,  # the user's profile and the anonymous one of its linked anonymous id
            2,
            2,
        )
        assert done.suppressed_until is None

        # (a) Every destination that has the person is told, after its earlier calls.
        now = T0 + 5 * MINUTE
        exits = h.sink.take()
        assert [(o.destination_id, o.journey_id, o.change, o.timestamp) for o in exits] == [
            ("email", "welcome", Change.EXITED, now),
            ("crm", "welcome", Change.EXITED, now),
            ("ads", "buyers", Change.EXITED, now),
        ]
        for output in exits:
            (record,) = await h.engine.store.read(
                SPACE, output.destination_id, last[output.destination_id], 10
            )
            assert record.sequence == last[output.destination_id] + 1
            assert record.message_id == output.message_id
        email, crm, ads = (json.loads(o.payload) for o in exits)
        assert (email["event"], email["userId"], email["anonymousId"]) == (
            "Audience Exited",
            USER,
            ANON,
        )
        assert list(crm["traits"].values()) == ["false"]
        assert (ads["change"], ads["userId"]) == ("removed", USER)

        # (c) The runs count as exited; the other user is where they were.
        for journey_id in ("welcome", "buyers"):
            _stats_consistent(h, journey_id)
            stats = h.stats(journey_id)
            assert (stats.entered_users, stats.in_progress, stats.exited_runs) == (2, 1, 1)
        welcome = h.stats("welcome").steps
        assert (welcome["wait"].members, welcome["wait"].waiting, welcome["hi"].members) == (
            1,
            1,
            1,
        )
        assert h.stats("buyers").steps["list"].members == 1
        assert await _members(h, "welcome", "wait") == {f"u:{OTHER}"}
        assert await _members(h, "buyers", "list") == {f"u:{OTHER}"}
        report = await h.engine.reporting.journey(SPACE, "welcome")
        assert (report.in_progress, report.exited_runs) == (1, 1)

        # (b) Nothing names the person but the calls already made, and the exits.
        await h.engine.settle()
        assert _rows_naming(db_path, USER, ANON) == {"outbox": 3 + 3}
        for ids in ({"user_id": USER}, {"anonymous_id": ANON}):
            with pytest.raises(NotFoundError):
                await h.engine.reporting.profile(SPACE, **ids)
        space = h.engine.runtime.space(SPACE)
        assert f"u:{USER}" not in space.actors and f"a:{ANON}" not in space.actors
        assert h.engine.store.linked_user(SPACE, ANON) is None

        # Once every consumer has acknowledged the calls, the purge takes them too.
        for destination in ("email", "crm", "ads"):
            sequence = h.engine.store.last_sequence(SPACE, destination)
            await h.engine.store.ack(SPACE, destination, "reader", sequence)
        await h.engine.store.purge()
        assert _rows_naming(db_path, USER, ANON) == {}
        assert _rows_naming(db_path, OTHER)  # (the search finds what is there)

        # The other user goes on as before.
        await h.track(OTHER, "Order Completed", properties={"revenue": 5})
        assert [(o.profile_key, o.step_id) for o in h.sink.take()] == [(OTHER, "thanks")]
        assert h.stats("welcome").steps["wait"].waiting == 0
        profile = await h.engine.reporting.profile(SPACE, user_id=OTHER)
        assert profile.computed_traits == {"clv": 25}

    # (d) A restart brings nothing back.
    async with opened(db_path, clock) as h:
        for ids in ({"user_id": USER}, {"anonymous_id": ANON}):
            with pytest.raises(NotFoundError):
                await h.engine.reporting.profile(SPACE, **ids)
        for journey_id in ("welcome", "buyers"):
            _stats_consistent(h, journey_id)
        assert h.stats("buyers").in_progress == 1
        clock.advance(days=30)
        await h.engine.fire_due()
        assert h.sink.outputs == []
        # The person may come back as a new profile: nothing of the old one is in it.
        await h.track(USER, "Page")
        profile = await h.engine.reporting.profile(SPACE, user_id=USER)
        assert (profile.anonymous_id, dict(profile.traits), profile.audiences) == (None, {}, ())
        assert [j.journey_id for j in profile.journeys if j.run is not None] == []


async def test_a_message_logged_but_not_applied_does_not_bring_the_profile_back(
    db_path: Path, clock: FakeClock
) -> None:
    async with opened(db_path, clock) as h:
        await _define(h)
        await _history(h)
        # Logged, not handed on for applying (as after a crash right after the
        # log's commit): the log holds it beyond the applied floor.
        store = h.engine.store
        store.on_logged = None
        ack = await h.engine.ingest(SPACE, [{"type": "track", "userId": USER, "event": "Late"}])
        position = ack.positions[0]
        assert position is not None
        with sqlite3.connect(db_path) as db:
            (floor,) = db.execute("SELECT value FROM meta WHERE key = 'applied_floor'").fetchone()
        assert int(floor) < position
        await h.engine.delete_profile(SPACE, user_id=USER)
        store.on_logged = h.engine.router.put
        assert _rows_naming(db_path, USER, ANON) == {"outbox": 6}
    async with opened(db_path, clock) as h:
        await h.engine.settle()
        with pytest.raises(NotFoundError):
            await h.engine.reporting.profile(SPACE, user_id=USER)
        assert h.sink.outputs == []
    assert _rows_naming(db_path, USER, ANON) == {"outbox": 6}


async def test_a_load_begun_before_the_deletion_does_not_bring_the_profile_back(
    db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with opened(db_path, clock) as h:
        await _define(h)
        await _history(h)
        engine = h.engine
        await engine.passivate(0)  # (so that reading the profile loads its snapshot)
        load = engine.store.load_actors
        read, go = asyncio.Event(), asyncio.Event()

        async def slow(*args: Any) -> Any:
            found = await load(*args)
            read.set()
            await go.wait()
            return found

        monkeypatch.setattr(engine.store, "load_actors", slow)
        reading = asyncio.create_task(engine.reporting.profile(SPACE, user_id=USER))
        await read.wait()  # it has read the snapshot, not yet made it resident
        monkeypatch.setattr(engine.store, "load_actors", load)
        await engine.delete_profile(SPACE, user_id=USER)
        go.set()
        with pytest.raises(NotFoundError):
            await reading
        assert f"u:{USER}" not in engine.runtime.space(SPACE).actors
        assert engine.runtime.space(SPACE).erased == {}  # (kept only while such loads run)
        await h.track(OTHER, "Page")  # (a unit is committed: nothing of the person in it)
        assert _rows_naming(db_path, USER, ANON) == {"outbox": 6}


async def test_deleting_by_an_anonymous_id_deletes_the_person_it_is_linked_to(
    db_path: Path, clock: FakeClock
) -> None:
    async with opened(db_path, clock) as h:
        await _define(h)
        await _history(h)
        done = await h.engine.delete_profile(SPACE, anonymous_id=ANON)
        assert (done.deleted, done.profiles, done.runs_ended) == (True, 2, 2)
        assert _rows_naming(db_path, USER, ANON) == {"outbox": 6}
        # An anonymous profile never linked is deleted alone.
        await h.send({"type": "track", "anonymousId": "lone-anon", "event": "Signed Up"})
        assert (await h.engine.delete_profile(SPACE, anonymous_id="lone-anon")).profiles == 1
        assert _rows_naming(db_path, "lone-anon") == {"outbox": 4}  # (entered, exited: 2 each)
        assert _rows_naming(db_path, OTHER)


async def test_an_anonymous_id_since_linked_to_another_user_stays_theirs(
    db_path: Path, clock: FakeClock
) -> None:
    async with opened(db_path, clock) as h:
        await _define(h)
        await _history(h)
        await h.send({"type": "alias", "userId": OTHER, "previousId": ANON})
        done = await h.engine.delete_profile(SPACE, user_id=USER)
        assert done.profiles == 1  # (not the anonymous profile: it is the other user's now)
        assert h.engine.store.linked_user(SPACE, ANON) == OTHER
        found = _rows_naming(db_path, USER)
        assert found == {"outbox": 6}


async def test_deleting_an_unknown_profile_is_no_error_and_still_suppresses(
    db_path: Path, clock: FakeClock
) -> None:
    async with opened(db_path, clock) as h:
        await _define(h)
        done = await h.engine.delete_profile(SPACE, user_id="ghost", suppress=True)
        assert (done.deleted, done.profiles, done.suppressed) == (False, 0, 1)
        assert done.suppressed_until == T0 + 365 * DAY
        ack = await h.engine.ingest(SPACE, [{"type": "track", "userId": "ghost", "event": "Hi"}])
        assert ack.accepted == 0
        assert ack.errors[0][0].description.startswith("suppressed:")
        assert _rows_naming(db_path, "ghost") == {}  # (a hash only)


async def test_bad_requests_change_nothing(engine: Engine) -> None:
    for user_id, anonymous_id in ((None, None), ("u", "a"), ("", "")):
        with pytest.raises(InvalidArgumentError) as caught:
            await engine.delete_profile(
                SPACE, user_id=user_id, anonymous_id=anonymous_id, suppress=True
            )
        assert [v.field for v in caught.value.violations] == ["user_id", "anonymous_id"]
    with pytest.raises(InvalidArgumentError, match="user_id: must be at most 255 characters"):
        await engine.delete_profile(SPACE, user_id="x" * 256, suppress=True)
    with pytest.raises(InvalidArgumentError, match="anonymous_id: must not contain control"):
        await engine.delete_profile(SPACE, anonymous_id="a\nb", suppress=True)
    with pytest.raises(NotFoundError, match="space 'nowhere' not found"):
        await engine.delete_profile("nowhere", user_id="u")
    with pytest.raises(NotFoundError):
        await engine.get_suppression("nowhere", user_id="u")
    with pytest.raises(InvalidArgumentError):
        await engine.get_suppression(SPACE)
    with pytest.raises(InvalidArgumentError):
        await engine.delete_suppression(SPACE, user_id="u", anonymous_id="a")
    with sqlite3.connect(engine.database_path) as db:
        assert db.execute("SELECT count(*) FROM suppressions").fetchone() == (0,)


async def test_a_suppression_refuses_the_persons_messages_for_its_period(
    db_path: Path, clock: FakeClock
) -> None:
    async with opened(db_path, clock, suppression_ms=30 * DAY) as h:
        await _define(h)
        await _history(h)
        engine = h.engine
        done = await engine.delete_profile(SPACE, user_id=USER, suppress=True)
        assert (done.suppressed, done.suppressed_until) == (2, T0 + 30 * DAY)
        for ids in ({"user_id": USER}, {"anonymous_id": ANON}):
            found = await engine.get_suppression(SPACE, **ids)
            assert (found.suppressed, found.until) == (True, T0 + 30 * DAY)
        assert not (await engine.get_suppression(SPACE, user_id=ANON)).suppressed  # (kinds apart)
        assert not (await engine.get_suppression(SPACE, user_id=OTHER)).suppressed

        with sqlite3.connect(db_path) as db:
            dedup_before = db.execute("SELECT count(*) FROM dedup").fetchone()
        batch: list[dict[str, Any]] = [
            {"type": "track", "userId": USER, "event": "Back", "messageId": "m1"},
            {"type": "track", "userId": OTHER, "event": "Page", "messageId": "m2"},
            {"type": "track", "anonymousId": ANON, "event": "Back", "messageId": "m3"},
            {"type": "identify", "userId": "new", "anonymousId": ANON, "messageId": "m4"},
            {"type": "alias", "userId": "new", "previousId": ANON, "messageId": "m5"},
            {"type": "track", "userId": "new", "event": "Page", "messageId": "m6"},
        ]
        ack = await engine.ingest(SPACE, batch)
        assert ack.accepted == 2
        assert [p is not None for p in ack.positions] == [False, True, False, False, False, True]
        assert {i: [(v.field, v.description[:11]) for v in vs] for i, vs in ack.errors.items()} == {
            0: [("messages[0].userId", "suppressed:")],
            2: [("messages[2].anonymousId", "suppressed:")],
            3: [("messages[3].anonymousId", "suppressed:")],
            4: [("messages[4].previousId", "suppressed:")],
        }
        assert "refused until 2026-04-01T09:00:00.000Z" in ack.errors[0][0].description
        await engine.settle()
        # Nothing of a refused message is written: not logged, its id not kept.
        with sqlite3.connect(db_path) as db:
            assert db.execute("SELECT count(*) FROM dedup").fetchone()[0] == dedup_before[0] + 2
        assert _rows_naming(db_path, USER, ANON) == {"outbox": 6}
        assert engine.store.linked_user(SPACE, ANON) is None

    async with opened(db_path, clock, suppression_ms=30 * DAY) as h:  # (kept across a restart)
        ack = await h.engine.ingest(SPACE, [{"type": "track", "userId": USER, "event": "Back"}])
        assert ack.accepted == 0
        # Lifting one id accepts its messages again; the other stays suppressed.
        assert await h.engine.delete_suppression(SPACE, anonymous_id=ANON)
        assert not await h.engine.delete_suppression(SPACE, anonymous_id=ANON)
        anonymous = [{"type": "track", "anonymousId": ANON, "event": "Back"}]
        assert (await h.engine.ingest(SPACE, anonymous)).accepted == 1
        assert (await h.engine.ingest(SPACE, [batch[0]])).accepted == 0
        # Past its period, the suppression is over, and the purge deletes it.
        await h.engine.advance_to(T0 + 30 * DAY - 1)
        assert (await h.engine.ingest(SPACE, [batch[0]])).accepted == 0
        await h.engine.advance_to(T0 + 30 * DAY)
        assert (await h.engine.ingest(SPACE, [batch[0]])).accepted == 1
        assert not (await h.engine.get_suppression(SPACE, user_id=USER)).suppressed
        with sqlite3.connect(db_path) as db:
            assert db.execute("SELECT count(*) FROM suppressions").fetchone() == (0,)


async def test_suppressions_are_kept_as_hashes_only(db_path: Path, clock: FakeClock) -> None:
    async with opened(db_path, clock) as h:
        await _define(h)
        await _history(h)
        await h.engine.delete_profile(SPACE, user_id=USER, suppress=True)
        await h.engine.store.ack(SPACE, "email", "r", h.engine.store.last_sequence(SPACE, "email"))
        await h.engine.store.ack(SPACE, "crm", "r", h.engine.store.last_sequence(SPACE, "crm"))
        await h.engine.store.ack(SPACE, "ads", "r", h.engine.store.last_sequence(SPACE, "ads"))
        await h.engine.store.purge()
    assert _rows_naming(db_path, USER, ANON) == {}
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT id_hash FROM suppressions").fetchall()
    assert len(rows) == 2 and all(len(r[0]) == 64 for r in rows)


async def test_deletion_waits_for_what_was_received_and_ends_runs_held_by_a_timer(
    db_path: Path, clock: FakeClock
) -> None:
    async with opened(db_path, clock) as h:
        await _define(h)
        await h.journey(
            EntryStep("entry", "In", cond("event('Signed Up').count() >= 1"), False, "wait"),
            WaitDurationStep("wait", "A day", DAY, "send"),
            SendToDestinationsStep("send", "Send", ("email",)),
            journey_id="later",
            name="Later",
        )
        await h.track(USER, "Signed Up")
        key = (SPACE, f"u:{USER}")
        assert h.engine.runtime.wheel.due(key) == T0 + DAY
        # Received, not applied yet: applied before the deletion.
        await h.engine.ingest(
            SPACE, [{"type": "track", "userId": USER, "event": "Order Completed"}]
        )
        done = await h.engine.delete_profile(SPACE, user_id=USER)
        assert (done.deleted, done.runs_ended, done.memberships_removed) == (True, 3, 2)
        assert key not in h.engine.runtime.wheel
        assert h.stats("later").steps["wait"].waiting == 0
        assert h.stats("buyers").exited_runs == 1
        h.sink.take()
        await h.at(2 * DAY / MINUTE)
        assert h.sink.outputs == []
        _stats_consistent(h, "later")


async def test_a_historical_entry_under_way_does_not_enter_the_person_being_deleted() -> None:
    async with harness() as h:
        await h.track(USER, "Order Completed")
        await h.track(OTHER, "Order Completed")
        await h.journey(
            EntryStep("entry", "Bought", cond("event('Order Completed').count() >= 1"), True, "s"),
            SendToDestinationsStep("s", "Send", ("email",)),
            publish=False,
        )
        gate = asyncio.Event()
        h.engine.operations.pace = gate.wait  # the walk waits
        _, operation = await h.engine.publish_journey(SPACE, "j")
        assert operation is not None
        done = await h.engine.delete_profile(SPACE, user_id=USER)
        assert (done.deleted, done.runs_ended) == (True, 0)
        gate.set()
        finished = await h.engine.operations.wait(SPACE, operation.id)
        assert finished.profiles_entered == 1
        assert [(o.profile_key, o.change) for o in h.outputs()] == [(OTHER, Change.ENTERED)]


# Others are unaffected: a property against a run where the person never existed.

_EVENTS = st.lists(
    st.tuples(st.sampled_from([USER, OTHER, "third"]), st.sampled_from(["Signed Up", "Order"])),
    max_size=12,
)


async def _calls_of_others(events: list[tuple[str, str]], cut: int, *, person: bool) -> list[Any]:
    async with harness() as h:
        await h.journey(
            EntryStep("entry", "In", cond("event('Signed Up').count() >= 1"), False, "send"),
            SendToDestinationsStep("send", "Send", ("email", "ads"), next_step_id="wait"),
            WaitDurationStep("wait", "Hour", HOUR, "again"),
            SendToDestinationsStep("again", "Again", ("crm",)),
            journey_id="j",
        )
        for i, (user, event) in enumerate(events):
            if i == cut and person:
                await h.engine.delete_profile(SPACE, user_id=USER)
            if user != USER or (person and i < cut):  # (else the person does not exist)
                await h.track(user, "Order Completed" if event == "Order" else event)
            await h.at(i * 20 + 20)
        await h.at(len(events) * 20 + 2 * 60)
        return [
            (o.destination_id, o.profile_key, o.step_id, o.change, o.message_id, o.timestamp)
            for o in h.outputs()
            if o.profile_key != USER
        ]


@settings(max_examples=30)
@given(events=_EVENTS, cut=st.integers(min_value=0, max_value=12))
async def test_deleting_one_person_leaves_everyone_elses_calls_as_if_they_never_existed(
    events: list[tuple[str, str]], cut: int
) -> None:
    with_person = await _calls_of_others(events, cut, person=True)
    without = await _calls_of_others(events, cut, person=False)
    assert with_person == without


def test_profile_ids_are_the_runtimes() -> None:
    assert (profile_id(USER, None), profile_id(None, ANON)) == (f"u:{USER}", f"a:{ANON}")
