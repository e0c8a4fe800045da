"""Shards: bounded queues that keep each profile's messages and wake-ups in order.

A message goes to the shard its profile (as logged) hashes to, and so does a
profile's wake-up taken from the timer wheel; a shard's task applies its
queue's batches in order and hands each unit of work to the store seam. No
task or queue exists per profile. A full shard makes :meth:`Router.put` wait
(backpressure) and :meth:`Router.put_nowait` raise :class:`QueueFullError`.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from journeys_engine.errors import QueueFullError, StoppedError
from journeys_engine.runtime.identity import Logged

__all__ = ["Batch", "Router", "ShardStats"]


@dataclass(frozen=True, slots=True)
class Batch:
    """Work of one space for one shard: logged messages, or wake-ups (actor id, instant)."""

    space_id: str
    messages: Sequence[Logged] = ()
    wakes: Sequence[tuple[str, int]] = ()


@dataclass(frozen=True, slots=True)
class ShardStats:
    """A shard's queue: batches waiting, and its bound."""

    shard: int
    queued: int
    capacity: int


class Router:
    """Shards with bounded queues, each applied by one task.

    Args:
        apply: Applies one batch (synchronously) and commits its unit (awaited).
        shards: Number of shards.
        capacity: Batches each shard's queue holds before ``put`` waits.
        merge: Messages applied at once, at most: message batches of one space
            queued behind the one a shard takes are applied with it up to this
            many (one unit and one commit instead of several when it is behind).
    """

    def __init__(
        self,
        apply: Callable[[Batch], Awaitable[None]],
        *,
        shards: int = 4,
        capacity: int = 64,
        merge: int = 1,
    ) -> None:
        self._apply = apply
        self._merge = merge
        self._queues: list[asyncio.Queue[Batch]] = [
            asyncio.Queue(maxsize=capacity) for _ in range(shards)
        ]
        self._capacity = capacity
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: BaseException | None = None

    def start(self) -> None:
        """Starts one task per shard; the router owns them until :meth:`close`."""
        if not self._tasks:
            self._tasks = [
                asyncio.get_running_loop().create_task(self._run(q), name=f"shard-{i}")
                for i, q in enumerate(self._queues)
            ]

    def shard_of(self, actor_id: str) -> int:
        """The shard that owns a profile."""
        return zlib.crc32(actor_id.encode()) % len(self._queues)

    def _split(self, space_id: str, messages: Sequence[Logged]) -> dict[int, Batch]:
        by_shard: dict[int, list[Logged]] = {}
        for logged in messages:
            by_shard.setdefault(self.shard_of(logged.actor_id), []).append(logged)
        return {shard: Batch(space_id, batch) for shard, batch in by_shard.items()}

    async def put(self, space_id: str, messages: Sequence[Logged]) -> None:
        """Queues logged messages, waiting while a shard they go to is full."""
        self._check()
        for shard, batch in self._split(space_id, messages).items():
            await self._queues[shard].put(batch)

    async def put_wakes(self, space_id: str, wakes: Sequence[tuple[str, int]]) -> None:
        """Queues wake-ups (actor id, instant) behind what each profile's shard holds."""
        self._check()
        by_shard: dict[int, list[tuple[str, int]]] = {}
        for wake in wakes:
            by_shard.setdefault(self.shard_of(wake[0]), []).append(wake)
        for shard, items in by_shard.items():
            await self._queues[shard].put(Batch(space_id, wakes=items))

    def put_nowait(self, space_id: str, messages: Sequence[Logged]) -> None:
        """Queues messages now, or raises :class:`QueueFullError` (queuing nothing)."""
        self._check()
        batches = self._split(space_id, messages)
        full = [s for s in batches if self._queues[s].full()]
        if full:
            raise QueueFullError(f"shard {full[0]} is full ({self._capacity} batches queued)")
        for shard, batch in batches.items():
            self._queues[shard].put_nowait(batch)

    async def settle(self) -> None:
        """Returns once every queued batch has been applied and committed."""
        for queue in self._queues:
            await queue.join()
        self._check()

    def stats(self) -> list[ShardStats]:
        """Each shard's queue depth, for metrics."""
        return [ShardStats(i, q.qsize(), self._capacity) for i, q in enumerate(self._queues)]

    async def _run(self, queue: asyncio.Queue[Batch]) -> None:
        following: Batch | None = None  # taken from the queue, not merged: next
        while True:
            batch = following if following is not None else await queue.get()
            following = None
            taken = 1
            while batch.messages and len(batch.messages) < self._merge and not queue.empty():
                following = queue.get_nowait()
                if (
                    following.wakes
                    or following.space_id != batch.space_id
                    or len(batch.messages) + len(following.messages) > self._merge
                ):
                    break
                batch = Batch(batch.space_id, [*batch.messages, *following.messages])
                following = None
                taken += 1
            try:
                if self._failure is None:
                    await self._apply(batch)
            except Exception as err:  # noqa: BLE001 - kept and raised to every caller
                self._failure = err
            finally:
                for _ in range(taken):
                    queue.task_done()

    def fail(self, err: BaseException) -> None:
        """Stops applying: every later put and settle raises (the first failure kept)."""
        if self._failure is None:
            self._failure = err

    def _check(self) -> None:
        if self._failure is not None:
            raise StoppedError("applying messages failed; the server must restart") from (
                self._failure
            )

    async def close(self) -> None:
        """Applies what is queued, then stops the shard tasks; idempotent."""
        if not self._tasks:
            return
        for queue in self._queues:
            await queue.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
