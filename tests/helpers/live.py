"""Driving a real server over gRPC: messages, journey files, reading subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from journeys.v1 import journey_pb2, subscription_pb2
from journeys_cli.apply import apply_documents
from journeys_client import JourneysClient, parse_documents

from tests.helpers.processes import ServerProcess

__all__ = [
    "CHAIN",
    "DAY",
    "HOUR",
    "START",
    "apply_yaml",
    "connect",
    "entry_journey",
    "identify",
    "iso",
    "read_items",
    "read_nothing",
    "track",
]

# Far enough ahead that a fresh manual clock (it starts at the system time) can be set to it.
START = int(datetime(2040, 1, 2, 9, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000
DAY = 24 * HOUR


def iso(ms: int) -> str:
    """``ms`` as the engine writes instants: ISO 8601 with milliseconds and Z."""
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return instant.isoformat(timespec="milliseconds")[:-6] + "Z"


@contextlib.asynccontextmanager
async def connect(server: ServerProcess, *, at: int | None = None) -> AsyncIterator[JourneysClient]:
    """A client of ``server``; with ``at``, the manual clock is set there first."""
    async with JourneysClient(server.target, timeout=60) as client:
        if at is not None:
            await client.set_time(at)
        yield client


async def apply_yaml(client: JourneysClient, text: str) -> None:
    """Applies journey-file documents and publishes every journey among them."""
    docs = parse_documents(text)
    await apply_documents(client, docs)
    for doc in docs:
        if isinstance(doc, journey_pb2.Journey):
            await client.publish_journey(doc.id)


def entry_journey(condition: str, *, journey_id: str = "j", destination: str = "hooks") -> str:
    """Journey-file text: a track destination and a journey that sends to it on entry."""
    return f"""
kind: Destination
id: {destination}
name: {destination.title()}
type: track
---
kind: Journey
id: {journey_id}
name: {journey_id.title()}
steps:
- id: entry
  name: Entry
  type: entry
  condition: {json.dumps(condition)}
  next: send
- id: send
  name: Send
  type: send_to_destinations
  destinations: [{destination}]
"""


def track(
    user: str, event: str, message_id: str | None = None, **properties: Any
) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "track", "userId": user, "event": event}
    if properties:
        message["properties"] = properties
    if message_id is not None:
        message["messageId"] = message_id
    return message


def identify(user: str, message_id: str | None = None, **traits: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "identify", "userId": user, "traits": traits}
    if message_id is not None:
        message["messageId"] = message_id
    return message


async def read_items(
    client: JourneysClient,
    destination: str,
    count: int,
    *,
    consumer: str = "test",
    after: int | None = 0,
    timeout: float = 20.0,
) -> list[subscription_pb2.SubscribeResponse]:
    """The first ``count`` items a subscription streams (failing after ``timeout``)."""
    items: list[subscription_pb2.SubscribeResponse] = []

    async def collect() -> None:
        async for item in client.subscribe(destination, consumer, after=after):
            items.append(item)
            if len(items) == count:
                return

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise AssertionError(f"{len(items)} of {count} items came: {items}") from None
    return items


async def read_nothing(
    client: JourneysClient,
    destination: str,
    *,
    after: int | None,
    consumer: str = "test",
    wait: float = 0.5,
) -> None:
    """Asserts the subscription has nothing after ``after`` (within ``wait`` seconds)."""
    items = []

    async def collect() -> None:
        async for item in client.subscribe(destination, consumer, after=after):
            items.append(item)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), wait)
    assert items == []


# A journey of two timed sends (an hour, then a day later), to a track and a list
# destination, left on "Cancelled": the durability tests' workload.
CHAIN = """
kind: Destination
id: hooks
name: Hooks
type: track
---
kind: Destination
id: audience
name: Audience
type: list
---
kind: Journey
id: chain
name: Chain
settings:
  exit_condition: event('Cancelled').count() >= 1
steps:
- id: entry
  name: Entry
  type: entry
  condition: event('Signed Up').count() >= 1
  next: wait-1
- id: wait-1
  name: Wait an hour
  type: wait_duration
  duration: 1h
  next: first
- id: first
  name: First
  type: send_to_destinations
  destinations: [hooks, audience]
  next: wait-2
- id: wait-2
  name: Wait a day
  type: wait_duration
  duration: 1d
  next: second
- id: second
  name: Second
  type: send_to_destinations
  destinations: [hooks]
"""
