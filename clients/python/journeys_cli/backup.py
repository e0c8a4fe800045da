"""``journeys backup``: save a consistent copy of a running server's database."""

from __future__ import annotations

import os

import click
from journeys.v1 import backup_pb2

from journeys_cli.context import Target, fail, run

__all__ = ["backup", "size_text"]


def size_text(size: int) -> str:
    """A size for people, in decimal units: ``512 B``, ``98.3 kB``, ``12.3 MB``."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


@click.command()
@click.option(
    "--to",
    "path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The file to save the copy to.",
)
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
@click.pass_obj
def backup(target: Target, path: str, force: bool) -> None:
    """Save a consistent copy of the server's database while it keeps running.

    The copy is one instant's state, every message acknowledged before the
    command began included. It is written to FILE.partial and renamed to FILE
    once complete and checked, so FILE is never half-written. Start a server on
    it with `journeys serve --db FILE`.

    \b
    Example:
      journeys backup --to journeys-backup.db
      journeys backup --to /backups/journeys.db --force
    """
    if not force and os.path.lexists(path):
        fail(f"{path} already exists; use --force to replace it")

    async def body() -> backup_pb2.BackupInfo:
        async with target.client() as client:
            return await client.backup(path, overwrite=force)

    info = run(body(), target)
    click.echo(f"backed up {size_text(info.size_bytes)} (schema {info.schema_version}) to {path}")
