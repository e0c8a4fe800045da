"""Audiences, computed traits and destinations: CRUD, validation, references (SPEC §3)."""

from __future__ import annotations

import pytest

from journeys_engine import (
    AlreadyExistsError,
    Engine,
    InUseError,
    InvalidArgumentError,
    Move,
    NotFoundError,
)
from journeys_engine.model import (
    Audience,
    ComputedTrait,
    Condition,
    DefinitionKind,
    Destination,
    DestinationKind,
    EventMode,
)
from journeys_engine.testing import FakeClock
from tests.helpers.builders import add_destination, basic_steps, journey, with_

AUD, CT, DST = DefinitionKind.AUDIENCE, DefinitionKind.COMPUTED_TRAIT, DefinitionKind.DESTINATION


def audience(aud_id: str, text: str = "event('Order Completed').count() >= 3") -> Audience:
    return Audience(aud_id, "", f"Audience {aud_id}", "", Condition(text))


def trait(ct_id: str) -> ComputedTrait:
    return ComputedTrait(
        ct_id,
        "",
        "Lifetime value",
        "",
        Condition("event('Order Completed').sum(property('revenue'))"),
    )


async def test_create_get_list_update_delete(engine: Engine, clock: FakeClock) -> None:
    created = await engine.definitions.create("default", audience("vips"))
    assert created.space_id == "default"
    assert created.create_time_ms == clock.now_ms()
    assert await engine.definitions.get("default", AUD, "vips") == created
    clock.advance(minutes=5)
    updated = await engine.definitions.update(
        "default",
        with_(audience("vips"), name="Very important"),
        update_mask=["name"],
    )
    assert updated.name == "Very important"
    assert isinstance(updated, Audience)
    assert isinstance(created, Audience)
    assert updated.condition == created.condition
    assert updated.update_time_ms == clock.now_ms() != updated.create_time_ms
    page = await engine.definitions.list("default", AUD)
    assert page.items == (updated,)
    await engine.definitions.delete("default", AUD, "vips")
    with pytest.raises(NotFoundError, match="audience 'vips' not found"):
        await engine.definitions.get("default", AUD, "vips")


async def test_ids_are_generated_with_a_prefix(engine: Engine) -> None:
    a = await engine.definitions.create("default", audience(""))
    t = await engine.definitions.create("default", trait(""))
    d = await engine.definitions.create(
        "default", Destination("", "", "Braze", DestinationKind.EVENT, EventMode.TRACK)
    )
    assert a.id.startswith("aud_") and t.id.startswith("ct_") and d.id.startswith("dst_")


async def test_ids_are_unique_per_kind(engine: Engine) -> None:
    await engine.definitions.create("default", audience("x"))
    with pytest.raises(AlreadyExistsError):
        await engine.definitions.create("default", audience("x"))
    await engine.definitions.create("default", trait("x"))  # another kind: fine


@pytest.mark.parametrize(
    ("definition", "field", "text"),
    [
        (audience("bad id!"), "audience.id", "1-64 characters"),
        (with_(audience("a"), name=""), "audience.name", "is required"),
        (with_(audience("a"), name="n" * 201), "audience.name", "at most 200"),
        (audience("a", ""), "audience.condition", "is required"),
        (audience("a", "audience('nope')"), "audience.condition", "audience 'nope'"),
        (audience("a", "audience('a')"), "audience.condition", "audience 'a'"),
        (
            with_(trait("t"), expression=Condition("")),
            "computed_trait.expression",
            "is required",
        ),
        (
            with_(trait("t"), description="d" * 2001),
            "computed_trait.description",
            "at most 2000",
        ),
        (Destination("d", "", "D", None, None), "destination.kind", "is required"),
        (
            Destination("d", "", "D", DestinationKind.EVENT, None),
            "destination.event_mode",
            "required",
        ),
        (
            Destination("d", "", "D", DestinationKind.LIST, EventMode.TRACK),
            "destination.event_mode",
            "must be unset",
        ),
        (Destination("d", "", "", DestinationKind.LIST, None), "destination.name", "is required"),
    ],
)
async def test_invalid_definitions_are_refused(
    engine: Engine, definition: Audience | ComputedTrait | Destination, field: str, text: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.definitions.create("default", definition)
    assert any(v.field == field and text in v.description for v in caught.value.violations), (
        caught.value.violations
    )
    assert (await engine.definitions.list("default", definition.KIND)).items == ()


async def test_a_cycle_of_audience_references_is_refused(engine: Engine) -> None:
    await engine.definitions.create("default", audience("a"))
    await engine.definitions.create("default", audience("b", "audience('a')"))
    await engine.definitions.create("default", audience("c", "audience('b') AND audience('a')"))
    with pytest.raises(InvalidArgumentError, match="refers back to itself") as caught:
        await engine.definitions.update("default", audience("a", "NOT audience('c')"))
    chain = str(caught.value).split("refers back to itself: ", 1)[1]
    assert chain.startswith("audience('a') -> audience('c') -> ")
    assert chain.endswith("-> audience('a')")
    stored = await engine.definitions.get("default", AUD, "a")
    assert isinstance(stored, Audience)
    assert stored.condition.text == "event('Order Completed').count() >= 3"


async def test_destination_kind_is_fixed(engine: Engine) -> None:
    await add_destination(engine, "email")
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.definitions.update(
            "default",
            Destination("email", "", "Email", DestinationKind.LIST, None),
            update_mask=["name", "kind"],
        )
    assert caught.value.violations[0].field == "update_mask.paths[1]"
    assert "fixed at creation" in caught.value.violations[0].description
    renamed = await engine.definitions.update(
        "default", Destination("email", "", "Mail", DestinationKind.LIST, None)
    )
    assert isinstance(renamed, Destination)
    assert renamed.name == "Mail"
    assert renamed.kind is DestinationKind.EVENT  # not in the (default) mask: unchanged


async def test_delete_is_refused_while_a_live_journey_uses_it(engine: Engine) -> None:
    await add_destination(engine, "email")
    await engine.definitions.create("default", audience("vips"))
    await engine.definitions.create("default", trait("clv"))
    steps = list(basic_steps())
    steps[2] = with_(
        steps[2], condition=Condition("audience('vips') AND computed_trait('clv') > 100")
    )
    await engine.journeys.create("default", journey(*steps, journey_id="live"))
    await engine.journeys.create("default", journey(*steps, journey_id="draft"))
    await engine.journeys.move("default", "live", Move.PUBLISH)
    for kind, def_id in ((DST, "email"), (AUD, "vips"), (CT, "clv")):
        with pytest.raises(
            InUseError, match=f"{kind.value} '{def_id}' is used by published journey 'live'"
        ) as caught:
            await engine.definitions.delete("default", kind, def_id)
        assert [v.subject for v in caught.value.violations] == ["journey/live"]
        await engine.definitions.get("default", kind, def_id)
    # Archived journeys still hold them; deleting the journey frees them.
    await engine.journeys.move("default", "live", Move.ARCHIVE)
    with pytest.raises(InUseError, match="archived journey 'live'"):
        await engine.definitions.delete("default", DST, "email")
    await engine.journeys.delete("default", "live")
    for kind, def_id in ((DST, "email"), (AUD, "vips"), (CT, "clv")):
        await engine.definitions.delete("default", kind, def_id)  # only a draft used them


async def test_delete_is_refused_while_another_definition_uses_it(engine: Engine) -> None:
    await engine.definitions.create("default", audience("base"))
    await engine.definitions.create("default", audience("derived", "audience('base')"))
    with pytest.raises(InUseError, match="used by audience 'derived'"):
        await engine.definitions.delete("default", AUD, "base")
    await engine.definitions.delete("default", AUD, "derived")
    await engine.definitions.delete("default", AUD, "base")


async def test_a_draft_using_a_deleted_definition_cannot_be_published(engine: Engine) -> None:
    from journeys_engine import FailedPreconditionError

    await add_destination(engine, "email")
    await engine.journeys.create("default", journey(journey_id="draft"))
    await engine.definitions.delete("default", DST, "email")
    with pytest.raises(FailedPreconditionError, match="cannot be published as it stands") as caught:
        await engine.journeys.move("default", "draft", Move.PUBLISH)
    assert (
        caught.value.violations[0].subject
        == "journey.steps[3].send_to_destinations.destination_ids[0]"
    )
