"""``journeys forward`` as a user runs it, against a real server process and a webhook
receiver that fails the first attempts: every call delivered, in order per user,
none lost across a stop and a restart, and a call that never gets a 2xx left
unacknowledged with a non-zero exit."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import pytest
from journeys_client import JourneysClient

from tests.helpers.live import START, apply_yaml, connect, read_items, track
from tests.helpers.processes import ROOT, ServerProcess, _env
from tests.helpers.webhook import RESET, Answer, Request, WebhookReceiver

pytestmark = pytest.mark.e2e

JOURNEYS = """
kind: Destination
id: hooks
name: Hooks
type: track
""" + "".join(
    f"""---
kind: Journey
id: on-{event.lower()}
name: On {event}
steps:
- id: entry
  name: Entry
  type: entry
  condition: event('{event}').count() >= 1
  next: send
- id: send
  name: Send
  type: send_to_destinations
  destinations: [hooks]
"""
    for event in ("A", "B", "C")
)


@pytest.fixture
async def client(manual: ServerProcess) -> AsyncIterator[JourneysClient]:
    async with connect(manual, at=START) as connected:
        await apply_yaml(connected, JOURNEYS)
        yield connected


async def _forward(server: ServerProcess, url: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "journeys_cli", "--server", server.target,
        "forward", "hooks", "--url", url, "--backoff", "0.01", "--max-backoff", "0.05",
        "-H", "Authorization: Bearer s3cr3t", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(), cwd=ROOT,
    )  # fmt: skip


def _flaky(request: Request, attempt: int) -> Answer:
    """Fails each call's first attempt: a 500, a 429 with Retry-After, or a reset."""
    if attempt == 1:
        return [Answer(500), Answer(429, {"Retry-After": "0"}), RESET][request.sequence % 3]
    return Answer(200)


async def test_forward_delivers_every_call_in_order_per_user_across_a_restart(
    manual: ServerProcess, client: JourneysClient
) -> None:
    users = [f"u{i}" for i in range(4)]
    await client.ingest([track(u, e) for u in users for e in ("A", "B")])
    # Until the first run stops, the user of call 1 is refused: its calls stay
    # unacknowledged, and so does every call after them, delivered or not.
    down: set[str] = set()

    def script(request: Request, attempt: int) -> Answer:
        if request.sequence == 1 and not first_stopped:
            down.add(request.user)
        if request.user in down and not first_stopped:
            return Answer(503)
        return _flaky(request, attempt)

    first_stopped = False
    async with WebhookReceiver(script) as receiver:
        first = await _forward(
            manual, receiver.url, "--window", "3", "--max-attempts", "0", "--grace", "0.5", "-v"
        )
        await receiver.wait_delivered(6)  # every other user's calls
        first.send_signal(signal.SIGTERM)  # a stop mid-way
        _, err = await asyncio.wait_for(first.communicate(), 20)
        first_stopped = True
        assert first.returncode == 0, err.decode()
        assert "forward: delivered" in err.decode()
        assert "forward: attempt" in err.decode()  # the retries, with -v
        assert "2 left for the next run); acknowledged up to 0" in err.decode()
        delivered_before = len(receiver.succeeded)

        await client.ingest([track(u, "C") for u in users])  # more while it was down
        second = await _forward(manual, receiver.url, "--idle", "1.5")
        _, err = await asyncio.wait_for(second.communicate(), 30)
        assert second.returncode == 0, err.decode()
        assert "forward: delivered" not in err.decode()  # no -v: only the summary

    total = len(users) * 3
    calls = await read_items(client, "hooks", total, consumer="check")
    # None lost: every call got a 2xx (some twice: at least once, across the restart).
    assert receiver.delivered_ids() == {item.call.message_id for item in calls}
    assert all(r.headers["authorization"] == "Bearer s3cr3t" for r in receiver.requests)
    # In order per user: first deliveries of each user's calls came in sequence order.
    for user in users:
        firsts: list[int] = []
        for request in receiver.succeeded:
            if request.user == user and request.sequence not in firsts:
                firsts.append(request.sequence)
        assert firsts == sorted(firsts) and len(firsts) == 3, (user, firsts)
    # Every call was failed once first; none was acknowledged before its 2xx, so the
    # cursor is past them all and a new call is the next one the consumer gets.
    assert len(receiver.requests) >= 2 * total
    # What the first run delivered but could not acknowledge came again.
    assert len(receiver.succeeded) == delivered_before + total
    await client.ingest([track("late", "A")])
    (item,) = await read_items(client, "hooks", 1, consumer="forward", after=None)
    assert item.call.sequence == total + 1


async def test_forward_stops_with_an_error_on_a_call_that_never_gets_a_2xx(
    manual: ServerProcess, client: JourneysClient
) -> None:
    await client.ingest([track("u1", "A"), track("u2", "A")])

    def refuse_u2(request: Request, attempt: int) -> Answer:
        return Answer(400 if request.user == "u2" else 200)

    async with WebhookReceiver(refuse_u2) as receiver:
        forwarder = await _forward(manual, receiver.url, "--max-attempts", "3", "--window", "1")
        _, err = await asyncio.wait_for(forwarder.communicate(), 30)
    assert forwarder.returncode == 1
    assert "not delivered after 3 attempts: HTTP 400" in err.decode()
    refused = [r for r in receiver.requests if r.user == "u2"]
    assert len(refused) == 3
    # The refused call is still there for the consumer: it comes again first.
    (item,) = await read_items(client, "hooks", 1, consumer="forward", after=None)
    assert item.call.sequence == refused[0].sequence


def test_forward_refuses_a_bad_header_and_a_bad_url() -> None:
    from click.testing import CliRunner
    from journeys_cli.main import cli

    runner = CliRunner()
    bad = runner.invoke(cli, ["forward", "hooks", "--url", "http://x/", "-H", "no colon"])
    assert bad.exit_code == 2 and "is not 'Name: value'" in bad.output
    own = runner.invoke(
        cli, ["forward", "hooks", "--url", "http://x/", "-H", "X-Journeys-Sequence: 1"]
    )
    assert own.exit_code == 2 and "set by the forwarder itself" in own.output
    ftp = runner.invoke(cli, ["forward", "hooks", "--url", "ftp://x/"])
    assert ftp.exit_code == 2 and "not an http(s) URL" in ftp.output
