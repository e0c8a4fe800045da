"""Printing results: human-readable tables by default, or JSON or YAML."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
import yaml

__all__ = ["FORMATS", "emit", "table"]

FORMATS = ("table", "json", "yaml")


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
