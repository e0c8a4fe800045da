"""Admission of ingest batches under load: a bounded number of messages taken in at
once, the rest waiting their turn or refused, fairly between connections.

Each batch asks for as many places as it has messages. Batches wait in one line per
connection, and the lines take turns: when places free up, the next connection in
the round has its oldest batch let in (once enough places are free: a large batch
is not overtaken, so it cannot starve). A caller's batch therefore waits behind
what is being taken in and at most one batch of each other connection, however
many the others have waiting.

A batch from a stream always waits for its places: the stream reads its next
batch only afterwards, so gRPC flow control holds its sender back. A unary call
waits while the messages of the unary calls waiting stay within ``max_waiting``.
When they would not, the connection with the most messages of unary calls waiting
gives up its newest one, if it has more there than the newcomer's connection would
(that call is refused); otherwise the newcomer is refused. Refusals are
:class:`~journeys_engine.ResourceExhaustedError` with a retry delay. So a flood
from some connections cannot keep a modest caller on another out, and what
ingestion holds in memory is bounded: ``max_messages`` being taken in,
``max_waiting`` in unary calls waiting, and one batch per open stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from journeys_engine import ResourceExhaustedError

__all__ = ["RETRY_AFTER_MS", "Admission", "AdmissionStats"]

RETRY_AFTER_MS = 1_000
"""The wait advised to a refused call (``google.rpc.RetryInfo``): about as long as a
saturated server takes to take in the messages waiting ahead of it."""


@dataclass(frozen=True, slots=True)
class AdmissionStats:
    """Ingestion's load now, in messages.

    Attributes:
        taking_in: Messages of the batches being taken in (decoded, checked,
            logged, queued).
        waiting: Messages of the batches waiting for places, streams' included.
        waiting_unary: Of those, the messages of unary calls.
        max_messages: The bound on ``taking_in``.
        max_waiting: The bound on ``waiting_unary``.
    """

    taking_in: int
    waiting: int
    waiting_unary: int
    max_messages: int
    max_waiting: int


@dataclass(eq=False, slots=True)
class _Waiter:
    weight: int
    caller: str  # its connection
    unary: bool  # a unary call (refusable), not a stream's batch
    future: asyncio.Future[None] = field(repr=False)
    queued: bool = True


class Admission:
    """Places for ingest batches, weighted by their messages, given in turns by connection.

    Args:
        max_messages: Messages taken in at once. A batch larger than this takes
            every place (it is not refused for its size here).
        max_waiting: Messages of unary calls that may wait for places.
    """

    def __init__(self, max_messages: int, max_waiting: int) -> None:
        if max_messages < 1 or max_waiting < 0:
            raise ValueError("max_messages must be at least 1 and max_waiting at least 0")
        self._max_messages = max_messages
        self._max_waiting = max_waiting
        self._free = max_messages
        self._lines: dict[str, deque[_Waiter]] = {}  # by connection, oldest first
        self._round: deque[str] = deque()  # connections with a line, next turn first
        self._waiting = 0
        self._unary: dict[str, list[_Waiter]] = {}  # waiting, by connection, oldest first
        self._unary_weight: Counter[str] = Counter()

    @property
    def stats(self) -> AdmissionStats:
        """The load now (for metrics and tests)."""
        return AdmissionStats(
            self._max_messages - self._free,
            self._waiting,
            self._unary_weight.total(),
            self._max_messages,
            self._max_waiting,
        )

    @contextlib.asynccontextmanager
    async def turn(self, messages: int, *, caller: str, unary: bool) -> AsyncIterator[None]:
        """Holds places for ``messages`` during the block. ``caller`` names the
        connection; a ``unary`` call may be refused, a stream's batch waits however
        long it takes.

        Raises:
            ResourceExhaustedError: a unary call that cannot wait (see the module).
        """
        weight = max(1, min(messages, self._max_messages))
        if self._can_start(weight):
            self._free -= weight
        else:
            if unary and not self._make_room(weight, caller):
                raise _refusal(self._waiting)
            future = asyncio.get_running_loop().create_future()
            await self._wait(_Waiter(weight, caller, unary, future))
        try:
            yield
        finally:
            self._free += weight
            self._call_next()

    def _can_start(self, weight: int) -> bool:
        return not self._round and self._free >= weight

    def _make_room(self, weight: int, caller: str) -> bool:
        """Makes room in line for a unary call of ``weight`` from ``caller``, refusing
        the newest calls of heavier connections; False when it cannot."""
        while self._unary_weight.total() + weight > self._max_waiting:
            if not self._unary_weight:
                return False  # (larger than max_waiting on its own)
            heaviest, most = max(self._unary_weight.items(), key=lambda item: item[1])
            if heaviest == caller or most <= self._unary_weight[caller] + weight:
                return False
            newest = self._unary[heaviest][-1]
            self._leave(newest)
            newest.future.set_exception(_refusal(self._waiting))
        return True

    async def _wait(self, waiter: _Waiter) -> None:
        line = self._lines.get(waiter.caller)
        if line is None:
            line = self._lines[waiter.caller] = deque()
            self._round.append(waiter.caller)
        line.append(waiter)
        self._waiting += waiter.weight
        if waiter.unary:
            self._unary.setdefault(waiter.caller, []).append(waiter)
            self._unary_weight[waiter.caller] += waiter.weight
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.queued:
                self._leave(waiter)
                self._call_next()  # the head may have changed
            elif not waiter.future.cancelled() and waiter.future.exception() is None:
                self._free += waiter.weight  # given places, then cancelled: hand them on
                self._call_next()
            raise

    def _leave(self, waiter: _Waiter) -> None:
        """Takes ``waiter`` out of its line (given its places, cancelled or refused)."""
        waiter.queued = False
        line = self._lines[waiter.caller]
        line.remove(waiter)
        if not line:
            del self._lines[waiter.caller]
            self._round.remove(waiter.caller)
        self._waiting -= waiter.weight
        if waiter.unary:
            calls = self._unary[waiter.caller]
            calls.remove(waiter)
            self._unary_weight[waiter.caller] -= waiter.weight
            if not calls:
                del self._unary[waiter.caller]
                del self._unary_weight[waiter.caller]

    def _call_next(self) -> None:
        """Lets in the oldest batch of the connection whose turn it is, while places
        are free for it; that connection goes to the back of the round."""
        while self._round:
            caller = self._round[0]
            head = self._lines[caller][0]
            if head.weight > self._free:
                return
            self._leave(head)
            if caller in self._lines:  # more of its batches wait: its next turn comes later
                self._round.rotate(-1)
            self._free -= head.weight
            head.future.set_result(None)


def _refusal(waiting: int) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"the server is taking in messages as fast as it can, and {waiting} more wait "
        f"already: retry after {RETRY_AFTER_MS / 1000:g} s, with backoff, or send over "
        "IngestStream, which waits its turn instead",
        retry_after_ms=RETRY_AFTER_MS,
    )
