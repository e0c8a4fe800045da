"""The whole-journey simulator: one journey, a script of messages and clock moves.

:func:`simulate_journey` runs the production engine — the same catalog, runtime
and store code — on an in-memory database and a manual clock of its own. Into
it go a copy of the space (same id, so payloads and message ids are those
production would make), its destinations, computed traits and audiences, and
the journey, created as a fresh draft (a stored one keeps its id, step ids and
send-step keys). The script then plays out::

    clock starts at min(start_time, first message's timestamp)
    │  messages timestamped before start_time: the profiles' history
    ├─ publish at start_time (before the first step at or after it)
    │  each step in order:
    │    message     received at its timestamp (the clock moves there first
    │                when it is later; without one, or timestamped before the
    │                clock, received at the clock's time, timestamp kept)
    │    advance     the clock moves forward by a duration
    │    advance_to  the clock moves forward to an instant
    └─ end_time: the clock moves there last (every timer due by then fires)

The journey's counts are read after the publish, after each instant a step
moved the clock to or received a message at, and at the end (one entry per
instant), and every destination call is kept in order. Nothing of the live
engine is written; of its state only the space, its definitions and the stored
journey are read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from journeys_engine.catalog import DEFAULT_SPACE, MAX_PAGE_SIZE
from journeys_engine.catalog.paging import all_items
from journeys_engine.clock import MAX_INSTANT_MS, ManualClock, format_ms, parse_iso_ms
from journeys_engine.engine import Engine
from journeys_engine.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    PreconditionViolation,
)
from journeys_engine.ids import new_id
from journeys_engine.messages import parse_message
from journeys_engine.model.definitions import (
    Audience,
    ComputedTrait,
    Definition,
    DefinitionKind,
    Destination,
    Space,
)
from journeys_engine.model.journey import (
    Journey,
    JourneyStatus,
    relabel_steps,
)
from journeys_engine.model.keys import KEY_PATTERN, SUFFIX_LENGTH, make_key
from journeys_engine.model.references import condition_references
from journeys_engine.reporting import JourneyReport
from journeys_engine.runtime.outputs import Output
from journeys_engine.runtime.sink import MemorySink

__all__ = [
    "MAX_STEPS",
    "Advance",
    "AdvanceTo",
    "Receive",
    "ScriptStep",
    "SimulatedCall",
    "SimulatedCounts",
    "Simulation",
    "simulate_journey",
]

MAX_STEPS = 100_000
"""Steps (messages and clock moves) one simulation takes at most."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Receive:
    """A Segment-spec message (its JSON form, as :meth:`Engine.ingest` takes it)."""

    message: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Advance:
    """Moves the clock forward by ``ms`` milliseconds (more than zero)."""

    ms: int


@dataclass(frozen=True, slots=True)
class AdvanceTo:
    """Moves the clock forward to ``instant`` (epoch milliseconds; never back)."""

    instant: int


ScriptStep = Receive | Advance | AdvanceTo


@dataclass(frozen=True, slots=True)
class SimulatedCounts:
    """The journey's counts at one instant (``report.journey`` is the journey simulated)."""

    time: int
    report: JourneyReport


@dataclass(frozen=True, slots=True)
class SimulatedCall:
    """One destination call; ``sequence`` is dense per destination, from 1."""

    sequence: int
    output: Output

    @property
    def destination_id(self) -> str:
        """The destination it is for."""
        return self.output.destination_id


@dataclass(frozen=True, slots=True)
class Simulation:
    """What a journey would do over a script.

    Attributes:
        journey: The journey as simulated: ids and send-step keys included,
            published at the start time.
        counts: Its counts after the publish, after each instant a step moved
            the clock to or received a message at, and at the end; one entry
            per instant, in time order.
        calls: Every destination call, in the order produced.
        end_time: Where the clock ended.
    """

    journey: Journey
    counts: tuple[SimulatedCounts, ...]
    calls: tuple[SimulatedCall, ...]
    end_time: int


@dataclass(frozen=True, slots=True)
class _Plan:
    """The script's instants, worked out (and checked) before anything runs."""

    clock_start: int  # where the simulator's clock begins
    start: int  # the publish instant
    targets: tuple[int, ...]  # per step, the instant it moves the clock to or receives at
    end: int  # where the clock ends
    problems: tuple[FieldViolation, ...]


async def simulate_journey(
    engine: Engine,
    space_id: str,
    *,
    journey_id: str = "",
    journey: Journey | None = None,
    steps: Sequence[ScriptStep] = (),
    start_time: int | None = None,
    end_time: int | None = None,
    validate_only: bool = False,
) -> Simulation:
    """Runs one journey over ``steps`` in an engine of its own and returns what it did.

    Exactly one of ``journey_id`` (a stored journey of any status, simulated as a
    fresh draft published anew, with its ids and keys) and ``journey`` (checked
    as :meth:`Journeys.create` checks it, keys generated when absent) is given.
    ``start_time`` defaults to the first message's timestamp, else the engine's
    clock; ``end_time`` to where the steps leave the clock. With
    ``validate_only`` everything is checked, nothing is run (the result has no
    counts and no calls).

    Raises:
        NotFoundError: no such space, or no such stored journey.
        InvalidArgumentError: naming every bad field: the journey, a message (by
            its step index: ``steps[3].message.userId``), a clock move backwards
            or past the last instant, too many steps, ``start_time`` or ``end_time``.
        FailedPreconditionError: the stored journey is not valid as it stands, or
            the journey cannot be published as it stands.
    """
    space = await engine.spaces.get(space_id)
    if journey is not None and journey_id:
        raise InvalidArgumentError.single("journey_id", "give journey_id or journey, not both")
    if journey is None and not journey_id:
        raise InvalidArgumentError.single("journey_id", "give journey_id or journey")
    if len(steps) > MAX_STEPS:
        raise InvalidArgumentError.single(
            "steps", f"holds {len(steps):,} steps; a simulation takes at most {MAX_STEPS:,}"
        )
    stored = await engine.journeys.get(space_id, journey_id) if journey is None else None
    plan = _plan(steps, start_time, end_time, default_start=engine.clock.now_ms())
    settings = dataclasses.replace(engine.settings, manual_clock=True, fsync=False)
    sink = MemorySink()
    async with await Engine.open(
        ":memory:", clock=ManualClock(plan.clock_start), sink=sink, settings=settings
    ) as sim:
        await _copy_space(engine, sim, space)
        try:
            if stored is not None:
                draft = await _create_stored(sim, space_id, stored)
            else:
                assert journey is not None
                draft = (await sim.journeys.create(space_id, journey)).journey
        except InvalidArgumentError as err:
            if stored is None:
                raise InvalidArgumentError([*err.violations, *plan.problems]) from err
            raise FailedPreconditionError(
                f"journey {stored.id!r} cannot be simulated as it stands: {err.message}",
                [
                    PreconditionViolation("JOURNEY_INVALID", v.field, v.description)
                    for v in err.violations
                ],
            ) from err
        if plan.problems:
            raise InvalidArgumentError(plan.problems)
        if validate_only:
            return Simulation(draft, (), (), plan.end)
        return await _play(sim, sink, space_id, draft, steps, plan)


async def _publish(engine: Engine, space_id: str, journey_id: str) -> Journey:
    """Publishes the journey as production does and returns once everything the
    publish set going is applied: a historical entry, which runs in the background
    live, has entered every profile whose history matches before the script goes on."""
    published, operation = await engine.publish_journey(space_id, journey_id)
    if operation is not None:
        await engine.operations.wait(space_id, operation.id)
    await engine.settle()
    return published


# Working out the script


def _plan(
    steps: Sequence[ScriptStep],
    start_time: int | None,
    end_time: int | None,
    *,
    default_start: int,
) -> _Plan:
    """Checks every step and works out the instant of each, without running anything."""
    problems: list[FieldViolation] = []
    stamps: list[int | None] = []
    for i, step in enumerate(steps):
        stamp = None
        if isinstance(step, Receive):
            try:
                # The check production applies to every ingested message.
                parse_message(step.message, received_at=default_start, path=f"steps[{i}].message")
            except InvalidArgumentError as err:
                problems.extend(err.violations)
            else:
                stamp = _timestamp(step.message)
        stamps.append(stamp)
    first = next((stamp for stamp in stamps if stamp is not None), None)
    for name, value in (("start_time", start_time), ("end_time", end_time)):
        if value is not None and value > MAX_INSTANT_MS:
            problems.append(FieldViolation(name, _past_the_end(value)))
    if start_time is not None and start_time <= MAX_INSTANT_MS:
        start = start_time
    else:
        start = first if first is not None else default_start
    clock_start = start if first is None else min(start, first)
    clock = clock_start
    targets: list[int] = []
    for i, (step, stamp) in enumerate(zip(steps, stamps, strict=True)):
        target = clock
        match step:
            case Receive():
                target = max(clock, stamp) if stamp is not None else clock
            case Advance(ms=ms):
                if ms <= 0:
                    problems.append(FieldViolation(f"steps[{i}].advance", "must be more than zero"))
                elif clock + ms > MAX_INSTANT_MS:
                    problems.append(
                        FieldViolation(f"steps[{i}].advance", _past_the_end(clock + ms))
                    )
                else:
                    target = clock + ms
            case AdvanceTo(instant=instant):
                if instant < clock:
                    problems.append(
                        FieldViolation(
                            f"steps[{i}].advance_to",
                            f"is {format_ms(instant)}, before the clock's time there "
                            f"({format_ms(clock)}); the clock never goes back",
                        )
                    )
                elif instant > MAX_INSTANT_MS:
                    problems.append(
                        FieldViolation(f"steps[{i}].advance_to", _past_the_end(instant))
                    )
                else:
                    target = instant
        targets.append(target)
        clock = target
    end = max(clock, start)
    if end_time is not None and end_time <= MAX_INSTANT_MS:
        if end_time < end:
            problems.append(
                FieldViolation(
                    "end_time",
                    f"is {format_ms(end_time)}, before {format_ms(end)}, where the publish "
                    "and the steps leave the clock",
                )
            )
        else:
            end = end_time
    return _Plan(clock_start, start, tuple(targets), end, tuple(problems))


def _timestamp(message: Mapping[str, Any]) -> int | None:
    """A checked message's own timestamp, if it has one."""
    value = message.get("timestamp")
    return parse_iso_ms(value) if isinstance(value, str) else None


def _past_the_end(instant: int) -> str:
    return (
        f"is {instant} ms after the epoch, past {format_ms(MAX_INSTANT_MS)}, "
        "the last instant the engine keeps"
    )


# Playing it


async def _play(
    sim: Engine,
    sink: MemorySink,
    space_id: str,
    draft: Journey,
    steps: Sequence[ScriptStep],
    plan: _Plan,
) -> Simulation:
    journey = draft
    published = False
    counts: list[SimulatedCounts] = []
    batch_limit = sim.settings.limits.max_batch_messages

    async def move(instant: int) -> None:
        if instant > sim.clock.now_ms():
            await sim.advance_to(instant)

    async def record() -> None:
        report = await sim.reporting.journey(space_id, journey.id)
        # One journey object for every entry, not a copy read back each time.
        entry = SimulatedCounts(sim.clock.now_ms(), dataclasses.replace(report, journey=journey))
        if counts and counts[-1].time == entry.time:
            counts[-1] = entry
        else:
            counts.append(entry)

    async def reach(instant: int) -> None:
        nonlocal journey, published
        if not published and instant >= plan.start:
            await move(plan.start)
            journey = await _publish(sim, space_id, journey.id)
            published = True
            await record()
        await move(instant)

    i = 0
    while i < len(steps):
        target = plan.targets[i]
        await reach(target)
        step = steps[i]
        if isinstance(step, Receive):
            # Consecutive messages received at one instant go in one batch.
            end = i
            batch: list[Mapping[str, Any]] = []
            while end < len(steps) and len(batch) < batch_limit:
                following = steps[end]
                if not isinstance(following, Receive) or plan.targets[end] != target:
                    break
                batch.append(following.message)
                end += 1
            result = await sim.ingest(space_id, batch)
            if result.errors:
                raise _refused(i, result.errors)
            await sim.settle()
            i = end
        else:
            i += 1
        if published:
            await record()
    await reach(max(sim.clock.now_ms(), plan.start))  # (publishes, if no step reached the start)
    await move(plan.end)
    await record()
    seen: dict[str, int] = {}
    calls = []
    for output in sink.outputs:
        sequence = seen[output.destination_id] = seen.get(output.destination_id, 0) + 1
        calls.append(SimulatedCall(sequence, output))
    return Simulation(journey, tuple(counts), tuple(calls), sim.clock.now_ms())


def _refused(first: int, errors: Mapping[int, tuple[FieldViolation, ...]]) -> InvalidArgumentError:
    """The ingest path's refusals of a batch, named by the steps the messages came from."""
    violations: list[FieldViolation] = []
    for index, problems in sorted(errors.items()):
        batch_path, step_path = f"messages[{index}]", f"steps[{first + index}].message"
        violations.extend(
            FieldViolation(v.field.replace(batch_path, step_path, 1), v.description)
            for v in problems
        )
    return InvalidArgumentError(violations)


# Copying the space


async def _copy_space(live: Engine, sim: Engine, space: Space) -> None:
    """Creates the space and its definitions in the simulator, each as it is live."""
    if space.id != DEFAULT_SPACE:  # (the simulator has its own default space)
        await sim.spaces.create(space.id, space.display_name)

    async def every(kind: DefinitionKind) -> list[Definition]:
        return await all_items(
            lambda token: live.definitions.list(
                space.id, kind, page_size=MAX_PAGE_SIZE, page_token=token
            )
        )

    destinations = [
        d for d in await every(DefinitionKind.DESTINATION) if isinstance(d, Destination)
    ]
    traits = [d for d in await every(DefinitionKind.COMPUTED_TRAIT) if isinstance(d, ComputedTrait)]
    audiences = [d for d in await every(DefinitionKind.AUDIENCE) if isinstance(d, Audience)]
    ordered: list[Definition] = [*destinations, *traits, *_dependency_order(audiences)]
    for definition in ordered:
        await sim.definitions.create(space.id, definition)


def _dependency_order(audiences: Sequence[Audience]) -> list[Audience]:
    """The audiences, each after those it refers to (creation order otherwise):
    an audience may have been changed to refer to one created after it."""
    by_id = {a.id: a for a in audiences}
    ordered: list[Audience] = []
    placed: set[str] = set()

    def place(audience: Audience) -> None:
        placed.add(audience.id)  # (set first: stored audiences have no cycles, but be safe)
        for kind, ref in condition_references(audience.condition):
            if kind is DefinitionKind.AUDIENCE and ref in by_id and ref not in placed:
                place(by_id[ref])
        ordered.append(audience)

    for audience in audiences:
        if audience.id not in placed:
            place(audience)
    return ordered


# Recreating a stored journey


async def _create_stored(sim: Engine, space_id: str, stored: Journey) -> Journey:
    """Creates ``stored`` in the simulator as a draft with its ids and send-step keys.

    The catalog takes a given key only when it is the one the journey's and the
    step's names give; a key never changes once generated, so a journey renamed
    since then is recreated the way it came to be: created under the names its
    keys were made from, then renamed (an update keeps keys). Steps added after
    a rename were keyed under the later name: they join in a later update.
    """
    draft = dataclasses.replace(stored, status=JourneyStatus.DRAFT, publish_time_ms=None)
    limit = sim.settings.limits.max_key
    keyed = [s for s in draft.send_steps() if s.key]
    stale = [
        s
        for s in keyed
        if s.key != make_key(draft.name, s.name, max_length=limit, suffix=s.key[-SUFFIX_LENGTH:])
    ]
    origins = {s.id: _key_names(s.key) for s in keyed}
    if not stale or None in origins.values():
        # (an unreadable key is refused by the create, naming it)
        return (await sim.journeys.create(space_id, draft)).journey
    names = {step_id: pair for step_id, pair in origins.items() if pair is not None}
    journey_slugs = list(dict.fromkeys(journey_slug for journey_slug, _ in names.values()))
    placeholders = {step_id: new_id("st") for step_id in names}
    for phase, journey_slug in enumerate(journey_slugs):
        later = {
            step_id for step_id, (slug, _) in names.items() if journey_slugs.index(slug) > phase
        }
        steps = tuple(
            dataclasses.replace(step, name=names[step.id][1])
            if step.id in names and names[step.id][0] == journey_slug
            else step
            for step in draft.steps
        )
        interim = dataclasses.replace(
            draft,
            name=journey_slug,
            steps=relabel_steps(steps, {step_id: placeholders[step_id] for step_id in later}),
        )
        if phase == 0:
            await sim.journeys.create(space_id, interim)
        else:
            await sim.journeys.update(space_id, interim)
    return (await sim.journeys.update(space_id, draft)).journey


def _key_names(key: str) -> tuple[str, str] | None:
    """The journey and step names (as slugs) a key was made from, if it is one."""
    if not KEY_PATTERN.fullmatch(key):
        return None
    body = key[len("j_o_") : -(SUFFIX_LENGTH + 1)]
    journey_slug, sep, step_slug = body.partition("__")  # (a slug never holds "__")
    if not sep or not journey_slug or not step_slug:
        return None
    return journey_slug, step_slug
