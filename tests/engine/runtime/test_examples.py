"""The five example journeys, in process: scripted events and clock moves, exact outputs."""

from __future__ import annotations

import json

from journeys_engine import Move
from journeys_engine.runtime import Change, message_id
from tests.helpers.examples import load_example
from tests.helpers.harness import Harness, harness


async def _publish(h: Harness, name: str) -> dict[str, str]:
    """Loads and publishes an example; returns its send steps' keys."""
    await load_example(h.engine, name)
    journey = await h.move(name, Move.PUBLISH)
    return {s.id: s.key for s in journey.send_steps()}


def _check_payloads(h: Harness, journey_id: str, keys: dict[str, str]) -> None:
    """Every output is exactly what SPEC §7 says, from its own fields."""
    names = {"email": "Email", "sms": "SMS", "support": "Support", "in-app": "In-App"}
    for output in h.outputs():
        payload = json.loads(output.payload)
        assert output.message_id == message_id(
            "default", journey_id, output.step_id, output.profile_key, output.run,
            output.change, output.destination_id,
        )  # fmt: skip
        assert payload["messageId"] == output.message_id
        key = keys[output.step_id]
        entered = output.change is Change.ENTERED
        if output.destination_id == "advertising":
            assert payload["change"] == ("added" if entered else "removed")
            assert (payload["key"], payload["stepId"], payload["run"]) == (
                key,
                output.step_id,
                output.run,
            )
            continue
        flag = {key: "true" if entered else "false"}
        assert payload["integrations"] == {"All": False, names[output.destination_id]: True}
        assert payload["context"]["personas"]["computation_key"] == key
        if payload["type"] == "track":
            assert payload["properties"] == flag
            assert payload["event"] == ("Audience Entered" if entered else "Audience Exited")
        else:
            assert payload["traits"] == flag


async def test_cart_abandonment() -> None:
    async with harness(destinations=False) as h:
        keys = await _publish(h, "cart-abandonment")
        await h.identify("u1", preferred_channel="email")
        await h.track("u1", "Product Added")
        await h.identify("u2", preferred_channel="sms")
        await h.track("u2", "Product Added")
        await h.send(
            {
                "type": "identify",
                "userId": "u3",
                "traits": {"preferred_channel": "sms", "Customer Lifetime Value": 150},
            },
            {"type": "track", "userId": "u3", "event": "Product Added"},
        )
        await h.at(30)
        await h.track("u2", "Order Completed", properties={"revenue": 20})  # exits before any send
        await h.at(8 * 24 * 60)
        assert h.seen() == [
            ("email", "u1", "email-reminder", "entered", 60),
            ("sms", "u3", "sms-reminder", "entered", 60),
            ("advertising", "u3", "retarget", "entered", 60),
            ("email", "u1", "email-reminder", "exited", 7 * 24 * 60),
            ("sms", "u3", "sms-reminder", "exited", 7 * 24 * 60),
            ("advertising", "u3", "retarget", "exited", 7 * 24 * 60),
        ]
        _check_payloads(h, "cart-abandonment", keys)
        (added, removed) = h.payloads("advertising")
        assert added == {
            "messageId": message_id(
                "default", "cart-abandonment", "retarget", "u3", 1, Change.ENTERED, "advertising"
            ),
            "key": keys["retarget"],
            "stepId": "retarget",
            "userId": "u3",
            "anonymousId": None,
            "change": "added",
            "run": 1,
            "timestamp": "2026-03-02T10:00:00.000Z",
        }
        assert removed["timestamp"] == "2026-03-09T09:00:00.000Z"
        stats = h.stats("cart-abandonment")
        assert (stats.entered_users, stats.entered_runs, stats.in_progress, stats.exited_runs) == (
            3,
            3,
            0,
            3,
        )
        assert stats.steps["channel"].joined_runs == 2
        assert stats.steps["wait-1h"].joined_users == 3


async def test_low_recency_winback() -> None:
    async with harness(destinations=False) as h:
        await load_example(h.engine, "winback")
        # Before the publish: u1 ordered for 150 two hundred days ago (out of the 180-day
        # window, in its lifetime value), u2 sent something else, u3 ordered ten days ago.
        old, recent = -200 * 24 * 60, -10 * 24 * 60
        await h.track("u1", "Order Completed", at_minutes=old, properties={"revenue": 150})
        await h.track("u2", "Noise")
        await h.track("u3", "Order Completed", at_minutes=recent, properties={"revenue": 10})
        journey, operation = await h.engine.publish_journey("default", "winback")
        assert journey.entry.use_historical_data and operation is not None
        keys = {s.id: s.key for s in journey.send_steps()}
        done = await h.engine.operations.wait("default", operation.id)
        assert (done.profiles_scanned, done.profiles_entered) == (3, 2)
        await h.at(30)
        await h.track("u4", "Noise")  # new since the publish: no order in 180 days
        await h.at(24 * 60 + 120)
        await h.send(
            {
                "type": "page",
                "userId": "u1",
                "name": "Sale",
                "context": {"campaign": {"source": "facebook"}},
            }
        )
        await h.at(3 * 24 * 60)
        assert h.seen() == [
            ("email", "u1", "winback-high-value", "entered", 0),
            ("advertising", "u1", "winback-high-value", "entered", 0),
            ("email", "u2", "winback-email", "entered", 0),
            ("email", "u4", "winback-email", "entered", 30),
            ("email", "u1", "discount", "entered", 24 * 60 + 120),
        ]
        _check_payloads(h, "winback", keys)
        stats = h.stats("winback")
        assert (stats.entered_users, stats.in_progress) == (3, 3)
        assert stats.steps["clicked-campaign"].joined_runs == 1


async def test_trial_to_paid() -> None:
    async with harness(destinations=False) as h:
        keys = await _publish(h, "trial-to-paid")
        await h.track("u1", "Trial Started")
        await h.track("u2", "Trial Started")
        await h.track("u3", "Subscription Started")
        await h.track("u3", "Trial Started")
        await h.at(2 * 24 * 60)
        await h.track("u1", "Subscription Started")
        await h.at(6 * 24 * 60)
        five_days = 5 * 24 * 60
        assert h.seen() == [
            ("email", "u1", "thank-subscriber", "entered", five_days),
            ("support", "u1", "thank-subscriber", "entered", five_days),
            ("email", "u2", "convert-trial", "entered", five_days),
            ("support", "u2", "convert-trial", "entered", five_days),
            ("advertising", "u2", "convert-trial", "entered", five_days),
        ]
        _check_payloads(h, "trial-to-paid", keys)
        support = h.payloads("support")[0]
        assert support["type"] == "identify" and "event" not in support
        stats = h.stats("trial-to-paid")
        assert (stats.entered_users, stats.steps["wait-5d"].joined_runs) == (2, 2)
        assert (stats.steps["thank-subscriber"].members, stats.steps["convert-trial"].members) == (
            1,
            1,
        )


async def test_onboarding() -> None:
    async with harness(destinations=False) as h:
        keys = await _publish(h, "onboarding")
        await h.track("u1", "Account Created")
        await h.track("u2", "Account Created")
        await h.at(20)
        await h.track("u1", "Tutorial Completed")
        await h.at(120)
        assert h.seen() == [
            ("email", "u1", "engaged", "entered", 60),
            ("support", "u1", "engaged", "entered", 60),
            ("in-app", "u1", "engaged", "entered", 60),
            ("email", "u2", "needs-help", "entered", 60),
            ("support", "u2", "needs-help", "entered", 60),
            ("in-app", "u2", "needs-help", "entered", 60),
            ("advertising", "u2", "needs-help", "entered", 60),
        ]
        _check_payloads(h, "onboarding", keys)
        stats = h.stats("onboarding")
        assert (stats.entered_users, stats.in_progress) == (2, 2)
        assert stats.steps["wait-1h"].members == 2 and stats.steps["wait-1h"].waiting == 0


async def test_paid_subscription_acquisition() -> None:
    async with harness(destinations=False) as h:
        keys = await _publish(h, "paid-subscription")
        for user in ("u1", "u2"):
            await h.track(
                user, "Subscription Started", properties={"Subscription Plan Type": "Free"}
            )
        await h.at(3 * 24 * 60)
        await h.track("u1", "Subscription Started", properties={"Subscription Plan Type": "paid"})
        await h.at(9 * 24 * 60)
        week = 60 + 7 * 24 * 60
        assert h.seen() == [
            ("email", "u1", "welcome", "entered", 60),
            ("email", "u2", "welcome", "entered", 60),
            ("email", "u1", "thank-paid", "entered", week),
            ("email", "u2", "push-paid", "entered", week),
            ("advertising", "u2", "push-paid", "entered", week),
        ]
        _check_payloads(h, "paid-subscription", keys)
        stats = h.stats("paid-subscription")
        assert stats.steps["welcome"].members == 2
        assert stats.steps["wait-7d"].waiting == 0
