"""``journeys apply``: create or update what a file describes, and say what changed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from journeys.v1 import common_pb2, definition_pb2, journey_pb2
from journeys_client import FieldViolation, InvalidArgumentError, JourneysClient, NotFoundError
from journeys_client.files import KINDS, Document, FileFormatError, kind_of, to_doc

__all__ = ["Change", "apply_documents", "changed_fields"]

_RESOURCE = {
    "Journey": "journey",
    "Audience": "audience",
    "ComputedTrait": "computed-trait",
    "Destination": "destination",
}
_MUTABLE = {
    "Journey": ("name", "description", "settings", "steps"),
    "Audience": ("name", "description", "condition"),
    "ComputedTrait": ("name", "description", "expression"),
    "Destination": ("name", "type"),
}
# How the server's messages name a definition: "destination 'email' does not exist".
_NAMED_AS = {
    "Destination": "destination",
    "Audience": "audience",
    "ComputedTrait": "computed_trait",
}
# Document fields whose update mask path differs (a destination's type is its kind,
# which is fixed: asking to change it gets the server's refusal).
_MASK_PATH = {"type": "kind"}


@dataclass(frozen=True, slots=True)
class Change:
    """What applying one document did: ``created``, ``updated`` or ``unchanged``."""

    resource: str
    id: str
    action: str
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.resource}/{self.id} {self.action}{detail}"


def changed_fields(kind: str, wanted: Document, current: Document) -> tuple[str, ...]:
    """The mutable top-level fields that differ, comparing canonical documents.

    Generated step keys count only when the wanted document states them; a
    condition the file gives as a tree is compared with the server's tree.
    """
    current = _like(wanted, current)
    want = to_doc(wanted, include_output=True)
    have = to_doc(current, include_output=True)
    if kind == "Journey":
        stated = {s["id"] for s in want.get("steps", []) if "key" in s}
        for step in have.get("steps", []):
            if step.get("id") not in stated:
                step.pop("key", None)
    return tuple(f for f in _MUTABLE[kind] if want.get(f) != have.get(f))


def _like(wanted: Document, current: Document) -> Document:
    """``current`` with its conditions' text dropped where ``wanted`` gives only a tree."""
    copy = type(current)()
    copy.CopyFrom(current)  # type: ignore[arg-type]
    have = _conditions(copy)
    for where, condition in _conditions(wanted).items():
        if not condition.text and where in have:
            have[where].ClearField("text")
    return copy


def _conditions(doc: Document) -> dict[tuple[str, ...], common_pb2.Condition]:
    """Every condition of a document, by a path that does not depend on step order."""
    match doc:
        case definition_pb2.Audience():
            return {("condition",): doc.condition}
        case definition_pb2.ComputedTrait():
            return {("expression",): doc.expression}
        case journey_pb2.Journey():
            found: dict[tuple[str, ...], common_pb2.Condition] = {
                ("exit_condition",): doc.settings.exit_condition
            }
            for step in doc.steps:
                kind = step.WhichOneof("kind")
                if kind == "multi_branch_split":
                    for branch in step.multi_branch_split.branches:
                        found[(step.id, branch.name)] = branch.condition
                elif kind in ("entry", "wait_condition", "true_false_split"):
                    found[(step.id,)] = getattr(step, kind).condition
            return found
    return {}


def _order(docs: Iterable[Document]) -> list[Document]:
    """Definitions before the journeys that use them; file order within a kind."""
    return sorted(docs, key=lambda d: KINDS.index(kind_of(d)))


async def apply_documents(
    client: JourneysClient,
    docs: Sequence[Document],
    *,
    dry_run: bool = False,
    report: Callable[[Change], None] = lambda _: None,
) -> list[Change]:
    """Creates or updates each document, definitions first; stops at the first error.

    A document repeated identically (a destination several files share) is
    applied once; one described twice differently is refused before any call.

    Every document must carry an id, so applying the same file twice changes
    nothing the second time.

    Raises:
        FileFormatError: a document has no id, or one is described twice.
        JourneysClientError: the server refused a document; those before it
            were applied.
    """
    missing = [kind_of(d) for d in docs if not d.id]
    if missing:
        raise FileFormatError([f"every document needs an id to be applied ({missing[0]} has none)"])
    unique: dict[tuple[str, str], Document] = {}
    for doc in docs:
        seen = unique.setdefault((kind_of(doc), doc.id), doc)
        if seen != doc:
            raise FileFormatError(
                [f"{_RESOURCE[kind_of(doc)]}/{doc.id} is described twice, differently"]
            )
    changes = []
    pending: set[str] = set()  # "kind 'id'" of definitions a dry run would have created
    for doc in _order(unique.values()):
        change = await _apply_one(client, doc, dry_run=dry_run, pending=pending)
        if dry_run and change.action.startswith("created") and kind_of(doc) in _NAMED_AS:
            pending.add(f"{_NAMED_AS[kind_of(doc)]} '{doc.id}'")
        report(change)
        changes.append(change)
    return changes


async def _apply_one(
    client: JourneysClient, doc: Document, *, dry_run: bool, pending: set[str]
) -> Change:
    kind = kind_of(doc)
    ops = _operations(client, doc)
    try:
        current = await ops.get(doc.id)
    except NotFoundError:
        current = None
    fields: tuple[str, ...] = ()
    if current is None:
        action = "created"
        write = ops.create(doc, dry_run)
    else:
        fields = changed_fields(kind, doc, current)
        if not fields:
            return Change(_RESOURCE[kind], doc.id, "unchanged")
        action = "updated"
        write = ops.update(doc, tuple(_MASK_PATH.get(f, f) for f in fields), dry_run)
    try:
        await write
    except InvalidArgumentError as err:
        # In a dry run, definitions the same apply would create do not exist yet.
        if not (dry_run and all(_missing_one_of(v, pending) for v in err.field_violations)):
            raise
    return Change(_RESOURCE[kind], doc.id, action + (" (dry run)" if dry_run else ""), fields)


def _missing_one_of(violation: FieldViolation, pending: set[str]) -> bool:
    """Whether a violation only says that one of ``pending`` does not exist yet."""
    text = violation.description
    return "does not exist" in text and any(name in text for name in pending)


@dataclass(frozen=True, slots=True)
class _Ops:
    get: Callable[[str], Any]
    create: Callable[[Any, bool], Any]
    update: Callable[[Any, tuple[str, ...], bool], Any]


def _operations(client: JourneysClient, doc: Document) -> _Ops:
    match doc:
        case journey_pb2.Journey():
            return _Ops(
                client.get_journey,
                lambda d, dry: client.create_journey(d, validate_only=dry),
                lambda d, f, dry: client.update_journey(d, update_mask=f, validate_only=dry),
            )
        case definition_pb2.Audience():
            return _Ops(
                client.get_audience,
                lambda d, dry: client.create_audience(d, validate_only=dry),
                lambda d, f, dry: client.update_audience(d, update_mask=f, validate_only=dry),
            )
        case definition_pb2.ComputedTrait():
            return _Ops(
                client.get_computed_trait,
                lambda d, dry: client.create_computed_trait(d, validate_only=dry),
                lambda d, f, dry: client.update_computed_trait(d, update_mask=f, validate_only=dry),
            )
        case definition_pb2.Destination():
            return _Ops(
                client.get_destination,
                lambda d, dry: client.create_destination(d, validate_only=dry),
                lambda d, f, dry: client.update_destination(d, update_mask=f, validate_only=dry),
            )
    raise TypeError(type(doc).__name__)
