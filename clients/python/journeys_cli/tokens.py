"""``journeys token``: access tokens, through the server or offline on its database.

With ``--db`` the command works on a database file directly, without a server:
that is how the first admin token is made before the server can be called
(``journeys serve`` refuses to start on a database without tokens), and how an
operator recovers when every admin token is lost.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from journeys.v1 import token_pb2

from journeys_cli.context import Target, fail, run
from journeys_cli.output import emit, instant_text, output_option

__all__ = ["token"]

T = TypeVar("T")

ALL_SPACES = "*"
_ROLES = {
    "ingest": token_pb2.TOKEN_ROLE_INGEST,
    "subscribe": token_pb2.TOKEN_ROLE_SUBSCRIBE,
    "admin": token_pb2.TOKEN_ROLE_ADMIN,
}
_ROLE_NAMES = {value: name for name, value in _ROLES.items()}
_HEADERS = ("ID", "SPACE", "ROLE", "NAME", "DESTINATIONS", "CREATED")

Row = dict[str, Any]


def _db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False),
        help="Work on this database file directly, without a server.",
    )(fn)


def _all_spaces_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--all-spaces", is_flag=True, help="Every space ('*') instead of the selected one."
    )(fn)


@click.group()
def token() -> None:
    """Create, list and revoke access tokens.

    Every call to the server carries a token (--token or JOURNEYS_TOKEN). A
    token belongs to one space (or to every space) and has one role: ingest
    (send messages), subscribe (read destination streams) or admin (everything
    in its space). The secret is printed once, on creation; the server keeps
    only its hash.

    \b
    Example:
      journeys token create --db ./journeys.db --all-spaces --role admin --name ops
      journeys token create --role ingest --name web-collector
      journeys token create --role subscribe --destination email --name mailer
      journeys token list
      journeys token revoke tok_k3j9x0q2m1zz
    """


@token.command()
@click.option("--role", type=click.Choice(list(_ROLES)), required=True, help="What it may do.")
@click.option("--name", default="", help="What it is for.")
@click.option(
    "--destination",
    "destination_ids",
    multiple=True,
    help="Subscribe tokens: a destination it may read (repeatable; none: all of them).",
)
@_all_spaces_option
@_db_option
@click.pass_obj
def create(
    target: Target,
    role: str,
    name: str,
    destination_ids: tuple[str, ...],
    all_spaces: bool,
    db_path: str | None,
) -> None:
    """Create a token; print its secret (once) on stdout.

    \b
    Example:
      export JOURNEYS_TOKEN=$(journeys token create --role admin --name me)
    """
    space = ALL_SPACES if all_spaces else target.space
    if db_path is not None:

        async def offline(tokens: Any) -> tuple[Row, str]:
            made, secret = await tokens.create(
                space, role, name=name, destination_ids=destination_ids
            )
            return _engine_row(made), secret

        row, secret = _offline(db_path, offline, create=True)
    else:

        async def online() -> tuple[Row, str]:
            async with target.client() as client:
                response = await client.create_token(
                    _ROLES[role], name=name, destination_ids=destination_ids, space=space
                )
            return _proto_row(response.token), response.secret

        row, secret = run(online(), target)
    where = "every space" if row["space_id"] == ALL_SPACES else f"space {row['space_id']}"
    click.echo(
        f"created token {row['id']} ({row['role']}, {where}); its secret, shown only now:",
        err=True,
    )
    click.echo(secret)


@token.command(name="list")
@_all_spaces_option
@_db_option
@output_option()
@click.pass_obj
def list_tokens(target: Target, all_spaces: bool, db_path: str | None, fmt: str) -> None:
    """List the space's tokens (never their secrets).

    \b
    Example:
      journeys token list
      journeys token list --all-spaces -o json
      journeys token list --db ./journeys.db --all-spaces
    """
    space = ALL_SPACES if all_spaces else target.space
    if db_path is not None:

        async def offline(tokens: Any) -> list[Row]:
            from journeys_engine.catalog.paging import all_items

            found = await all_items(lambda page: tokens.list(space, page_token=page))
            return [_engine_row(t) for t in found]

        rows = _offline(db_path, offline, create=False)
    else:

        async def online() -> list[Row]:
            async with target.client() as client:
                return [_proto_row(t) for t in await client.list_tokens(space=space)]

        rows = run(online(), target)
    emit(
        fmt,
        rows,
        headers=_HEADERS,
        rows=[
            (
                r["id"],
                r["space_id"],
                r["role"],
                r["name"],
                ",".join(r["destination_ids"]) or "-",
                r["create_time"],
            )
            for r in rows
        ],
    )


@token.command()
@click.argument("token_id")
@_all_spaces_option
@_db_option
@click.pass_obj
def revoke(target: Target, token_id: str, all_spaces: bool, db_path: str | None) -> None:
    """Revoke a token: calls with it are refused from then on.

    A running server sees a revocation made with --db within a few seconds.

    \b
    Example:
      journeys token revoke tok_k3j9x0q2m1zz
      journeys token revoke tok_k3j9x0q2m1zz --db ./journeys.db --all-spaces
    """
    space = ALL_SPACES if all_spaces else target.space
    if db_path is not None:

        async def offline(tokens: Any) -> Row:
            return _engine_row(await tokens.revoke(space, token_id))

        row = _offline(db_path, offline, create=False)
    else:

        async def online() -> Row:
            async with target.client() as client:
                return _proto_row(await client.revoke_token(token_id, space=space))

        row = run(online(), target)
    click.echo(f"revoked token {row['id']} ({row['role']}, {row['name'] or 'no name'})")


def _offline(db_path: str, body: Callable[[Any], Awaitable[T]], *, create: bool) -> T:
    """Runs ``body`` with the tokens of the database at ``db_path``."""
    from journeys_engine import JourneysError, SystemClock
    from journeys_engine.access import Tokens
    from journeys_engine.store.database import Database

    if not create and not Path(db_path).exists():
        fail(f"no database at {db_path}")

    async def main() -> T:
        async with await Database.open(db_path) as db:
            tokens = Tokens(db, SystemClock())
            await tokens.refresh()
            return await body(tokens)

    try:
        return asyncio.run(main())
    except JourneysError as err:
        fail(err.message)
    except KeyboardInterrupt:
        sys.exit(130)


def _engine_row(made: Any) -> Row:
    return {
        "id": made.id,
        "space_id": made.space_id,
        "role": made.role.value,
        "name": made.name,
        "destination_ids": list(made.destination_ids),
        "create_time": instant_text(made.create_ms),
    }


def _proto_row(made: token_pb2.Token) -> Row:
    return {
        "id": made.id,
        "space_id": made.space_id,
        "role": _ROLE_NAMES.get(made.role, "unspecified"),
        "name": made.name,
        "destination_ids": list(made.destination_ids),
        "create_time": instant_text(made.create_time),
    }
