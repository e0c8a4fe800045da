"""Online backup on real server processes: a copy taken while events stream in is one
consistent instant, and a server started on it goes on from there."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
from journeys.v1 import backup_pb2, backup_pb2_grpc, subscription_pb2
from journeys_client import JourneysClient, JourneysClientError, NotFoundError
from journeys_server import JourneysServer
from journeys_server.services.backup import CHUNK_BYTES

from journeys_engine.store import SCHEMA_VERSION
from journeys_engine.store.backup import DatabaseCopy, backup_database
from tests.helpers.live import (
    CHAIN,
    DAY,
    HOUR,
    START,
    apply_yaml,
    connect,
    identify,
    read_items,
    read_nothing,
    track,
)
from tests.helpers.processes import ServerProcess, run_cli

pytestmark = pytest.mark.e2e


BATCH = 50
BEFORE = 1000  # users acknowledged before the backup begins
AFTER = 10  # batches sent after it returned
MINUTE = 60_000


def _user(n: int) -> str:
    return f"u{n:05}"


def _users(items: Sequence[subscription_pb2.SubscribeResponse]) -> list[str]:
    return [json.loads(i.call.payload)["userId"] for i in items]


async def test_a_backup_taken_while_events_stream_in_starts_a_consistent_server(
    tmp_path: Path,
) -> None:
    copy_path = tmp_path / "copy.db"
    acked = 0  # users whose batch is acknowledged, in order: u0, u1, …
    clock = START
    started = asyncio.Event()
    returned = asyncio.Event()

    async def ingest(client: JourneysClient) -> None:
        """Batch after batch of new users, the clock moving 20 minutes every 5 batches,
        until AFTER batches have gone in after the backup returned."""
        nonlocal acked, clock
        after = 0
        try:
            while after < AFTER:
                users = range(acked, acked + BATCH)
                ack = await client.ingest([track(_user(n), "Signed Up", f"m{n}") for n in users])
                assert ack.accepted == BATCH, ack
                acked += BATCH
                if acked % (5 * BATCH) == 0:
                    clock += 20 * MINUTE
                    await client.set_time(clock)
                if acked >= BEFORE:
                    started.set()
                after += returned.is_set()
                assert acked < 50_000, "the backup never returned"
        finally:
            started.set()

    with ServerProcess(tmp_path / "live.db", "--manual-clock") as live:
        async with connect(live, at=START) as client, connect(live) as other:
            await apply_yaml(client, CHAIN)
            ingesting = asyncio.create_task(ingest(client))
            await started.wait()
            if ingesting.done():
                await ingesting  # its failure, rather than a hang
            at_start = acked
            assert not ingesting.done()  # the backup begins while events stream in
            info = await other.backup(copy_path)
            most = acked + BATCH  # every batch begun before the backup returned
            returned.set()
            await ingesting
            assert at_start < most < acked  # events went on streaming in after the backup
            # The live server lost nothing meanwhile.
            assert (await client.get_journey_stats("chain")).entered_users == acked
    assert info.size_bytes == copy_path.stat().st_size
    assert info.schema_version == SCHEMA_VERSION
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.tmp"))

    with ServerProcess(copy_path, "--manual-clock") as restored:
        async with connect(restored) as client:
            stats = await client.get_journey_stats("chain")
            entered = stats.entered_users
            # Every batch acknowledged before the backup began, none begun after it
            # returned, and whole batches only: the copy is the ingest log's prefix.
            assert at_start <= entered <= most
            assert entered % BATCH == 0
            assert (await client.get_profile(_user(entered - 1))).user_id == _user(entered - 1)
            with pytest.raises(NotFoundError):
                await client.get_profile(_user(entered))

            # Counts and outputs agree: whoever passed "first" has its two calls, in
            # dense sequences, and the rest are waiting for their hour.
            steps = {s.step_id: s for s in stats.steps}
            passed = steps["first"].joined_users
            assert 0 < passed < entered
            assert (stats.entered_runs, stats.in_progress, stats.exited_runs) == (
                entered,
                entered,
                0,
            )
            assert steps["wait-1"].waiting == entered - passed
            assert steps["first"].members == passed
            assert steps["wait-2"].waiting == passed
            assert steps["second"].joined_users == 0
            hooks = await read_items(client, "hooks", passed, timeout=60)
            audience = await read_items(client, "audience", passed, timeout=60)
            for items in (hooks, audience):
                assert [i.call.sequence for i in items] == list(range(1, passed + 1))
                # The users who entered first, each once.
                assert sorted(_users(items)) == [_user(n) for n in range(passed)]
            assert {i.call.change for i in audience} == {"entered"}
            await read_nothing(client, "hooks", after=passed)
            await read_nothing(client, "audience", after=passed)

            # The copy goes on: timers fire, new events are taken.
            await client.advance_time(2 * DAY)
            hooks = await read_items(client, "hooks", 2 * entered, timeout=60)
            assert [i.call.sequence for i in hooks] == list(range(1, 2 * entered + 1))
            assert sorted(_users(hooks)) == sorted(2 * [_user(n) for n in range(entered)])
            await read_nothing(client, "hooks", after=2 * entered)
            steps = {s.step_id: s for s in (await client.get_journey_stats("chain")).steps}
            assert steps["wait-1"].waiting == steps["wait-2"].waiting == 0
            assert steps["second"].joined_users == entered
            ack = await client.ingest([track("fresh", "Signed Up")])
            assert ack.accepted == 1
            await client.advance_time(2 * HOUR)
            (fresh,) = await read_items(client, "hooks", 1, after=2 * entered)
            assert _users([fresh]) == ["fresh"]
            assert (await client.get_journey_stats("chain")).entered_users == entered + 1


async def test_the_cli_saves_a_backup_a_server_starts_on(
    manual: ServerProcess, tmp_path: Path
) -> None:
    async with connect(manual, at=START) as client:
        await apply_yaml(client, CHAIN)
        await client.ingest([track("ann", "Signed Up")])
    target = tmp_path / "saved.db"
    done = run_cli("backup", "--to", str(target), server=manual.target)
    assert done.returncode == 0, done.stderr
    found = re.fullmatch(
        rf"backed up ([\d.]+) kB \(schema {SCHEMA_VERSION}\) to {re.escape(str(target))}\n",
        done.stdout,
    )
    assert found, done.stdout
    size = target.stat().st_size
    assert float(found.group(1)) == round(size / 1000, 1)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not list(tmp_path.glob("*.partial"))
    with ServerProcess(target, "--manual-clock") as restored:
        async with connect(restored) as client:
            assert (await client.get_profile("ann")).user_id == "ann"
            await client.advance_time(2 * HOUR)
            (call,) = await read_items(client, "hooks", 1)
            assert _users([call]) == ["ann"]


def test_the_cli_refuses_an_existing_file_unless_forced(
    manual: ServerProcess, tmp_path: Path
) -> None:
    target = tmp_path / "saved.db"
    target.write_bytes(b"an older backup")
    refused = run_cli("backup", "--to", str(target), server=manual.target)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr == f"error: {target} already exists; use --force to replace it\n"
    assert target.read_bytes() == b"an older backup"
    forced = run_cli("backup", "--to", str(target), "--force", server=manual.target)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith("backed up ")
    assert target.read_bytes().startswith(b"SQLite format 3\x00")
    assert not list(tmp_path.glob("*.partial"))


def test_the_cli_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "saved.db"
    unreachable = run_cli("backup", "--to", str(target), server="127.0.0.1:1")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: cannot reach the journeys server at 127.0.0.1:1")
    with ServerProcess(Path(":memory:")) as in_memory:
        refused = run_cli("backup", "--to", str(target), server=in_memory.target)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: the server's database is in memory")
    assert "DATABASE_IN_MEMORY" not in refused.stderr  # the message, not the tag
    assert list(tmp_path.iterdir()) == []


async def test_the_client_refuses_a_partial_file_it_did_not_write(
    manual: ServerProcess, tmp_path: Path
) -> None:
    target = tmp_path / "saved.db"
    (tmp_path / "saved.db.partial").write_bytes(b"someone else's")
    async with connect(manual) as client:
        with pytest.raises(JourneysClientError, match=r"saved\.db\.partial exists") as caught:
            await client.backup(target)
        assert caught.value.code is None
        assert not target.exists()
        assert (tmp_path / "saved.db.partial").read_bytes() == b"someone else's"
        target.write_bytes(b"old")
        with pytest.raises(JourneysClientError, match="already exists"):
            await client.backup(target)
        os.unlink(tmp_path / "saved.db.partial")
        info = await client.backup(target, overwrite=True)
    assert target.stat().st_size == info.size_bytes


async def test_a_backup_the_client_abandons_leaves_no_temporary_file(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    with ServerProcess(folder / "live.db", "--manual-clock") as live:
        async with connect(live, at=START) as client:
            # Several chunks' worth of profiles, so the stream is still going when abandoned.
            for b in range(40):
                users = range(b * 100, (b + 1) * 100)
                ack = await client.ingest([identify(f"p{n}", bio=f"{n:06}" * 300) for n in users])
                assert ack.accepted == 100
            async with grpc.aio.insecure_channel(live.target) as channel:
                call = backup_pb2_grpc.BackupServiceStub(channel).Backup(backup_pb2.BackupRequest())
                first = await call.read()
                assert isinstance(first, backup_pb2.BackupChunk)
                assert first.info.size_bytes > 3 * CHUNK_BYTES
                assert len(first.data) == CHUNK_BYTES
                (temporary,) = folder.glob("live.db.backup-*.tmp")  # next to the database
                assert stat.S_IMODE(temporary.stat().st_mode) == 0o600
                call.cancel()
            deadline = time.monotonic() + 10
            while temporary.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert not temporary.exists()
            # The server is unharmed: the next backup is whole.
            info = await client.backup(tmp_path / "after.db")
            assert info.size_bytes == (tmp_path / "after.db").stat().st_size
        assert live.stop() == 0
    assert sorted(p.name for p in folder.iterdir() if ".backup-" in p.name) == []


async def test_a_copy_abandoned_while_it_is_taken_is_deleted_once_done(
    server: JourneysServer, client: JourneysClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process, so that the copy can be held mid-way: the caller goes away while the
    worker thread is copying; the thread, which cannot be stopped, deletes its file."""
    from journeys_server.services import backup as service

    hold, held, copied, discarded = (threading.Event() for _ in range(4))
    made: list[Path] = []

    def slow_copy(source: str, target: Path) -> DatabaseCopy:
        held.set()
        assert hold.wait(30)
        taken = backup_database(source, target)
        made.append(Path(taken.path))
        assert Path(taken.path).exists()
        copied.set()
        return taken

    discard = service._Copy.discard

    def noted_discard(self: service._Copy) -> None:
        discard(self)
        discarded.set()

    monkeypatch.setattr(service, "backup_database", slow_copy)
    monkeypatch.setattr(service._Copy, "discard", noted_discard)
    target = Path(server.settings.db_path).with_name("saved.db")
    saving = asyncio.create_task(client.backup(target))
    assert await asyncio.to_thread(held.wait, 30)
    saving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await saving
    assert await asyncio.to_thread(discarded.wait, 30)  # the server saw the caller go
    hold.set()
    assert await asyncio.to_thread(copied.wait, 30)
    deadline = time.monotonic() + 10
    while made[0].exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not made[0].exists()
    assert not target.exists()
    assert not target.with_name("saved.db.partial").exists()
