"""Entry preview (SPEC §6): who matches a journey's entry over history, now.

It reads the same thing a historical entry reads — each stored profile's
retained events up to the last position applied to it, built into the entry's
leaves by the same code — and evaluates the entry condition alone, at now,
into scratch copies: nothing is made resident, written or sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from journeys_engine.catalog import Journeys
from journeys_engine.clock import Clock
from journeys_engine.conditions.evaluator import evaluate, leaf_specs
from journeys_engine.conditions.parser import parse_condition
from journeys_engine.conditions.profile import ProfileConditions
from journeys_engine.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    PreconditionViolation,
)
from journeys_engine.model.journey import JourneyStatus
from journeys_engine.runtime import Runtime
from journeys_engine.runtime.actor import Actor
from journeys_engine.store.durable import DurableStore
from journeys_engine.store.history import History

__all__ = ["DEFAULT_PREVIEW", "MAX_PREVIEW", "EntryPreview", "preview_entry"]

DEFAULT_PREVIEW = 10
MAX_PREVIEW = 1000
_CHUNK = 500
_UNLIMITED = 1_000_000


@dataclass(frozen=True, slots=True)
class EntryPreview:
    """Who matches a journey's entry condition now.

    Attributes:
        matching: Stored profiles the entry condition holds for.
        scanned: Stored profiles looked at.
        profile_keys: The first matching ones by profile id (user id, or
            anonymous id without one).
        at: The instant it was evaluated at.
    """

    matching: int
    scanned: int
    profile_keys: tuple[str, ...]
    at: int


async def preview_entry(
    *,
    journeys: Journeys,
    runtime: Runtime,
    store: DurableStore,
    history: History,
    clock: Clock,
    settle: Callable[[], Awaitable[None]],
    space_id: str,
    journey_id: str,
    limit: int = 0,
) -> EntryPreview:
    """How many stored profiles match the journey's entry condition now over their
    retained history, and the first ``limit`` of them (0: 10; at most 1,000).

    Raises:
        NotFoundError: no such space or journey.
        InvalidArgumentError: a negative limit.
        FailedPreconditionError: the journey is archived.
    """
    if limit < 0:
        raise InvalidArgumentError.single("limit", "must not be negative")
    limit = min(limit or DEFAULT_PREVIEW, MAX_PREVIEW)
    journey = await journeys.get(space_id, journey_id)
    if journey.status is JourneyStatus.ARCHIVED:
        raise FailedPreconditionError(
            f"journey {journey_id!r} is archived: only drafts and published or paused "
            "journeys can be previewed",
            [
                PreconditionViolation(
                    "JOURNEY_STATUS", f"journey/{journey_id}", "an archived journey"
                )
            ],
        )
    await settle()  # (what the caller sent is counted)
    now = clock.now_ms()
    entry = parse_condition(journey.entry.condition.text, max_leaves=_UNLIMITED)
    specs = {spec.key: spec for spec in leaf_specs(entry, None)}
    names = {spec.aggregate.event for spec in specs.values()}
    space = runtime.space(space_id)
    definitions = space.conditions.definitions
    matching = scanned = 0
    keys: list[str] = []
    after = ""
    while ids := await store.actor_ids(space_id, after, _CHUNK):
        after = ids[-1]
        resident = {i: space.actors[i] for i in ids if i in space.actors}
        stored = await store.load_actors(
            space_id, [i for i in ids if i not in resident], space.conditions.index
        )
        actors: dict[str, Actor] = {**{a.id: a for a, _ in stored}, **resident}
        upto = {a.id: a.position for a in actors.values()}
        events, _ = await history.events(space_id, upto, names)
        for actor_id in ids:
            actor = actors.get(actor_id)
            if actor is None:
                continue  # (deleted meanwhile)
            scanned += 1
            scratch = ProfileConditions()
            scratch.traits = actor.conditions.traits
            scratch.states = dict(actor.conditions.states)
            scratch.rebuild(specs.values(), events.get(actor_id, ()), now)
            if evaluate(entry, scratch, definitions, now, None)[0]:
                matching += 1
                if len(keys) < limit:
                    keys.append(actor.key)
    return EntryPreview(matching, scanned, tuple(keys), now)
