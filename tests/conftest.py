"""Shared fixtures: a fake clock, an engine on a temporary database, a live server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from journeys_client import JourneysClient
from journeys_server import JourneysServer, ServerSettings

from journeys_engine import Engine
from journeys_engine.model import Limits
from journeys_engine.testing import FakeClock

# HYPOTHESIS_PROFILE=thorough runs 2000 examples per property instead of CI's 60.
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None)


START = "2026-03-02T09:00:00Z"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock.at(START)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "journeys.db"


@pytest.fixture
async def engine(db_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    async with await Engine.open(db_path, clock=clock) as opened:
        yield opened


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
async def server(db_path: Path, clock: FakeClock, limits: Limits) -> AsyncIterator[JourneysServer]:
    """A real gRPC server on a free port, in this process."""
    settings = ServerSettings(
        db_path=str(db_path), host="127.0.0.1", port=0, limits=limits, insecure_no_auth=True
    )
    async with await JourneysServer.start(settings, clock=clock) as running:
        yield running


@pytest.fixture
async def client(server: JourneysServer) -> AsyncIterator[JourneysClient]:
    async with JourneysClient(f"127.0.0.1:{server.port}", timeout=10) as connected:
        yield connected


settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
