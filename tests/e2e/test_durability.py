"""Durability contract (ARCHITECTURE.md) on real server processes: a restart, clean or
``kill -9``, loses no acknowledged message and duplicates or drops no output.

The crash points are fixed in the server's code path (see
``tests/helpers/crashing_serve.py``): the process kills itself with SIGKILL
right after a batch is logged (before its ack), or just before or just after
applied work is committed. The workload then goes on against a restarted
server, retrying the step the crash interrupted, and everything the
destinations receive must equal an uninterrupted run's, call for call.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from journeys_client import JourneysClient, UnavailableError

from tests.helpers.live import (
    CHAIN,
    DAY,
    HOUR,
    START,
    apply_yaml,
    connect,
    read_items,
    read_nothing,
    track,
)
from tests.helpers.processes import ServerProcess

pytestmark = pytest.mark.e2e


USERS = 40


@dataclass(frozen=True)
class Ingest:
    messages: tuple[dict[str, object], ...]


@dataclass(frozen=True)
class SetTime:
    at: int


def _batch(prefix: str, users: range, event: str) -> Ingest:
    return Ingest(tuple(track(f"u{i}", event, message_id=f"{prefix}-{i}") for i in users))


# Every step can be retried: messages carry fixed ids, times are absolute.
WORKLOAD = (
    _batch("signup-a", range(0, 20), "Signed Up"),
    _batch("signup-b", range(20, USERS), "Signed Up"),
    SetTime(START + 30 * 60_000),
    _batch("cancel-early", range(0, 10), "Cancelled"),  # before the first send
    SetTime(START + 2 * HOUR),
    _batch("cancel-late", range(10, 20), "Cancelled"),  # members: "exited" follows
    SetTime(START + 2 * DAY),
)
# u10-u39 get "first" on both destinations, u10-u19 leave it, u20-u39 get "second".
EXPECTED = {"hooks": 30 + 10 + 20, "audience": 30 + 10}

Calls = dict[str, list[tuple[int, str, str]]]
"""Per destination: (sequence, message id, payload) in order."""


_prepared: dict[str, Path] = {}


async def _prepare(db: Path) -> None:
    """A database with the journey published (one copy for every run, so that step
    keys, and so payloads, are the same in each)."""
    if "db" not in _prepared:
        template = db.with_name("template.db")
        with ServerProcess(template, "--manual-clock") as served:
            async with connect(served, at=START) as client:
                await apply_yaml(client, CHAIN)
            assert served.stop() == 0
        _prepared["db"] = template
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(_prepared["db"]) + suffix)
        if source.exists():
            shutil.copyfile(source, str(db) + suffix)


async def _do(client: JourneysClient, step: Ingest | SetTime) -> None:
    if isinstance(step, Ingest):
        ack = await client.ingest(list(step.messages))
        assert not ack.errors
        assert ack.accepted + len(ack.duplicates) == len(step.messages)
    else:
        await client.set_time(step.at)


async def _calls(client: JourneysClient) -> Calls:
    found: Calls = {}
    for destination, count in EXPECTED.items():
        items = await read_items(client, destination, count)
        found[destination] = [(i.call.sequence, i.call.message_id, i.call.payload) for i in items]
        await read_nothing(client, destination, after=count)
    return found


async def _run(db: Path, crash_at: str | None) -> tuple[Calls, bool]:
    """Runs the workload (from a prepared database), restarting after a crash."""
    crashed = False
    server = ServerProcess(db, "--manual-clock", crash_at=crash_at).start()
    try:
        step = 0
        while step < len(WORKLOAD):
            try:
                async with connect(server) as client:
                    while step < len(WORKLOAD):
                        await _do(client, WORKLOAD[step])
                        step += 1
            except UnavailableError:
                assert server.wait() == -signal.SIGKILL, "".join(server.output)
                assert not crashed, "crashed twice"
                crashed = True
                server = ServerProcess(db, "--manual-clock").start()
        async with connect(server) as client:
            return await _calls(client), crashed
    finally:
        server.stop(signal.SIGKILL)


_reference: dict[str, Calls] = {}


async def _uninterrupted(tmp_path: Path) -> Calls:
    if "calls" not in _reference:
        db = tmp_path / "reference.db"
        await _prepare(db)
        _reference["calls"], _ = await _run(db, None)
    return _reference["calls"]


def _check_same(calls: Calls, reference: Calls) -> None:
    for destination, expected in reference.items():
        got = calls[destination]
        assert [s for s, _, _ in got] == list(range(1, len(expected) + 1))  # dense
        assert len({m for _, m, _ in got}) == len(got)  # no duplicates
        assert {m: p for _, m, p in got} == {m: p for _, m, p in expected}
        for user in {json.loads(p)["userId"] for _, _, p in expected}:

            def of(rows: list[tuple[int, str, str]], u: str = user) -> list[str]:
                return [m for _, m, p in rows if json.loads(p)["userId"] == u]

            assert of(got) == of(expected)  # each user's calls in the same order


@pytest.mark.parametrize(
    "crash_at",
    [
        "after-log:1",
        "after-log:4",
        "before-commit:1",
        "before-commit:5",
        "after-commit:2",
        "after-commit:6",
    ],
)
async def test_a_kill_at_a_fixed_point_loses_and_duplicates_nothing(
    tmp_path: Path, crash_at: str
) -> None:
    reference = await _uninterrupted(tmp_path)
    db = tmp_path / "crash.db"
    await _prepare(db)
    calls, crashed = await _run(db, crash_at)
    assert crashed, f"the server never reached {crash_at}"
    _check_same(calls, reference)


async def test_a_restart_between_the_ack_and_the_output_loses_nothing(tmp_path: Path) -> None:
    """Stopped (cleanly, then with ``kill -9``) right after an ack, before the wait
    ends: after the restart the journey goes on and sends, once each."""
    db = tmp_path / "journeys.db"
    await _prepare(db)
    for name, stop in (("term", signal.SIGTERM), ("kill", signal.SIGKILL)):
        with ServerProcess(db, "--manual-clock") as served:
            async with connect(served) as client:
                ack = await client.ingest([track(name, "Signed Up")])
                assert ack.accepted == 1
            assert served.stop(stop) == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
    with ServerProcess(db, "--manual-clock") as served:
        async with connect(served) as client:
            await read_nothing(client, "hooks", after=0)
            await client.advance_time(2 * HOUR)
            items = await read_items(client, "hooks", 2)
            assert sorted(json.loads(i.call.payload)["userId"] for i in items) == ["kill", "term"]
            await read_nothing(client, "hooks", after=2)


async def test_a_kill_during_a_stream_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    """A real ``kill -9`` from outside while batches stream in: what was acknowledged is
    applied after the restart; sending everything again duplicates nothing."""
    db = tmp_path / "journeys.db"
    await _prepare(db)
    messages = [track(f"s{i}", "Signed Up", message_id=f"s-{i}") for i in range(6000)]
    acked = 0
    with ServerProcess(db, "--manual-clock") as served:
        async with connect(served) as client:

            async def stream() -> None:
                nonlocal acked
                for start in range(0, len(messages), 200):
                    ack = await client.ingest(messages[start : start + 200])
                    acked += ack.accepted

            sender = asyncio.create_task(stream())
            while acked < 1000:
                await asyncio.sleep(0.01)
            served.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            with pytest.raises(UnavailableError):
                await sender
        assert served.wait() == -signal.SIGKILL
    assert 1000 <= acked < len(messages)
    with ServerProcess(db, "--manual-clock") as served:
        async with connect(served) as client:
            report = await client.send(messages, batch_size=500)
            # Everything acknowledged before the kill is remembered (maybe more: a
            # batch can be logged just before its ack was lost).
            assert report.duplicates >= acked
            assert report.accepted + report.duplicates == len(messages)
            await client.advance_time(2 * HOUR)
            items = await read_items(client, "hooks", len(messages), timeout=60)
            users = [json.loads(i.call.payload)["userId"] for i in items]
            assert sorted(users) == sorted(f"s{i}" for i in range(len(messages)))
            await read_nothing(client, "hooks", after=len(messages))


async def test_a_consumer_resumes_after_its_last_ack_across_a_kill(tmp_path: Path) -> None:
    db = tmp_path / "journeys.db"
    await _prepare(db)
    with ServerProcess(db, "--manual-clock") as served:
        async with connect(served) as client:
            await client.ingest([track(f"c{i}", "Signed Up") for i in range(5)])
            await client.advance_time(2 * HOUR)
            before = await read_items(client, "hooks", 5, consumer="worker", after=None)
            await client.ack("hooks", "worker", 3)
        served.stop(signal.SIGKILL)
    with ServerProcess(db, "--manual-clock") as served:
        async with connect(served) as client:
            after = await read_items(client, "hooks", 2, consumer="worker", after=None)
            assert [i.call for i in after] == [i.call for i in before[3:]]
            await read_nothing(client, "hooks", after=5)
