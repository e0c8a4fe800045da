"""Shell completion: the script for a shell, and journey ids completed from the server."""

from __future__ import annotations

import asyncio

import click
from click.shell_completion import CompletionItem, get_completion_class
from journeys_client import DEFAULT_SERVER, DEFAULT_SPACE, JourneysClient

__all__ = ["complete_journey_ids", "completion"]

_SHELLS = ("bash", "zsh", "fish")
_COMPLETE_TIMEOUT = 1.0  # seconds: a shell must not hang on an unreachable server


def complete_journey_ids(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The journey ids of the selected server and space that start with ``incomplete``
    (none when the server cannot be reached in time)."""
    root = ctx.find_root().params

    async def fetch() -> list[CompletionItem]:
        async with JourneysClient(
            root.get("server") or DEFAULT_SERVER,
            space=root.get("space") or DEFAULT_SPACE,
            timeout=_COMPLETE_TIMEOUT,
            token=root.get("token"),
            tls_ca=root.get("tls_ca"),
            tls_cert=root.get("tls_cert"),
            tls_key=root.get("tls_key"),
        ) as client:
            journeys = await client.list_journeys()
        return [CompletionItem(j.id, help=j.name) for j in journeys if j.id.startswith(incomplete)]

    try:
        return asyncio.run(asyncio.wait_for(fetch(), _COMPLETE_TIMEOUT * 2))
    except Exception:  # noqa: BLE001 - completion offers nothing rather than fail
        return []


@click.command()
@click.argument("shell", type=click.Choice(_SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (verbs, options, journey ids).

    \b
    Example:
      journeys completion bash >> ~/.bashrc
      journeys completion zsh > "${fpath[1]}/_journeys"
      journeys completion fish > ~/.config/fish/completions/journeys.fish
    """
    root = ctx.find_root()
    cls = get_completion_class(shell)
    assert cls is not None  # every choice is a shell click knows
    script = cls(root.command, {}, "journeys", "_JOURNEYS_COMPLETE")
    click.echo(script.source())
