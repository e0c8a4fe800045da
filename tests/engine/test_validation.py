"""Every journey validation rule is refused with its field path, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from journeys_engine import Engine, InvalidArgumentError
from journeys_engine.model import (
    Branch,
    Condition,
    EntryStep,
    Journey,
    JourneySettings,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    Step,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)
from journeys_engine.model.limits import DAY_MS
from tests.helpers.builders import BOUGHT, add_destination, basic_steps, journey, with_

C = Condition("event('Signed Up').count() >= 1")


def _replace_step(index: int, **changes: object) -> Callable[[Journey], Journey]:
    def change(j: Journey) -> Journey:
        steps = list(j.steps)
        steps[index] = with_(steps[index], **changes)
        return with_(j, steps=tuple(steps))

    return change


def _with_steps(*steps: Step) -> Callable[[Journey], Journey]:
    return lambda j: with_(j, steps=tuple(steps))


def _with(**changes: object) -> Callable[[Journey], Journey]:
    return lambda j: with_(j, **changes)


def _branches(n: int) -> tuple[Step, ...]:
    branches = tuple(Branch(f"b{i}", C, f"s{i}") for i in range(n))
    sends = tuple(SendToDestinationsStep(f"s{i}", f"Send {i}", ("email",)) for i in range(n))
    return (
        EntryStep("entry", "Entry", C, False, "split"),
        MultiBranchSplitStep("split", "Split", branches),
        *sends,
    )


CASES: list[tuple[str, Callable[[Journey], Journey], str, str]] = [
    ("name missing", _with(name=""), "journey.name", "is required"),
    ("name blank", _with(name="   "), "journey.name", "is required"),
    ("name too long", _with(name="x" * 74), "journey.name", "at most 73"),
    ("name control char", _with(name="a\x00b"), "journey.name", "control characters"),
    ("description too long", _with(description="d" * 2001), "journey.description", "at most 2000"),
    ("no steps", _with(steps=()), "journey.steps", "entry step"),
    (
        "no entry",
        _with_steps(WaitDurationStep("w", "Wait", DAY_MS, None)),
        "journey.steps",
        "exactly one entry step",
    ),
    (
        "two entries",
        _with_steps(
            EntryStep("e1", "E1", C, False, "s"),
            EntryStep("e2", "E2", C, False, None),
            SendToDestinationsStep("s", "S", ("email",)),
        ),
        "journey.steps[1]",
        "second entry step",
    ),
    ("step id missing", _replace_step(1, id=""), "journey.steps[1].id", "is required"),
    (
        "step id bad",
        _replace_step(3, id="no spaces please"),
        "journey.steps[3].id",
        "1-64 characters",
    ),
    (
        "step id duplicate",
        _replace_step(3, id="wait"),
        "journey.steps[3].id",
        "also the id of steps[1]",
    ),
    ("step name missing", _replace_step(2, name=""), "journey.steps[2].name", "is required"),
    (
        "step name too long",
        _replace_step(2, name="n" * 171),
        "journey.steps[2].name",
        "at most 170",
    ),
    (
        "entry condition missing",
        _replace_step(0, condition=Condition("")),
        "journey.steps[0].entry.condition",
        "is required",
    ),
    (
        "condition too long",
        _replace_step(2, condition=Condition("x" * 10_001)),
        "journey.steps[2].true_false_split.condition",
        "at most 10000",
    ),
    (
        "condition names a missing audience",
        _replace_step(2, condition=Condition("audience('vips')")),
        "journey.steps[2].true_false_split.condition",
        "audience 'vips'",
    ),
    (
        "condition names a missing computed trait",
        _replace_step(2, condition=Condition("computed_trait('ltv') > 3")),
        "journey.steps[2].true_false_split.condition",
        "computed_trait 'ltv'",
    ),
    (
        "wait zero",
        _replace_step(1, duration_ms=0),
        "journey.steps[1].wait_duration.duration",
        "more than zero",
    ),
    (
        "wait negative",
        _replace_step(1, duration_ms=-5),
        "journey.steps[1].wait_duration.duration",
        "more than zero",
    ),
    (
        "wait over a year",
        _replace_step(1, duration_ms=365 * DAY_MS + 1),
        "journey.steps[1].wait_duration.duration",
        "at most 365 days",
    ),
    (
        "entry without child",
        _replace_step(0, next_step_id=None),
        "journey.steps[0].entry.next_step_id",
        "is required",
    ),
    (
        "wait without child",
        _replace_step(1, next_step_id=None),
        "journey.steps[1].wait_duration.next_step_id",
        "is required",
    ),
    (
        "child does not exist",
        _replace_step(1, next_step_id="nowhere"),
        "journey.steps[1].wait_duration.next_step_id",
        "'nowhere', which is not in this journey",
    ),
    (
        "child is itself",
        _replace_step(1, next_step_id="wait"),
        "journey.steps[1].wait_duration.next_step_id",
        "the step itself",
    ),
    (
        "child is the entry",
        _replace_step(3, next_step_id="entry"),
        "journey.steps[3].send_to_destinations.next_step_id",
        "refers to the entry step",
    ),
    (
        "two parents",
        _replace_step(2, false_step_id="send"),
        "journey.steps[2].true_false_split.false_step_id",
        "already has a parent",
    ),
    (
        "unreachable step",
        lambda j: with_(
            j, steps=(*j.steps, SendToDestinationsStep("orphan", "Orphan", ("email",)))
        ),
        "journey.steps[4]",
        "no step leads to it",
    ),
    (
        "cycle",
        lambda j: with_(
            j,
            steps=(
                *j.steps,
                WaitDurationStep("a", "A", DAY_MS, "b"),
                WaitDurationStep("b", "B", DAY_MS, "a"),
            ),
        ),
        "journey.steps[4]",
        "part of a cycle",
    ),
    (
        "wait_condition without child",
        _with_steps(EntryStep("e", "E", C, False, "w"), WaitConditionStep("w", "W", BOUGHT, None)),
        "journey.steps[1].wait_condition.next_step_id",
        "is required",
    ),
    (
        "one branch",
        _with_steps(*_branches(1)),
        "journey.steps[1].multi_branch_split.branches",
        "at least 2",
    ),
    (
        "duplicate branch names",
        lambda j: _with_steps(
            *(
                with_(s, branches=(s.branches[0], with_(s.branches[1], name="b0")))
                if isinstance(s, MultiBranchSplitStep)
                else s
                for s in _branches(2)
            )
        )(j),
        "journey.steps[1].multi_branch_split.branches[1].name",
        "more than one branch",
    ),
    (
        "branch without child",
        lambda j: _with_steps(
            EntryStep("entry", "Entry", C, False, "split"),
            MultiBranchSplitStep("split", "Split", (Branch("a", C, "s"), Branch("b", C, None))),
            SendToDestinationsStep("s", "S", ("email",)),
        )(j),
        "journey.steps[1].multi_branch_split.branches[1].next_step_id",
        "is required",
    ),
    (
        "branch condition missing",
        lambda j: _with_steps(
            EntryStep("entry", "Entry", C, False, "split"),
            MultiBranchSplitStep(
                "split", "Split", (Branch("a", C, "s"), Branch("b", Condition(" "), "t"))
            ),
            SendToDestinationsStep("s", "S", ("email",)),
            SendToDestinationsStep("t", "T", ("email",)),
        )(j),
        "journey.steps[1].multi_branch_split.branches[1].condition",
        "is required",
    ),
    (
        "unknown destination",
        _replace_step(3, destination_ids=("email", "pigeon")),
        "journey.steps[3].send_to_destinations.destination_ids[1]",
        "'pigeon' does not exist",
    ),
    (
        "duplicate destination",
        _replace_step(3, destination_ids=("email", "email")),
        "journey.steps[3].send_to_destinations.destination_ids[1]",
        "listed twice",
    ),
    (
        "malformed key",
        _replace_step(3, key="my-key"),
        "journey.steps[3].send_to_destinations.key",
        "must look like",
    ),
    (
        "too many steps",
        _with_steps(*_branches(20)),
        "journey.steps",
        "count as 41 steps; at most 20 are allowed",
    ),
    (
        "exit_after zero",
        _with(settings=JourneySettings(exit_after_ms=0)),
        "journey.settings.exit_after",
        "more than zero",
    ),
    (
        "reentry without exit_after",
        _with(settings=JourneySettings(reentry_after_ms=DAY_MS)),
        "journey.settings.reentry_after",
        "requires exit_after",
    ),
    (
        "reentry zero",
        _with(settings=JourneySettings(exit_after_ms=DAY_MS, reentry_after_ms=0)),
        "journey.settings.reentry_after",
        "more than zero",
    ),
    (
        "blank exit condition",
        _with(settings=JourneySettings(exit_condition=Condition(""))),
        "journey.settings.exit_condition",
        "is required",
    ),
]


@pytest.mark.parametrize(("case", "change", "field", "text"), CASES, ids=[c[0] for c in CASES])
async def test_invalid_journey_is_refused_naming_the_field(
    engine: Engine, case: str, change: Callable[[Journey], Journey], field: str, text: str
) -> None:
    await add_destination(engine)
    bad = change(journey(journey_id="j1"))
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.create("default", bad)
    found = [(v.field, v.description) for v in caught.value.violations]
    assert any(f == field and text in d for f, d in found), found
    assert (await engine.journeys.list("default")).items == ()


async def test_every_problem_is_reported_at_once(engine: Engine) -> None:
    bad = journey(
        EntryStep("entry", "", Condition(""), False, "w"),
        WaitDurationStep("w", "Wait", 0, "s"),
        SendToDestinationsStep("s", "S", ("ghost",)),
        name="",
    )
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.create("default", bad)
    fields = {v.field for v in caught.value.violations}
    assert fields == {
        "journey.name",
        "journey.steps[0].name",
        "journey.steps[0].entry.condition",
        "journey.steps[1].wait_duration.duration",
        "journey.steps[2].send_to_destinations.destination_ids[0]",
    }


async def test_the_step_limit_counts_as_the_seed_does(engine: Engine) -> None:
    """wait_duration counts 0 and a multi-branch split one per branch: exactly 20 passes."""
    await add_destination(engine)
    steps = list(_branches(9))  # entry 1 + split 9 + sends 9 = 19, plus a final send = 20
    waits = [WaitDurationStep(f"w{i}", f"W{i}", DAY_MS, f"w{i + 1}") for i in range(10)]
    waits[-1] = with_(waits[-1], next_step_id=None)
    last = with_(steps[-1], next_step_id="w0")
    tail = SendToDestinationsStep("final", "Final", ("email",))
    waits[-1] = with_(waits[-1], next_step_id="final")
    ok = journey(*steps[:-1], last, *waits, tail, journey_id="twenty")
    saved = await engine.journeys.create("default", ok)
    assert len(saved.journey.steps) == 22  # 12 counted steps, 10 waits counting 0

    too_many = with_(
        ok,
        id="twenty-one",
        steps=(
            *ok.steps[:-1],
            with_(tail, next_step_id="one-more"),
            TrueFalseSplitStep("one-more", "One more", BOUGHT),
        ),
    )
    with pytest.raises(InvalidArgumentError, match="count as 21 steps"):
        await engine.journeys.create("default", too_many)


async def test_journey_id_is_checked(engine: Engine) -> None:
    await add_destination(engine)
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.create("default", journey(), journey_id="has space")
    assert caught.value.violations[0].field == "journey_id"
    with pytest.raises(InvalidArgumentError) as caught:
        await engine.journeys.create("default", journey(journey_id="a"), journey_id="b")
    assert caught.value.violations[0].field == "journey.id"


async def test_a_valid_journey_is_saved(engine: Engine) -> None:
    await add_destination(engine)
    saved = await engine.journeys.create("default", journey(*basic_steps()))
    assert saved.journey.id.startswith("jr_")
    assert saved.journey.steps[:3] == basic_steps()[:3]
