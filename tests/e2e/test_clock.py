"""ClockService on a real server process: SPEC §9, exactly."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from journeys_client import FailedPreconditionError, InvalidArgumentError, JourneysClient

from tests.helpers.live import (
    DAY,
    HOUR,
    START,
    apply_yaml,
    connect,
    iso,
    read_items,
    track,
)
from tests.helpers.processes import ServerProcess

pytestmark = pytest.mark.e2e

CHAIN = """
kind: Destination
id: hooks
name: Hooks
type: track
---
kind: Journey
id: chain
name: Chain
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
  destinations: [hooks]
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


async def test_a_server_on_the_system_clock_refuses_every_clock_call(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "journeys.db") as served:
        async with JourneysClient(served.target) as client:
            for call in (
                client.get_time(),
                client.advance_time(HOUR),
                client.set_time(START),
            ):
                with pytest.raises(FailedPreconditionError) as caught:
                    await call
                assert "start it with --manual-clock" in str(caught.value)
                assert [v.type for v in caught.value.precondition_violations] == [
                    "CLOCK_NOT_MANUAL"
                ]


async def test_advancing_steps_through_every_due_instant_and_returns_once_applied(
    tmp_path: Path,
) -> None:
    with ServerProcess(tmp_path / "journeys.db", "--manual-clock") as served:
        async with connect(served, at=START) as client:
            await apply_yaml(client, CHAIN)
            await client.ingest([track("u1", "Signed Up")])
            await client.set_time(START + 30 * 60_000)
            await client.ingest([track("u2", "Signed Up")])
            assert await client.advance_time(3 * DAY) == START + 30 * 60_000 + 3 * DAY
            # Returned once everything on the way was applied: the calls are there.
            items = await read_items(client, "hooks", 4, timeout=2)
            seen = [
                (
                    json.loads(i.call.payload)["userId"],
                    i.call.step_id,
                    i.call.timestamp.ToMilliseconds(),
                )
                for i in items
            ]
            assert [json.loads(i.call.payload)["timestamp"] for i in items[:1]] == [
                iso(START + HOUR)
            ]
            assert seen == [
                ("u1", "first", START + HOUR),
                ("u2", "first", START + HOUR + 30 * 60_000),
                ("u1", "second", START + HOUR + DAY),
                ("u2", "second", START + HOUR + 30 * 60_000 + DAY),
            ]
            assert await client.get_time() == START + 30 * 60_000 + 3 * DAY


async def test_the_clock_never_goes_backwards_and_checks_its_arguments(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "journeys.db", "--manual-clock") as served:
        async with connect(served, at=START) as client:
            with pytest.raises(FailedPreconditionError) as caught:
                await client.set_time(START - 1)
            assert "the clock cannot go backwards" in str(caught.value)
            assert await client.set_time(START) == START  # setting it to now is allowed
            for bad in (0, -HOUR):
                with pytest.raises(InvalidArgumentError) as invalid:
                    await client.advance_time(bad)
                assert invalid.value.field_violations[0].field == "by"
            assert await client.get_time() == START


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["clean", "kill-9"])
async def test_the_manual_clock_persists_across_restarts(tmp_path: Path, stop: int) -> None:
    db = tmp_path / "journeys.db"
    with ServerProcess(db, "--manual-clock") as served:
        async with connect(served, at=START) as client:
            await apply_yaml(client, CHAIN)
            await client.ingest([track("u1", "Signed Up")])
            assert await client.advance_time(2 * HOUR) == START + 2 * HOUR
        served.stop(stop)
    with ServerProcess(db, "--manual-clock") as served:
        async with connect(served) as client:
            assert await client.get_time() == START + 2 * HOUR
            with pytest.raises(FailedPreconditionError):
                await client.set_time(START + HOUR)
            await client.advance_time(DAY)
            items = await read_items(client, "hooks", 2, timeout=5)
            assert [(i.call.step_id, i.call.timestamp.ToMilliseconds()) for i in items] == [
                ("first", START + HOUR),
                ("second", START + HOUR + DAY),
            ]
