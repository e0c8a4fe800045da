"""``journeys clock``: read, advance and set a manual-clock server's time."""

from __future__ import annotations

import click
from journeys_client import JourneysClient
from journeys_client.durations import parse_duration

from journeys_cli.context import with_client
from journeys_cli.output import emit, instant_ms, instant_text, output_option

__all__ = ["clock"]

_MAX_ADVANCE_MS = 10_000 * 366 * 86_400_000


def _instant(text: str) -> int:
    try:
        return instant_ms(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 instant such as 2026-01-05T09:00:00Z",
            param_hint="INSTANT",
        ) from None


@click.group()
def clock() -> None:
    """Read and move the clock of a server started with --manual-clock.

    Moving it fires every timer due on the way, each at its own instant, and
    returns once all of it is applied. It never goes backwards.
    """


@clock.command(name="get")
@output_option()
@with_client
async def clock_get(client: JourneysClient, fmt: str) -> None:
    """Print the clock's time.

    \b
    Example:
      journeys clock get
      journeys clock get -o json
    """
    now = instant_text(await client.get_time())
    if fmt == "table":
        click.echo(now)
    else:
        emit(fmt, {"now": now})


@clock.command(name="advance")
@click.argument("duration")
@with_client
async def clock_advance(client: JourneysClient, duration: str) -> None:
    """Move the clock forward by DURATION (1d, 2h30m, 90s, 1w) and print the new time.

    \b
    Example:
      journeys clock advance 1d
    """
    try:
        ms = parse_duration(duration)
        if ms > _MAX_ADVANCE_MS:
            raise ValueError(f"{duration!r} is more than 10,000 years")
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="DURATION") from None
    click.echo(instant_text(await client.advance_time(ms)))


@clock.command(name="set")
@click.argument("instant")
@with_client
async def clock_set(client: JourneysClient, instant: str) -> None:
    """Move the clock to INSTANT (ISO 8601; UTC when it has no offset) and print it.

    \b
    Example:
      journeys clock set 2026-01-05T09:00:00Z
    """
    click.echo(instant_text(await client.set_time(_instant(instant))))
