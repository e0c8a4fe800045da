"""The server's garbage collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from journeys_server.collector import THRESHOLDS, tune_collector


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@pytest.mark.usefixtures("restored")
def test_tune_collector_freezes_what_exists_and_raises_the_thresholds() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    tune_collector()
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_freeze_count() > 0
