"""The historical entry's progress line: a bar, counts, rate and time left."""

from __future__ import annotations

from journeys.v1 import operation_pb2
from journeys_cli.history import progress_line


def _op(**fields: object) -> operation_pb2.Operation:
    return operation_pb2.Operation(state=operation_pb2.OPERATION_STATE_RUNNING, **fields)  # type: ignore[arg-type]


def test_a_running_operation_shows_its_rate_and_time_left() -> None:
    line = progress_line(
        _op(profiles_total=10_000, profiles_scanned=2_500, profiles_entered=40,
            profiles_per_second=500.0)
    )  # fmt: skip
    assert line == (
        "[######------------------]  25% 2,500/10,000 profiles · 500 profiles/s · ETA 15s "
        "· 40 entered"
    )


def test_long_waits_read_in_minutes_and_hours() -> None:
    minutes = progress_line(_op(profiles_total=100_000, profiles_per_second=1_000.0))
    assert "ETA 1m40s" in minutes
    hours = progress_line(_op(profiles_total=10_000_000, profiles_per_second=1_000.0))
    assert "ETA 2h46m" in hours


def test_an_ended_operation_shows_no_time_left_and_an_empty_space_is_done() -> None:
    ended = operation_pb2.Operation(
        state=operation_pb2.OPERATION_STATE_SUCCEEDED,
        profiles_total=4,
        profiles_scanned=4,
        profiles_per_second=8.0,
    )
    assert progress_line(ended) == (
        "[########################] 100% 4/4 profiles · 8 profiles/s · 0 entered"
    )
    assert progress_line(_op()).startswith("[########################] 100% 0/0 profiles")
