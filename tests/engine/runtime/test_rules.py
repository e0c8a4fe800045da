"""Every rule of SPEC §5 and §6, each pinned by a test that fails without it."""

from __future__ import annotations

import pytest

from journeys_engine import Move
from journeys_engine.model import (
    Branch,
    EntryStep,
    JourneySettings,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)
from tests.helpers.harness import DAY, HOUR, MINUTE, T0, cond, harness, only

BOUGHT = "event('Buy').count() >= 1"


def entry(text: str = "event('Signup').count() >= 1", nxt: str = "send") -> EntryStep:
    return EntryStep("entry", "Entry", cond(text), False, nxt)


def send(
    step_id: str = "send", *destinations: str, nxt: str | None = None
) -> SendToDestinationsStep:
    return SendToDestinationsStep(step_id, step_id, destinations or ("email",), "", nxt)


# 5.1 Entry


async def test_nobody_is_evaluated_at_publish() -> None:
    async with harness() as h:
        await h.journey(entry("trait('plan') = 'pro'"), send(), publish=False)
        await h.identify("u1", plan="pro")  # matches before publish
        await h.move("j", Move.PUBLISH)
        await h.at(10)
        assert h.seen() == []
        await h.track("u1", "Noise")  # the next message is the first evaluation
        assert h.seen() == [("email", "u1", "send", "entered", 10)]


async def test_entry_sees_only_events_since_publish() -> None:
    async with harness() as h:
        await h.journey(entry(), send())
        await h.track("u1", "Signup", at_minutes=-5)  # timestamped before publish
        assert h.seen() == []
        await h.track("u1", "Signup", at_minutes=0)
        assert h.seen() == [("email", "u1", "send", "entered", 0)]


async def test_entry_is_evaluated_at_its_recheck_time_without_new_data() -> None:
    async with harness() as h:
        await h.journey(entry("event('Signup').between(1 hours, 2 hours).count() >= 1"), send())
        await h.track("u1", "Signup")
        assert h.seen() == []
        await h.at(3 * 60)
        assert h.seen() == [("email", "u1", "send", "entered", 60)]


async def test_a_zero_count_entry_lets_in_anyone_who_sends_anything() -> None:
    async with harness() as h:
        await h.journey(entry("event('Buy').within(7 days).count() = 0"), send())
        await h.at(5)
        await h.track("u1", "Noise")
        await h.track("u2", "Buy")
        assert h.seen() == [("email", "u1", "send", "entered", 5)]


async def test_while_the_exit_condition_holds_nobody_enters() -> None:
    async with harness() as h:
        settings = JourneySettings(exit_condition=cond("trait('optout') = true"))
        await h.journey(entry(), send(), settings=settings)
        await h.identify("u1", optout=True)
        await h.track("u1", "Signup")
        assert h.seen() == []
        await h.identify("u1", optout=False)
        assert h.seen() == [("email", "u1", "send", "entered", 0)]


# 5.2 Later steps


async def test_later_steps_see_events_since_publish_even_before_arrival() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="split"),
            TrueFalseSplitStep("split", "Bought", cond(BOUGHT), "yes", "no"),
            send("yes"),
            send("no", "crm"),
        )
        await h.track("u1", "Buy", at_minutes=-1)  # before publish: never seen
        await h.track("u1", "Buy")  # after publish, before the user enters: seen
        await h.track("u1", "Signup")
        assert h.seen() == [("email", "u1", "yes", "entered", 0)]


# 5.3 Steps


async def test_wait_duration_arrives_exactly_d_later_on_a_week_long_journey() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="week"),
            WaitDurationStep("week", "A week", 7 * DAY, "send"),
            send(),
        )
        await h.at(3)
        await h.track("u1", "Signup")
        await h.at(7 * 24 * 60 + 2)
        assert h.seen() == []
        await h.at(30 * 24 * 60)  # one clock move across the due instant
        assert h.seen() == [("email", "u1", "send", "entered", 7 * 24 * 60 + 3)]


async def test_wait_condition_passes_on_arrival_on_new_data_and_on_recheck() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="wait"),
            WaitConditionStep(
                "wait",
                "Wait",
                cond("event('Ping').between(30 minutes, 1 hours).count() >= 1"),
                "send",
            ),
            send(),
        )
        await h.track("u1", "Ping")  # before entering: seen later by the wait
        await h.track("u1", "Signup")
        assert h.seen() == []
        await h.at(45)  # recheck: the ping entered the between window at minute 30
        assert h.seen() == [("email", "u1", "send", "entered", 30)]
        assert h.stats().steps["wait"].waiting == 0


async def test_wait_condition_has_no_timeout_of_its_own() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="wait"), WaitConditionStep("wait", "W", cond(BOUGHT), "send"), send()
        )
        await h.track("u1", "Signup")
        await h.at(365 * 24 * 60)
        assert h.seen() == []
        assert h.stats().steps["wait"].waiting == 1
        await h.track("u1", "Buy")
        assert h.seen() == [("email", "u1", "send", "entered", 365 * 24 * 60)]


async def test_a_true_false_split_is_decided_once_at_arrival() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="split"),
            TrueFalseSplitStep("split", "Bought", cond(BOUGHT), "yes", "no"),
            send("yes"),
            send("no"),
        )
        await h.track("u1", "Signup")
        await h.track("u1", "Buy")  # too late: the user went down the false side for good
        await h.at(60)
        assert h.seen() == [("email", "u1", "no", "entered", 0)]


async def test_a_split_side_may_be_absent() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="split"),
            TrueFalseSplitStep("split", "S", cond(BOUGHT), "yes", None),
            send("yes"),
        )
        await h.track("u1", "Signup")
        assert h.seen() == []
        assert h.stats().in_progress == 1


async def test_multi_branch_takes_every_branch_that_holds_now_or_later_once() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="split"),
            MultiBranchSplitStep(
                "split",
                "Split",
                (
                    Branch("pro", cond("trait('plan') = 'pro'"), "b1"),
                    Branch("buyer", cond(BOUGHT), "b2"),
                    Branch("never", cond("trait('plan') = 'enterprise'"), "b3"),
                ),
            ),
            send("b1"),
            send("b2"),
            send("b3"),
        )
        await h.identify("u1", plan="pro")
        await h.track("u1", "Signup")
        assert h.seen() == [("email", "u1", "b1", "entered", 0)]
        assert h.stats().steps["split"].waiting == 1
        await h.at(10)
        await h.track("u1", "Buy")  # a late branch is taken when it comes true
        await h.identify("u1", plan="free")  # a taken branch stays taken; nothing is sent
        await h.track("u1", "Buy")  # ... and is never taken twice
        assert h.seen() == [
            ("email", "u1", "b1", "entered", 0),
            ("email", "u1", "b2", "entered", 10),
        ]
        assert h.stats().steps["split"].waiting == 1  # "never" keeps waiting


async def test_multi_branch_branches_are_not_exclusive_and_cascade_in_order() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="split"),
            MultiBranchSplitStep(
                "split",
                "Split",
                (
                    Branch("one", cond("literal(1) = 1"), "b1"),
                    Branch("two", cond("literal(1) = 1"), "b2"),
                ),
            ),
            send("b1", "email", nxt="b1-next"),
            send("b1-next", "email"),
            send("b2", "email"),
        )
        await h.track("u1", "Signup")
        assert [s[2] for s in h.seen()] == ["b1", "b1-next", "b2"]  # depth-first
        assert h.stats().steps["split"].waiting == 0


async def test_send_makes_a_member_and_moves_on_at_once() -> None:
    async with harness() as h:
        await h.journey(
            entry(), send("send", "email", "crm", "ads", nxt="after"), send("after", "email")
        )
        await h.track("u1", "Signup")
        assert h.seen() == [
            ("email", "u1", "send", "entered", 0),
            ("crm", "u1", "send", "entered", 0),
            ("ads", "u1", "send", "entered", 0),
            ("email", "u1", "after", "entered", 0),
        ]
        assert await h.members("send") == {"u:u1": 1}


# 5.4 Order at one instant


async def test_timers_due_at_an_instant_fire_before_messages_received_then() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="wait"),
            WaitDurationStep("wait", "W", 10 * MINUTE, "split"),
            TrueFalseSplitStep("split", "Bought", cond(BOUGHT), "yes", "no"),
            send("yes"),
            send("no"),
        )
        await h.track("u1", "Signup")
        h.clock.set(T0 + 10 * MINUTE)  # the wait is due now, not fired yet
        await h.track("u1", "Buy")  # received at the same instant: applied after the timer
        assert h.seen() == [("email", "u1", "no", "entered", 10)]


async def test_journeys_are_processed_in_creation_order() -> None:
    async with harness() as h:
        # Names sort against creation order, and publishing goes the other way too.
        await h.journey(entry(), send("send"), journey_id="z-created-first", publish=False)
        await h.journey(entry(), send("send"), journey_id="a-created-later")
        await h.move("z-created-first", Move.PUBLISH)
        await h.track("u1", "Signup")
        assert [o.journey_id for o in h.outputs()] == ["z-created-first", "a-created-later"]


async def test_traits_then_audiences_then_journeys() -> None:
    from journeys_engine.model import Audience, ComputedTrait

    async with harness() as h:
        await h.engine.definitions.create(
            "default", Audience("buyers", "", "Buyers", "", cond("event('Buy').count() >= 1"))
        )
        await h.engine.definitions.create(
            "default",
            ComputedTrait("spent", "", "Spent", "", cond("event('Pay').sum(property('n'))")),
        )
        await h.journey(entry("audience('buyers')"), send(), journey_id="j")
        await h.journey(entry("computed_trait('spent') > 10"), send("send", "crm"), journey_id="k")
        await h.track("u1", "Noise")  # both journeys have looked at u1
        assert h.seen() == []
        # Neither event is named by a journey: only the refreshed audience and
        # computed trait, worked out before the journeys, make them look again.
        await h.track("u1", "Buy")
        await h.track("u1", "Pay", properties={"n": 11})
        assert h.seen() == [
            ("email", "u1", "send", "entered", 0),
            ("crm", "u1", "send", "entered", 0),
        ]


async def test_exit_is_checked_before_any_transition_and_exits_in_entry_order() -> None:
    async with harness() as h:
        settings = JourneySettings(exit_after_ms=10 * MINUTE)
        await h.journey(
            entry(nxt="first"),
            send("first", "email", nxt="second"),
            send("second", "ads", nxt="wait"),
            WaitDurationStep("wait", "W", 10 * MINUTE, "third"),
            send("third"),
            settings=settings,
        )
        await h.track("u1", "Signup")
        await h.at(60)
        assert h.seen() == [
            ("email", "u1", "first", "entered", 0),
            ("ads", "u1", "second", "entered", 0),
            ("email", "u1", "first", "exited", 10),
            ("ads", "u1", "second", "exited", 10),
        ]  # the wait ended at the same instant, but the exit came first


# 5.5 Runs end


async def test_exit_condition_ends_a_run_mid_wait() -> None:
    async with harness() as h:
        settings = JourneySettings(exit_condition=cond(BOUGHT))
        await h.journey(
            entry(nxt="send"),
            send(nxt="wait"),
            WaitDurationStep("wait", "W", DAY, "later"),
            send("later"),
            settings=settings,
        )
        await h.track("u1", "Signup")
        await h.at(30)
        await h.track("u1", "Buy")
        await h.at(3 * 24 * 60)
        assert h.seen() == [
            ("email", "u1", "send", "entered", 0),
            ("email", "u1", "send", "exited", 30),
        ]
        assert (h.stats().in_progress, h.stats().exited_runs) == (0, 1)
        assert h.stats().steps["wait"].waiting == 0


async def test_without_exit_settings_a_run_never_ends() -> None:
    async with harness() as h:
        await h.journey(entry(), send())
        await h.track("u1", "Signup")
        await h.at(400 * 24 * 60)
        assert only(h.seen(), "exited") == []
        assert h.stats().in_progress == 1


# 5.6 Re-entry


async def test_without_reentry_after_a_user_enters_at_most_once() -> None:
    async with harness() as h:
        await h.journey(entry(), send(), settings=JourneySettings(exit_after_ms=HOUR))
        await h.track("u1", "Signup")
        await h.at(24 * 60)
        await h.track("u1", "Signup")
        assert h.seen() == [
            ("email", "u1", "send", "entered", 0),
            ("email", "u1", "send", "exited", 60),
        ]


async def test_reentry_after_starts_a_new_run_with_a_new_message_id() -> None:
    async with harness() as h:
        settings = JourneySettings(exit_after_ms=HOUR, reentry_after_ms=2 * HOUR)
        await h.journey(
            entry("event('Signup').within(7 days).count() >= 1"), send(), settings=settings
        )
        await h.track("u1", "Signup")
        await h.at(24 * 60 - 1)
        outputs = h.outputs()
        # Each run lasts an hour; two hours after each exit the condition still holds,
        # so the next run starts at once: runs enter at minutes 0, 180, 360, ...
        expected = []
        for run in range(1, 9):
            expected += [("entered", run, 180 * (run - 1)), ("exited", run, 180 * (run - 1) + 60)]
        assert [(o.change.value, o.run, (o.timestamp - T0) // MINUTE) for o in outputs] == expected
        assert len({o.message_id for o in outputs}) == len(outputs)
        assert (h.stats().entered_users, h.stats().entered_runs) == (1, 8)


# 5.7 Lateness


async def test_a_late_message_counts_by_its_timestamp_but_undoes_nothing() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="split"),
            TrueFalseSplitStep(
                "split",
                "Two buys in the last hour",
                cond("event('Buy').within(1 hours).count() >= 2"),
                "yes",
                "no",
            ),
            send("yes"),
            send("no"),
        )
        await h.journey(
            entry("event('Buy').within(1 hours).count() >= 2"), send("send"), journey_id="k"
        )
        await h.at(100)
        await h.track("u1", "Buy")
        await h.track("u1", "Signup")
        assert h.seen() == [("email", "u1", "no", "entered", 100)]
        await h.track("u1", "Buy", at_minutes=90)  # late, but inside the window: counts now
        assert h.seen() == [
            ("email", "u1", "no", "entered", 100),  # the decision stands
            ("email", "u1", "send", "entered", 100),  # two buys in the last hour
        ]


# 5.8 and SPEC §7: outputs


async def test_output_payloads_for_each_destination_kind() -> None:
    async with harness() as h:
        saved = await h.journey(
            entry(),
            send("send", "email", "crm", "ads"),
            settings=JourneySettings(exit_after_ms=HOUR),
        )
        key = saved.send_steps()[0].key
        await h.send({"type": "track", "userId": "u1", "anonymousId": "anon-1", "event": "Signup"})
        await h.at(60)
        from journeys_engine.runtime import Change, message_id

        entered = message_id("default", "j", "send", "u1", 1, Change.ENTERED, "email")
        assert h.sink.for_destination("email")[0].payload == (
            '{"type":"track","event":"Audience Entered","userId":"u1","anonymousId":"anon-1",'
            f'"messageId":"{entered}","timestamp":"2026-03-02T09:00:00.000Z",'
            f'"properties":{{"{key}":"true"}},'
            '"context":{"personas":{"computation_class":"journey_step","computation_id":"send",'
            f'"computation_key":"{key}","space_id":"default","namespace":"spa_default"}}}},'
            '"integrations":{"All":false,"Email":true}}'
        )
        exited = h.payloads("email")[1]
        assert (exited["event"], exited["properties"], exited["timestamp"]) == (
            "Audience Exited",
            {key: "false"},
            "2026-03-02T10:00:00.000Z",
        )
        identify = h.payloads("crm")
        assert list(identify[0]) == [
            "type",
            "userId",
            "anonymousId",
            "messageId",
            "timestamp",
            "traits",
            "context",
            "integrations",
        ]
        assert identify[0]["traits"] == {key: "true"} and identify[1]["traits"] == {key: "false"}
        assert identify[0]["integrations"] == {"All": False, "CRM": True}
        listing = h.payloads("ads")
        assert listing[0] == {
            "messageId": message_id("default", "j", "send", "u1", 1, Change.ENTERED, "ads"),
            "key": key,
            "stepId": "send",
            "userId": "u1",
            "anonymousId": "anon-1",
            "change": "added",
            "run": 1,
            "timestamp": "2026-03-02T09:00:00.000Z",
        }
        assert listing[1]["change"] == "removed"


def test_message_ids_follow_the_spec_formula() -> None:
    import hashlib

    from journeys_engine.runtime import Change, message_id

    expected = (
        "jm_" + hashlib.sha256(b'["default","j","send","u1",2,"exited","email"]').hexdigest()[:32]
    )
    assert message_id("default", "j", "send", "u1", 2, Change.EXITED, "email") == expected


async def test_an_anonymous_profile_and_alias_routing() -> None:
    async with harness() as h:
        await h.journey(entry("event('Signup').count() >= 2"), send())
        await h.send({"type": "track", "anonymousId": "a1", "event": "Signup"})
        await h.send({"type": "identify", "userId": "u1", "anonymousId": "a1"})  # links a1 -> u1
        await h.send({"type": "track", "anonymousId": "a1", "event": "Signup"})  # routed to u1
        assert h.seen() == []  # nothing is merged: u1 has one signup, a1's profile one
        await h.send({"type": "track", "anonymousId": "a1", "event": "Signup"})
        (payload,) = h.payloads("email")
        assert (payload["userId"], payload["anonymousId"]) == ("u1", "a1")
        await h.send({"type": "alias", "previousId": "a9", "userId": "u9"})
        await h.send({"type": "track", "anonymousId": "a9", "event": "Signup"})
        await h.send({"type": "track", "anonymousId": "a9", "event": "Signup"})
        assert [s[1] for s in h.seen()] == ["u1", "u9"]


# §6 Lifecycle


async def test_a_paused_journey_admits_nobody_but_runs_go_on() -> None:
    async with harness() as h:
        await h.journey(entry(nxt="wait"), WaitDurationStep("wait", "W", HOUR, "send"), send())
        await h.track("u1", "Signup")
        await h.move("j", Move.PAUSE)
        await h.track("u2", "Signup")
        await h.at(120)
        assert h.seen() == [("email", "u1", "send", "entered", 60)]


async def test_resume_admits_only_at_the_next_false_to_true_change() -> None:
    async with harness() as h:
        await h.journey(entry("trait('plan') = 'pro'"), send())
        await h.move("j", Move.PAUSE)
        await h.identify("u1", plan="pro")  # became true while paused
        await h.move("j", Move.RESUME)
        await h.identify("u2", plan="pro")  # became true after resume
        await h.identify("u1", plan="pro")  # still true: not a change
        assert h.seen() == [("email", "u2", "send", "entered", 0)]
        await h.at(5)
        await h.identify("u1", plan="free")
        await h.identify("u1", plan="pro")
        assert h.seen()[-1] == ("email", "u1", "send", "entered", 5)


async def test_resume_waits_for_a_change_even_when_the_exit_condition_held_meanwhile() -> None:
    async with harness() as h:
        await h.journey(
            entry("trait('plan') = 'pro'"),
            send(),
            settings=JourneySettings(exit_condition=cond("trait('optout') = true")),
        )
        await h.identify("u1", optout=True)
        await h.move("j", Move.PAUSE)
        await h.identify("u1", plan="pro")  # entry became true while paused
        await h.move("j", Move.RESUME)
        await h.at(5)
        await h.identify("u1", optout=False)  # entry still true: no false -> true change
        assert h.seen() == []
        await h.identify("u1", plan="free")
        await h.identify("u1", plan="pro")
        assert h.seen() == [("email", "u1", "send", "entered", 5)]


async def test_archive_ends_runs_and_sends_nothing() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="send"),
            send(nxt="wait"),
            WaitDurationStep("wait", "W", HOUR, "later"),
            send("later"),
            settings=JourneySettings(exit_after_ms=2 * HOUR),
        )
        await h.track("u1", "Signup")
        await h.move("j", Move.ARCHIVE)
        await h.at(5 * 60)
        await h.track("u2", "Signup")
        assert h.seen() == [("email", "u1", "send", "entered", 0)]
        stats = h.stats()  # the run ended at the archive (SPEC §5.5): not in progress
        assert (stats.in_progress, stats.exited_runs, stats.steps["send"].members) == (0, 1, 0)
        assert not await h.members("send")


async def test_delete_ends_runs_and_sends_nothing() -> None:
    async with harness() as h:
        await h.journey(entry(), send(), settings=JourneySettings(exit_after_ms=HOUR))
        await h.track("u1", "Signup")
        await h.engine.journeys.delete("default", "j")
        await h.at(3 * 60)
        assert h.seen() == [("email", "u1", "send", "entered", 0)]
        assert "j" not in h.engine.runtime.space("default").stats


async def test_connecting_a_destination_sends_entered_for_current_members() -> None:
    import dataclasses

    async with harness() as h:
        live = await h.journey(
            entry(), send("send", "email"), settings=JourneySettings(exit_after_ms=DAY)
        )
        await h.track("u1", "Signup")
        await h.track("u2", "Signup")
        await h.at(30)
        step = live.send_steps()[0]
        connected = dataclasses.replace(
            live, steps=(live.steps[0], dataclasses.replace(step, destination_ids=("email", "crm")))
        )
        await h.engine.journeys.update("default", connected)
        assert only([s for s in h.seen() if s[0] == "crm"], "entered") == [
            ("crm", "u1", "send", "entered", 30),
            ("crm", "u2", "send", "entered", 30),
        ]
        crm = h.sink.for_destination("crm")
        from journeys_engine.runtime import Change, message_id

        assert crm[0].message_id == message_id(
            "default", "j", "send", "u1", 1, Change.ENTERED, "crm"
        )
        disconnected = dataclasses.replace(
            live, steps=(live.steps[0], dataclasses.replace(step, destination_ids=("crm",)))
        )
        await h.engine.journeys.update("default", disconnected)
        await h.at(25 * 60)
        assert [s for s in h.seen() if s[3] == "exited"] == [
            ("crm", "u1", "send", "exited", 24 * 60),
            ("crm", "u2", "send", "exited", 24 * 60),
        ]  # email was disconnected: nothing more for it


async def test_step_counts() -> None:
    async with harness() as h:
        await h.journey(
            entry(nxt="wait"),
            WaitDurationStep("wait", "W", HOUR, "send"),
            send(),
            settings=JourneySettings(exit_after_ms=2 * HOUR, reentry_after_ms=HOUR),
            name="Counted",
        )
        await h.track("u1", "Signup")
        await h.track("u2", "Signup")
        stats = h.stats()
        assert (stats.entered_users, stats.entered_runs, stats.in_progress) == (2, 2, 2)
        assert stats.steps["wait"].waiting == 2
        await h.at(60)
        assert stats.steps["wait"].waiting == 0
        assert stats.steps["send"].members == 2
        await h.at(120)
        assert (stats.in_progress, stats.exited_runs) == (0, 2)
        assert stats.steps["send"].members == 0
        await h.at(180)  # both may come back an hour after their exit, and still qualify
        assert (stats.entered_users, stats.entered_runs, stats.in_progress) == (2, 4, 2)
        assert (stats.steps["entry"].joined_runs, stats.steps["entry"].joined_users) == (4, 2)
        assert stats.steps["entry"].members == 2


@pytest.mark.parametrize("unused", [None])
async def test_week_long_journeys_run_in_milliseconds(unused: None) -> None:
    import time

    started = time.perf_counter()
    async with harness() as h:
        await h.journey(
            entry(nxt="w1"),
            WaitDurationStep("w1", "W1", 3 * DAY, "w2"),
            WaitDurationStep("w2", "W2", 4 * DAY, "send"),
            send(),
        )
        for i in range(20):
            await h.track(f"u{i}", "Signup")
        await h.at(8 * 24 * 60)
        assert len(h.seen()) == 20
    assert time.perf_counter() - started < 5  # a week of business time, no sleeping
