"""Journeys: create, read, list, update, delete, and the lifecycle (SPEC §4, §6).

Every write validates the whole journey and either stores it completely or
raises without writing anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from journeys_engine.catalog.changes import JourneyChanged
from journeys_engine.catalog.masks import mask_paths
from journeys_engine.catalog.paging import Page, PageRequest
from journeys_engine.catalog.spaces import CatalogContext
from journeys_engine.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    LimitExceededError,
    NotFoundError,
    PreconditionViolation,
)
from journeys_engine.ids import id_problem, new_id
from journeys_engine.model.definitions import DefinitionKind
from journeys_engine.model.journey import (
    Condition,
    EntryStep,
    Journey,
    JourneyStatus,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    Step,
    TrueFalseSplitStep,
    WaitConditionStep,
    relabel_steps,
)
from journeys_engine.model.keys import make_key
from journeys_engine.model.lifecycle import Move, check_editable, target_status
from journeys_engine.model.references import condition_references
from journeys_engine.model.validation import KnownDefinitions, validate_journey
from journeys_engine.model.warnings import journey_warnings
from journeys_engine.store.catalog import JOURNEY, CatalogRows

__all__ = ["JOURNEY_MASK_PATHS", "Journeys", "Saved"]

JOURNEY_MASK_PATHS = ("name", "description", "settings", "steps")
_CLONE_PREFIX = "Copy of "


@dataclass(frozen=True, slots=True)
class Saved:
    """A journey as written, with remarks that did not stop the write."""

    journey: Journey
    warnings: tuple[FieldViolation, ...] = ()


class Journeys:
    """The journeys of every space."""

    def __init__(self, ctx: CatalogContext) -> None:
        self._ctx = ctx

    async def create(
        self,
        space_id: str,
        journey: Journey,
        *,
        journey_id: str = "",
        validate_only: bool = False,
    ) -> Saved:
        """Creates a draft.

        The id is ``journey_id``, else ``journey.id``, else generated. Step keys
        left empty are generated; given ones must be the key the names give, and
        free.

        Raises:
            InvalidArgumentError: naming every invalid field; nothing is written.
            NotFoundError: the space does not exist.
            AlreadyExistsError: the id is taken.
        """
        await self._ctx.check_space(space_id)
        if journey_id and journey.id and journey_id != journey.id:
            raise InvalidArgumentError.single(
                "journey.id", f"is {journey.id!r} but journey_id is {journey_id!r}"
            )
        chosen = journey_id or journey.id
        id_field = "journey_id" if journey_id else "journey.id"
        if chosen:
            problem = id_problem(chosen)
            if problem is not None:
                raise InvalidArgumentError.single(id_field, problem)
        async with self._ctx.db.transaction() as tx:
            rows = CatalogRows(tx)
            chosen = chosen or new_id("jr")
            if await rows.get_journey(space_id, chosen) is not None:
                raise AlreadyExistsError(kind="journey", id=chosen, space_id=space_id)
            now = self._ctx.clock.now_ms()
            draft = dataclasses.replace(
                journey,
                id=chosen,
                space_id=space_id,
                status=JourneyStatus.DRAFT,
                create_time_ms=now,
                update_time_ms=now,
                publish_time_ms=None,
            )
            saved = await self._checked(rows, draft, previous=None)
            if not validate_only:
                await rows.insert_journey(saved.journey)
                await self._save_refs(rows, saved.journey)
        if not validate_only:
            await self._ctx.notify(JourneyChanged(space_id, None, saved.journey))
        return saved

    async def get(self, space_id: str, journey_id: str) -> Journey:
        """One journey, or NOT_FOUND."""
        await self._ctx.check_space(space_id)
        async with self._ctx.db.read() as tx:
            return await self._load(CatalogRows(tx), space_id, journey_id)

    async def list(
        self,
        space_id: str,
        *,
        status: JourneyStatus | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Journey]:
        """A space's journeys in creation order, optionally of one status."""
        await self._ctx.check_space(space_id)
        request = PageRequest.parse(page_size, page_token)
        async with self._ctx.db.read() as tx:
            rows = CatalogRows(tx)
            found = await rows.list_journeys(space_id, status, request.after, request.size + 1)
        return request.page(found)

    async def update(
        self,
        space_id: str,
        journey: Journey,
        *,
        update_mask: Sequence[str] = (),
        validate_only: bool = False,
    ) -> Saved:
        """Replaces the fields named in ``update_mask`` (all four when empty).

        Raises:
            InvalidArgumentError: a bad mask or invalid content; nothing is written.
            NotFoundError: no such space or journey.
            LifecycleError: the journey's status does not allow the change.
        """
        await self._ctx.check_space(space_id)
        paths = mask_paths(update_mask, JOURNEY_MASK_PATHS)
        if not journey.id:
            raise InvalidArgumentError.single("journey.id", "is required")
        async with self._ctx.db.transaction() as tx:
            rows = CatalogRows(tx)
            stored = await self._load(rows, space_id, journey.id)
            changes = {path: getattr(journey, path) for path in paths}
            updated = dataclasses.replace(
                stored, **changes, update_time_ms=self._ctx.clock.now_ms()
            )
            check_editable(stored, updated)
            saved = await self._checked(rows, updated, previous=stored)
            if not validate_only:
                await rows.update_journey(saved.journey)
                await self._save_refs(rows, saved.journey)
        if not validate_only:
            await self._ctx.notify(JourneyChanged(space_id, stored, saved.journey))
        return saved

    async def delete(self, space_id: str, journey_id: str) -> Journey:
        """Deletes a journey of any status; returns what was deleted."""
        await self._ctx.check_space(space_id)
        async with self._ctx.db.transaction() as tx:
            rows = CatalogRows(tx)
            stored = await self._load(rows, space_id, journey_id)
            await rows.delete_journey(space_id, journey_id)
        await self._ctx.notify(JourneyChanged(space_id, stored, None))
        return stored

    async def move(self, space_id: str, journey_id: str, move: Move) -> Journey:
        """Publishes, pauses, resumes or archives a journey.

        Raises:
            NotFoundError: no such space or journey.
            LifecycleError: the move is not allowed from the current status.
            LimitExceededError: publishing would pass the space's live-journey limit.
            FailedPreconditionError: the journey cannot be published as it stands.
        """
        await self._ctx.check_space(space_id)
        async with self._ctx.db.transaction() as tx:
            rows = CatalogRows(tx)
            stored = await self._load(rows, space_id, journey_id)
            status = target_status(stored, move)
            now = self._ctx.clock.now_ms()
            moved = dataclasses.replace(stored, status=status, update_time_ms=now)
            if move is Move.PUBLISH:
                await self._check_publishable(rows, stored)
                moved = dataclasses.replace(moved, publish_time_ms=now)
            await rows.update_journey(moved)
        await self._ctx.notify(JourneyChanged(space_id, stored, moved))
        return moved

    async def clone(self, space_id: str, journey_id: str, *, new_journey_id: str = "") -> Journey:
        """Copies a journey into a new draft with new ids and keys.

        Raises:
            InvalidArgumentError: a bad ``new_journey_id``.
            NotFoundError: no such space or journey.
            AlreadyExistsError: ``new_journey_id`` is taken.
            FailedPreconditionError: the copy would not be valid (a definition
                it uses was deleted).
        """
        await self._ctx.check_space(space_id)
        if new_journey_id:
            problem = id_problem(new_journey_id)
            if problem is not None:
                raise InvalidArgumentError.single("new_journey_id", problem)
        async with self._ctx.db.transaction() as tx:
            rows = CatalogRows(tx)
            source = await self._load(rows, space_id, journey_id)
            chosen = new_journey_id or new_id("jr")
            if await rows.get_journey(space_id, chosen) is not None:
                raise AlreadyExistsError(kind="journey", id=chosen, space_id=space_id)
            now = self._ctx.clock.now_ms()
            name = (_CLONE_PREFIX + source.name)[: self._ctx.limits.max_journey_name]
            copy = dataclasses.replace(
                source,
                id=chosen,
                name=name,
                status=JourneyStatus.DRAFT,
                steps=relabel_steps(source.steps, {s.id: new_id("st") for s in source.steps}),
                create_time_ms=now,
                update_time_ms=now,
                publish_time_ms=None,
            )
            try:
                copy = (await self._checked(rows, copy, previous=None)).journey
            except InvalidArgumentError as err:
                raise FailedPreconditionError(
                    f"journey {journey_id!r} cannot be cloned as it stands: {err.message}",
                    _as_preconditions(err),
                ) from err
            await rows.insert_journey(copy)
            await self._save_refs(rows, copy)
        await self._ctx.notify(JourneyChanged(space_id, None, copy))
        return copy

    async def _load(self, rows: CatalogRows, space_id: str, journey_id: str) -> Journey:
        if not journey_id:
            raise InvalidArgumentError.single("journey_id", "is required")
        journey = await rows.get_journey(space_id, journey_id)
        if journey is None:
            raise NotFoundError(kind="journey", id=journey_id, space_id=space_id)
        return journey

    async def _known(self, rows: CatalogRows, space_id: str) -> KnownDefinitions:
        return KnownDefinitions(
            destinations=await rows.destinations(space_id),
            audience_ids=await rows.definition_ids(space_id, DefinitionKind.AUDIENCE),
            computed_trait_ids=await rows.definition_ids(space_id, DefinitionKind.COMPUTED_TRAIT),
        )

    async def _checked(
        self,
        rows: CatalogRows,
        journey: Journey,
        *,
        previous: Journey | None,
    ) -> Saved:
        """Validates ``journey``, settles its send-step keys, and finds warnings.

        Raises:
            InvalidArgumentError: with every problem found.
        """
        known = await self._known(rows, journey.space_id)
        problems = validate_journey(journey, limits=self._ctx.limits, known=known)
        old_keys = {} if previous is None else {s.id: s.key for s in previous.send_steps()}
        steps: list[Step] = []
        taken: set[str] = set()
        for i, step in enumerate(journey.steps):
            if isinstance(step, SendToDestinationsStep):
                path = f"journey.steps[{i}].send_to_destinations.key"
                key, problem = await self._settle_key(rows, journey, step, old_keys, taken)
                if problem:
                    problems.append(FieldViolation(path, problem))
                taken.add(key)
                step = dataclasses.replace(step, key=key)  # noqa: PLW2901
            steps.append(step)
        if problems:
            raise InvalidArgumentError(problems)
        checked = dataclasses.replace(journey, steps=tuple(steps))
        return Saved(checked, tuple(journey_warnings(checked, self._ctx.clock.now_ms())))

    async def _settle_key(
        self,
        rows: CatalogRows,
        journey: Journey,
        step: SendToDestinationsStep,
        old_keys: dict[str, str],
        taken: set[str],
    ) -> tuple[str, str]:
        """The step's key and a problem with it (empty when none)."""
        old = old_keys.get(step.id)
        if old:
            if step.key and step.key != old:
                return old, f"is fixed once generated ({old!r}); it cannot change"
            return old, ""
        if not step.key:
            while True:
                key = make_key(journey.name, step.name, max_length=self._ctx.limits.max_key)
                if key not in taken and await rows.key_owner(journey.space_id, key) is None:
                    return key, ""
        expected = make_key(
            journey.name, step.name, max_length=self._ctx.limits.max_key, suffix=step.key[-6:]
        )
        if step.key != expected:
            return step.key, (
                f"must be the key this journey and step name give ({expected[:-6]} and 6 "
                "characters of [a-z0-9]); leave it empty to have one generated"
            )
        if step.key in taken:
            return step.key, f"{step.key!r} is used by another step of this journey"
        owner = await rows.key_owner(journey.space_id, step.key)
        if owner is not None and owner != (journey.id, step.id):
            return (
                step.key,
                f"{step.key!r} is already used by journey {owner[0]!r} step {owner[1]!r}",
            )
        return step.key, ""

    async def _check_publishable(self, rows: CatalogRows, journey: Journey) -> None:
        limit = self._ctx.limits.max_live_journeys
        live = await rows.count_journeys(journey.space_id, [s for s in JourneyStatus if s.is_live])
        if live >= limit:
            raise LimitExceededError(
                f"space {journey.space_id!r} already has {live} published or paused journeys "
                f"(the limit is {limit}); archive or delete one first",
                [
                    PreconditionViolation(
                        "LIVE_JOURNEY_LIMIT", f"space/{journey.space_id}", f"limit is {limit}"
                    )
                ],
            )
        problems = validate_journey(
            journey, limits=self._ctx.limits, known=await self._known(rows, journey.space_id)
        )
        if problems:
            err = InvalidArgumentError(problems)
            raise FailedPreconditionError(
                f"journey {journey.id!r} cannot be published as it stands: {err.message}",
                _as_preconditions(err),
            )

    async def _save_refs(self, rows: CatalogRows, journey: Journey) -> None:
        refs: list[tuple[DefinitionKind, str]] = []
        for condition in _conditions(journey):
            refs.extend(condition_references(condition))
        for step in journey.send_steps():
            refs.extend((DefinitionKind.DESTINATION, d) for d in step.destination_ids)
        await rows.set_refs(journey.space_id, JOURNEY, journey.id, refs)


def _conditions(journey: Journey) -> list[Condition]:
    found = []
    if journey.settings.exit_condition is not None:
        found.append(journey.settings.exit_condition)
    for step in journey.steps:
        match step:
            case EntryStep() | WaitConditionStep() | TrueFalseSplitStep():
                found.append(step.condition)
            case MultiBranchSplitStep():
                found.extend(b.condition for b in step.branches)
    return found


def _as_preconditions(err: InvalidArgumentError) -> list[PreconditionViolation]:
    return [
        PreconditionViolation("JOURNEY_INVALID", v.field, v.description) for v in err.violations
    ]
