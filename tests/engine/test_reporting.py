"""Reporting (SPEC §8): timelines with their causes, profiles, users at a step, errors."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from journeys_engine import Engine, InvalidArgumentError, Move, NotFoundError
from journeys_engine.model import (
    Audience,
    Branch,
    Condition,
    Destination,
    DestinationKind,
    EntryStep,
    EventMode,
    Journey,
    JourneySettings,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)
from journeys_engine.runtime import Change, WaitKind, message_id
from journeys_engine.runtime.timeline import Cause, CauseKind, EntryKind, TimelineEntry
from journeys_engine.testing import FakeClock
from tests.helpers.harness import HOUR, MINUTE, T0, cond, harness

PING = "event('Ping').between(30 minutes, 1 hours).count() >= 1"


def _steps() -> tuple[Any, ...]:
    """entry -> wait 1h -> split(plan = pro) -> [true] branches(Ping window | Buy) -> sends."""
    return (
        EntryStep("entry", "Signed up", cond("event('Signup').count() >= 1"), False, "wait"),
        WaitDurationStep("wait", "Wait an hour", HOUR, "split"),
        TrueFalseSplitStep("split", "Pro?", cond("trait('plan') = 'pro'"), "fork", None),
        MultiBranchSplitStep(
            "fork",
            "Fork",
            (
                Branch("Pinged", cond(PING), "pinged"),
                Branch("Bought", cond("event('Buy').count() >= 1"), "bought"),
            ),
        ),
        SendToDestinationsStep("pinged", "Pinged", ("email",)),
        SendToDestinationsStep("bought", "Bought", ("email",)),
    )


_NAMED = ("step_name", "condition", "untaken_names")  # added from the journey when read


def _line(entry: TimelineEntry) -> tuple[Any, ...]:
    return (
        (entry.at - T0) // MINUTE,
        entry.run,
        entry.kind.value,
        entry.step_id,
        entry.cause.kind.value,
        entry.cause.event,
        {k: v for k, v in entry.detail.items() if k not in _NAMED},
    )


async def _timeline(engine: Engine, user: str, journey_id: str = "") -> list[TimelineEntry]:
    page = await engine.reporting.timeline(
        "default", user_id=user, journey_id=journey_id, page_size=1000
    )
    return list(page.items)


async def test_the_timeline_records_every_transition_with_its_instant_and_cause() -> None:
    async with harness() as h:
        await h.journey(*_steps(), settings=JourneySettings(exit_after_ms=3 * HOUR))
        await h.identify("u1", plan="pro")
        await h.track("u1", "Signup")
        await h.at(45)
        await h.track("u1", "Ping")  # in the between window from 75 to 105
        await h.at(90)
        await h.track("u1", "Buy")
        await h.at(4 * 60)
        timeline = await _timeline(h.engine, "u1")
    pinged = message_id("default", "j", "pinged", "u1", 1, Change.ENTERED, "email")
    bought = message_id("default", "j", "bought", "u1", 1, Change.ENTERED, "email")
    assert [_line(e) for e in timeline] == [
        (0, 1, "entered", None, "message", "Signup", {}),
        (0, 1, "arrived", "entry", "message", "Signup", {}),
        (0, 1, "arrived", "wait", "message", "Signup", {}),
        (0, 1, "waiting", "wait", "message", "Signup", {"until": T0 + HOUR}),
        (60, 1, "passed", "wait", "timer", None, {"reason": "duration"}),
        (60, 1, "arrived", "split", "timer", None, {}),
        (60, 1, "split", "split", "timer", None, {"branch": "true"}),
        (60, 1, "arrived", "fork", "timer", None, {}),
        # The ping at 45 enters the window at 75: that is the next re-check.
        (60, 1, "waiting", "fork", "timer", None, {"recheck_at": T0 + 75 * MINUTE, "branches": [0, 1]}),
        (75, 1, "branch_taken", "fork", "timer", None, {"branch": "Pinged", "index": 0}),
        (75, 1, "arrived", "pinged", "timer", None, {}),
        (75, 1, "sent", "pinged", "timer", None,
         {"destination_id": "email", "message_id": pinged, "change": "entered"}),
        # Still waiting for Bought: no re-check instant, only new data can help.
        (75, 1, "rechecked", "fork", "timer", None, {"recheck_at": None}),
        (90, 1, "branch_taken", "fork", "message", "Buy", {"branch": "Bought", "index": 1}),
        (90, 1, "arrived", "bought", "message", "Buy", {}),
        (90, 1, "sent", "bought", "message", "Buy",
         {"destination_id": "email", "message_id": bought, "change": "entered"}),
        (90, 1, "passed", "fork", "message", "Buy", {"reason": "branches"}),
        (180, 1, "exited", None, "timer", None, {"reason": "exit_after"}),
        (180, 1, "sent", "pinged", "timer", None, {
            "destination_id": "email",
            "message_id": message_id("default", "j", "pinged", "u1", 1, Change.EXITED, "email"),
            "change": "exited",
        }),
        (180, 1, "sent", "bought", "timer", None, {
            "destination_id": "email",
            "message_id": message_id("default", "j", "bought", "u1", 1, Change.EXITED, "email"),
            "change": "exited",
        }),
    ]  # fmt: skip
    names = {s.id: s.name for s in _steps()}
    assert all(e.detail.get("step_name") == names.get(e.step_id) for e in timeline if e.step_id)
    split = next(e for e in timeline if e.kind is EntryKind.SPLIT)
    assert split.detail["condition"] == "trait('plan') = 'pro'"
    waiting = [e.detail.get("untaken_names") for e in timeline if e.kind is EntryKind.WAITING]
    assert waiting == [None, ["Pinged", "Bought"]]
    message_causes = [e.cause for e in timeline if e.cause.kind is CauseKind.MESSAGE]
    assert {c.message_type for c in message_causes} == {"track"}
    assert all(c.message_id for c in message_causes)
    assert [e.sequence for e in timeline] == sorted({e.sequence for e in timeline})


async def test_a_stuck_user_is_explained_by_the_profile_and_the_timeline() -> None:
    async with harness() as h:
        wait = WaitConditionStep("hold", "Until bought", cond("event('Buy').count() >= 1"), "send")
        await h.journey(
            EntryStep("entry", "Signed up", cond("event('Signup').count() >= 1"), False, "hold"),
            wait,
            SendToDestinationsStep("send", "Send", ("email",)),
            settings=JourneySettings(exit_after_ms=7 * 24 * HOUR),
        )
        await h.identify("u1", plan="pro", age=30)
        await h.send({"type": "track", "userId": "u1", "anonymousId": "a1", "event": "Signup"})
        view = await h.engine.reporting.profile("default", user_id="u1")
        assert (view.profile_key, view.user_id, view.anonymous_id) == ("u1", "u1", "a1")
        assert view.traits == {"plan": "pro", "age": 30}
        (journey,) = view.journeys
        assert (journey.journey_id, journey.runs, journey.run, journey.entered_at) == (
            "j",
            1,
            1,
            T0,
        )
        assert journey.steps == ("entry", "hold")
        (held,) = journey.waits
        assert (held.step_id, held.kind, held.until, held.recheck_at) == (
            "hold", WaitKind.CONDITION, None, None
        )  # fmt: skip
        assert (held.step_name, held.condition) == ("Until bought", "event('Buy').count() >= 1")
        assert (journey.name, journey.step_names) == ("Journey", ("Signed up", "Until bought"))
        assert journey.next_check == T0 + 7 * 24 * HOUR  # only exit_after is ahead
        last = (await _timeline(h.engine, "u1"))[-1]
        assert (last.kind, last.step_id, last.detail) == (
            EntryKind.WAITING,
            "hold",
            {
                "recheck_at": None,
                "step_name": "Until bought",
                "condition": "event('Buy').count() >= 1",
            },
        )
        users = await h.engine.reporting.step_users("default", "j", "hold", waiting=True)
        assert [(m.profile_key, m.run, m.waiting) for m in users.items] == [("u1", 1, True)]
        # By the anonymous id linked to it, the same profile.
        by_anonymous = await h.engine.reporting.profile("default", anonymous_id="a1")
        assert (by_anonymous.profile_key, by_anonymous.linked_user_id) == ("u1", "u1")


async def test_causes_name_definition_changes_and_connected_destinations() -> None:
    async with harness() as h:
        await h.engine.definitions.create(
            "default", Audience("vip", "", "VIP", "", Condition("trait('vip') = true"))
        )
        journey = await h.journey(
            EntryStep("entry", "In", cond("event('Signup').count() >= 1"), False, "hold"),
            WaitConditionStep("hold", "Until VIP", cond("audience('vip')"), "send"),
            SendToDestinationsStep("send", "Send", ("email",)),
        )
        await h.identify("u1", vip=True, plan="x")
        await h.track("u1", "Signup")  # a VIP already: through to the send at once
        await h.identify("u2", plan="x")
        await h.track("u2", "Signup")  # not a VIP yet: held
        await h.engine.definitions.update(  # now a VIP: the change lets u2 through
            "default",
            Audience("vip", "", "VIP", "", Condition("trait('vip') = true OR trait('plan') = 'x'")),
        )
        connected = dataclasses.replace(
            journey,
            steps=tuple(
                dataclasses.replace(s, destination_ids=("email", "crm"))
                if isinstance(s, SendToDestinationsStep) else s
                for s in journey.steps
            ),
        )  # fmt: skip
        await h.engine.journeys.update("default", connected)
        u1 = await _timeline(h.engine, "u1")
        u2 = await _timeline(h.engine, "u2")
    assert (u1[-1].kind, u1[-1].detail["destination_id"], u1[-1].cause.kind) == (
        EntryKind.SENT, "crm", CauseKind.JOURNEY
    )  # fmt: skip
    passed = next(e for e in u2 if e.kind is EntryKind.PASSED)
    assert (passed.step_id, passed.cause) == ("hold", Cause(CauseKind.DEFINITIONS))


async def test_counts_rosters_and_timelines_survive_a_restart_in_joining_order(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    path = tmp_path / "journeys.db"
    steps = (
        EntryStep("entry", "In", cond("event('Signup').count() >= 1"), False, "hold"),
        WaitConditionStep("hold", "Until go", cond("event('Go').count() >= 1"), "send"),
        SendToDestinationsStep("send", "Send", ("email",)),
    )

    async def track(engine: Engine, minute: int, user: str, event: str) -> None:
        clock.set(T0 + minute * MINUTE)
        await engine.ingest("default", [{"type": "track", "userId": user, "event": event}])
        await engine.settle()

    async def keys(engine: Engine, step_id: str, *, waiting: bool = False) -> list[str]:
        page = await engine.reporting.step_users("default", "j", step_id, waiting=waiting)
        return [m.profile_key for m in page.items]

    async with await Engine.open(path, clock=clock) as engine:
        await engine.definitions.create(
            "default", Destination("email", "", "Email", DestinationKind.EVENT, EventMode.TRACK)
        )
        await engine.journeys.create("default", Journey("j", "", "J", steps=steps))
        await engine.journeys.move("default", "j", Move.PUBLISH)
        for minute, user in enumerate(("zed", "amy", "kim")):  # ids out of alphabetical order
            await track(engine, minute, user, "Signup")
        await track(engine, 3, "kim", "Go")  # the send step is joined in another order
        await track(engine, 4, "amy", "Go")
        before = await engine.reporting.journey("default", "j")
        timeline = await _timeline(engine, "amy")
    async with await Engine.open(path, clock=clock) as engine:
        assert await engine.reporting.journey("default", "j") == before
        assert await _timeline(engine, "amy") == timeline
        assert await keys(engine, "entry") == ["zed", "amy", "kim"]
        assert await keys(engine, "send") == ["kim", "amy"]
        assert await keys(engine, "hold", waiting=True) == ["zed"]
        await track(engine, 5, "zed", "Go")
        assert await keys(engine, "send") == ["kim", "amy", "zed"]
        assert await keys(engine, "hold", waiting=True) == []


async def test_deleting_a_journey_takes_its_timeline_and_counts_with_it() -> None:
    async with harness() as h:
        await h.journey(
            EntryStep("entry", "In", cond("event('Signup').count() >= 1"), False, "send"),
            SendToDestinationsStep("send", "Send", ("email",)),
        )
        await h.journey(
            EntryStep("entry", "In", cond("event('Signup').count() >= 1"), False, "send"),
            SendToDestinationsStep("send", "Send", ("email",)),
            journey_id="k",
        )
        await h.track("u1", "Signup")
        await h.engine.journeys.delete("default", "j")
        assert {e.journey_id for e in await _timeline(h.engine, "u1")} == {"k"}
        with pytest.raises(NotFoundError):
            await h.engine.reporting.journey("default", "j")
        with pytest.raises(NotFoundError):
            await _timeline(h.engine, "u1", journey_id="j")
        assert len(await _timeline(h.engine, "u1", journey_id="k")) == 4


async def test_what_a_crash_left_of_a_deleted_journey_is_dropped_at_start(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    path = tmp_path / "journeys.db"
    steps = (
        EntryStep("entry", "In", cond("event('Signup').count() >= 1"), False, "send"),
        SendToDestinationsStep("send", "Send", ("email",)),
    )
    async with await Engine.open(path, clock=clock) as engine:
        await engine.definitions.create(
            "default", Destination("email", "", "Email", DestinationKind.EVENT, EventMode.TRACK)
        )
        for journey_id in ("j", "k"):
            await engine.journeys.create(
                "default", Journey(journey_id, "", journey_id, steps=steps)
            )
            await engine.journeys.move("default", journey_id, Move.PUBLISH)
        await engine.ingest("default", [{"type": "track", "userId": "u1", "event": "Signup"}])
        await engine.settle()
    # The catalog's delete committed, then the process died before the runtime heard of it.
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM journeys WHERE id = 'j'")
    async with await Engine.open(path, clock=clock) as engine:
        assert {e.journey_id for e in await _timeline(engine, "u1")} == {"k"}
        view = await engine.reporting.profile("default", user_id="u1")
        assert [j.journey_id for j in view.journeys] == ["k"]
        assert not await engine.store.members(
            "default", "j", "entry", waiting=False, offset=0, limit=10
        )
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM timeline WHERE journey_id = 'j'").fetchone() == (0,)
        assert db.execute("SELECT journey_id FROM journey_stats").fetchall() == [("k",)]
        (data,) = db.execute("SELECT data FROM actors WHERE actor_id = 'u:u1'").fetchone()
        assert list(json.loads(data)["journeys"]) == ["k"]


async def test_pages_follow_one_another_without_gaps_or_repeats() -> None:
    async with harness() as h:
        await h.journey(
            EntryStep("entry", "In", cond("event('Signup').count() >= 1"), False, "send"),
            SendToDestinationsStep("send", "Send", ("email",)),
        )
        for i in range(7):
            await h.track(f"u{i}", "Signup")
        await h.track("u0", "Signup")
        reporting = h.engine.reporting
        names, token = [], ""
        while True:
            page = await reporting.step_users("default", "j", "send", page_size=3, page_token=token)
            names += [m.profile_key for m in page.items]
            token = page.next_page_token
            if not token:
                break
        assert names == [f"u{i}" for i in range(7)]
        first = await reporting.timeline("default", user_id="u0", page_size=2)
        rest = await reporting.timeline("default", user_id="u0", page_token=first.next_page_token)
        whole = await reporting.timeline("default", user_id="u0")
        assert first.items + rest.items == whole.items and len(whole.items) == 4


async def test_a_draft_reports_zero_counts_for_every_step_in_tree_order() -> None:
    async with harness() as h:
        await h.journey(*_steps(), publish=False)
        report = await h.engine.reporting.journey("default", "j")
        assert [s.step_id for s in report.steps] == [
            "entry",
            "wait",
            "split",
            "fork",
            "pinged",
            "bought",
        ]
        assert {(s.members, s.joined_runs) for s in report.steps} == {(0, 0)}
        assert [s.branches for s in report.steps if s.branches] == [(0, 0), (0, 0)]


@pytest.mark.parametrize(
    ("call", "error", "field"),
    [
        (lambda r: r.profile("default"), InvalidArgumentError, "user_id"),
        (
            lambda r: r.profile("default", user_id="u1", anonymous_id="a1"),
            InvalidArgumentError,
            "anonymous_id",
        ),
        (lambda r: r.profile("default", user_id="nobody"), NotFoundError, None),
        (lambda r: r.profile("elsewhere", user_id="u1"), NotFoundError, None),
        (
            lambda r: r.timeline("default", user_id="u1", page_size=-1),
            InvalidArgumentError,
            "page_size",
        ),
        (
            lambda r: r.timeline("default", user_id="u1", page_token="nope"),
            InvalidArgumentError,
            "page_token",
        ),
        (lambda r: r.timeline("default", user_id="u1", journey_id="none"), NotFoundError, None),
        (lambda r: r.step_users("default", "j", "nothing"), NotFoundError, None),
        (
            lambda r: r.step_users("default", "j", "entry", send_only=True),
            InvalidArgumentError,
            "step_id",
        ),
        (lambda r: r.step_users("default", "none", "entry"), NotFoundError, None),
        (lambda r: r.step_users("default", "j", ""), InvalidArgumentError, "step_id"),
        (
            lambda r: r.step_users("default", "j", "pinged", waiting=True),
            InvalidArgumentError,
            "waiting_only",
        ),
        (
            lambda r: r.step_users("default", "j", "entry", page_token="x"),
            InvalidArgumentError,
            "page_token",
        ),
        (lambda r: r.profile("default", anonymous_id="nobody"), NotFoundError, None),
        (lambda r: r.journey("default", "none"), NotFoundError, None),
    ],
)
async def test_bad_requests_get_clear_errors(
    call: Any, error: type[Exception], field: str | None
) -> None:
    async with harness() as h:
        await h.journey(*_steps())
        await h.track("u1", "Signup")
        with pytest.raises(error) as caught:
            await call(h.engine.reporting)
        if field is not None:
            assert isinstance(caught.value, InvalidArgumentError)
            assert field in [v.field for v in caught.value.violations]


async def test_the_profile_says_why_a_user_is_not_in_a_run() -> None:
    async with harness() as h:
        await h.journey(
            EntryStep("entry", "In", cond("event('Signup').count() >= 1"), False, "send"),
            SendToDestinationsStep("send", "Send", ("email",)),
            settings=JourneySettings(exit_after_ms=HOUR, reentry_after_ms=24 * HOUR),
        )
        await h.track("u1", "Signup")
        await h.track("u2", "Noise")
        await h.move("j", Move.PAUSE)
        await h.track("u3", "Signup")  # holds while paused: blocked after the resume
        await h.move("j", Move.RESUME)
        await h.at(90)

        async def standing(user: str) -> tuple[object, ...]:
            (journey,) = (await h.engine.reporting.profile("default", user_id=user)).journeys
            return (journey.runs, journey.run, journey.entry_blocked, journey.reentry_at)

        assert await standing("u1") == (1, None, False, T0 + HOUR + 24 * HOUR)
        assert await standing("u2") == (0, None, False, None)
        assert await standing("u3") == (0, None, True, None)
        await h.at(25 * 60 + 30)  # re-entered when allowed, at 25h: in its second run
        assert await standing("u1") == (2, 2, False, None)
