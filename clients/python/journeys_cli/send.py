"""``journeys send``: one Segment message from options, or a file of JSON lines."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import click
from journeys_client import JourneysClient, MessageProblem, segment_message

from journeys_cli.context import fail, with_client
from journeys_cli.output import plural

__all__ = ["send"]

_TYPES = ("track", "identify", "page", "screen", "group", "alias")


def _value(text: str) -> Any:
    """A JSON value when the text is one (``9.99``, ``true``, ``[1,2]``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _fields(option: str, items: tuple[str, ...]) -> dict[str, Any] | None:
    """``-p '{"a": 1}'`` (a JSON object) or ``-p a=1 -p b=x`` (repeated), merged in order."""
    if not items:
        return None
    merged: dict[str, Any] = {}
    for item in items:
        if item.lstrip().startswith("{"):
            try:
                value = json.loads(item)
            except ValueError as err:
                raise click.BadParameter(f"not a JSON object: {err}", param_hint=option) from None
            if not isinstance(value, dict):
                raise click.BadParameter("not a JSON object", param_hint=option)
            merged.update(value)
            continue
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(
                f"{item!r} is neither KEY=VALUE nor a JSON object", param_hint=option
            )
        merged[key] = _value(text)
    return merged


def _one_message(
    kind: str,
    name: str | None,
    *,
    user_id: str | None,
    anonymous_id: str | None,
    properties: dict[str, Any] | None,
    traits: dict[str, Any] | None,
    context: dict[str, Any] | None,
    timestamp: str | None,
    message_id: str | None,
    previous_id: str | None,
    group_id: str | None,
) -> dict[str, Any]:
    if kind == "track" and not name:
        raise click.UsageError('name the event: journeys send track "Order Completed" -u USER')
    if kind in ("identify", "alias", "group") and name:
        raise click.UsageError(f"{kind} takes no name (got {name!r})")
    if kind == "alias" and not previous_id:
        raise click.UsageError("alias needs --previous-id (the id being merged away)")
    if kind == "group" and not group_id:
        raise click.UsageError("group needs --group-id")
    if not user_id and not anonymous_id:
        raise click.UsageError("give --user-id or --anonymous-id (or both)")
    if message_id == "":
        raise click.BadParameter("must not be empty", param_hint="--message-id")
    if timestamp is not None:
        try:
            datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(
                f"{timestamp!r} is not an ISO 8601 instant", param_hint="--timestamp"
            ) from None
    raw: dict[str, Any] = {"type": kind}
    optional = {
        "messageId": message_id,
        "userId": user_id,
        "anonymousId": anonymous_id,
        "event" if kind == "track" else "name": name,
        "previousId": previous_id,
        "groupId": group_id,
        "properties": properties,
        "traits": traits,
        "context": context,
        "timestamp": timestamp,
    }
    raw.update({k: v for k, v in optional.items() if v is not None})
    try:
        segment_message(raw)
    except (ValueError, TypeError, OverflowError) as err:
        raise click.UsageError(f"the message cannot be sent: {err}") from None
    return raw


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line; stdin is read once and kept."""
    if path == "-":
        lines: Iterable[str] = sys.stdin.read().splitlines()
        yield from ((n, line) for n, line in enumerate(lines, 1) if line.strip())
        return
    try:
        with open(path, encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                if line.strip():
                    yield number, line
    except (OSError, UnicodeDecodeError) as err:
        fail(f"cannot read {path}: {err}")


def _message(path: str, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as err:
        fail(f"{path}:{number}: not JSON ({err}); nothing was sent")
    if not isinstance(value, dict):
        fail(f"{path}:{number}: a message is a JSON object; nothing was sent")
    try:
        segment_message(value)
    except (ValueError, TypeError, OverflowError) as err:
        fail(f"{path}:{number}: {err}; nothing was sent")
    return value


def _problem_text(problem: MessageProblem) -> str:
    prefix = f"messages[{problem.index}]"
    parts = []
    for violation in problem.problems:
        field = violation.field
        # The server names fields within its batch; the line number says where.
        field = field.split(".", 1)[1] if field.startswith("messages[") and "." in field else ""
        parts.append(f"{field}: {violation.description}" if field else violation.description)
    return "; ".join(parts) or prefix


@click.command()
@click.argument("kind", required=False, type=click.Choice(_TYPES), metavar="[TYPE]")
@click.argument("name", required=False)
@click.option("-f", "--file", "path", help="JSON lines, one Segment message per line ('-': stdin).")
@click.option("-u", "--user-id", help="The user id.")
@click.option("-a", "--anonymous-id", help="The anonymous id.")
@click.option("-p", "--property", "properties", multiple=True, help="KEY=VALUE or a JSON object.")
@click.option("-t", "--trait", "traits", multiple=True, help="KEY=VALUE or a JSON object.")
@click.option("--context", "contexts", multiple=True, help="KEY=VALUE or a JSON object.")
@click.option("--timestamp", help="When it happened (ISO 8601; default: when received).")
@click.option("--message-id", help="Its id (default: a new UUID); resending it is a no-op.")
@click.option("--previous-id", help="alias: the id merged into --user-id.")
@click.option("--group-id", help="group: the group's id.")
@click.option(
    "--batch-size", default=500, show_default=True, type=click.IntRange(1, 2500), help="-f only."
)
@with_client
async def send(
    client: JourneysClient,
    kind: str | None,
    name: str | None,
    path: str | None,
    user_id: str | None,
    anonymous_id: str | None,
    properties: tuple[str, ...],
    traits: tuple[str, ...],
    contexts: tuple[str, ...],
    timestamp: str | None,
    message_id: str | None,
    previous_id: str | None,
    group_id: str | None,
    batch_size: int,
) -> None:
    """Send a Segment message (track, identify, page, screen, group, alias), or a file of them.

    VALUEs of -p/-t/--context are JSON when they parse as JSON (9.99, true,
    [1,2], "quoted") and text otherwise. With -f, every line is checked as JSON
    before anything is sent; the server then accepts the good messages and
    reports each refused one by line (exit status 1 when any was refused).

    \b
    Example:
      journeys send identify -u u1 -t email=ada@example.com -t plan=pro
      journeys send track "Product Added" -u u1 -p price=9.99 -p sku=A-1
      journeys send alias -u u1 --previous-id anon-7
      journeys send -f events.jsonl
    """
    if path is not None:
        if kind is not None:
            raise click.UsageError("give either a TYPE or --file, not both")
        given = [
            option
            for option, value in (
                ("--user-id", user_id), ("--anonymous-id", anonymous_id),
                ("--property", properties), ("--trait", traits), ("--context", contexts),
                ("--timestamp", timestamp), ("--message-id", message_id),
                ("--previous-id", previous_id), ("--group-id", group_id),
            )
            if value
        ]  # fmt: skip
        if given:
            raise click.UsageError(f"{given[0]} describes one message; with --file, lines do")
        await _send_file(client, path, batch_size)
        return
    if kind is None:
        raise click.UsageError("give a TYPE (track, identify, ...) or --file")
    raw = _one_message(
        kind,
        name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        properties=_fields("--property", properties),
        traits=_fields("--trait", traits),
        context=_fields("--context", contexts),
        timestamp=timestamp,
        message_id=message_id,
        previous_id=previous_id,
        group_id=group_id,
    )
    ack = await client.ingest([raw])
    if ack.errors:
        problems = "; ".join(f"{p.field}: {p.message}" for p in ack.errors[0].problems)
        fail(f"the server refused the message: {problems}")
    if ack.duplicates:
        click.echo("duplicate: a message with this id was already received; nothing changed")
    else:
        click.echo(f"accepted (log position {ack.positions[0]})")


async def _send_file(client: JourneysClient, path: str, batch_size: int) -> None:
    # Two passes: every line is checked before the first is sent, and a large
    # file is never held in memory (stdin, a pipe or a FIFO is: it can be read once).
    once = path == "-" or not os.path.isfile(path)  # noqa: ASYNC240 - reading it blocks too
    source: Iterable[tuple[int, str]] = list(_lines(path)) if once else _lines(path)
    numbers = []
    for number, line in source:
        _message(path, number, line)
        numbers.append(number)

    def messages() -> Iterator[dict[str, Any]]:
        for number, line in source if once else _lines(path):
            yield _message(path, number, line)

    report = await client.send(messages(), batch_size=batch_size)
    for problem in report.rejected:
        click.echo(f"{path}:{numbers[problem.index]}: {_problem_text(problem)}", err=True)
    click.echo(
        f"sent {plural(len(numbers), 'message')} in {plural(report.batches, 'batch', 'batches')}: "
        f"{report.accepted} accepted, {report.duplicates} duplicates, "
        f"{len(report.rejected)} refused"
    )
    if report.rejected:
        sys.exit(1)
