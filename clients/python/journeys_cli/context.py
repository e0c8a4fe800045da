"""What every client command shares: where it goes, and how it fails."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
from journeys_client import JourneysClient, JourneysClientError, UnavailableError

__all__ = ["Target", "fail", "run", "with_client"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Target:
    """Where commands go: the server address and the space, and how to connect."""

    server: str
    space: str
    token: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def client(self, timeout: float = 30.0) -> JourneysClient:
        try:
            return JourneysClient(
                self.server,
                space=self.space,
                timeout=timeout,
                token=self.token,
                tls_ca=self.tls_ca,
                tls_cert=self.tls_cert,
                tls_key=self.tls_key,
            )
        except ValueError as err:
            fail(str(err))


def fail(message: str) -> NoReturn:
    """Prints ``error: message`` on stderr and exits 1."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def run(coro: Coroutine[Any, Any, T], target: Target) -> T:
    """Runs a command body, turning client errors into a message and exit status."""
    try:
        return asyncio.run(coro)
    except UnavailableError as err:
        fail(f"cannot reach the journeys server at {target.server}: {err.message}")
    except JourneysClientError as err:
        fail(str(err))
    except click.ClickException:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:
        if os.environ.get("JOURNEYS_DEBUG"):
            raise
        fail(f"unexpected {type(err).__name__}: {err} (set JOURNEYS_DEBUG=1 for details)")


def with_client(
    fn: Callable[..., Awaitable[T]],
) -> Callable[..., T]:
    """Runs an async command body with a client for the selected server and space."""

    @functools.wraps(fn)
    @click.pass_obj
    def wrapper(target: Target, *args: Any, **kwargs: Any) -> T:
        async def body() -> T:
            async with target.client() as client:
                return await fn(client, *args, **kwargs)

        return run(body(), target)

    return wrapper
