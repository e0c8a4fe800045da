"""The webhook forwarder against a receiver that fails the first attempts: every call
delivered, in order per user, at most ``window`` in flight, none acknowledged before
its 2xx; a call that never gets one stops the forwarder, unacknowledged."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from journeys.v1 import subscription_pb2
from journeys_client import JourneysClient
from journeys_client.forwarding import DeliveryFailedError, Forwarder, RetryPolicy

from tests.helpers.live import apply_yaml, read_items, track
from tests.helpers.webhook import RESET, Answer, Request, WebhookReceiver

USERS = [f"u{i}" for i in range(6)]
EVENTS = ("A", "B", "C")

# One destination; three journeys, each sending to it when its event comes, so each
# user gets three calls, in the order of their events.
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
    for event in EVENTS
)


@pytest.fixture
async def hooks(client: JourneysClient) -> JourneysClient:
    """The client, with the journeys published and every user's three calls made."""
    await apply_yaml(client, JOURNEYS)
    messages = [track(user, event) for user in USERS for event in EVENTS]
    assert (await client.ingest(messages)).accepted == len(messages)
    return client


class _FakeSleep:
    """Records each backoff instead of waiting it out."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


class _Counting(httpx.AsyncBaseTransport):
    """A real transport that counts the POSTs in flight at once."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.in_flight = 0
        self.most = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            return await self._inner.handle_async_request(request)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()


def _unreliable(request: Request, attempt: int) -> Answer:
    """Fails each call 0, 1 or 2 times first, in every way a receiver fails."""
    failures = request.sequence % 3
    if attempt > failures:
        return Answer(200)
    kinds = [
        Answer(500),
        Answer(429, {"Retry-After": "7"}),
        RESET,
        Answer(503),
        Answer(200, delay=0.6),  # longer than the forwarder's timeout
    ]
    return kinds[(request.sequence + attempt) % len(kinds)]


async def _next_sequence(client: JourneysClient, consumer: str) -> int:
    """Where the consumer's cursor is: the sequence it is sent first when it resumes,
    after one new call is made."""
    await client.ingest([track("late", "A")])
    (item,) = await read_items(client, "hooks", 1, consumer=consumer, after=None)
    return item.call.sequence


async def test_every_call_is_delivered_in_order_per_user_and_acked_only_after_a_2xx(
    hooks: JourneysClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = len(USERS) * len(EVENTS)
    acks: list[int] = []
    real_ack = hooks.ack

    async def checked_ack(destination: str, consumer: str, sequence: int, **kw: Any) -> int:
        delivered = {r.sequence for r in receiver.succeeded}
        missing = set(range(1, sequence + 1)) - delivered
        assert not missing, f"ack {sequence} before {sorted(missing)} got a 2xx"
        acks.append(sequence)
        return await real_ack(destination, consumer, sequence, **kw)

    monkeypatch.setattr(hooks, "ack", checked_ack)
    sleep = _FakeSleep()
    transport = _Counting()
    async with (
        WebhookReceiver(_unreliable) as receiver,
        httpx.AsyncClient(transport=transport) as http,
    ):
        forwarder = Forwarder(
            hooks,
            "hooks",
            "webhook",
            receiver.url,
            headers={"Authorization": "Bearer s3cr3t"},
            window=4,
            timeout=0.3,
            retry=RetryPolicy(max_attempts=None),
            ack_interval=0.02,
            http=http,
            sleep=sleep,
            rng=random.Random(7),
        )
        running = asyncio.create_task(forwarder.run())
        waiting = asyncio.create_task(receiver.wait_delivered(total))
        await asyncio.wait({running, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():  # it failed: say why
            waiting.cancel()
            running.result()
        await waiting
        forwarder.stop()
        stats = await asyncio.wait_for(running, 10)

    # Every call, each with its id, its payload as the body and the headers.
    assert len(receiver.succeeded) == total  # no restart: nothing was sent twice
    calls = await read_items(hooks, "hooks", total, consumer="check")
    by_sequence = {item.call.sequence: item.call for item in calls}
    for request in receiver.succeeded:
        call = by_sequence[request.sequence]
        assert request.message_id == call.message_id
        assert request.body == json.loads(call.payload)
        assert request.headers["authorization"] == "Bearer s3cr3t"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["x-journeys-destination"] == "hooks"
        assert request.path == "/hook"
    # One user's calls went one at a time, in sequence order: no call of theirs was
    # POSTed before the one before it got its 2xx.
    for user in USERS:
        done: set[int] = set()
        ordered = sorted(s for s, call in by_sequence.items() if _user(call) == user)
        for request in receiver.requests:
            if request.user != user:
                continue
            position = ordered.index(request.sequence)
            assert set(ordered[:position]) <= done, (user, request.sequence)
            if request in receiver.succeeded:
                done.add(request.sequence)
        assert [r.sequence for r in receiver.succeeded if r.user == user] == ordered
    # Retries: each failure waited, the 429's Retry-After honoured, the rest a backoff.
    failures = len(receiver.requests) - total
    assert failures > total / 2
    assert stats.failed_attempts == failures == len(sleep.waits)
    assert any(wait == 7.0 for wait in sleep.waits)
    assert all(0.4 <= wait <= 1.2 or wait == 7.0 for wait in sleep.waits)  # attempts 1-2
    # Concurrency across users, bounded by the window.
    assert 2 <= transport.most <= 4
    # Acks: batched, only after 2xx (checked_ack), and the last one covers everything.
    assert acks and acks == sorted(acks) and len(acks) < total
    assert stats.delivered == total and stats.acked == total and stats.abandoned == 0
    assert await _next_sequence(hooks, "webhook") == total + 1


def _user(call: subscription_pb2.DestinationCall) -> str:
    return str(json.loads(call.payload)["userId"])


async def test_a_call_that_never_gets_a_2xx_stops_the_forwarder_unacknowledged(
    hooks: JourneysClient,
) -> None:
    calls = await read_items(hooks, "hooks", len(USERS) * len(EVENTS), consumer="check")
    doomed = calls[4].call  # u1's second call

    def answer(request: httpx.Request) -> httpx.Response:
        refused = request.headers["x-journeys-sequence"] == str(doomed.sequence)
        return httpx.Response(500 if refused else 204)

    sleep = _FakeSleep()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        forwarder = Forwarder(
            hooks,
            "hooks",
            "webhook",
            "http://receiver.test/",
            retry=RetryPolicy(initial=1, factor=3, maximum=5, jitter=0, max_attempts=4),
            http=http,
            sleep=sleep,
        )
        with pytest.raises(DeliveryFailedError) as failed:
            await asyncio.wait_for(forwarder.run(), 10)

    err = failed.value
    assert (err.sequence, err.message_id, err.attempts, err.status) == (
        doomed.sequence,
        doomed.message_id,
        4,
        500,
    )
    assert "not delivered after 4 attempts: HTTP 500" in str(err)
    assert sleep.waits == [1, 3, 5]  # capped exponential backoff, no jitter
    # Acknowledged up to the call before it at most: it comes again on the next start.
    assert forwarder.stats.acked < doomed.sequence
    assert await _next_sequence(hooks, "webhook") <= doomed.sequence


class _Scripted:
    """A subscription that streams given items, and records acks."""

    def __init__(self, items: list[subscription_pb2.SubscribeResponse]) -> None:
        self.items = items
        self.acks: list[int] = []

    async def follow(
        self, destination_id: str, consumer: str, **kw: Any
    ) -> AsyncIterator[subscription_pb2.SubscribeResponse]:
        for item in self.items:
            yield item
        await asyncio.Event().wait()  # then nothing more comes

    async def ack(self, destination_id: str, consumer: str, sequence: int) -> int:
        self.acks.append(sequence)
        return sequence


def _call(sequence: int, user: str) -> subscription_pb2.SubscribeResponse:
    payload = json.dumps({"type": "track", "userId": user, "event": "Audience Entered"})
    return subscription_pb2.SubscribeResponse(
        call=subscription_pb2.DestinationCall(
            sequence=sequence, message_id=f"m{sequence}", payload=payload, profile_key=user
        )
    )


async def test_a_gap_is_acknowledged_past_and_acks_are_batched() -> None:
    items = [_call(1, "a")]
    items.append(
        subscription_pb2.SubscribeResponse(
            gap=subscription_pb2.Gap(first_sequence=2, last_sequence=4, reason="retention")
        )
    )
    items += [_call(s, f"u{s % 7}") for s in range(5, 305)]
    source = _Scripted(items)
    posted: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        posted.append(request.headers["x-journeys-message-id"])
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        forwarder = Forwarder(
            source,  # type: ignore[arg-type]
            "hooks",
            "webhook",
            "https://receiver.test/",
            window=8,
            idle=0.2,
            ack_interval=10,  # only full batches and the final ack
            http=http,
        )
        stats = await asyncio.wait_for(forwarder.run(), 10)
    assert sorted(posted, key=lambda m: int(m[1:])) == ["m1"] + [f"m{s}" for s in range(5, 305)]
    assert stats.gap_calls == 3 and stats.delivered == 301 and stats.acked == 304
    assert source.acks[-1] == 304
    assert len(source.acks) <= 5  # batches of 100, not one ack per call


def test_bad_arguments_are_refused_before_anything_runs() -> None:
    client: Any = object()
    with pytest.raises(ValueError, match="not an http"):
        Forwarder(client, "hooks", "c", "ftp://example.com/")
    with pytest.raises(ValueError, match="window"):
        Forwarder(client, "hooks", "c", "http://example.com/", window=0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_the_backoff_grows_to_its_cap_and_honours_retry_after() -> None:
    policy = RetryPolicy(jitter=0)
    assert [policy.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(1, retry_after=12) == 12
    assert policy.delay(1, retry_after=10_000) == 300
    assert policy.delay(10**6) == 30
    jittered = RetryPolicy(jitter=0.2)
    rng = random.Random(1)
    assert all(3.2 <= jittered.delay(4, rng=rng) <= 4.8 for _ in range(100))
