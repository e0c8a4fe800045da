"""The catalog: spaces, journeys and definitions, validated and persisted."""

from journeys_engine.catalog.definitions import Definitions
from journeys_engine.catalog.journeys import Journeys, Saved
from journeys_engine.catalog.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from journeys_engine.catalog.spaces import DEFAULT_SPACE, CatalogContext, Spaces

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_SPACE",
    "MAX_PAGE_SIZE",
    "CatalogContext",
    "Definitions",
    "Journeys",
    "Page",
    "Saved",
    "Spaces",
]
