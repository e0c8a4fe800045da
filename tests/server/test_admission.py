"""Ingest admission on its own: places by messages, turns by connection, refusals of
unary calls only, and places never lost to cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from journeys_server.admission import RETRY_AFTER_MS, Admission

from journeys_engine import ResourceExhaustedError


class Calls:
    """Batches holding their places until released, and the order they got them."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.order: list[str] = []
        self._release: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, messages: int, caller: str, *, unary: bool = True) -> None:
        self._release[name] = asyncio.Event()

        async def run() -> None:
            async with self.admission.turn(messages, caller=caller, unary=unary):
                self.order.append(name)
                await self._release[name].wait()

        self.tasks[name] = asyncio.ensure_future(run())

    def release(self, *names: str) -> None:
        for name in names:
            self._release[name].set()

    async def done(self, *names: str) -> None:
        self.release(*names)
        await asyncio.gather(*(self.tasks[n] for n in names))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(2):
        while not condition():
            await asyncio.sleep(0)


async def test_places_are_counted_in_messages() -> None:
    calls = Calls(Admission(max_messages=10, max_waiting=100))
    calls.start("a", 6, "x")
    calls.start("b", 4, "y")
    calls.start("c", 1, "z")
    await settle()
    assert calls.order == ["a", "b"]
    assert calls.admission.stats.taking_in == 10
    assert calls.admission.stats.waiting == calls.admission.stats.waiting_unary == 1
    await calls.done("a")
    await settle()
    assert calls.order == ["a", "b", "c"]
    await calls.done("b", "c")
    assert calls.admission.stats.taking_in == calls.admission.stats.waiting == 0


async def test_connections_take_turns_and_a_large_batch_is_not_overtaken() -> None:
    calls = Calls(Admission(max_messages=10, max_waiting=100))
    calls.start("hold", 10, "x")
    await settle()
    for name in ("x1", "x2", "x3"):
        calls.start(name, 5, "x")
    calls.start("y1", 10, "y")  # needs every place
    calls.start("z1", 1, "z")
    await settle()
    await calls.done("hold")
    await settle()
    # x's oldest, then y's (whole: z's small batch waits behind it, not ahead).
    assert calls.order == ["hold", "x1"]
    await calls.done("x1")
    await settle()
    assert calls.order[-1] == "y1"
    await calls.done("y1")
    await settle()
    assert calls.order[-2:] == ["z1", "x2"]  # then round again: z, x
    await calls.done("z1", "x2")
    await settle()
    assert calls.order[-1] == "x3"
    await calls.done("x3")


async def test_a_unary_call_is_refused_when_the_line_is_full_and_a_stream_waits() -> None:
    admission = Admission(max_messages=5, max_waiting=5)
    calls = Calls(admission)
    calls.start("taking", 5, "x")
    calls.start("waiting", 5, "x")
    await settle()
    with pytest.raises(ResourceExhaustedError) as caught:
        async with admission.turn(1, caller="x", unary=True):
            pass
    assert caught.value.retry_after_ms == RETRY_AFTER_MS
    assert "retry after 1 s" in caught.value.message
    calls.start("streamed", 5, "x", unary=False)  # waits past max_waiting
    await settle()
    assert admission.stats.waiting == 10
    assert admission.stats.waiting_unary == 5
    await calls.done("taking", "waiting", "streamed")
    assert calls.order == ["taking", "waiting", "streamed"]


async def test_the_heaviest_connection_gives_up_its_newest_call() -> None:
    admission = Admission(max_messages=2, max_waiting=6)
    calls = Calls(admission)
    calls.start("hold", 2, "x")
    await settle()
    for name in ("x1", "x2", "x3"):
        calls.start(name, 2, "x")
    await settle()
    assert admission.stats.waiting_unary == 6
    calls.start("y1", 2, "y")
    await settle()
    with pytest.raises(ResourceExhaustedError):
        await calls.tasks["x3"]
    # y now has 2 in line, x 4: y's next would not be lighter than x, so it is refused.
    calls.start("y2", 2, "y")
    await settle()
    with pytest.raises(ResourceExhaustedError):
        await calls.tasks["y2"]
    await calls.done("hold", "x1", "y1", "x2")
    assert calls.order == ["hold", "x1", "y1", "x2"]


async def test_a_call_cancelled_while_waiting_or_once_admitted_loses_no_place() -> None:
    admission = Admission(max_messages=4, max_waiting=100)
    calls = Calls(admission)
    calls.start("hold", 4, "x")
    calls.start("gone", 4, "y")
    calls.start("next", 4, "z")
    await settle()
    calls.tasks["gone"].cancel()  # while waiting
    await settle()
    assert admission.stats.waiting == 4
    await calls.done("hold")
    await until(lambda: calls.order[-1] == "next")
    await calls.done("next")
    assert admission.stats.taking_in == admission.stats.waiting == 0

    # Given its places, then cancelled before it ran: the places go to the next.
    calls.start("hold2", 4, "x")
    calls.start("late", 4, "y")
    calls.start("after", 4, "z")
    await settle()
    calls.release("hold2")
    await asyncio.sleep(0)  # hold2 ends and hands its places to "late" ...
    assert admission.stats.waiting == 4 and "late" not in calls.order
    calls.tasks["late"].cancel()  # ... which is cancelled before it runs
    await until(lambda: "after" in calls.order)
    await calls.done("after")
    assert admission.stats.taking_in == admission.stats.waiting == 0


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_messages"):
        Admission(max_messages=0, max_waiting=0)
