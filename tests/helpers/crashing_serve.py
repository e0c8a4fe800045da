"""``journeys serve`` that kills itself with SIGKILL at a fixed point, for crash tests.

``JOURNEYS_CRASH_AT=POINT:N`` kills the process the N-th time it reaches POINT:

- ``after-log``: a batch is committed to the ingest log, before it is acknowledged;
- ``before-commit``: applied work (profiles, outbox, floor) is about to be committed;
- ``after-commit``: applied work has just been committed, before anyone is told.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from journeys_cli.main import main

from journeys_engine.messages import Message
from journeys_engine.runtime.identity import Logged
from journeys_engine.runtime.runtime import Unit
from journeys_engine.store.durable import DurableStore

POINTS = ("after-log", "before-commit", "after-commit")


def _arm(point: str, n: int) -> None:
    reached = 0

    def reach(here: str) -> None:
        nonlocal reached
        if here != point:
            return
        reached += 1
        if reached == n:
            os.kill(os.getpid(), signal.SIGKILL)

    append, commit = DurableStore.append, DurableStore.commit

    async def crashing_append(
        self: DurableStore, space_id: str, messages: Sequence[Message]
    ) -> list[Logged | None]:
        positions = await append(self, space_id, messages)
        reach("after-log")
        return positions

    async def crashing_commit(self: DurableStore, unit: Unit) -> None:
        reach("before-commit")
        await commit(self, unit)
        reach("after-commit")

    DurableStore.append = crashing_append  # type: ignore[method-assign]
    DurableStore.commit = crashing_commit  # type: ignore[method-assign]


if __name__ == "__main__":
    point, _, count = os.environ["JOURNEYS_CRASH_AT"].partition(":")
    if point not in POINTS or not count.isdigit():
        raise SystemExit(f"JOURNEYS_CRASH_AT must be POINT:N with POINT one of {POINTS}")
    _arm(point, int(count))
    main()
