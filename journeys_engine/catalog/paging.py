"""Pages of list results and their opaque continuation tokens."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from journeys_engine.errors import InvalidArgumentError

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "Page", "PageRequest", "all_items"]

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_PREFIX = "p1:"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; ``next_page_token`` is empty on the last page."""

    items: tuple[T, ...]
    next_page_token: str = ""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A validated page request: rows after position ``after``, at most ``size``."""

    after: int
    size: int

    @classmethod
    def parse(cls, page_size: int, page_token: str) -> PageRequest:
        """Checks a page size (0 means the default; capped at the maximum) and token.

        Raises:
            InvalidArgumentError: a negative size or a token this server did not issue.
        """
        if page_size < 0:
            raise InvalidArgumentError.single("page_size", "must not be negative")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        if not page_token:
            return cls(0, size)
        try:
            text = base64.urlsafe_b64decode(page_token.encode("ascii")).decode("ascii")
            if not text.startswith(_PREFIX):
                raise ValueError(text)
            after = int(text.removeprefix(_PREFIX))
        except (ValueError, UnicodeError, binascii.Error) as err:
            raise InvalidArgumentError.single(
                "page_token", "is not a token returned by a previous list call"
            ) from err
        if after < 0:
            raise InvalidArgumentError.single("page_token", "is not a valid token")
        return cls(after, size)

    def page(self, rows: Sequence[tuple[int, T]]) -> Page[T]:
        """The page for ``rows`` fetched with ``limit=self.size + 1``."""
        items = rows[: self.size]
        token = ""
        if len(rows) > self.size and items:
            token = base64.urlsafe_b64encode(f"{_PREFIX}{items[-1][0]}".encode()).decode()
        return Page(tuple(item for _, item in items), token)


async def all_items(fetch: Callable[[str], Awaitable[Page[T]]]) -> list[T]:
    """Every item of a paged list, ``fetch`` taking a page token."""
    items: list[T] = []
    token = ""
    while True:
        page = await fetch(token)
        items.extend(page.items)
        token = page.next_page_token
        if not token:
            return items
