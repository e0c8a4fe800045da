"""Lifecycle moves, the publish limit, edit rules, delete and clone (SPEC §6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from journeys_engine import (
    Engine,
    EngineSettings,
    InvalidArgumentError,
    LifecycleError,
    LimitExceededError,
    Move,
    NotFoundError,
)
from journeys_engine.model import (
    Condition,
    DefinitionKind,
    EntryStep,
    Journey,
    JourneySettings,
    JourneyStatus,
    Limits,
    SendToDestinationsStep,
    WaitDurationStep,
)
from journeys_engine.model.limits import DAY_MS, HOUR_MS
from journeys_engine.testing import FakeClock
from tests.helpers.builders import add_destination, journey, with_

D, PUB, PAU, ARC = (
    JourneyStatus.DRAFT,
    JourneyStatus.PUBLISHED,
    JourneyStatus.PAUSED,
    JourneyStatus.ARCHIVED,
)

# (starting status, move) -> resulting status, or None when refused
TRANSITIONS = {
    (D, Move.PUBLISH): PUB,
    (D, Move.PAUSE): None,
    (D, Move.RESUME): None,
    (D, Move.ARCHIVE): None,
    (PUB, Move.PUBLISH): None,
    (PUB, Move.PAUSE): PAU,
    (PUB, Move.RESUME): None,
    (PUB, Move.ARCHIVE): ARC,
    (PAU, Move.PUBLISH): None,
    (PAU, Move.PAUSE): None,
    (PAU, Move.RESUME): PUB,
    (PAU, Move.ARCHIVE): ARC,
    (ARC, Move.PUBLISH): None,
    (ARC, Move.PAUSE): None,
    (ARC, Move.RESUME): None,
    (ARC, Move.ARCHIVE): None,
}
PATH_TO = {
    D: [],
    PUB: [Move.PUBLISH],
    PAU: [Move.PUBLISH, Move.PAUSE],
    ARC: [Move.PUBLISH, Move.ARCHIVE],
}


async def _journey_in(engine: Engine, status: JourneyStatus, journey_id: str = "j") -> Journey:
    if not (await engine.definitions.list("default", DefinitionKind.DESTINATION)).items:
        await add_destination(engine)
    saved = await engine.journeys.create("default", journey(journey_id=journey_id))
    current = saved.journey
    for move in PATH_TO[status]:
        current = await engine.journeys.move("default", journey_id, move)
    assert current.status is status
    return current


@pytest.mark.parametrize(("start", "move"), list(TRANSITIONS), ids=lambda v: getattr(v, "value", v))
async def test_every_lifecycle_move(
    engine: Engine, clock: FakeClock, start: JourneyStatus, move: Move
) -> None:
    await _journey_in(engine, start)
    clock.advance(hours=1)
    expected = TRANSITIONS[(start, move)]
    if expected is None:
        with pytest.raises(
            LifecycleError, match=f"cannot {move.value} journey 'j': it is {start.value}"
        ) as caught:
            await engine.journeys.move("default", "j", move)
        assert caught.value.violations[0].type == "JOURNEY_STATUS"
        assert (await engine.journeys.get("default", "j")).status is start
    else:
        moved = await engine.journeys.move("default", "j", move)
        assert moved.status is expected
        stored = await engine.journeys.get("default", "j")
        assert stored.status is expected
        assert stored.update_time_ms == clock.now_ms()


async def test_publish_records_the_publish_time_once(engine: Engine, clock: FakeClock) -> None:
    await _journey_in(engine, D)
    published = await engine.journeys.move("default", "j", Move.PUBLISH)
    assert published.publish_time_ms == clock.now_ms()
    first = clock.now_ms()
    clock.advance(days=1)
    await engine.journeys.move("default", "j", Move.PAUSE)
    resumed = await engine.journeys.move("default", "j", Move.RESUME)
    assert resumed.publish_time_ms == first


async def test_delete_works_from_every_status(engine: Engine) -> None:
    for i, status in enumerate((D, PUB, PAU, ARC)):
        await _journey_in(engine, status, journey_id=f"j{i}")
        deleted = await engine.journeys.delete("default", f"j{i}")
        assert deleted.status is status
        with pytest.raises(NotFoundError):
            await engine.journeys.get("default", f"j{i}")


async def test_publish_limit_counts_published_and_paused(db_path: Path, clock: FakeClock) -> None:
    settings = EngineSettings(limits=Limits(max_live_journeys=2))
    async with await Engine.open(db_path, clock=clock, settings=settings) as engine:
        await add_destination(engine)
        for i in range(4):
            await engine.journeys.create("default", journey(journey_id=f"j{i}", name=f"J{i}"))
        await engine.journeys.move("default", "j0", Move.PUBLISH)
        await engine.journeys.move("default", "j1", Move.PUBLISH)
        await engine.journeys.move("default", "j1", Move.PAUSE)
        with pytest.raises(LimitExceededError, match="already has 2 published or paused") as caught:
            await engine.journeys.move("default", "j2", Move.PUBLISH)
        assert caught.value.violations[0].type == "LIVE_JOURNEY_LIMIT"
        assert (await engine.journeys.get("default", "j2")).status is D
        # Archiving frees a place; drafts never count.
        await engine.journeys.move("default", "j0", Move.ARCHIVE)
        await engine.journeys.move("default", "j2", Move.PUBLISH)
        with pytest.raises(LimitExceededError):
            await engine.journeys.move("default", "j3", Move.PUBLISH)


async def test_the_default_publish_limit_is_five(engine: Engine) -> None:
    await add_destination(engine)
    for i in range(6):
        await engine.journeys.create("default", journey(journey_id=f"j{i}"))
    for i in range(5):
        await engine.journeys.move("default", f"j{i}", Move.PUBLISH)
    with pytest.raises(LimitExceededError):
        await engine.journeys.move("default", "j5", Move.PUBLISH)


async def test_the_publish_limit_is_per_space(engine: Engine) -> None:
    await engine.spaces.create("other")
    for space in ("default", "other"):
        await add_destination(engine, space=space)
        for i in range(5):
            await engine.journeys.create(space, journey(journey_id=f"j{i}"))
            await engine.journeys.move(space, f"j{i}", Move.PUBLISH)


async def test_a_draft_can_change_in_every_way(engine: Engine) -> None:
    await _journey_in(engine, D)
    changed = journey(
        EntryStep("start", "Start", Condition("event('X').count() >= 1"), False, "out"),
        SendToDestinationsStep("out", "Out", ("email",)),
        journey_id="j",
        name="Renamed",
        settings=JourneySettings(exit_after_ms=DAY_MS),
    )
    saved = await engine.journeys.update("default", changed)
    assert [s.id for s in saved.journey.steps] == ["start", "out"]
    assert saved.journey.settings.exit_after_ms == DAY_MS
    assert (await engine.journeys.get("default", "j")) == saved.journey


@pytest.mark.parametrize("status", [PUB, PAU])
async def test_live_journeys_take_name_description_and_destinations(
    engine: Engine, status: JourneyStatus
) -> None:
    live = await _journey_in(engine, status)
    await add_destination(engine, "ads")
    send = live.steps[3]
    assert isinstance(send, SendToDestinationsStep)
    edited = with_(
        live,
        name="New name",
        description="New description",
        steps=(*live.steps[:3], with_(send, destination_ids=("ads", "email"))),
    )
    saved = await engine.journeys.update("default", edited)
    assert saved.journey.name == "New name"
    assert saved.journey.status is status
    stored = await engine.journeys.get("default", "j")
    new_send = stored.steps[3]
    assert isinstance(new_send, SendToDestinationsStep)
    assert new_send.destination_ids == ("ads", "email")
    assert new_send.key == send.key  # fixed once generated, even after a rename


@pytest.mark.parametrize(
    ("label", "edit", "subject"),
    [
        (
            "wait duration",
            lambda j: with_(
                j,
                steps=(
                    j.steps[0],
                    with_(j.steps[1], duration_ms=HOUR_MS),
                    *j.steps[2:],
                ),
            ),
            "journey.steps[1].wait_duration.duration",
        ),
        (
            "step name",
            lambda j: with_(j, steps=(j.steps[0], with_(j.steps[1], name="Other"), *j.steps[2:])),
            "journey.steps[1].name",
        ),
        (
            "condition",
            lambda j: with_(
                j,
                steps=(
                    *j.steps[:2],
                    with_(j.steps[2], condition=Condition("event('Y').count() >= 1")),
                    j.steps[3],
                ),
            ),
            "journey.steps[2].true_false_split.condition",
        ),
        (
            "settings",
            lambda j: with_(j, settings=JourneySettings(exit_after_ms=DAY_MS)),
            "journey.settings.exit_after",
        ),
        (
            "added step",
            lambda j: with_(
                j,
                steps=(
                    *j.steps[:3],
                    with_(j.steps[3], next_step_id="extra"),
                    WaitDurationStep("extra", "Extra", DAY_MS, None),
                ),
            ),
            "journey.steps[4]",
        ),
        (
            "removed step",
            lambda j: with_(j, steps=(*j.steps[:2], with_(j.steps[2], true_step_id=None))),
            "journey.steps",
        ),
    ],
)
async def test_live_journeys_refuse_other_edits(
    engine: Engine, label: str, edit: object, subject: str
) -> None:
    live = await _journey_in(engine, PUB)
    assert callable(edit)
    with pytest.raises(
        LifecycleError, match="only its name, description and the destinations"
    ) as caught:
        await engine.journeys.update("default", edit(live))
    subjects = [v.subject for v in caught.value.violations]
    assert subject in subjects, subjects
    assert await engine.journeys.get("default", "j") == live


async def test_an_archived_journey_takes_no_edit(engine: Engine) -> None:
    archived = await _journey_in(engine, ARC)
    with pytest.raises(LifecycleError, match="archived and cannot be edited"):
        await engine.journeys.update("default", with_(archived, name="Nope"))
    assert (await engine.journeys.get("default", "j")).name == archived.name


async def test_update_mask_replaces_only_the_named_fields(engine: Engine) -> None:
    original = await _journey_in(engine, D)
    request = with_(original, name="Only the name", description="ignored", steps=())
    saved = await engine.journeys.update("default", request, update_mask=["name"])
    assert saved.journey.name == "Only the name"
    assert saved.journey.description == original.description
    assert saved.journey.steps == original.steps


async def test_update_mask_paths_are_checked(engine: Engine) -> None:
    original = await _journey_in(engine, D)
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.update("default", original, update_mask=["name", "status"])
    assert caught.value.violations[0].field == "update_mask.paths[1]"


async def test_validate_only_writes_nothing(engine: Engine) -> None:
    await add_destination(engine)
    saved = await engine.journeys.create("default", journey(journey_id="j"), validate_only=True)
    assert saved.journey.id == "j"
    with pytest.raises(NotFoundError):
        await engine.journeys.get("default", "j")
    await engine.journeys.create("default", journey(journey_id="j"))
    original = await engine.journeys.get("default", "j")
    await engine.journeys.update("default", with_(original, name="Other"), validate_only=True)
    assert await engine.journeys.get("default", "j") == original


async def test_clone_makes_a_draft_with_new_ids_and_keys(engine: Engine) -> None:
    source = await _journey_in(engine, PUB)
    copy = await engine.journeys.clone("default", "j", new_journey_id="copy")
    assert copy.id == "copy"
    assert copy.status is D
    assert copy.name == "Copy of Welcome"
    assert copy.publish_time_ms is None
    assert {s.id for s in copy.steps}.isdisjoint({s.id for s in source.steps})
    old_keys = {s.key for s in source.send_steps()}
    new_keys = {s.key for s in copy.send_steps()}
    assert new_keys and new_keys.isdisjoint(old_keys)
    # Same tree shape: each step leads to the copy of the step the original led to.
    rename = {old.id: new.id for old, new in zip(source.steps, copy.steps, strict=True)}
    for old, new in zip(source.steps, copy.steps, strict=True):
        keep_key = {"key": old.key} if isinstance(old, SendToDestinationsStep) else {}
        assert with_(old, id=new.id, **_links(old, rename)) == with_(new, **keep_key)
    assert await engine.journeys.get("default", "copy") == copy


def _links(step: object, rename: dict[str, str]) -> dict[str, object]:
    links: dict[str, object] = {}
    for name in ("next_step_id", "true_step_id", "false_step_id"):
        value = getattr(step, name, None)
        if value is not None:
            links[name] = rename[value]
    return links


async def test_clone_name_is_cut_to_73_characters(engine: Engine) -> None:
    await add_destination(engine)
    await engine.journeys.create("default", journey(journey_id="long", name="n" * 73))
    copy = await engine.journeys.clone("default", "long")
    assert copy.name == ("Copy of " + "n" * 73)[:73]
    assert len(copy.name) == 73
    assert re.fullmatch(r"jr_[a-z0-9]{12}", copy.id)


async def test_keys_are_unique_in_a_space(engine: Engine) -> None:
    await add_destination(engine)
    first = await engine.journeys.create("default", journey(journey_id="a"))
    key = first.journey.send_steps()[0].key
    taken = journey(journey_id="b")
    send = with_(taken.steps[3], key=key)
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.create("default", with_(taken, steps=(*taken.steps[:3], send)))
    violation = caught.value.violations[0]
    assert violation.field == "journey.steps[3].send_to_destinations.key"
    assert "already used by journey 'a'" in violation.description
    # Another space may hold the same key.
    await engine.spaces.create("other")
    await add_destination(engine, space="other")
    await engine.journeys.create("other", with_(taken, steps=(*taken.steps[:3], send)))


async def test_a_key_is_fixed_once_generated(engine: Engine) -> None:
    await add_destination(engine)
    saved = (await engine.journeys.create("default", journey(journey_id="a"))).journey
    send = saved.steps[3]
    other_key = "j_o_welcome__thank_buyers_zzzzzz"
    changed = with_(saved, steps=(*saved.steps[:3], with_(send, key=other_key)))
    with pytest.raises(InvalidArgumentError, match="fixed once generated"):
        await engine.journeys.update("default", changed)
    # Leaving the key empty keeps it; renaming the journey and step keeps it too.
    renamed = with_(
        saved,
        name="Totally different",
        steps=(*saved.steps[:3], with_(send, key="", name="Renamed step")),
    )
    after = (await engine.journeys.update("default", renamed)).journey
    assert after.send_steps()[0].key == saved.send_steps()[0].key


async def test_keys_within_one_journey_differ(engine: Engine) -> None:
    await add_destination(engine)
    same_names = journey(
        EntryStep("e", "Entry", Condition("event('A').count() >= 1"), False, "s1"),
        SendToDestinationsStep("s1", "Send", ("email",), next_step_id="s2"),
        SendToDestinationsStep("s2", "Send", ("email",)),
    )
    saved = (await engine.journeys.create("default", same_names)).journey
    keys = [s.key for s in saved.send_steps()]
    assert len(set(keys)) == 2
    assert all(k.startswith("j_o_welcome__send_") for k in keys)
