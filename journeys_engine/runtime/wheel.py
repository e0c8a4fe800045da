"""The shared timer wheel: one pending wake-up per key, fired in due order.

Every time-based rule of every profile (waits, condition re-checks,
``exit_after``, ``reentry_after``) folds into one wake-up instant per profile;
the wheel orders those across all profiles. Its near level is a binary heap
(``heapq``, in C): measured against a hashed wheel of slots in
``bench/timers.py``, the heap inserts and pops faster on this machine at every
size measured (see BENCHMARKS.md), so the slots would only add Python work.

Moving or cancelling a key's wake-up is O(1): the key's current entry is kept
in a dict, and heap entries that no longer match it are skipped when they come
up (lazy cancellation). When skipped entries outnumber live ones the heap is
rebuilt from the dict (compaction), so stale entries cost at most a constant
factor of memory. Nothing ever sweeps over profiles.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["TimerWheel"]

K = TypeVar("K", bound=Hashable)

_COMPACT_MIN = 1024


class TimerWheel(Generic[K]):
    """Pending wake-ups by key; each key has at most one."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, K]] = []
        self._current: dict[K, tuple[int, int]] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        """Keys with a pending wake-up."""
        return len(self._current)

    def __contains__(self, key: object) -> bool:
        return key in self._current

    def due(self, key: K) -> int | None:
        """The key's pending wake-up instant, if any."""
        entry = self._current.get(key)
        return None if entry is None else entry[0]

    def schedule(self, key: K, due: int | None) -> None:
        """Sets (or moves, or with None cancels) the key's wake-up."""
        current = self._current.get(key)
        if due is None:
            if current is not None:
                del self._current[key]
                self._maybe_compact()
            return
        if current is not None and current[0] == due:
            return
        seq = next(self._seq)
        self._current[key] = (due, seq)
        heapq.heappush(self._heap, (due, seq, key))
        if current is not None:
            self._maybe_compact()

    def schedule_min(self, key: K, due: int) -> None:
        """Sets the key's wake-up to ``due`` unless it has an earlier one."""
        current = self._current.get(key)
        if current is None or due < current[0]:
            self.schedule(key, due)

    def next_due(self) -> int | None:
        """The earliest pending wake-up instant."""
        heap = self._heap
        while heap:
            due, seq, key = heap[0]
            if self._current.get(key) == (due, seq):
                return due
            heapq.heappop(heap)
        return None

    def pop_due(self, upto: int) -> Iterator[tuple[int, K]]:
        """Takes every wake-up due at or before ``upto``, earliest first.

        Keys scheduled again while iterating (for an instant not after
        ``upto``) come up in their turn.
        """
        heap = self._heap
        while heap:
            due, seq, key = heap[0]
            if due > upto:
                return
            heapq.heappop(heap)
            if self._current.get(key) != (due, seq):
                continue
            del self._current[key]
            yield due, key

    @property
    def stale(self) -> int:
        """Heap entries that no longer match a pending wake-up."""
        return len(self._heap) - len(self._current)

    def _maybe_compact(self) -> None:
        if self.stale > max(_COMPACT_MIN, len(self._current)):
            self._heap = [(due, seq, key) for key, (due, seq) in self._current.items()]
            heapq.heapify(self._heap)
