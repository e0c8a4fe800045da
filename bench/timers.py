"""The timer wheel's near level: a binary heap against hashed slots of heaps.

Both implement the same job — insert a wake-up, pop everything due up to an
instant in order — and are timed in the same run on the same random due
times, with the engine's :class:`TimerWheel` (a heap with a dict of current
entries for O(1) moves and lazy cancellation) alongside.

Run from the repository root:  .venv/bin/python bench/timers.py
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe, median_range  # noqa: E402
from journeys_engine.runtime import TimerWheel  # noqa: E402

SLOT_MS = 1_000


class SlotWheel:
    """A hashed wheel: one small heap per slot of SLOT_MS, slots kept in a dict."""

    def __init__(self) -> None:
        self.slots: dict[int, list[tuple[int, int]]] = {}
        self.cursor = 0

    def schedule(self, key: int, due: int) -> None:
        slot = due // SLOT_MS
        bucket = self.slots.get(slot)
        if bucket is None:
            bucket = self.slots[slot] = []
        heapq.heappush(bucket, (due, key))

    def pop_due(self, upto: int) -> list[tuple[int, int]]:
        fired: list[tuple[int, int]] = []
        last = upto // SLOT_MS
        for slot in range(self.cursor, last + 1):
            bucket = self.slots.get(slot)
            if bucket is None:
                continue
            while bucket and bucket[0][0] <= upto:
                fired.append(heapq.heappop(bucket))
            if not bucket:
                del self.slots[slot]
        self.cursor = last  # the last slot may still hold later entries
        return fired


def run_heap(dues: list[int]) -> tuple[float, float]:
    heap: list[tuple[int, int]] = []
    started = time.perf_counter()
    for key, due in enumerate(dues):
        heapq.heappush(heap, (due, key))
    inserted = time.perf_counter()
    fired = 0
    while heap:
        heapq.heappop(heap)
        fired += 1
    done = time.perf_counter()
    assert fired == len(dues)
    return (inserted - started) / len(dues) * 1e6, (done - inserted) / len(dues) * 1e6


def run_slots(dues: list[int], horizon: int) -> tuple[float, float]:
    wheel = SlotWheel()
    started = time.perf_counter()
    for key, due in enumerate(dues):
        wheel.schedule(key, due)
    inserted = time.perf_counter()
    fired = 0
    for upto in range(0, horizon + SLOT_MS * 60, SLOT_MS * 60):
        fired += len(wheel.pop_due(upto))
    done = time.perf_counter()
    assert fired == len(dues)
    return (inserted - started) / len(dues) * 1e6, (done - inserted) / len(dues) * 1e6


def run_engine_wheel(dues: list[int]) -> tuple[float, float]:
    wheel: TimerWheel[int] = TimerWheel()
    started = time.perf_counter()
    for key, due in enumerate(dues):
        wheel.schedule(key, due)
    inserted = time.perf_counter()
    fired = sum(1 for _ in wheel.pop_due(max(dues)))
    done = time.perf_counter()
    assert fired == len(dues)
    return (inserted - started) / len(dues) * 1e6, (done - inserted) / len(dues) * 1e6


def bytes_per_timer(build: object, count: int) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()  # type: ignore[operator]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    horizon = 7 * 86_400_000
    rng = random.Random(3)
    dues = [rng.randrange(horizon) for _ in range(args.timers)]
    results: dict[str, list[tuple[float, float]]] = {"heapq": [], "slots": [], "TimerWheel": []}
    for _ in range(args.runs):
        results["heapq"].append(run_heap(dues))
        results["slots"].append(run_slots(dues, horizon))
        results["TimerWheel"].append(run_engine_wheel(dues))

    def heap_memory() -> object:
        heap: list[tuple[int, int]] = []
        for key, due in enumerate(dues):
            heapq.heappush(heap, (due, key))
        return heap

    def slot_memory() -> object:
        wheel = SlotWheel()
        for key, due in enumerate(dues):
            wheel.schedule(key, due)
        return wheel

    def engine_memory() -> object:
        wheel: TimerWheel[int] = TimerWheel()
        for key, due in enumerate(dues):
            wheel.schedule(key, due)
        return wheel

    memory = {
        "heapq": bytes_per_timer(heap_memory, len(dues)),
        "slots": bytes_per_timer(slot_memory, len(dues)),
        "TimerWheel": bytes_per_timer(engine_memory, len(dues)),
    }
    print(describe())
    print(f"{args.timers:,} timers over 7 days, {args.runs} runs (median, min-max)")
    for name, runs in results.items():
        insert = median_range([r[0] for r in runs])
        pop = median_range([r[1] for r in runs])
        print(
            f"{name:<11} insert {insert[0]:.2f} us ({insert[1]:.2f}-{insert[2]:.2f})  "
            f"pop {pop[0]:.2f} us ({pop[1]:.2f}-{pop[2]:.2f})  {memory[name]:.0f} B/timer"
        )


if __name__ == "__main__":
    main()
