"""Messages taken one at a time and sent in batches, in the background.

A collector hands each event to :meth:`Ingester.add` as it arrives; the ingester
gathers them into batches (up to ``batch_size`` messages, or whatever arrived
within ``linger`` seconds of the first) and sends each over ``IngestStream``
with :func:`~journeys_client.sending.send_messages`, which sends again what was
not acknowledged when the connection drops (a server restart): the server drops
the repeats by message id, so a resend makes no duplicate. At most
``max_buffered`` messages are held — waiting or unacknowledged — and ``add``
waits while that many are: memory stays bounded when the server is slower than
the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from typing import Any

from journeys.v1 import ingest_pb2_grpc

from journeys_client.sending import MessageProblem, SendReport, send_messages

__all__ = ["Ingester"]


class Ingester:
    """Sends messages in batches in the background; use as ``async with``.

    Args:
        stub: The ingest stub of a client's channel.
        space_id: The space the messages go to.
        batch_size: Messages per batch at most.
        linger: Seconds a batch waits for more messages after its first.
        max_buffered: Messages held (waiting or unacknowledged) at most.
        retries: Reconnections tried in a row when the server cannot be reached.
    """

    def __init__(
        self,
        stub: ingest_pb2_grpc.IngestServiceAsyncStub,
        space_id: str,
        *,
        batch_size: int = 500,
        linger: float = 0.05,
        max_buffered: int = 10_000,
        retries: int = 10,
    ) -> None:
        if batch_size < 1 or max_buffered < batch_size or linger < 0:
            raise ValueError("need batch_size >= 1, max_buffered >= batch_size, linger >= 0")
        self._stub = stub
        self._space_id = space_id
        self._batch_size = batch_size
        self._linger = linger
        self._max_buffered = max_buffered
        self._retries = retries
        self._waiting: deque[Mapping[str, Any]] = deque()
        self._held = 0  # waiting or being sent
        self._added = 0
        self._changed = asyncio.Condition()
        self._closing = False
        self._failure: BaseException | None = None
        self.report = SendReport()
        """Totals so far; refused messages carry their index in the order added."""
        self._task = asyncio.get_running_loop().create_task(self._send(), name="ingester")

    @property
    def held(self) -> int:
        """Messages added but not yet acknowledged."""
        return self._held

    async def add(self, message: Mapping[str, Any]) -> None:
        """Queues a Segment-spec message (JSON form), waiting while ``max_buffered``
        are held.

        Raises:
            JourneysClientError: sending failed for good (earlier messages were
                not all acknowledged).
            RuntimeError: the ingester is closed.
        """
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._held < self._max_buffered or self._failure is not None
            )
            self._raise_failure()
            if self._closing:
                raise RuntimeError("the ingester is closed")
            self._waiting.append(message)
            self._held += 1
            self._added += 1
            self._changed.notify_all()

    async def flush(self) -> SendReport:
        """Waits until every message added so far is acknowledged; returns the totals.

        Raises:
            JourneysClientError: sending failed for good.
        """
        async with self._changed:
            self._changed.notify_all()
            await self._changed.wait_for(lambda: self._held == 0 or self._failure is not None)
            self._raise_failure()
        return self.report

    async def close(self) -> SendReport:
        """Sends what is held, then stops; returns the totals.

        Raises:
            JourneysClientError: sending failed for good.
        """
        async with self._changed:
            self._closing = True
            self._changed.notify_all()
        with contextlib.suppress(Exception):
            await asyncio.shield(self._task)
        self._raise_failure()
        return self.report

    async def __aenter__(self) -> Ingester:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            await self.close()
            return
        self._task.cancel()  # the caller failed: what is held is abandoned
        with contextlib.suppress(BaseException):
            await self._task

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _send(self) -> None:
        try:
            while True:
                batch, first = await self._next_batch()
                if not batch:
                    return
                sent = await send_messages(
                    self._stub,
                    batch,
                    space_id=self._space_id,
                    batch_size=self._batch_size,
                    window=1,
                    retries=self._retries,
                )
                self.report.batches += sent.batches
                self.report.accepted += sent.accepted
                self.report.duplicates += sent.duplicates
                self.report.rejected.extend(
                    MessageProblem(first + p.index, p.problems) for p in sent.rejected
                )
                async with self._changed:
                    self._held -= len(batch)
                    self._changed.notify_all()
        except Exception as err:  # noqa: BLE001 - handed to the producer on its next call
            async with self._changed:
                self._failure = err
                self._changed.notify_all()

    async def _next_batch(self) -> tuple[list[Mapping[str, Any]], int]:
        """The next batch and the index of its first message (an empty batch: stop)."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._waiting) or self._closing)
            if not self._waiting:
                return [], 0
            if len(self._waiting) < self._batch_size and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(
                            lambda: len(self._waiting) >= self._batch_size or self._closing
                        ),
                        self._linger,
                    )
            count = min(self._batch_size, len(self._waiting))
            first = self._added - len(self._waiting)
            return [self._waiting.popleft() for _ in range(count)], first
