"""The cart-abandonment example on a real server: its journey file applied over gRPC,
messages ingested, the manual clock moved, and every call read from subscriptions
compared byte for byte with what SPEC §7 says it must be."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from journeys_client import JourneysClient

from tests.helpers.live import (
    DAY,
    HOUR,
    START,
    apply_yaml,
    connect,
    identify,
    iso,
    read_items,
    read_nothing,
    track,
)
from tests.helpers.processes import ServerProcess

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cart-abandonment.yaml"
JOURNEY = "cart-abandonment"
NAMES = {"email": "Email", "sms": "SMS"}


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _message_id(step: str, user: str, change: str, destination: str) -> str:
    """SPEC §5.8, worked out here rather than by the engine's code."""
    parts = ["default", JOURNEY, step, user, 1, change, destination]
    return "jm_" + hashlib.sha256(_compact(parts).encode()).hexdigest()[:32]


def _track_call(
    destination: str, step: str, key: str, user: str, anonymous: str | None, entered: bool, at: int
) -> str:
    change = "entered" if entered else "exited"
    return _compact(
        {
            "type": "track",
            "event": "Audience Entered" if entered else "Audience Exited",
            "userId": user,
            "anonymousId": anonymous,
            "messageId": _message_id(step, user, change, destination),
            "timestamp": iso(at),
            "properties": {key: "true" if entered else "false"},
            "context": {
                "personas": {
                    "computation_class": "journey_step",
                    "computation_id": step,
                    "computation_key": key,
                    "space_id": "default",
                    "namespace": "spa_default",
                }
            },
            "integrations": {"All": False, NAMES[destination]: True},
        }
    )


def _list_record(step: str, key: str, user: str, added: bool, at: int) -> str:
    change = "entered" if added else "exited"
    return _compact(
        {
            "messageId": _message_id(step, user, change, "advertising"),
            "key": key,
            "stepId": step,
            "userId": user,
            "anonymousId": None,
            "change": "added" if added else "removed",
            "run": 1,
            "timestamp": iso(at),
        }
    )


async def _stream(client: JourneysClient, destination: str, count: int) -> list[str]:
    """The destination's calls, checked to be numbered 1..count with nothing after."""
    items = await read_items(client, destination, count)
    assert [i.call.sequence for i in items] == list(range(1, count + 1))
    for item in items:
        assert json.loads(item.call.payload)["messageId"] == item.call.message_id
    await read_nothing(client, destination, after=count)
    return [i.call.payload for i in items]


async def test_cart_abandonment_sends_exactly_the_documented_calls(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "journeys.db", "--manual-clock") as served:
        async with connect(served, at=START) as client:
            await apply_yaml(client, EXAMPLE.read_text())
            journey = await client.get_journey(JOURNEY)
            keys = {
                s.id: s.send_to_destinations.key
                for s in journey.steps
                if s.HasField("send_to_destinations")
            }
            ack = await client.ingest(
                [
                    identify("u1", preferred_channel="email"),
                    track("u1", "Product Added", sku="B-12", price=19.5, tags=["gift"]),
                    identify("u2", preferred_channel="sms"),
                    track("u2", "Product Added"),
                    {
                        "type": "identify",
                        "userId": "u3",
                        "traits": {"preferred_channel": "sms", "Customer Lifetime Value": 150},
                    },
                    track("u3", "Product Added", item={"sku": "C-1", "quantity": 2}),
                    # Ordered before the reminder: never reminded, never retargeted.
                    track("u4", "Product Added"),
                    track("u4", "Order Completed", revenue=500),
                ]
            )
            assert (ack.accepted, list(ack.errors)) == (8, [])
            await client.set_time(START + 30 * 60_000)
            # Orders within the day: the exit condition ends u2's run before any send.
            await client.ingest([track("u2", "Order Completed", revenue=20)])
            await client.set_time(START + 8 * DAY)

            reminded, gone = START + HOUR, START + 7 * DAY  # exit_after: 7d
            email = await _stream(client, "email", 2)
            assert email == [
                _track_call("email", "email-reminder", keys["email-reminder"], "u1", None, True, reminded),
                _track_call("email", "email-reminder", keys["email-reminder"], "u1", None, False, gone),
            ]  # fmt: skip
            sms = await _stream(client, "sms", 2)
            assert sms == [
                _track_call("sms", "sms-reminder", keys["sms-reminder"], "u3", None, True, reminded),
                _track_call("sms", "sms-reminder", keys["sms-reminder"], "u3", None, False, gone),
            ]  # fmt: skip
            advertising = await _stream(client, "advertising", 2)
            assert advertising == [
                _list_record("retarget", keys["retarget"], "u3", True, reminded),
                _list_record("retarget", keys["retarget"], "u3", False, gone),
            ]


async def test_a_profile_known_by_both_ids_is_sent_with_both(tmp_path: Path) -> None:
    """The call carries the user id and the first anonymous id recorded (SPEC §7)."""
    with ServerProcess(tmp_path / "journeys.db", "--manual-clock") as served:
        async with connect(served, at=START) as client:
            await apply_yaml(client, EXAMPLE.read_text())
            journey = await client.get_journey(JOURNEY)
            key = next(
                s.send_to_destinations.key for s in journey.steps if s.id == "email-reminder"
            )
            visitor = {"userId": "u9", "anonymousId": "anon-9"}
            await client.ingest(
                [
                    {"type": "identify", **visitor, "traits": {"preferred_channel": "email"}},
                    {"type": "track", **visitor, "event": "Product Added"},
                    {"type": "track", "userId": "u9", "anonymousId": "anon-10", "event": "Viewed"},
                ]
            )
            await client.set_time(START + HOUR)
            (call,) = await _stream(client, "email", 1)
            expected = _track_call(
                "email", "email-reminder", key, "u9", "anon-9", True, START + HOUR
            )
            assert call == expected
