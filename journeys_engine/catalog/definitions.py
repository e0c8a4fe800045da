"""Audiences, computed traits and destinations (SPEC §3, §7).

Ids are unique per kind in a space. An update takes effect from then on and
undoes nothing. Deleting a definition used by a published, paused or archived
journey, or by another definition, is refused naming the users.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from journeys_engine.catalog.changes import DefinitionsChanged
from journeys_engine.catalog.masks import mask_paths
from journeys_engine.catalog.paging import Page, PageRequest
from journeys_engine.catalog.spaces import CatalogContext
from journeys_engine.conditions.parser import parse_condition, parse_expression
from journeys_engine.conditions.printer import print_condition, print_expression
from journeys_engine.errors import (
    AlreadyExistsError,
    FieldViolation,
    InUseError,
    InvalidArgumentError,
    NotFoundError,
    PreconditionViolation,
)
from journeys_engine.ids import id_problem, new_id
from journeys_engine.model.definitions import (
    Audience,
    ComputedTrait,
    Definition,
    DefinitionKind,
    Destination,
    DestinationKind,
)
from journeys_engine.model.journey import Condition, JourneyStatus
from journeys_engine.model.references import condition_references
from journeys_engine.model.validation import (
    KnownDefinitions,
    Report,
    check_condition,
    check_name,
    check_text,
)
from journeys_engine.store.catalog import JOURNEY, CatalogRows

__all__ = ["MASK_PATHS", "Definitions"]

MASK_PATHS: dict[DefinitionKind, tuple[str, ...]] = {
    DefinitionKind.AUDIENCE: ("name", "description", "condition"),
    DefinitionKind.COMPUTED_TRAIT: ("name", "description", "expression"),
    DefinitionKind.DESTINATION: ("name",),
}
_PREFIX = {
    DefinitionKind.AUDIENCE: "aud",
    DefinitionKind.COMPUTED_TRAIT: "ct",
    DefinitionKind.DESTINATION: "dst",
}


class Definitions:
    """The definitions of every space."""

    def __init__(self, ctx: CatalogContext) -> None:
        self._ctx = ctx

    async def create(
        self,
        space_id: str,
        definition: Definition,
        *,
        validate_only: bool = False,
    ) -> Definition:
        """Creates a definition; its id is generated when empty.

        Raises:
            InvalidArgumentError: naming every invalid field; nothing is written.
            NotFoundError: the space does not exist.
            AlreadyExistsError: the id is taken.
        """
        await self._ctx.check_space(space_id)
        kind = definition.KIND
        field = kind.value
        if definition.id:
            problem = id_problem(definition.id)
            if problem is not None:
                raise InvalidArgumentError.single(f"{field}.id", problem)
        async with self._ctx.db.transaction() as tx:
            rows = CatalogRows(tx)
            def_id = definition.id or new_id(_PREFIX[kind])
            if await rows.get_definition(space_id, kind, def_id) is not None:
                raise AlreadyExistsError(kind=kind.value, id=def_id, space_id=space_id)
            now = self._ctx.clock.now_ms()
            created = dataclasses.replace(
                definition, id=def_id, space_id=space_id, create_time_ms=now, update_time_ms=now
            )
            await self._validate(rows, created)
            if not validate_only:
                await rows.insert_definition(created)
                await rows.set_refs(space_id, kind.value, def_id, _references(created))
        if not validate_only:
            await self._ctx.notify(DefinitionsChanged(space_id))
        return created

    async def get(self, space_id: str, kind: DefinitionKind, def_id: str) -> Definition:
        """One definition, or NOT_FOUND."""
        await self._ctx.check_space(space_id)
        async with self._ctx.db.read() as tx:
            return await self._load(CatalogRows(tx), space_id, kind, def_id)

    async def list(
        self, space_id: str, kind: DefinitionKind, *, page_size: int = 0, page_token: str = ""
    ) -> Page[Definition]:
        """A space's definitions of one kind, in creation order."""
        await self._ctx.check_space(space_id)
        request = PageRequest.parse(page_size, page_token)
        async with self._ctx.db.read() as tx:
            rows = CatalogRows(tx)
            found = await rows.list_definitions(space_id, kind, request.after, request.size + 1)
        return request.page(found)

    async def update(
        self,
        space_id: str,
        definition: Definition,
        *,
        update_mask: Sequence[str] = (),
        validate_only: bool = False,
    ) -> Definition:
        """Replaces the fields named in ``update_mask`` (every mutable one when empty).

        Raises:
            InvalidArgumentError: a bad mask or invalid content; nothing is written.
            NotFoundError: no such space or definition.
        """
        await self._ctx.check_space(space_id)
        kind = definition.KIND
        fixed = ("kind", "event_mode") if kind is DefinitionKind.DESTINATION else ()
        paths = mask_paths(update_mask, MASK_PATHS[kind], fixed=fixed)
        if not definition.id:
            raise InvalidArgumentError.single(f"{kind.value}.id", "is required")
        async with self._ctx.db.transaction() as tx:
            rows = CatalogRows(tx)
            stored = await self._load(rows, space_id, kind, definition.id)
            changes = {path: getattr(definition, path) for path in paths}
            updated = dataclasses.replace(
                stored, **changes, update_time_ms=self._ctx.clock.now_ms()
            )
            await self._validate(rows, updated)
            if not validate_only:
                await rows.update_definition(updated)
                await rows.set_refs(space_id, kind.value, updated.id, _references(updated))
        if not validate_only:
            await self._ctx.notify(DefinitionsChanged(space_id))
        return updated

    async def delete(self, space_id: str, kind: DefinitionKind, def_id: str) -> None:
        """Deletes a definition no live or archived journey and no definition uses.

        Raises:
            NotFoundError: no such space or definition.
            InUseError: naming every journey and definition that uses it.
        """
        await self._ctx.check_space(space_id)
        async with self._ctx.db.transaction() as tx:
            rows = CatalogRows(tx)
            await self._load(rows, space_id, kind, def_id)
            users: list[PreconditionViolation] = []
            for user_kind, user_id in await rows.users_of(space_id, kind, def_id):
                if user_kind == JOURNEY:
                    journey = await rows.get_journey(space_id, user_id)
                    if journey is None or journey.status is JourneyStatus.DRAFT:
                        continue
                    what = f"{journey.status.value} journey"
                else:
                    what = user_kind.replace("_", " ")
                users.append(PreconditionViolation("IN_USE", f"{user_kind}/{user_id}", what))
            if users:
                names = ", ".join(f"{v.description} {v.subject.split('/', 1)[1]!r}" for v in users)
                raise InUseError(f"{kind.value} {def_id!r} is used by {names}", users)
            await rows.delete_definition(space_id, kind, def_id)
        await self._ctx.notify(DefinitionsChanged(space_id))

    async def check_condition(
        self,
        space_id: str,
        condition: Condition,
        *,
        expression: bool = False,
    ) -> Condition:
        """Checks a condition (or a computed-trait expression) as a definition would be.

        Returns it in canonical text; saves nothing.

        Raises:
            InvalidArgumentError: naming the line and column of the problem.
            NotFoundError: the space does not exist.
        """
        await self._ctx.check_space(space_id)
        found: list[FieldViolation] = []

        def report(path: str, description: str) -> None:
            found.append(FieldViolation(path, description))

        async with self._ctx.db.read() as tx:
            known = await _known(CatalogRows(tx), space_id)
        check_condition(
            report,
            "condition",
            condition,
            limits=self._ctx.limits,
            known=known,
            expression=expression,
        )
        if found:
            raise InvalidArgumentError(found)
        if expression:
            return Condition(print_expression(parse_expression(condition.text)))
        limit = self._ctx.limits.max_condition_leaves
        return Condition(print_condition(parse_condition(condition.text, max_leaves=limit)))

    async def _load(
        self, rows: CatalogRows, space_id: str, kind: DefinitionKind, def_id: str
    ) -> Definition:
        if not def_id:
            raise InvalidArgumentError.single(f"{kind.value}_id", "is required")
        found = await rows.get_definition(space_id, kind, def_id)
        if found is None:
            raise NotFoundError(kind=kind.value, id=def_id, space_id=space_id)
        return found

    async def _validate(self, rows: CatalogRows, definition: Definition) -> None:
        limits = self._ctx.limits
        field = definition.KIND.value
        problems: list[FieldViolation] = []

        def report(path: str, description: str) -> None:
            problems.append(FieldViolation(path, description))

        check_name(report, f"{field}.name", definition.name, limit=limits.max_name)
        space_id = definition.space_id
        match definition:
            case Audience() | ComputedTrait():
                check_text(
                    report,
                    f"{field}.description",
                    definition.description,
                    limit=limits.max_description,
                )
                known = await _known(rows, space_id)
                cpath = (
                    "audience.condition"
                    if isinstance(definition, Audience)
                    else "computed_trait.expression"
                )
                check_condition(
                    report,
                    cpath,
                    _condition(definition),
                    limits=limits,
                    known=known,
                    expression=isinstance(definition, ComputedTrait),
                )
                await _check_cycle(rows, definition, report, cpath)
            case Destination():
                if definition.kind is None:
                    report("destination.kind", "is required: event or list")
                if definition.kind is DestinationKind.EVENT and definition.event_mode is None:
                    report("destination.event_mode", "is required for an event destination")
                if definition.kind is DestinationKind.LIST and definition.event_mode is not None:
                    report("destination.event_mode", "must be unset for a list destination")
        if problems:
            raise InvalidArgumentError(problems)


async def _known(rows: CatalogRows, space_id: str) -> KnownDefinitions:
    return KnownDefinitions(
        audience_ids=await rows.definition_ids(space_id, DefinitionKind.AUDIENCE),
        computed_trait_ids=await rows.definition_ids(space_id, DefinitionKind.COMPUTED_TRAIT),
    )


def _condition(definition: Audience | ComputedTrait) -> Condition:
    return definition.condition if isinstance(definition, Audience) else definition.expression


def _references(definition: Definition) -> list[tuple[DefinitionKind, str]]:
    if isinstance(definition, Audience):
        return condition_references(definition.condition)
    return []  # computed traits reduce events; destinations refer to nothing


async def _check_cycle(
    rows: CatalogRows,
    definition: Audience | ComputedTrait,
    report: Report,
    path: str,
) -> None:
    """Reports a chain of references that leads back to ``definition``."""
    start = (definition.KIND, definition.id)
    pending = [(ref, [start, ref]) for ref in _references(definition)]
    seen: set[tuple[DefinitionKind, str]] = set()
    while pending:
        node, chain = pending.pop()
        if node == start:
            text = " -> ".join(f"{k.value}('{i}')" for k, i in chain)
            report(path, f"refers back to itself: {text}")
            return
        if node in seen:
            continue
        seen.add(node)
        stored = await rows.get_definition(definition.space_id, node[0], node[1])
        if stored is not None:
            pending.extend((ref, [*chain, ref]) for ref in _references(stored))
