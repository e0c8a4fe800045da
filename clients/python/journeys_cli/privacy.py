"""``journeys profile delete|unsuppress|suppression``: erasing a person, and suppressions.

These are actions of ``journeys profile``, which otherwise shows a profile
(``journeys profile USER``): :class:`ProfileCommand` runs an action when the
first argument names one. A user whose id is an action's name is shown with
``journeys profile -- delete``.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from journeys_cli.context import Target, fail, run
from journeys_cli.output import emit, instant_text, output_option, plural

__all__ = ["ACTIONS", "ProfileCommand"]


def _ids(user: str, anonymous: bool) -> dict[str, str]:
    return {"anonymous_id": user} if anonymous else {"user_id": user}


def _named(user: str, anonymous: bool) -> str:
    return f"anonymous id {user!r}" if anonymous else f"user {user!r}"


_ANONYMOUS = click.option(
    "--anonymous", is_flag=True, help="USER is an anonymous id, not a user id."
)


@click.command()
@click.argument("user", metavar="USER")
@_ANONYMOUS
@click.option(
    "--suppress",
    is_flag=True,
    help="Also refuse its ids' later messages for the server's suppression period.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def delete(target: Target, user: str, anonymous: bool, suppress: bool, yes: bool) -> None:
    """Delete a profile and everything about it (a person's erasure request).

    Its runs end first, as a run ending does: each destination it is a member
    of gets "exited" (list destinations: "removed"). Then its traits, state,
    timeline, event history and identity links are deleted; a user's profile
    goes with the anonymous profiles of the anonymous ids linked to it. Calls
    already made stay in the outbox until consumers acknowledge them. With
    --suppress, messages with its user id or anonymous ids are refused for
    the server's suppression period (`journeys serve --suppression-period`,
    365 days by default). Asks for confirmation unless --yes (required when
    not on a terminal). An unknown profile is no error: nothing is deleted
    (the suppression is still recorded).

    \b
    Example:
      journeys profile delete u-123 --suppress
      journeys profile delete 4f6a-anon --anonymous --yes
    """
    what = _named(user, anonymous)
    if not yes:
        if not sys.stdin.isatty():
            fail(f"deleting the profile of {what} cannot be undone: confirm it with --yes")
        click.confirm(
            f"Delete the profile of {what} in space {target.space!r} and everything about "
            "it? This cannot be undone",
            abort=True,
        )

    async def body() -> Any:
        async with target.client() as client:
            return await client.delete_profile(suppress=suppress, **_ids(user, anonymous))

    done = run(body(), target)
    if done.deleted:
        click.echo(
            f"deleted {plural(done.profiles_deleted, 'profile')} of {what}: "
            f"{plural(done.runs_ended, 'run')} ended, "
            f"{plural(done.memberships_removed, 'membership')} removed downstream"
        )
    else:
        click.echo(f"no profile of {what} found: nothing to delete")
    if suppress:
        click.echo(
            f"suppressed {plural(done.identifiers_suppressed, 'id')}: their messages are "
            f"refused until {instant_text(done.suppression_expire_time)}"
        )


@click.command()
@click.argument("user", metavar="USER")
@_ANONYMOUS
@output_option()
@click.pass_obj
def suppression(target: Target, user: str, anonymous: bool, fmt: str) -> None:
    """Show whether a user id's (or an anonymous id's) messages are refused, and
    until when (a deleted profile's suppression).

    \b
    Example:
      journeys profile suppression u-123
    """

    async def body() -> Any:
        async with target.client() as client:
            return await client.get_suppression(**_ids(user, anonymous))

    found = run(body(), target)
    until = instant_text(found.expire_time) if found.suppressed else ""
    if fmt != "table":
        emit(fmt, {**_ids(user, anonymous), "suppressed": found.suppressed, "until": until})
    elif found.suppressed:
        click.echo(f"{_named(user, anonymous)} is suppressed until {until}")
    else:
        click.echo(f"{_named(user, anonymous)} is not suppressed")


@click.command()
@click.argument("user", metavar="USER")
@_ANONYMOUS
@click.pass_obj
def unsuppress(target: Target, user: str, anonymous: bool) -> None:
    """Lift a user id's (or an anonymous id's) suppression: its messages are
    accepted again. Other ids suppressed with it stay suppressed.

    \b
    Example:
      journeys profile unsuppress u-123
    """

    async def body() -> bool:
        async with target.client() as client:
            return await client.delete_suppression(**_ids(user, anonymous))

    if run(body(), target):
        click.echo(f"{_named(user, anonymous)} is no longer suppressed")
    else:
        click.echo(f"{_named(user, anonymous)} was not suppressed")


ACTIONS: dict[str, click.Command] = {
    "delete": delete,
    "suppression": suppression,
    "unsuppress": unsuppress,
}
"""What ``journeys profile ACTION USER`` does, by action."""


class ProfileCommand(click.Command):
    """``journeys profile USER`` (shows it), or ``journeys profile ACTION USER``."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        if args and args[0] in ACTIONS:
            action = ACTIONS[args[0]]
            name = f"{info_name} {args[0]}" if info_name else args[0]
            return action.make_context(name, args[1:], parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)
