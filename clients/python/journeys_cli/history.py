"""``journeys publish``, ``journeys preview`` and ``journeys operation``: going live,
with or without the profiles that already qualify."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from google.protobuf import json_format
from journeys.v1 import operation_pb2
from journeys_client import JourneysClient

from journeys_cli.completion import complete_journey_ids
from journeys_cli.context import fail, with_client
from journeys_cli.output import emit, instant_text, output_option, plural

__all__ = ["operation", "preview", "progress_line", "publish"]

_STATES = {
    operation_pb2.OPERATION_STATE_RUNNING: "running",
    operation_pb2.OPERATION_STATE_SUCCEEDED: "succeeded",
    operation_pb2.OPERATION_STATE_CANCELLED: "cancelled",
    operation_pb2.OPERATION_STATE_FAILED: "failed",
}
_BAR = 24
_PREVIEW_TIMEOUT = 600.0  # seconds: a preview reads every stored profile's history


def _ended(op: operation_pb2.Operation) -> bool:
    return op.state != operation_pb2.OPERATION_STATE_RUNNING


def progress_line(op: operation_pb2.Operation) -> str:
    """One line of progress: a bar, counts, rate and time left."""
    total = max(op.profiles_total, op.profiles_scanned)
    done = 1.0 if total == 0 else op.profiles_scanned / total
    filled = round(done * _BAR)
    bar = "#" * filled + "-" * (_BAR - filled)
    line = f"[{bar}] {done:4.0%} {op.profiles_scanned:,}/{total:,} profiles"
    if op.profiles_per_second > 0:
        line += f" · {op.profiles_per_second:,.0f} profiles/s"
        if not _ended(op):
            left = (total - op.profiles_scanned) / op.profiles_per_second
            line += f" · ETA {_seconds(left)}"
    return line + f" · {op.profiles_entered:,} entered"


def _summary(op: operation_pb2.Operation) -> str:
    state = _STATES.get(op.state, "?")
    text = (
        f"historical entry {op.id} {state}: {plural(op.profiles_scanned, 'profile')} "
        f"looked at, {op.profiles_entered:,} entered, {plural(op.events_read, 'history event')} "
        "read"
    )
    if op.profiles_per_second > 0:
        text += f" ({op.profiles_per_second:,.0f} profiles/s)"
    return text + (f": {op.detail}" if op.detail else "")


def _seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


async def _follow(client: JourneysClient, operation_id: str) -> operation_pb2.Operation:
    """Shows the operation's progress on stderr until it ends (redrawn in place on a
    terminal, a line every second otherwise); returns it as it ended."""
    live = sys.stderr.isatty()
    shown = 0.0
    last: operation_pb2.Operation | None = None
    async for op in client.watch_operation(operation_id):
        last = op
        now = time.monotonic()
        if live:
            click.echo("\r" + progress_line(op) + "\x1b[K", nl=False, err=True)
        elif now - shown >= 1.0 or _ended(op):
            click.echo(progress_line(op), err=True)
            shown = now
    if live:
        click.echo(err=True)
    assert last is not None
    return last


@click.command()
@click.argument("journey_id", shell_complete=complete_journey_ids)
@click.option(
    "--no-wait",
    is_flag=True,
    help="Return at once; the historical entry goes on (see `journeys operation`).",
)
@with_client
async def publish(client: JourneysClient, journey_id: str, no_wait: bool) -> None:
    """Publish a draft: from now on users enter it.

    When its entry uses historical data, every stored profile whose history
    already matches the entry condition enters too, at the publish time. That
    runs in the server's background while messages keep flowing; the command
    shows its progress (with the rate and the time left) until it is done.
    Interrupting the command does not stop it.

    \b
    Example:
      journeys publish cart-abandonment
      journeys publish winback --no-wait
    """
    published = await client.publish_journey(journey_id)
    click.echo(f"journey/{published.journey.id} published")
    if not published.operation_id:
        return
    if no_wait:
        click.echo(
            f"historical entry {published.operation_id} started; follow it with "
            f"`journeys operation {published.operation_id} --watch`"
        )
        return
    op = await _follow(client, published.operation_id)
    click.echo(_summary(op))
    if op.state == operation_pb2.OPERATION_STATE_FAILED:
        fail(f"historical entry {op.id} failed: {op.detail}")


@click.command()
@click.argument("operation_id")
@click.option("--watch", is_flag=True, help="Show its progress until it ends.")
@output_option()
@with_client
async def operation(client: JourneysClient, operation_id: str, watch: bool, fmt: str) -> None:
    """Show a long-running operation (the historical entry a publish started).

    \b
    Example:
      journeys operation op_k3j9x0q2m1zz
      journeys operation op_k3j9x0q2m1zz --watch
    """
    op = await (_follow(client, operation_id) if watch else client.get_operation(operation_id))
    if fmt != "table":
        emit(fmt, _doc(op))
        return
    rows = [
        ("operation", op.id),
        ("journey", op.journey_id),
        ("state", _STATES.get(op.state, "?")),
        ("progress", progress_line(op)),
        ("history events read", f"{op.events_read:,}"),
        ("started", instant_text(op.start_time)),
        ("ended", instant_text(op.end_time)),
    ]
    if op.detail:
        rows.append(("detail", op.detail))
    width = max(len(name) for name, _ in rows)
    click.echo("\n".join(f"{name.ljust(width)}  {value}" for name, value in rows))


def _doc(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


@click.command()
@click.argument("journey_id", shell_complete=complete_journey_ids)
@click.option(
    "--limit",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="How many matching profiles to name.",
)
@output_option()
@with_client
async def preview(client: JourneysClient, journey_id: str, limit: int, fmt: str) -> None:
    """Count the stored profiles whose history matches a journey's entry now.

    Draft, published or paused journeys; the entry condition is evaluated over
    each profile's retained history, as publishing with historical data would.
    Nothing changes on the server.

    \b
    Example:
      journeys preview winback
      journeys preview winback --limit 100 -o json
    """
    client.timeout = max(client.timeout, _PREVIEW_TIMEOUT)
    found = await client.preview_entry(journey_id, limit=limit)
    if fmt != "table":
        emit(fmt, {**_doc(found), "profile_keys": list(found.profile_keys)})
        return
    click.echo(
        f"{found.matching:,} of {plural(found.scanned, 'profile')} match the entry of "
        f"{journey_id} now ({instant_text(found.time)})"
    )
    for key in found.profile_keys:
        click.echo(f"  {key}")
    if found.matching > len(found.profile_keys):
        click.echo(f"  … and {found.matching - len(found.profile_keys):,} more")
