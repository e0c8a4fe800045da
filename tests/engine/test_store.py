"""The SQLite file: persistence across reopen, schema version, bad files."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from journeys_engine import Engine, StorageError
from journeys_engine.model import DefinitionKind, Journey
from journeys_engine.store import SCHEMA_VERSION
from journeys_engine.testing import FakeClock
from tests.helpers.builders import add_destination, journey


async def test_everything_survives_a_reopen(db_path: Path, clock: FakeClock) -> None:
    async with await Engine.open(db_path, clock=clock) as engine:
        await engine.spaces.create("acme")
        await add_destination(engine, space="acme")
        saved = (await engine.journeys.create("acme", journey(journey_id="j"))).journey
    async with await Engine.open(db_path, clock=clock) as engine:
        assert [s.id for s in (await engine.spaces.list()).items] == ["default", "acme"]
        assert await engine.journeys.get("acme", "j") == saved
        assert len((await engine.definitions.list("acme", DefinitionKind.DESTINATION)).items) == 1


async def test_the_database_is_created_owner_only(db_path: Path, clock: FakeClock) -> None:
    async with await Engine.open(db_path, clock=clock):
        pass
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600


async def test_schema_version_is_recorded(db_path: Path, clock: FakeClock) -> None:
    async with await Engine.open(db_path, clock=clock):
        pass
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_newer_schema_is_refused_untouched(db_path: Path, clock: FakeClock) -> None:
    async with await Engine.open(db_path, clock=clock):
        pass
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    before = db_path.read_bytes()
    with pytest.raises(StorageError, match="newer than this server understands"):
        await Engine.open(db_path, clock=clock)
    assert db_path.read_bytes() == before


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(StorageError, match="cannot be used"):
        await Engine.open(path, clock=clock)


async def test_an_unwritable_location_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    with pytest.raises(StorageError, match="cannot create database"):
        await Engine.open(tmp_path / "missing-folder" / "j.db", clock=clock)


async def test_manual_clock_time_persists(db_path: Path) -> None:
    from journeys_engine import EngineSettings, ManualClock

    async with await Engine.open(db_path, settings=EngineSettings(manual_clock=True)) as engine:
        assert isinstance(engine.clock, ManualClock)
        first = engine.clock.now_ms()
    async with await Engine.open(db_path, settings=EngineSettings(manual_clock=True)) as engine:
        assert engine.clock.now_ms() == first


def test_stored_journeys_round_trip_through_the_codec() -> None:
    from journeys_engine.store.codec import decode_journey, encode_journey

    original: Journey = journey(journey_id="j")
    assert decode_journey(encode_journey(original)) == original
