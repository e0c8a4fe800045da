"""``journeys forward``: a destination's calls POSTed to an HTTP endpoint, as a webhook."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import signal

import click
from journeys_client import JourneysClient

from journeys_cli.context import with_client

__all__ = ["forward"]

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
_RESERVED = "x-journeys-"


def _headers(values: tuple[str, ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition(":")
        name = name.strip()
        if not sep or not _HEADER_NAME.match(name):
            raise click.BadParameter(
                f"{value!r} is not 'Name: value'", param_hint="'-H' / '--header'"
            )
        if name.lower().startswith(_RESERVED):
            raise click.BadParameter(
                f"{name} is set by the forwarder itself", param_hint="'-H' / '--header'"
            )
        headers[name] = rest.strip()
    return headers


def _seconds(value: float | None, option: str) -> None:
    if value is not None and (math.isnan(value) or math.isinf(value)):
        raise click.BadParameter("must be a number of seconds", param_hint=option)


class _StderrLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"forward: {record.getMessage()}", err=True)


@click.command()
@click.argument("destination")
@click.option("--url", required=True, help="The http(s) URL each call is POSTed to.")
@click.option(
    "--consumer",
    default="forward",
    show_default=True,
    help="The subscription's consumer name; its cursor is how far delivery got.",
)
@click.option(
    "-H",
    "--header",
    "header_values",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="A header sent with every POST (repeatable), e.g. 'Authorization: Bearer …'.",
)
@click.option(
    "--window",
    type=click.IntRange(1, 10_000),
    default=16,
    show_default=True,
    help="Calls in flight at once, across users (one at a time per user).",
)
@click.option(
    "--timeout",
    "post_timeout",
    type=click.FloatRange(0, 3600, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds one POST may take before it counts as failed.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Attempts per call before stopping with an error, that call unacknowledged "
    "(0: retry forever).",
)
@click.option(
    "--backoff",
    type=click.FloatRange(0, 3600),
    default=0.5,
    show_default=True,
    help="Seconds before the first retry; each next wait doubles.",
)
@click.option(
    "--max-backoff",
    type=click.FloatRange(0, 86400),
    default=30.0,
    show_default=True,
    help="The longest wait between retries (a longer Retry-After is honoured, up to 5 min).",
)
@click.option(
    "--idle",
    type=click.FloatRange(0, 10**9, min_open=True),
    help="Stop once no call has come for this many seconds and every call read is delivered.",
)
@click.option(
    "--grace",
    type=click.FloatRange(0, 3600),
    default=10.0,
    show_default=True,
    help="On SIGINT/SIGTERM, seconds to let calls in flight finish (a second signal: none).",
)
@click.option("-v", "--verbose", is_flag=True, help="A line on stderr per delivery and retry.")
@with_client
async def forward(
    client: JourneysClient,
    destination: str,
    url: str,
    consumer: str,
    header_values: tuple[str, ...],
    window: int,
    post_timeout: float,
    max_attempts: int,
    backoff: float,
    max_backoff: float,
    idle: float | None,
    grace: float,
    verbose: bool,
) -> None:
    """POST a destination's calls to an HTTP endpoint, as a webhook destination.

    Each call's payload, the Segment-spec JSON, is the body of a POST to --url
    (Content-Type: application/json), with the --header values and
    X-Journeys-Destination, X-Journeys-Sequence, X-Journeys-Message-Id and
    X-Journeys-Attempt. One user's calls go one at a time, in order; other
    users' go alongside, up to --window in flight. A failure (no answer, or not
    2xx) is retried after 0.5 s, 1 s, 2 s … up to --max-backoff, with jitter, or
    after a 429/503's Retry-After; after --max-attempts the forwarder stops with
    an error and that call stays unacknowledged. A call is acknowledged only once
    it and every call before it got a 2xx, so a restart goes on where delivery
    stopped: delivery is at least once, drop repeats by X-Journeys-Message-Id.
    SIGINT/SIGTERM stop it cleanly; a summary goes to stderr.

    \b
    Example:
      journeys forward crm --url https://hooks.example.com/journeys \\
        -H 'Authorization: Bearer s3cr3t' --window 32
      journeys forward crm --url http://localhost:8080/ --idle 5 -v
    """
    from journeys_client.forwarding import Forwarder, RetryPolicy

    for value, option in ((idle, "--idle"), (backoff, "--backoff")):
        _seconds(value, option)
    headers = _headers(header_values)
    if max_backoff < backoff:
        raise click.BadParameter("must be at least --backoff", param_hint="--max-backoff")
    try:
        forwarder = Forwarder(
            client,
            destination,
            consumer,
            url,
            headers=headers,
            window=window,
            timeout=post_timeout,
            retry=RetryPolicy(
                initial=backoff, maximum=max_backoff, max_attempts=max_attempts or None
            ),
            idle=idle,
            grace=grace,
        )
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--url") from err

    log = logging.getLogger("journeys_client.forwarding")
    handler = _StderrLines()
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(sig, forwarder.stop)
    try:
        await forwarder.run()
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
        log.removeHandler(handler)
        log.propagate = True
        summary = forwarder.stats
        click.echo(
            f"forwarded {summary.delivered} call{'s' if summary.delivered != 1 else ''} "
            f"to {url} ({summary.failed_attempts} failed attempts, "
            f"{summary.gap_calls} gone before delivery, {summary.abandoned} left for "
            f"the next run); acknowledged up to {summary.acked}",
            err=True,
        )
