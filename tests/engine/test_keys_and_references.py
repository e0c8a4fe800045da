"""Send-step keys, references that block deletes, size limits, paging and the stored form."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journeys_engine import (
    Engine,
    EngineSettings,
    InUseError,
    InvalidArgumentError,
    Move,
    NotFoundError,
)
from journeys_engine.catalog.paging import PageRequest
from journeys_engine.model import (
    Audience,
    Branch,
    Condition,
    DefinitionKind,
    EntryStep,
    Journey,
    JourneySettings,
    JourneyStatus,
    Limits,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    TrueFalseSplitStep,
)
from journeys_engine.model import keys as keys_module
from journeys_engine.model.keys import KEY_PATTERN, make_key
from journeys_engine.model.limits import DAY_MS
from journeys_engine.store.codec import decode_journey, encode_journey
from journeys_engine.testing import FakeClock
from tests.helpers.builders import add_destination, journey, with_
from tests.helpers.strategies import journeys

SEND_KEY_FIELD = "journey.steps[3].send_to_destinations.key"


def _suffixes(monkeypatch: pytest.MonkeyPatch, *, first: int) -> list[int]:
    """Makes key suffixes "aaaaaa" for the first ``first`` keys, "bbbbbb" after.

    Returns the list of requested lengths, one per suffix drawn.
    """
    drawn: list[int] = []

    def fake(length: int) -> str:
        drawn.append(length)
        return "aaaaaa" if len(drawn) <= first else "bbbbbb"

    monkeypatch.setattr(keys_module, "random_suffix", fake)
    return drawn


def _send_keys(saved: Journey) -> list[str]:
    return [s.key for s in saved.send_steps()]


def _with_send_key(j: Journey, key: str) -> Journey:
    return with_(j, steps=(*j.steps[:3], with_(j.steps[3], key=key)))


# Generated keys


async def test_a_generated_key_avoids_one_another_journey_holds(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_destination(engine)
    # The first journey's key, then the same draw again for the second, then a new one.
    drawn = _suffixes(monkeypatch, first=2)
    first = (await engine.journeys.create("default", journey(journey_id="a"))).journey
    second = (await engine.journeys.create("default", journey(journey_id="b"))).journey
    assert _send_keys(first) == ["j_o_welcome__thank_buyers_aaaaaa"]
    assert _send_keys(second) == ["j_o_welcome__thank_buyers_bbbbbb"]
    assert drawn == [6, 6, 6]  # the clash was seen and a fresh suffix drawn
    assert _send_keys(await engine.journeys.get("default", "b")) == _send_keys(second)


async def test_a_generated_key_avoids_one_an_earlier_step_of_the_same_journey_took(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_destination(engine)
    drawn = _suffixes(monkeypatch, first=2)
    same_names = journey(
        EntryStep("e", "Entry", Condition("event('A').count() >= 1"), False, "s1"),
        SendToDestinationsStep("s1", "Send", ("email",), next_step_id="s2"),
        SendToDestinationsStep("s2", "Send", ("email",)),
        journey_id="j",
    )
    saved = (await engine.journeys.create("default", same_names)).journey
    assert _send_keys(saved) == ["j_o_welcome__send_aaaaaa", "j_o_welcome__send_bbbbbb"]
    assert len(drawn) == 3
    assert _send_keys(await engine.journeys.get("default", "j")) == _send_keys(saved)


# Keys given in a request


async def test_a_given_key_must_be_the_one_the_names_give(engine: Engine) -> None:
    await add_destination(engine)
    foreign = _with_send_key(journey(journey_id="j"), "j_o_other_journey__thank_buyers_abc123")
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.create("default", foreign)
    assert [v.field for v in caught.value.violations] == [SEND_KEY_FIELD]
    assert "j_o_welcome__thank_buyers" in caught.value.violations[0].description
    with pytest.raises(NotFoundError):
        await engine.journeys.get("default", "j")
    right = _with_send_key(journey(journey_id="j"), "j_o_welcome__thank_buyers_abc123")
    saved = (await engine.journeys.create("default", right)).journey
    assert _send_keys(saved) == ["j_o_welcome__thank_buyers_abc123"]
    assert _send_keys(await engine.journeys.get("default", "j")) == _send_keys(saved)


async def test_a_given_key_for_another_step_name_is_refused(engine: Engine) -> None:
    await add_destination(engine)
    other_step = _with_send_key(journey(journey_id="j"), "j_o_welcome__say_hello_abc123")
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.create("default", other_step)
    assert [v.field for v in caught.value.violations] == [SEND_KEY_FIELD]


# Cutting keys to the limit


def test_a_cut_step_slug_loses_its_trailing_underscore() -> None:
    # 73 + 170 characters of slugs pass the room by one: the cut lands right after "_".
    key = make_key("j" * 73, "a" * 168 + " b", max_length=255, suffix="abc123")
    assert len(key) <= 255
    assert KEY_PATTERN.fullmatch(key)
    head = key.removesuffix("_abc123")
    journey_part, step_part = head.removeprefix("j_o_").split("__")
    assert journey_part == "j" * 73
    assert step_part == "a" * 168
    assert not step_part.endswith("_")


@given(
    st.text(min_size=1, max_size=73),
    st.text(min_size=1, max_size=170),
)
def test_keys_within_the_name_limits_are_well_formed(journey_name: str, step_name: str) -> None:
    key = make_key(journey_name, step_name, max_length=255, suffix="x1y2z3")
    assert len(key) <= 255
    assert KEY_PATTERN.fullmatch(key), key
    journey_part, step_part = key.removeprefix("j_o_").removesuffix("_x1y2z3").split("__")
    for part in (journey_part, step_part):
        assert part and not part.startswith("_") and not part.endswith("_"), key


# References


async def test_a_condition_added_by_a_draft_update_blocks_the_audience_once_published(
    engine: Engine,
) -> None:
    await add_destination(engine)
    await engine.definitions.create(
        "default", Audience("x", "", "X", "", Condition("event('A').count() >= 1"))
    )
    draft = (await engine.journeys.create("default", journey(journey_id="j"))).journey
    split = draft.steps[2]
    assert isinstance(split, TrueFalseSplitStep)
    uses_x = with_(
        draft,
        steps=(
            *draft.steps[:2],
            with_(split, condition=Condition("audience('x')")),
            *draft.steps[3:],
        ),
    )
    await engine.journeys.update("default", uses_x)
    await engine.journeys.move("default", "j", Move.PUBLISH)
    with pytest.raises(InUseError, match="used by published journey 'j'") as caught:
        await engine.definitions.delete("default", DefinitionKind.AUDIENCE, "x")
    assert [v.subject for v in caught.value.violations] == ["journey/j"]
    assert (await engine.definitions.get("default", DefinitionKind.AUDIENCE, "x")).id == "x"
    # Deleting the journey frees the audience.
    await engine.journeys.delete("default", "j")
    await engine.definitions.delete("default", DefinitionKind.AUDIENCE, "x")
    with pytest.raises(NotFoundError):
        await engine.definitions.get("default", DefinitionKind.AUDIENCE, "x")


async def test_deleting_a_journey_frees_its_keys(engine: Engine) -> None:
    await add_destination(engine)
    first = (await engine.journeys.create("default", journey(journey_id="a"))).journey
    (key,) = _send_keys(first)
    reuse = _with_send_key(journey(journey_id="b"), key)
    with pytest.raises(InvalidArgumentError, match="already used by journey 'a'"):
        await engine.journeys.create("default", reuse)
    await engine.journeys.delete("default", "a")
    saved = (await engine.journeys.create("default", reuse)).journey
    assert _send_keys(saved) == [key]
    assert _send_keys(await engine.journeys.get("default", "b")) == [key]


# Limits

TEN_YEARS_MS = 10 * 365 * DAY_MS


async def test_exit_after_of_ten_years_is_the_longest(engine: Engine) -> None:
    await add_destination(engine)
    longest = journey(journey_id="ok", settings=JourneySettings(exit_after_ms=TEN_YEARS_MS))
    saved = (await engine.journeys.create("default", longest)).journey
    assert saved.settings.exit_after_ms == TEN_YEARS_MS
    too_long = journey(journey_id="no", settings=JourneySettings(exit_after_ms=TEN_YEARS_MS + 1))
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.create("default", too_long)
    assert [v.field for v in caught.value.violations] == ["journey.settings.exit_after"]
    with pytest.raises(NotFoundError):
        await engine.journeys.get("default", "no")


def _split_journey(branches: int) -> Journey:
    split = MultiBranchSplitStep(
        "split",
        "Split",
        tuple(
            Branch(f"B{i}", Condition(f"event('E{i}').count() >= 1"), f"send{i}")
            for i in range(branches)
        ),
    )
    sends = [SendToDestinationsStep(f"send{i}", f"Send {i}", ("email",)) for i in range(branches)]
    entry = EntryStep("entry", "Entry", Condition("event('A').count() >= 1"), False, "split")
    return journey(entry, split, *sends, journey_id=f"split{branches}")


async def test_a_split_holds_at_most_twenty_branches(db_path: Path, clock: FakeClock) -> None:
    settings = EngineSettings(limits=Limits(max_steps=100))
    async with await Engine.open(db_path, clock=clock, settings=settings) as engine:
        await add_destination(engine)
        saved = (await engine.journeys.create("default", _split_journey(20))).journey
        split = saved.steps[1]
        assert isinstance(split, MultiBranchSplitStep)
        assert len(split.branches) == 20
        with pytest.raises(InvalidArgumentError) as caught:
            await engine.journeys.create("default", _split_journey(21))
        assert [v.field for v in caught.value.violations] == [
            "journey.steps[1].multi_branch_split.branches"
        ]
        assert [j.id for j in (await engine.journeys.list("default")).items] == ["split20"]


# Paging


def test_page_sizes_are_capped_and_defaulted() -> None:
    assert PageRequest.parse(10**9, "").size == 1000
    assert PageRequest.parse(0, "").size == 50


# The stored form


@given(journeys)
def test_every_journey_round_trips_through_the_stored_form(j: Journey) -> None:
    assert decode_journey(encode_journey(j)) == j


@given(
    journeys,
    st.sampled_from(JourneyStatus),
    st.integers(min_value=0, max_value=2**53),
    st.none() | st.integers(min_value=0, max_value=2**53),
)
def test_status_and_times_round_trip_too(
    j: Journey, status: JourneyStatus, created: int, published: int | None
) -> None:
    stored = dataclasses.replace(
        j,
        space_id="acme",
        status=status,
        create_time_ms=created,
        update_time_ms=created + 1,
        publish_time_ms=published,
    )
    assert decode_journey(encode_journey(stored)) == stored
