"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import ServerProcess


@pytest.fixture
def manual(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real server process on a fresh database, with the manual clock."""
    with ServerProcess(tmp_path / "journeys.db", "--manual-clock") as server:
        yield server
