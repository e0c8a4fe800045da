"""What the catalog tells the runtime after a change is committed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from journeys_engine.model.journey import Journey

__all__ = ["CatalogChange", "DefinitionsChanged", "JourneyChanged", "Listener"]


@dataclass(frozen=True, slots=True)
class JourneyChanged:
    """A journey was updated, moved in its lifecycle, or deleted (``after`` None)."""

    space_id: str
    before: Journey | None
    after: Journey | None


@dataclass(frozen=True, slots=True)
class DefinitionsChanged:
    """A space's audiences, computed traits or destinations changed."""

    space_id: str


CatalogChange = JourneyChanged | DefinitionsChanged
Listener = Callable[[CatalogChange], Awaitable[None]]
