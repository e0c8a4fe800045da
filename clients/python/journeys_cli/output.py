"""Printing results: human-readable tables by default, or JSON or YAML."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

__all__ = ["EPOCH", "FORMATS", "emit", "instant_text", "output_option", "plural", "table"]

FORMATS = ("table", "json", "yaml")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


F = TypeVar("F", bound=Callable[..., Any])


def output_option(default: str = "table") -> Callable[[F], F]:
    """The ``-o/--output`` option every read verb takes."""
    return click.option(
        "-o",
        "--output",
        "fmt",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help="table (for people), json or yaml (for programs).",
    )


def instant_ms(text: str) -> int:
    """An ISO 8601 instant (UTC when it has no offset) in epoch milliseconds, exactly.

    Raises:
        ValueError: not an ISO 8601 date or date-time.
    """
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - EPOCH) // timedelta(milliseconds=1)


def instant_text(ms: int | Timestamp | None) -> str:
    """An instant as ISO 8601 with milliseconds and Z, as outputs carry them; ``""``
    for None or an unset timestamp."""
    if isinstance(ms, Timestamp):
        ms = ms.ToMilliseconds() if ms.seconds or ms.nanos else None
    if ms is None:
        return ""
    instant = EPOCH + timedelta(milliseconds=ms)
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plural(count: int, noun: str, nouns: str = "") -> str:
    """``1 message``, ``2 messages`` (``nouns`` for plurals that do not add s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {nouns or noun + 's'}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned under upper-case headers; ``(none)`` for no rows."""
    if not rows:
        return "(none)"
    cells = [[str(h).upper() for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def emit(
    fmt: str,
    data: Any,
    *,
    headers: Sequence[str] = (),
    rows: Sequence[Sequence[object]] = (),
) -> None:
    """Prints ``data`` as JSON or YAML, or ``rows`` as a table."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif fmt == "yaml":
        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())
    else:
        click.echo(table(headers, rows))
