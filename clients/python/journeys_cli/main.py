"""The ``journeys`` command line.

Every verb but ``serve`` talks to a running server through
:class:`journeys_client.JourneysClient`. Errors print the server's message and
field details and exit non-zero, without a traceback.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, ParamSpec, TypeVar

import click
import yaml
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from journeys_client import (
    DEFAULT_SERVER,
    DEFAULT_SPACE,
    InvalidArgumentError,
    JourneysClient,
    UnavailableError,
    dump_documents,
    load_file,
)
from journeys_client.files import STATUS_NAMES, Document, to_doc

from journeys_cli import tokens
from journeys_cli.apply import apply_documents
from journeys_cli.backup import backup
from journeys_cli.clock import clock
from journeys_cli.completion import complete_journey_ids, completion
from journeys_cli.context import Target, fail, with_client
from journeys_cli.forward import forward
from journeys_cli.history import operation, preview, publish
from journeys_cli.output import emit, output_option, table
from journeys_cli.reports import profile, stats, users
from journeys_cli.send import send
from journeys_cli.simulate import simulate
from journeys_cli.tail import tail

__all__ = ["cli", "main"]

P = ParamSpec("P")
T = TypeVar("T")

_KINDS = ("journey", "audience", "computed-trait", "destination")


def _time(ts: Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return ""
    return ts.ToJsonString()


class _Verbs(click.Group):
    """The verbs, some loaded on first use: ``serve`` imports the server and the
    engine, which no other verb needs."""

    _LAZY: ClassVar[dict[str, str]] = {"serve": "journeys_cli.serve"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self._LAZY.get(cmd_name)
        if module is None:
            return super().get_command(ctx, cmd_name)
        command = getattr(importlib.import_module(module), cmd_name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_Verbs, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--server",
    envvar="JOURNEYS_SERVER",
    default=DEFAULT_SERVER,
    show_default=True,
    help="host:port of the journeys server (env JOURNEYS_SERVER).",
)
@click.option(
    "--space",
    envvar="JOURNEYS_SPACE",
    default=DEFAULT_SPACE,
    show_default=True,
    help="The space to work in (env JOURNEYS_SPACE).",
)
@click.option(
    "--token",
    envvar="JOURNEYS_TOKEN",
    help="The access token sent with every call (env JOURNEYS_TOKEN).",
)
@click.option(
    "--tls-ca",
    envvar="JOURNEYS_TLS_CA",
    type=click.Path(dir_okay=False),
    help="Connect over TLS, trusting the CA certificates in this PEM file (env JOURNEYS_TLS_CA).",
)
@click.option(
    "--tls-cert",
    envvar="JOURNEYS_TLS_CERT",
    type=click.Path(dir_okay=False),
    help="A client certificate (PEM) for mutual TLS (env JOURNEYS_TLS_CERT).",
)
@click.option(
    "--tls-key",
    envvar="JOURNEYS_TLS_KEY",
    type=click.Path(dir_okay=False),
    help="The client certificate's private key (PEM) (env JOURNEYS_TLS_KEY).",
)
@click.version_option(package_name="journeys-engine")
@click.pass_context
def cli(
    ctx: click.Context,
    server: str,
    space: str,
    token: str | None,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Run and manage a journeys engine: customer journeys in real time.

    \b
    Example:
      journeys serve --db ./journeys.db
      journeys apply -f examples/cart-abandonment.yaml
      journeys publish cart-abandonment
    """
    ctx.obj = Target(server, space, token, tls_ca, tls_cert, tls_key)


@cli.command()
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="A journey file (YAML or JSON); repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Validate on the server; change nothing.")
@with_client
async def apply(client: JourneysClient, files: tuple[str, ...], dry_run: bool) -> None:
    """Create or update the journeys and definitions a file describes.

    Definitions are applied before journeys. Prints one line per document:
    created, updated (with the fields that changed) or unchanged.

    \b
    Example:
      journeys apply -f examples/cart-abandonment.yaml
    """
    docs = [doc for path in files for doc in load_file(path)]
    await apply_documents(client, docs, dry_run=dry_run, report=lambda c: click.echo(str(c)))


@cli.command()
@click.argument("kind", type=click.Choice(_KINDS))
@click.argument("resource_id")
@output_option(default="yaml")
@with_client
async def get(client: JourneysClient, kind: str, resource_id: str, fmt: str) -> None:
    """Print one journey or definition as a journey-file document.

    The YAML (the default) or JSON can be edited and applied again; a table
    summarises a journey's steps or a definition's fields.

    \b
    Example:
      journeys get journey cart-abandonment > cart.yaml
      journeys get journey cart-abandonment -o table
    """
    getters: dict[str, Callable[[str], Awaitable[Document]]] = {
        "journey": client.get_journey,
        "audience": client.get_audience,
        "computed-trait": client.get_computed_trait,
        "destination": client.get_destination,
    }
    found = await getters[kind](resource_id)
    doc = to_doc(found, include_output=True)
    if fmt == "json":
        emit("json", doc)
    elif fmt == "yaml":
        click.echo(dump_documents([found], include_output=True).rstrip())
    elif kind == "journey":
        rows = [(s["id"], s["name"], s["type"], _step_summary(s)) for s in doc["steps"]]
        click.echo(f"{doc['name']} ({doc['id']}) · {doc.get('status', 'draft')}")
        click.echo(table(("step", "name", "type", "holds"), rows))
    else:
        emit("table", doc, headers=("field", "value"), rows=list(doc.items()))


def _step_summary(step: dict[str, Any]) -> str:
    """What a step holds, in a few words: its condition, duration, branches or destinations."""
    parts = [
        str(step[key])
        for key in ("condition", "duration", "destinations", "key")
        if step.get(key) not in (None, "", [])
    ]
    parts += [f"{b['name']}: {b['condition']}" for b in step.get("branches", ())]
    return "; ".join(parts)


@cli.command(name="list")
@click.argument(
    "what",
    type=click.Choice(("spaces", "journeys", "audiences", "computed-traits", "destinations")),
)
@output_option()
@with_client
async def list_(client: JourneysClient, what: str, fmt: str) -> None:
    """List the spaces, or the journeys or definitions of the space.

    \b
    Example:
      journeys list journeys
      journeys --space acme list destinations -o json
    """
    if what == "spaces":
        spaces = await client.list_spaces()
        data = [
            {"id": s.id, "display_name": s.display_name, "create_time": _time(s.create_time)}
            for s in spaces
        ]
        rows = [(s["id"], s["display_name"], s["create_time"]) for s in data]
        emit(fmt, data, headers=("id", "name", "created"), rows=rows)
        return
    if what == "journeys":
        journeys = await client.list_journeys()
        emit(
            fmt,
            [to_doc(j, include_output=True) for j in journeys],
            headers=("id", "name", "status", "steps", "updated"),
            rows=[
                (j.id, j.name, STATUS_NAMES.get(j.status, "?"), len(j.steps), _time(j.update_time))
                for j in journeys
            ],
        )
        return
    if what == "audiences":
        audiences = await client.list_audiences()
        rows = [(a.id, a.name, a.condition.text) for a in audiences]
        emit(fmt, [to_doc(a) for a in audiences], headers=("id", "name", "condition"), rows=rows)
    elif what == "computed-traits":
        traits = await client.list_computed_traits()
        rows = [(t.id, t.name, t.expression.text) for t in traits]
        emit(fmt, [to_doc(t) for t in traits], headers=("id", "name", "expression"), rows=rows)
    else:
        destinations = await client.list_destinations()
        docs = [to_doc(d) for d in destinations]
        rows = [(d["id"], d["name"], d.get("type", "")) for d in docs]
        emit(fmt, docs, headers=("id", "name", "type"), rows=rows)


def _lifecycle(verb: str, past: str) -> click.Command:
    @click.argument("journey_id", shell_complete=complete_journey_ids)
    @with_client
    async def command(client: JourneysClient, journey_id: str) -> None:
        moves = {
            "pause": client.pause_journey,
            "resume": client.resume_journey,
            "archive": client.archive_journey,
        }
        journey = await moves[verb](journey_id)
        click.echo(f"journey/{journey.id} {past}")

    command.__doc__ = _LIFECYCLE_HELP[verb]
    return cli.command(name=verb)(command)


_LIFECYCLE_HELP = {
    "pause": "Pause a published journey: runs go on, nobody new enters.\n\n\b\nExample:\n"
    "  journeys pause cart-abandonment",
    "resume": "Resume a paused journey.\n\n\b\nExample:\n  journeys resume cart-abandonment",
    "archive": "Archive a published or paused journey: runs freeze, nothing is sent.\n\n"
    "\b\nExample:\n  journeys archive cart-abandonment",
}
for _verb, _past in (("pause", "paused"), ("resume", "resumed"), ("archive", "archived")):
    _lifecycle(_verb, _past)


@cli.command()
@click.argument("journey_id", shell_complete=complete_journey_ids)
@click.option("--id", "new_id", default="", help="Id for the copy (generated when omitted).")
@with_client
async def clone(client: JourneysClient, journey_id: str, new_id: str) -> None:
    """Copy a journey into a new draft named "Copy of NAME", with new ids and keys.

    \b
    Example:
      journeys clone cart-abandonment --id cart-abandonment-v2
    """
    copy = await client.clone_journey(journey_id, new_journey_id=new_id)
    click.echo(f"journey/{copy.id} created (clone of {journey_id})")


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="[KIND] ID")
@with_client
async def delete(client: JourneysClient, args: tuple[str, ...]) -> None:
    """Delete a journey (any status; nothing is sent), or a definition.

    KIND is journey (the default), audience, computed-trait or destination.

    \b
    Example:
      journeys delete cart-abandonment
      journeys delete destination braze
    """
    if len(args) == 1 and args[0] in _KINDS:
        raise click.UsageError(f"name the {args[0]} to delete: journeys delete {args[0]} ID")
    if len(args) == 1:
        kind, resource_id = "journey", args[0]
    elif len(args) == 2 and args[0] in _KINDS:
        kind, resource_id = args
    else:
        raise click.UsageError(f"expected [KIND] ID with KIND one of {', '.join(_KINDS)}")
    deleters = {
        "journey": client.delete_journey,
        "audience": client.delete_audience,
        "computed-trait": client.delete_computed_trait,
        "destination": client.delete_destination,
    }
    await deleters[kind](resource_id)
    click.echo(f"{kind}/{resource_id} deleted")


@cli.group()
def space() -> None:
    """Manage spaces (tenants)."""


@space.command(name="create")
@click.argument("space_id")
@click.option("--display-name", default="", help="A human-readable name.")
@with_client
async def space_create(client: JourneysClient, space_id: str, display_name: str) -> None:
    """Create a space.

    \b
    Example:
      journeys space create acme --display-name "Acme Inc."
    """
    created = await client.create_space(space_id, display_name)
    click.echo(f"space/{created.id} created")


@cli.group()
def condition() -> None:
    """Work with conditions (Segment's audience query language)."""


@condition.command(name="check")
@click.argument("text")
@click.option("--computed-trait", is_flag=True, help="Check a computed-trait expression instead.")
@output_option()
@click.pass_obj
def condition_check(target: Target, text: str, computed_trait: bool, fmt: str) -> None:
    """Check a condition: print its canonical text and its tree, or the error and where.

    \b
    Example:
      journeys condition check "event('Order Completed').within(7 days).count() >= 1"
    """

    async def body() -> Any:
        async with target.client() as client:
            return await client.check_condition(text, computed_trait=computed_trait)

    try:
        checked = asyncio.run(body())
    except InvalidArgumentError as err:
        click.echo(f"error: {_pointed(text, err)}", err=True)
        sys.exit(1)
    except UnavailableError as err:
        fail(f"cannot reach the journeys server at {target.server}: {err.message}")
    tree = checked.scalar if computed_trait else checked.tree
    data = {"text": checked.text, "tree": json_format.MessageToDict(tree)}
    if fmt == "table":  # the canonical text, then the tree
        click.echo(checked.text)
        click.echo(yaml.safe_dump(data["tree"], sort_keys=False, allow_unicode=True).rstrip())
    else:
        emit(fmt, data)


def _pointed(text: str, err: InvalidArgumentError) -> str:
    """The error with the offending line of the text and a caret under the column."""
    lines = [str(err)]
    for violation in err.field_violations:
        found = re.match(r"line (\d+), column (\d+): ", violation.description)
        if found:
            line, column = int(found.group(1)), int(found.group(2))
            source = text.splitlines()[line - 1] if line <= len(text.splitlines()) else ""
            lines += [f"    {source}", "    " + " " * (column - 1) + "^"]
    return "\n".join(lines)


for _command in (
    send,
    tail,
    forward,
    clock,
    stats,
    users,
    profile,
    backup,
    completion,
    simulate,
    publish,
    preview,
    operation,
    tokens.token,
):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``journeys`` console script."""
    cli(prog_name="journeys")
