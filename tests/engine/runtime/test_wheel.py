"""The timer wheel: due order, moving and cancelling, lazy cancellation with compaction."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from journeys_engine.runtime import TimerWheel


def test_fires_in_due_order_and_only_what_is_due() -> None:
    wheel: TimerWheel[str] = TimerWheel()
    wheel.schedule("b", 20)
    wheel.schedule("a", 10)
    wheel.schedule("c", 30)
    assert wheel.next_due() == 10
    assert list(wheel.pop_due(20)) == [(10, "a"), (20, "b")]
    assert len(wheel) == 1
    assert list(wheel.pop_due(29)) == []
    assert list(wheel.pop_due(30)) == [(30, "c")]
    assert wheel.next_due() is None


def test_one_wake_up_per_key_moving_and_cancelling() -> None:
    wheel: TimerWheel[str] = TimerWheel()
    wheel.schedule("a", 50)
    wheel.schedule("a", 10)  # moved earlier
    wheel.schedule("b", 5)
    wheel.schedule("b", None)  # cancelled
    assert wheel.due("a") == 10 and "b" not in wheel
    wheel.schedule("a", 40)  # moved later: the old entry is skipped when it comes up
    assert list(wheel.pop_due(39)) == []
    assert list(wheel.pop_due(40)) == [(40, "a")]


def test_keys_scheduled_while_firing_come_up_in_turn() -> None:
    wheel: TimerWheel[str] = TimerWheel()
    wheel.schedule("a", 1)
    fired = []
    for due, key in wheel.pop_due(10):
        fired.append((due, key))
        if due < 5:
            wheel.schedule(key, due + 2)
    assert fired == [(1, "a"), (3, "a"), (5, "a")]


def test_stale_entries_are_compacted() -> None:
    wheel: TimerWheel[int] = TimerWheel()
    for i in range(100):
        wheel.schedule(i, 1_000_000)
    for rounds in range(50):
        for i in range(100):
            wheel.schedule(i, 1_000_000 - rounds - 1)  # every key moved, again and again
    assert len(wheel) == 100
    assert wheel.stale <= max(1024, len(wheel))  # bounded, not 5,000
    assert [k for _, k in wheel.pop_due(10**9)] == list(range(100))


@given(
    st.lists(
        st.tuples(st.integers(0, 9), st.none() | st.integers(0, 1000)),
        max_size=200,
    ),
    st.integers(0, 1000),
)
def test_matches_a_plain_dict_of_due_times(ops: list[tuple[int, int | None]], upto: int) -> None:
    wheel: TimerWheel[int] = TimerWheel()
    expected: dict[int, int] = {}
    for key, due in ops:
        wheel.schedule(key, due)
        if due is None:
            expected.pop(key, None)
        else:
            expected[key] = due
    assert wheel.next_due() == (min(expected.values()) if expected else None)
    fired = list(wheel.pop_due(upto))
    want = sorted((due, key) for key, due in expected.items() if due <= upto)
    assert [d for d, _ in fired] == [d for d, _ in want]
    assert sorted(fired) == want
    assert len(wheel) == len([k for k, d in expected.items() if d > upto])
