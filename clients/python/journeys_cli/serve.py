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
@click.option(
    "--suppression-period",
    default=format_duration(_SERVE.suppression_ms),
    show_default=True,
    callback=_duration_ms,
    metavar="DURATION",
    help="How long a deleted profile's ids stay suppressed (journeys profile delete --suppress).",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Admit every call without a token (local trials only; prints a warning).",
)
@click.option(
    "--max-streams-per-token",
    default=_SERVE.max_streams_per_token,
    show_default=True,
    type=click.IntRange(1),
    help="Streaming calls (ingest streams, subscriptions, watches) one token may have open.",
)
@click.option(
    "--max-concurrent-calls",
    default=_SERVE.max_concurrent_calls,
    show_default=True,
    type=click.IntRange(1),
    help="Calls of every kind run at once, open streams included; more are refused.",
)
@click.option(
    "--max-receive-message-bytes",
    default=_SERVE.max_receive_message_bytes,
    show_default=True,
    type=click.IntRange(1024 * 1024),  # above the largest ingest batch (500 KB)
    help="Largest request message taken; larger ones are refused undecoded.",
)
@click.option(
    "--max-send-message-bytes",
    default=_SERVE.max_send_message_bytes,
    show_default=True,
    type=click.IntRange(2 * 1024 * 1024),  # a backup chunk is 1 MiB and a little more
    help="Largest response message sent; a call that would send more fails.",
)
@click.option(
    "--max-ingest-messages",
    default=_SERVE.max_ingest_messages,
    show_default=True,
    type=click.IntRange(1),
    help="Ingested messages taken in at once; further stream batches wait their turn.",
)
@click.option(
    "--max-ingest-waiting",
    default=_SERVE.max_ingest_waiting,
    show_default=True,
    type=click.IntRange(0),
    help="Messages of unary Ingest calls that may wait; a call past it is refused (retry).",
)
@click.option(
    "--stream-window-bytes",
    default=_SERVE.stream_window_bytes,
    show_default=True,
    type=click.IntRange(16 * 1024),
    help="Request-stream bytes taken ahead of the server's reading (HTTP/2 flow control).",
)
@click.option(
    "--max-connections",
    default=_SERVE.max_connections,
    show_default=True,
    type=click.IntRange(1),
    help="Client connections open at once; more are closed as they arrive.",
)
@click.option(
    "--connection-idle",
    default=format_duration(_SERVE.connection_idle_ms),
    show_default=True,
    callback=_duration_ms,
    metavar="DURATION",
    help="A connection without a call this long is closed (clients reconnect by themselves).",
)
@click.option(
    "--keepalive",
    default=format_duration(_SERVE.keepalive_ms),
    show_default=True,
    callback=_duration_ms,
    metavar="DURATION",
    help="Ping a quiet connection after this long; one that does not answer in 20s is closed.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False),
    help="Serve TLS with this PEM certificate chain (with --tls-key).",
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False), help="The PEM private key of --tls-cert."
)
@click.option(
    "--tls-client-ca",
    type=click.Path(dir_okay=False),
    help="Require client certificates signed by the CA certificates in this PEM file (mutual TLS).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: a free port; default off).",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Segment-compatible HTTP ingestion (POST /v1/track, /v1/batch, ...) on "
    "this port; the write key is an ingest token of a space (0: a free port; default off).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=_SERVE.log_format,
    show_default=True,
    help="Log lines as text or as JSON objects (each with the call's request id).",
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
    suppression_period: int,
    insecure_no_auth: bool,
    max_streams_per_token: int,
    max_concurrent_calls: int,
    max_receive_message_bytes: int,
    max_send_message_bytes: int,
    max_ingest_messages: int,
    max_ingest_waiting: int,
    stream_window_bytes: int,
    max_connections: int,
    connection_idle: int,
    keepalive: int,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    metrics_port: int | None,
    http_port: int | None,
    log_format: str,
) -> None:
    """Run the server on an embedded SQLite database until SIGINT or SIGTERM.

    Calls need an access token: create the first admin token with
    `journeys token create --db FILE --all-spaces --role admin`. A database
    without tokens refuses to start unless --insecure-no-auth is given.

    \b
    Example:
      journeys serve --db ./journeys.db --port 50051
      journeys serve --tls-cert server.pem --tls-key server.key
      journeys serve --insecure-no-auth --manual-clock     # a local trial
      journeys serve --metrics-port 9464 --log-format json
      journeys serve --http-port 8080      # Segment's HTTP API, for its libraries
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
        suppression_ms=suppression_period,
        insecure_no_auth=insecure_no_auth,
        max_streams_per_token=max_streams_per_token,
        max_concurrent_calls=max_concurrent_calls,
        max_receive_message_bytes=max_receive_message_bytes,
        max_send_message_bytes=max_send_message_bytes,
        max_ingest_messages=max_ingest_messages,
        max_ingest_waiting=max_ingest_waiting,
        stream_window_bytes=stream_window_bytes,
        max_connections=max_connections,
        connection_idle_ms=connection_idle,
        keepalive_ms=keepalive,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        metrics_port=metrics_port,
        http_port=http_port,
        log_format=log_format,
        limits=dataclasses.replace(
            _SERVE.limits,
            max_live_journeys=max_live_journeys,
            outbox_retention_ms=outbox_retention,
            dedup_window_ms=dedup_window,
        ),
    )
    sys.exit(run(settings))
