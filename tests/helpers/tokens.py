"""Access tokens for tests, made as ``journeys token create --db`` makes them."""

from __future__ import annotations

from pathlib import Path

from journeys_engine import SystemClock
from journeys_engine.access import Tokens
from journeys_engine.store.database import Database

__all__ = ["bootstrap"]


async def bootstrap(db_path: Path, space: str = "*", role: str = "admin") -> str:
    """A token made offline on the database (an admin of every space by default);
    returns its secret."""
    async with await Database.open(db_path) as db:
        tokens = Tokens(db, SystemClock())
        await tokens.refresh()
        _, secret = await tokens.create(space, role, name="bootstrap")
    return secret
