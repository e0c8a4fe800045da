"""Lifecycle moves and the edit rules of live journeys (SPEC §6).

::

    draft ──publish──► published ──pause──► paused
                          ▲   │               │
                          │   └──archive──┐   │
                          └────resume─────┼───┘
                                          ▼
                                       archived   (paused ──archive──► archived)

Delete and clone are allowed from every status.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum

from journeys_engine.errors import LifecycleError, PreconditionViolation
from journeys_engine.model.journey import (
    Journey,
    JourneyStatus,
    SendToDestinationsStep,
    Step,
)

__all__ = ["Move", "check_editable", "published_edit_violations", "target_status"]

_D, _PUB, _PAU, _ARC = (
    JourneyStatus.DRAFT,
    JourneyStatus.PUBLISHED,
    JourneyStatus.PAUSED,
    JourneyStatus.ARCHIVED,
)


class Move(StrEnum):
    """A lifecycle move."""

    PUBLISH = "publish"
    PAUSE = "pause"
    RESUME = "resume"
    ARCHIVE = "archive"


_MOVES: dict[Move, tuple[frozenset[JourneyStatus], JourneyStatus, str]] = {
    Move.PUBLISH: (frozenset({_D}), _PUB, "only a draft can be published"),
    Move.PAUSE: (frozenset({_PUB}), _PAU, "only a published journey can be paused"),
    Move.RESUME: (frozenset({_PAU}), _PUB, "only a paused journey can be resumed"),
    Move.ARCHIVE: (
        frozenset({_PUB, _PAU}),
        _ARC,
        "only a published or paused journey can be archived; delete a draft instead",
    ),
}


def target_status(journey: Journey, move: Move) -> JourneyStatus:
    """The status ``move`` leads to from ``journey``'s status.

    Raises:
        LifecycleError: the move is not allowed from the current status.
    """
    sources, target, rule = _MOVES[move]
    if journey.status not in sources:
        raise LifecycleError(
            f"cannot {move.value} journey {journey.id!r}: it is {journey.status.value}; {rule}",
            [
                PreconditionViolation(
                    "JOURNEY_STATUS", f"journey/{journey.id}", f"journey is {journey.status.value}"
                )
            ],
        )
    return target


def check_editable(stored: Journey, updated: Journey) -> None:
    """Refuses an edit that ``stored``'s status does not allow.

    Drafts take any edit; published and paused journeys only a new name,
    description or send-step destinations; archived journeys none.

    Raises:
        LifecycleError: naming every refused change.
    """
    if stored.status is JourneyStatus.DRAFT:
        return
    if stored.status is JourneyStatus.ARCHIVED:
        raise LifecycleError(
            f"journey {stored.id!r} is archived and cannot be edited",
            [PreconditionViolation("JOURNEY_ARCHIVED", f"journey/{stored.id}", "archived")],
        )
    violations = published_edit_violations(stored, updated)
    if violations:
        changed = ", ".join(v.subject for v in violations)
        raise LifecycleError(
            f"journey {stored.id!r} is {stored.status.value}: only its name, description and "
            f"the destinations of send steps can change; refused: {changed}",
            violations,
        )


def published_edit_violations(stored: Journey, updated: Journey) -> list[PreconditionViolation]:
    """The changes in ``updated`` that a live journey does not allow."""
    problems: list[PreconditionViolation] = []

    def refuse(subject: str, description: str) -> None:
        problems.append(PreconditionViolation("JOURNEY_PUBLISHED", subject, description))

    if updated.settings != stored.settings:
        for f in dataclasses.fields(stored.settings):
            if getattr(stored.settings, f.name) != getattr(updated.settings, f.name):
                name = f.name.removesuffix("_ms")
                refuse(
                    f"journey.settings.{name}", "settings cannot change while the journey is live"
                )
    before = {s.id: s for s in stored.steps}
    seen: set[str] = set()
    for i, step in enumerate(updated.steps):
        path = f"journey.steps[{i}]"
        old = before.get(step.id)
        if old is None:
            refuse(path, f"step {step.id!r} cannot be added while the journey is live")
            continue
        seen.add(step.id)
        for field_path in _changed_fields(old, step):
            refuse(f"{path}.{field_path}", "steps other than destinations cannot change")
    for step_id in before.keys() - seen:
        refuse("journey.steps", f"step {step_id!r} cannot be removed while the journey is live")
    return problems


def _changed_fields(old: Step, new: Step) -> list[str]:
    if type(old) is not type(new):
        return [f"{new.KIND} (was {old.KIND})"]
    changed = []
    for f in dataclasses.fields(old):
        if isinstance(old, SendToDestinationsStep) and f.name in ("destination_ids", "key"):
            continue  # destinations may change; keys are checked where they are settled
        if getattr(old, f.name) != getattr(new, f.name):
            name = "duration" if f.name == "duration_ms" else f.name
            changed.append(name if f.name in ("id", "name") else f"{new.KIND}.{name}")
    return changed
