"""``apply``: create, update only what changed, dry runs, conflicting documents."""

from __future__ import annotations

import pytest
from journeys_cli.apply import apply_documents
from journeys_client import (
    FailedPreconditionError,
    FileFormatError,
    InvalidArgumentError,
    JourneysClient,
)
from journeys_client.files import load_file, parse_documents

from tests.helpers.builders import EXAMPLES


async def test_updates_name_only_the_changed_fields(client: JourneysClient) -> None:
    docs = load_file(EXAMPLES / "onboarding.yaml")
    await apply_documents(client, docs)
    text = (EXAMPLES / "onboarding.yaml").read_text()
    edited = parse_documents(
        text.replace("name: Onboarding flow", "name: Onboarding").replace(
            "duration: 1h", "duration: 2h"
        )
    )
    changes = await apply_documents(client, edited)
    assert [str(c) for c in changes][-1] == "journey/onboarding updated (name, steps)"
    journey = await client.get_journey("onboarding")
    assert journey.name == "Onboarding"
    assert journey.steps[1].wait_duration.duration.ToMilliseconds() == 7_200_000


async def test_dry_run_changes_nothing(client: JourneysClient) -> None:
    docs = load_file(EXAMPLES / "trial-to-paid.yaml")
    changes = await apply_documents(client, docs, dry_run=True)
    assert {c.action for c in changes} == {"created (dry run)"}
    assert await client.list_journeys() == []
    assert await client.list_destinations() == []
    # Everything but the definitions the same apply creates is still checked.
    broken = parse_documents(
        (EXAMPLES / "trial-to-paid.yaml").read_text().replace("duration: 5d", "duration: 0s")
    )
    with pytest.raises(InvalidArgumentError) as caught:
        await apply_documents(client, broken, dry_run=True)
    assert "journey.steps[1].wait_duration.duration" in [
        v.field for v in caught.value.field_violations
    ]


async def test_the_same_id_described_twice_differently_is_refused(client: JourneysClient) -> None:
    docs = parse_documents(
        "kind: Destination\nid: d\nname: D\ntype: track\n---\n"
        "kind: Destination\nid: d\nname: D\ntype: list\n"
    )
    with pytest.raises(FileFormatError, match="destination/d is described twice, differently"):
        await apply_documents(client, docs)
    assert await client.list_destinations() == []


async def test_a_destination_type_cannot_change(client: JourneysClient) -> None:
    await apply_documents(
        client, parse_documents("kind: Destination\nid: d\nname: D\ntype: track\n")
    )
    with pytest.raises(InvalidArgumentError, match="fixed at creation"):
        await apply_documents(
            client, parse_documents("kind: Destination\nid: d\nname: D\ntype: list\n")
        )


async def test_documents_need_ids(client: JourneysClient) -> None:
    with pytest.raises(FileFormatError, match="needs an id"):
        await apply_documents(client, parse_documents("kind: Journey\nname: J\nsteps: []\n"))


async def test_a_live_journey_refuses_structural_changes(client: JourneysClient) -> None:
    await apply_documents(client, load_file(EXAMPLES / "onboarding.yaml"))
    await client.publish_journey("onboarding")
    text = (EXAMPLES / "onboarding.yaml").read_text().replace("duration: 1h", "duration: 2h")
    with pytest.raises(FailedPreconditionError) as caught:
        await apply_documents(client, parse_documents(text))
    assert [v.subject for v in caught.value.precondition_violations] == [
        "journey.steps[1].wait_duration.duration"
    ]


async def test_a_condition_written_as_a_tree_applies_and_stays_unchanged(
    client: JourneysClient,
) -> None:
    text = (
        (EXAMPLES / "onboarding.yaml")
        .read_text()
        .replace(
            "  condition: event('Account Created').count() >= 1\n",
            "  condition:\n"
            "    comparison:\n"
            "      left: {event: {event: Account Created, reducer: {kind: REDUCER_KIND_COUNT}}}\n"
            "      comparator: COMPARATOR_GTE\n"
            "      value: {literal: 1}\n",
        )
    )
    docs = parse_documents(text)
    await apply_documents(client, docs)
    journey = await client.get_journey("onboarding")
    assert journey.steps[0].entry.condition.text == "event('Account Created').count() >= 1"
    again = await apply_documents(client, docs)
    assert {c.action for c in again} == {"unchanged"}
    changed = parse_documents(text.replace("value: {literal: 1}", "value: {literal: 2}"))
    assert [str(c) for c in await apply_documents(client, changed)][-1] == (
        "journey/onboarding updated (steps)"
    )
    updated = await client.get_journey("onboarding")
    assert updated.steps[0].entry.condition.text == "event('Account Created').count() >= 2"
