"""Spaces, unknown-space refusal, paging (SPEC §1)."""

from __future__ import annotations

import pytest

from journeys_engine import AlreadyExistsError, Engine, InvalidArgumentError, NotFoundError
from journeys_engine.model import DefinitionKind
from tests.helpers.builders import add_destination, journey


async def test_the_default_space_exists_from_the_first_start(engine: Engine) -> None:
    space = await engine.spaces.get("default")
    assert space.id == "default"
    assert [s.id for s in (await engine.spaces.list()).items] == ["default"]


async def test_create_space(engine: Engine) -> None:
    created = await engine.spaces.create("acme", "Acme Inc.")
    assert (created.id, created.display_name) == ("acme", "Acme Inc.")
    assert (await engine.spaces.create("bare")).display_name == "bare"
    with pytest.raises(AlreadyExistsError):
        await engine.spaces.create("acme")
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.spaces.create("not ok/../x")
    assert caught.value.violations[0].field == "space.id"


async def test_an_unknown_space_is_never_created(engine: Engine) -> None:
    calls = [
        engine.journeys.create("nowhere", journey()),
        engine.journeys.get("nowhere", "j"),
        engine.journeys.list("nowhere"),
        engine.definitions.list("nowhere", DefinitionKind.AUDIENCE),
        engine.definitions.get("nowhere", DefinitionKind.DESTINATION, "d"),
        engine.definitions.delete("nowhere", DefinitionKind.DESTINATION, "d"),
        engine.spaces.get("nowhere"),
    ]
    for call in calls:
        with pytest.raises(NotFoundError, match="space 'nowhere' not found"):
            await call
    assert [s.id for s in (await engine.spaces.list()).items] == ["default"]


async def test_nothing_crosses_spaces(engine: Engine) -> None:
    await engine.spaces.create("other")
    await add_destination(engine, "email", space="default")
    await engine.journeys.create("default", journey(journey_id="j"))
    with pytest.raises(NotFoundError):
        await engine.journeys.get("other", "j")
    assert (await engine.journeys.list("other")).items == ()
    # A journey in "other" cannot use "default"'s destination.
    with pytest.raises(InvalidArgumentError, match="'email' does not exist"):
        await engine.journeys.create("other", journey(journey_id="j"))


async def test_paging(engine: Engine) -> None:
    await add_destination(engine)
    for i in range(7):
        await engine.journeys.create("default", journey(journey_id=f"j{i}"))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await engine.journeys.list("default", page_size=3, page_token=token)
        seen.extend(j.id for j in page.items)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"j{i}" for i in range(7)]
    assert pages == 3
    exact = await engine.journeys.list("default", page_size=7)
    assert len(exact.items) == 7 and exact.next_page_token == ""


@pytest.mark.parametrize(
    ("size", "token", "field"),
    [(-1, "", "page_size"), (10, "garbage!", "page_token"), (10, "cDE6eA==", "page_token")],
)
async def test_bad_page_requests(engine: Engine, size: int, token: str, field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.list("default", page_size=size, page_token=token)
    assert caught.value.violations[0].field == field


async def test_page_size_is_capped(engine: Engine) -> None:
    page = await engine.spaces.list(page_size=10**9)
    assert len(page.items) == 1


async def test_ingest_into_an_unknown_space_is_refused_every_time(engine: Engine) -> None:
    looked_up: list[str] = []
    get = engine.spaces.get

    async def counted_get(space_id: str) -> object:
        looked_up.append(space_id)
        return await get(space_id)

    engine.spaces.get = counted_get  # type: ignore[method-assign,assignment]
    message = {"type": "track", "userId": "u", "event": "E", "messageId": "m1"}
    assert (await engine.ingest("default", [message])).accepted == 1
    assert (await engine.ingest("default", [message])).duplicates == [0]
    assert looked_up == ["default"]  # found once, then remembered: no read per call
    for _ in range(2):  # (a space ingest has found is remembered; others are not)
        with pytest.raises(NotFoundError, match="space 'nowhere' not found"):
            await engine.ingest("nowhere", [message])
    await engine.spaces.create("nowhere")
    assert (await engine.ingest("nowhere", [message])).accepted == 1
