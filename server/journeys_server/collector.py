"""Garbage collector settings for a long-running server process.

A server holds many resident profiles, each a tree of small dicts and lists,
and allocates short-lived containers for every message it applies. With the
interpreter's default thresholds the cyclic collector runs every 700 net
allocations and keeps re-walking the same long-lived objects: about a tenth
of the event loop's time under steady ingestion. Reference counting frees
nearly everything here; the cyclic collector only has to find the rare cycle,
so it can run far less often.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "tune_collector"]

THRESHOLDS = (10_000, 10, 10)
"""Allocations before a young collection, and young (then middle) collections
before the next generation is collected."""


def tune_collector() -> None:
    """Moves what exists now (modules, the catalog, the server's own objects) out
    of the collector's sight for good, and makes collections rarer.

    Called once the server is started: what was allocated to start it lives as
    long as the process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
