"""Running an engine call for a request whose decoding may have found problems."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from journeys_engine import InvalidArgumentError
from journeys_server.convert import Problems

__all__ = ["checked_write"]

T = TypeVar("T")


async def checked_write(
    problems: Problems, write: Callable[[bool], Awaitable[T]], *, validate_only: bool
) -> T:
    """Runs ``write(validate_only)``, refusing the request as a whole.

    While decoding found problems the engine only validates (writes nothing);
    its own problems come back together with the decoding ones, step paths
    numbered as in the request. The engine still looks at the space first, so
    an unknown space is NOT_FOUND whatever else is wrong.
    """
    try:
        result = await write(validate_only or bool(problems.found))
    except InvalidArgumentError as err:
        raise InvalidArgumentError([*problems.found, *problems.as_sent(err.violations)]) from err
    problems.raise_any()
    return result
