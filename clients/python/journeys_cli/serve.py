"""``journeys serve``: the server on an embedded SQLite database.

Loaded only when the verb is used, so other verbs start without importing the
server and the engine.
"""

from __future__ import annotations

import dataclasses
import sys

import click
from journeys_client.durations import format_duration, parse_duration
from journeys_server.app import ServerSettings

__all__ = ["serve"]

_SERVE = ServerSettings()  # the defaults `journeys serve` shows


def _duration_ms(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """A duration option (7d, 12h, 90s) as milliseconds; more than zero."""
    try:
        ms = parse_duration(value)
    except ValueError as err:
        raise click.BadParameter(str(err), ctx, param) from None
    if ms <= 0:
        raise click.BadParameter(f"{value!r} must be more than zero", ctx, param)
    return ms


@click.command()
@click.option("--db", "db_path", default=_SERVE.db_path, show_default=True, help="SQLite file.")
@click.option("--host", default=_SERVE.host, show_default=True, help="Interface to listen on.")
@click.option("--port", default=_SERVE.port, show_default=True, type=click.IntRange(0, 65535))
@click.option("--manual-clock", is_flag=True, help="Time moves only when a client sets it.")
@click.option("--fsync", is_flag=True, help="Make every commit power-loss safe.")
@click.option(
    "--max-live-journeys",
    default=_SERVE.limits.max_live_journeys,
    show_default=True,
    type=click.IntRange(1),
    help="Published or paused journeys allowed per space.",
)
@click.option(
    "--outbox-retention",
    default=format_duration(_SERVE.limits.outbox_retention_ms),
    show_default=True,
    callback=_duration_ms,
    metavar="DURATION",
    help="How long unacknowledged output is kept.",
)
@click.option(
    "--dedup-window",
    default=format_duration(_SERVE.limits.dedup_window_ms),
    show_default=True,
    callback=_duration_ms,
    metavar="DURATION",
    help="How long a messageId is remembered to drop repeats.",
)
@click.option(
    "--subscriber-stall",
    default=_SERVE.subscriber_stall_seconds,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a subscriber may take over one call before it is disconnected.",
)
@click.option(
    "--passivate-after",
    default=format_duration(_SERVE.passivate_after_ms),
    show_default=True,
    callback=_duration_ms,
    metavar="DURATION",
    help="How long a profile stays in memory unused (it comes back from disk when needed).",
)
@click.option(
    "--timeline-retention",
    default=format_duration(_SERVE.timeline_retention_ms),
    show_default=True,
    callback=_duration_ms,
    metavar="DURATION",
    help="How long profile timeline entries are kept.",
)
@click.option(
    "--history-retention",
    default=format_duration(_SERVE.history_retention_ms),
    show_default=True,
    callback=_duration_ms,
    metavar="DURATION",
    help="How long each space's event history is kept (historical entry and preview read it).",
)
def serve(
    db_path: str,
    host: str,
    port: int,
    manual_clock: bool,
    fsync: bool,
    max_live_journeys: int,
    outbox_retention: int,
    dedup_window: int,
    subscriber_stall: float,
    passivate_after: int,
    timeline_retention: int,
    history_retention: int,
) -> None:
    """Run the server on an embedded SQLite database until SIGINT or SIGTERM.

    \b
    Example:
      journeys serve --db ./journeys.db --port 50051
    """
    from journeys_server import run

    settings = dataclasses.replace(
        _SERVE,
        db_path=db_path,
        host=host,
        port=port,
        manual_clock=manual_clock,
        fsync=fsync,
        subscriber_stall_seconds=subscriber_stall,
        passivate_after_ms=passivate_after,
        timeline_retention_ms=timeline_retention,
        history_retention_ms=history_retention,
        limits=dataclasses.replace(
            _SERVE.limits,
            max_live_journeys=max_live_journeys,
            outbox_retention_ms=outbox_retention,
            dedup_window_ms=dedup_window,
        ),
    )
    sys.exit(run(settings))
