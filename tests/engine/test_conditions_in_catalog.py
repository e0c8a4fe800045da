"""Journeys and definitions store checked conditions; bad ones are refused by position."""

from __future__ import annotations

import pytest

from journeys_engine import Engine, InUseError, InvalidArgumentError, Move
from journeys_engine.model import (
    Audience,
    ComputedTrait,
    Condition,
    DefinitionKind,
    EntryStep,
    Step,
    TrueFalseSplitStep,
)
from tests.helpers.builders import add_destination, basic_steps, journey, with_


def _with_condition(step_index: int, text: str) -> tuple[Step, ...]:
    steps = list(basic_steps())
    steps[step_index] = with_(steps[step_index], condition=Condition(text))
    return tuple(steps)


async def test_a_bad_condition_is_refused_naming_the_step_and_position(engine: Engine) -> None:
    await add_destination(engine)
    steps = _with_condition(2, "event('Order Completed').count() >=")
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.create("default", journey(*steps))
    (violation,) = caught.value.violations
    assert violation.field == "journey.steps[2].true_false_split.condition"
    assert violation.description.startswith("line 1, column 36: expected a value")
    assert (await engine.journeys.list("default")).items == ()


async def test_every_bad_condition_of_a_journey_is_reported(engine: Engine) -> None:
    await add_destination(engine)
    steps = list(_with_condition(0, "event('A') >= 1"))
    steps[2] = with_(steps[2], condition=Condition("trait('x').count() > 1"))
    bad = journey(*steps)
    bad = with_(
        bad, settings=with_(bad.settings, exit_condition=Condition("ANY ( trait('a') = 1 )"))
    )
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.create("default", bad)
    assert {v.field for v in caught.value.violations} == {
        "journey.settings.exit_condition",
        "journey.steps[0].entry.condition",
        "journey.steps[2].true_false_split.condition",
    }


async def test_conditions_are_stored_as_written(engine: Engine) -> None:
    await add_destination(engine)
    written = 'event("Signed Up").count()>=1'
    steps = _with_condition(0, written)
    saved = await engine.journeys.create("default", journey(*steps, journey_id="j"))
    entry = (await engine.journeys.get("default", "j")).steps[0]
    assert isinstance(entry, EntryStep)
    assert entry.condition.text == written == saved.journey.entry.condition.text


async def test_the_leaf_limit_is_a_setting(engine: Engine) -> None:
    await add_destination(engine)
    fifty_one = " OR ".join(f"trait('t{i}') = {i}" for i in range(51))
    with pytest.raises(InvalidArgumentError, match="at most 50 primary expressions"):
        await engine.journeys.create("default", journey(*_with_condition(2, fifty_one)))


async def test_control_characters_are_refused(engine: Engine) -> None:
    await add_destination(engine)
    with pytest.raises(InvalidArgumentError, match="control characters"):
        await engine.journeys.create(
            "default",
            journey(*_with_condition(2, "trait('a') = 'x\x00'")),
        )


@pytest.mark.parametrize(
    ("entry", "historical", "warned"),
    [
        ("event('Order Completed').within(180 days).count() = 0", False, True),
        ("event('Order Completed').count() <= 0", False, True),
        ("NOT ( event('A').count() >= 1 )", False, True),
        ("event('Order Completed').within(180 days).count() = 0", True, False),
        ("event('Order Completed').count() >= 1", False, False),
        ("trait('plan') = 'pro'", False, False),
    ],
)
async def test_a_zero_count_entry_without_history_is_warned(
    engine: Engine, entry: str, historical: bool, warned: bool
) -> None:
    await add_destination(engine)
    steps = list(_with_condition(0, entry))
    steps[0] = with_(steps[0], use_historical_data=historical)
    saved = await engine.journeys.create("default", journey(*steps))
    fields = [w.field for w in saved.warnings]
    assert fields == (["journey.steps[0].entry.condition"] if warned else [])
    if warned:
        assert "every profile that sends anything after publish will enter" in (
            saved.warnings[0].description
        )


async def test_references_come_from_the_tree_not_from_text(engine: Engine) -> None:
    await add_destination(engine)
    await engine.definitions.create(
        "default", Audience("vips", "", "VIPs", "", Condition("trait('vip') = true"))
    )
    # The audience's id only appears inside a string: not a reference.
    steps = _with_condition(2, "trait('note') = \"audience('vips')\"")
    await engine.journeys.create("default", journey(*steps, journey_id="j"))
    await engine.journeys.move("default", "j", Move.PUBLISH)
    await engine.definitions.delete("default", DefinitionKind.AUDIENCE, "vips")
    # A real reference to a missing audience is refused; one to an existing one holds it.
    with pytest.raises(InvalidArgumentError, match="refers to audience 'vips'"):
        await engine.journeys.create("default", journey(*_with_condition(2, "audience('vips')")))


async def test_computed_traits_are_checked_as_expressions(engine: Engine) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.definitions.create(
            "default",
            ComputedTrait("clv", "", "CLV", "", Condition("event('Order').count() >= 1")),
        )
    assert caught.value.violations[0].field == "computed_trait.expression"
    assert "ends in a reducer" in caught.value.violations[0].description
    created = await engine.definitions.create(
        "default",
        ComputedTrait("clv", "", "CLV", "", Condition("event('Order').sum(property('total'))")),
    )
    assert created.id == "clv"


async def test_an_audience_used_through_a_computed_trait_comparison_is_held(engine: Engine) -> None:
    await add_destination(engine)
    await engine.definitions.create(
        "default",
        ComputedTrait("clv", "", "CLV", "", Condition("event('Order').sum(property('total'))")),
    )
    steps = list(basic_steps())
    steps[2] = TrueFalseSplitStep(
        "split", "Valuable", Condition("computed_trait('clv') > 100"), "send"
    )
    await engine.journeys.create("default", journey(*steps, journey_id="j"))
    await engine.journeys.move("default", "j", Move.PUBLISH)
    with pytest.raises(InUseError, match="published journey 'j'"):
        await engine.definitions.delete("default", DefinitionKind.COMPUTED_TRAIT, "clv")


async def test_check_condition_returns_the_canonical_text(engine: Engine) -> None:
    checked = await engine.definitions.check_condition(
        "default", Condition("event(\"A\").count()>=1 and trait('b') == 2")
    )
    assert checked.text == "event('A').count() >= 1 AND trait('b') = 2"
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.definitions.check_condition("default", Condition("audience('ghost')"))
    assert caught.value.violations[0].field == "condition"
