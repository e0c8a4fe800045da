"""Spaces: create, read, list; the ``default`` space (SPEC §1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from journeys_engine.catalog.changes import CatalogChange, Listener
from journeys_engine.catalog.paging import Page, PageRequest
from journeys_engine.clock import Clock
from journeys_engine.errors import (
    AlreadyExistsError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)
from journeys_engine.ids import id_problem
from journeys_engine.model.definitions import Space
from journeys_engine.model.limits import Limits
from journeys_engine.model.validation import check_name
from journeys_engine.store.catalog import CatalogRows
from journeys_engine.store.database import Database

__all__ = ["DEFAULT_SPACE", "CatalogContext", "Spaces", "require_space"]

DEFAULT_SPACE = "default"


@dataclass(frozen=True, slots=True)
class CatalogContext:
    """What every catalog service shares; ``listeners`` hear of committed changes."""

    db: Database
    clock: Clock
    limits: Limits
    listeners: list[Listener] = field(default_factory=list)

    async def notify(self, change: CatalogChange) -> None:
        """Tells every listener of a committed change, in order."""
        for listener in self.listeners:
            await listener(change)

    async def check_space(self, space_id: str) -> None:
        """Refuses an unknown space before anything else about a request is looked at.

        Raises:
            NotFoundError: the space does not exist.
            InvalidArgumentError: the space id is empty.
        """
        async with self.db.read() as tx:
            await require_space(CatalogRows(tx), space_id)


async def require_space(rows: CatalogRows, space_id: str) -> Space:
    """The space, or NOT_FOUND; an empty id is an invalid argument."""
    if not space_id:
        raise InvalidArgumentError.single("space_id", "is required")
    space = await rows.get_space(space_id)
    if space is None:
        raise NotFoundError(kind="space", id=space_id)
    return space


class Spaces:
    """Tenants. Nothing but :meth:`create` ever makes one."""

    def __init__(self, ctx: CatalogContext) -> None:
        self._ctx = ctx

    async def ensure_default(self) -> None:
        """Creates the ``default`` space on first start."""
        async with self._ctx.db.transaction() as tx:
            rows = CatalogRows(tx)
            if await rows.get_space(DEFAULT_SPACE) is None:
                now = self._ctx.clock.now_ms()
                await rows.insert_space(Space(DEFAULT_SPACE, "Default", now))

    async def create(self, space_id: str, display_name: str = "") -> Space:
        """Creates a space.

        Raises:
            InvalidArgumentError: a bad id or display name.
            AlreadyExistsError: the id is taken.
        """
        problems: list[FieldViolation] = []

        def report(path: str, description: str) -> None:
            problems.append(FieldViolation(path, description))

        problem = id_problem(space_id)
        if problem is not None:
            report("space.id", problem)
        check_name(
            report,
            "space.display_name",
            display_name,
            limit=self._ctx.limits.max_name,
            required=False,
        )
        if problems:
            raise InvalidArgumentError(problems)
        async with self._ctx.db.transaction() as tx:
            rows = CatalogRows(tx)
            if await rows.get_space(space_id) is not None:
                raise AlreadyExistsError(kind="space", id=space_id)
            space = Space(space_id, display_name.strip() or space_id, self._ctx.clock.now_ms())
            await rows.insert_space(space)
        return space

    async def get(self, space_id: str) -> Space:
        """One space, or NOT_FOUND."""
        async with self._ctx.db.read() as tx:
            return await require_space(CatalogRows(tx), space_id)

    async def list(self, *, page_size: int = 0, page_token: str = "") -> Page[Space]:
        """Spaces in creation order."""
        request = PageRequest.parse(page_size, page_token)
        async with self._ctx.db.read() as tx:
            rows = await CatalogRows(tx).list_spaces(request.after, request.size + 1)
        return request.page(rows)
