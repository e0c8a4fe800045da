"""Journey files: YAML (or JSON) documents for journeys and definitions.

A file holds one or more documents separated by ``---``; each names its
``kind``: ``Journey``, ``Audience``, ``ComputedTrait`` or ``Destination``. The
format is documented in ``docs/journey-files.md`` and converts both ways with
the protobuf API form: :func:`from_doc` / :func:`to_doc`.

Output-only fields (``status``, a step's generated ``key``) are written by
:func:`to_doc` when asked, and accepted when read back, so the output of
``journeys get`` can be applied again unchanged.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from journeys.v1 import common_pb2, definition_pb2, journey_pb2

from journeys_client.durations import format_duration, parse_duration
from journeys_client.errors import JourneysClientError

__all__ = [
    "KINDS",
    "STATUS_NAMES",
    "Document",
    "FileFormatError",
    "dump_documents",
    "from_doc",
    "kind_of",
    "load_file",
    "parse_documents",
    "to_doc",
]

Document = (
    journey_pb2.Journey
    | definition_pb2.Audience
    | definition_pb2.ComputedTrait
    | definition_pb2.Destination
)
KINDS = ("Destination", "ComputedTrait", "Audience", "Journey")

_STEP_TYPES = (
    "entry",
    "wait_duration",
    "wait_condition",
    "true_false_split",
    "multi_branch_split",
    "send_to_destinations",
)
_CONDITIONED = ("entry", "wait_condition", "true_false_split")
STATUS_NAMES = {
    journey_pb2.JOURNEY_STATUS_DRAFT: "draft",
    journey_pb2.JOURNEY_STATUS_PUBLISHED: "published",
    journey_pb2.JOURNEY_STATUS_PAUSED: "paused",
    journey_pb2.JOURNEY_STATUS_ARCHIVED: "archived",
}
_DESTINATION_TYPES = {
    "track": (definition_pb2.DESTINATION_KIND_EVENT, definition_pb2.EVENT_MODE_TRACK),
    "identify": (definition_pb2.DESTINATION_KIND_EVENT, definition_pb2.EVENT_MODE_IDENTIFY),
    "list": (definition_pb2.DESTINATION_KIND_LIST, definition_pb2.EVENT_MODE_UNSPECIFIED),
}


class FileFormatError(JourneysClientError):
    """Files that cannot be sent as they are; ``problems`` lists each ``where: what``."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__(None, "\n".join(self.problems))

    def __str__(self) -> str:
        return "the files are not valid:\n" + "\n".join(f"  {p}" for p in self.problems)


class _Reader:
    """Reads one mapping, reporting wrong types, missing and unknown keys."""

    def __init__(self, value: object, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        self.data: Mapping[str, Any] = {}
        if not isinstance(value, Mapping):
            self.report("", f"must be a mapping (got {_type_name(value)})")
        elif not value:
            self.report("", "is empty")
        else:
            self.data = value
        self.used: set[str] = set()

    def report(self, key: str, message: str) -> None:
        where = f"{self.where}.{key}" if key else self.where
        self.problems.append(f"{where}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def text(self, key: str, *, required: bool = False) -> str:
        self.used.add(key)
        value = self.data.get(key)
        if value is None:
            if required:
                self.report(key, "is required")
            return ""
        if not isinstance(value, str):
            self.report(key, f"must be text (got {_type_name(value)})")
            return ""
        return value

    def flag(self, key: str) -> bool:
        self.used.add(key)
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            self.report(key, f"must be true or false (got {_type_name(value)})")
            return False
        return value

    def duration(self, key: str) -> Duration | None:
        self.used.add(key)
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.report(key, f"must be a duration such as 7d, 12h or 30m (got {_type_name(value)})")
            return None
        try:
            ms = parse_duration(value)
        except ValueError as err:
            self.report(key, str(err))
            return None
        d = Duration()
        try:
            d.FromMilliseconds(ms)
        except (ValueError, OverflowError):
            self.report(key, f"{value!r} is too long a duration")
            return None
        return d

    def condition(
        self, key: str, *, required: bool = False, expression: bool = False
    ) -> common_pb2.Condition | None:
        """Condition text, or a condition tree written as a mapping."""
        self.used.add(key)
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                self.report(key, "is required")
            return None
        if isinstance(value, str):
            return common_pb2.Condition(text=value)
        if isinstance(value, Mapping):
            message = common_pb2.Condition()
            try:
                json_format.ParseDict(dict(value), message.scalar if expression else message.tree)
            except json_format.ParseError as err:
                self.report(key, f"is not a condition tree: {err}")
            return message
        self.report(key, f"must be condition text or a condition tree (got {_type_name(value)})")
        return None

    def items(self, key: str) -> list[Any]:
        self.used.add(key)
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.report(key, f"must be a list (got {_type_name(value)})")
            return []
        return value

    def texts(self, key: str) -> list[str]:
        found = []
        for i, value in enumerate(self.items(key)):
            if isinstance(value, str):
                found.append(value)
            else:
                self.report(f"{key}[{i}]", f"must be text (got {_type_name(value)})")
        return found

    def ignore(self, *keys: str) -> None:
        self.used.update(keys)

    def finish(self) -> None:
        for key in self.data:
            if key not in self.used:
                hint = difflib.get_close_matches(str(key), sorted(self.used), n=1)
                also = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.report(str(key), f"is not a known field{also}")


def _type_name(value: object) -> str:
    if value is None:
        return "nothing"
    return {bool: "true/false", int: "a number", float: "a number", str: "text"}.get(
        type(value), "a list" if isinstance(value, list) else "a mapping"
    )


# Reading


def parse_documents(text: str, source: str = "<input>") -> list[Document]:
    """Every document in a YAML or JSON text.

    Raises:
        FileFormatError: naming every problem, by document and field.
    """
    try:
        raw = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise FileFormatError([f"{where}: not valid YAML: {err}"]) from err
    if not raw:
        raise FileFormatError([f"{source}: holds no documents"])
    problems: list[str] = []
    docs = []
    for i, doc in enumerate(raw):
        where = f"{source}: document {i + 1}" if len(raw) > 1 else source
        converted = _from_doc(doc, where, problems)
        if converted is not None:
            docs.append(converted)
    if problems:
        raise FileFormatError(problems)
    return docs


def load_file(path: str | Path) -> list[Document]:
    """Every document in a file.

    Raises:
        FileFormatError: the file cannot be read or holds invalid documents.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as err:
        raise FileFormatError([f"{path}: cannot be read: {err}"]) from err
    return parse_documents(text, str(path))


def from_doc(doc: object, where: str = "document") -> Document:
    """One document (a parsed mapping) as its API message.

    Raises:
        FileFormatError: naming every problem.
    """
    problems: list[str] = []
    converted = _from_doc(doc, where, problems)
    if problems or converted is None:
        raise FileFormatError(problems)
    return converted


def _from_doc(doc: object, where: str, problems: list[str]) -> Document | None:
    r = _Reader(doc, where, problems)
    if not r.data:
        return None
    kind = r.text("kind", required=True)
    readers: dict[str, Callable[[_Reader], Document]] = {
        "Journey": _journey_from,
        "Audience": _audience_from,
        "ComputedTrait": _trait_from,
        "Destination": _destination_from,
    }
    if kind and kind not in readers:
        r.report("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
        return None
    if not kind:
        return None
    message = readers[kind](r)
    r.finish()
    return message


def _journey_from(r: _Reader) -> journey_pb2.Journey:
    r.ignore("status")
    journey = journey_pb2.Journey(
        id=r.text("id"), name=r.text("name", required=True), description=r.text("description")
    )
    r.used.add("settings")
    if r.has("settings"):
        s = _Reader(r.data["settings"], f"{r.where}.settings", r.problems)
        exit_after, reentry_after = s.duration("exit_after"), s.duration("reentry_after")
        if exit_after is not None:
            journey.settings.exit_after.CopyFrom(exit_after)
        if reentry_after is not None:
            journey.settings.reentry_after.CopyFrom(reentry_after)
        exit_condition = s.condition("exit_condition")
        if exit_condition is not None:
            journey.settings.exit_condition.CopyFrom(exit_condition)
        s.finish()
    for i, item in enumerate(r.items("steps")):
        step = _step_from(_Reader(item, f"{r.where}.steps[{i}]", r.problems))
        if step is not None:
            journey.steps.append(step)
    return journey


def _step_from(r: _Reader) -> journey_pb2.Step | None:
    if not r.data:
        return None
    step = journey_pb2.Step(id=r.text("id", required=True), name=r.text("name", required=True))
    kind = r.text("type", required=True)
    condition = r.condition("condition") if kind in _CONDITIONED else None
    match kind:
        case "entry":
            step.entry.CopyFrom(
                journey_pb2.EntryStep(
                    condition=condition,
                    use_historical_data=r.flag("use_historical_data"),
                    next_step_id=r.text("next"),
                )
            )
        case "wait_duration":
            step.wait_duration.CopyFrom(
                journey_pb2.WaitDurationStep(
                    duration=r.duration("duration"), next_step_id=r.text("next")
                )
            )
        case "wait_condition":
            step.wait_condition.CopyFrom(
                journey_pb2.WaitConditionStep(condition=condition, next_step_id=r.text("next"))
            )
        case "true_false_split":
            step.true_false_split.CopyFrom(
                journey_pb2.TrueFalseSplitStep(
                    condition=condition,
                    true_step_id=r.text("if_true"),
                    false_step_id=r.text("if_false"),
                )
            )
        case "multi_branch_split":
            split = journey_pb2.MultiBranchSplitStep()
            for j, item in enumerate(r.items("branches")):
                b = _Reader(item, f"{r.where}.branches[{j}]", r.problems)
                split.branches.append(
                    journey_pb2.Branch(
                        name=b.text("name", required=True),
                        condition=b.condition("condition", required=True),
                        next_step_id=b.text("next"),
                    )
                )
                b.finish()
            step.multi_branch_split.CopyFrom(split)
        case "send_to_destinations":
            step.send_to_destinations.CopyFrom(
                journey_pb2.SendToDestinationsStep(
                    destination_ids=r.texts("destinations"),
                    key=r.text("key"),
                    next_step_id=r.text("next"),
                )
            )
        case "":
            return None
        case _:
            r.report("type", f"{kind!r} is not a step type; use one of {', '.join(_STEP_TYPES)}")
            return None
    r.finish()
    return step


def _audience_from(r: _Reader) -> definition_pb2.Audience:
    return definition_pb2.Audience(
        id=r.text("id", required=True),
        name=r.text("name", required=True),
        description=r.text("description"),
        condition=r.condition("condition", required=True),
    )


def _trait_from(r: _Reader) -> definition_pb2.ComputedTrait:
    return definition_pb2.ComputedTrait(
        id=r.text("id", required=True),
        name=r.text("name", required=True),
        description=r.text("description"),
        expression=r.condition("expression", required=True, expression=True),
    )


def _destination_from(r: _Reader) -> definition_pb2.Destination:
    type_name = r.text("type", required=True)
    kind, mode = _DESTINATION_TYPES.get(type_name, (0, 0))
    if type_name and type_name not in _DESTINATION_TYPES:
        r.report("type", f"{type_name!r} is not one of {', '.join(_DESTINATION_TYPES)}")
    return definition_pb2.Destination(
        id=r.text("id", required=True),
        name=r.text("name", required=True),
        kind=kind,  # type: ignore[arg-type]
        event_mode=mode,  # type: ignore[arg-type]
    )


# Writing


def kind_of(message: Document) -> str:
    """The document kind of an API message: ``Journey``, ``Audience``..."""
    return type(message).__name__


def to_doc(message: Document, *, include_output: bool = False) -> dict[str, Any]:
    """The canonical document for an API message: defaults omitted, keys in a fixed order.

    Args:
        message: A journey or definition.
        include_output: Also write output-only fields (status, generated keys).
    """
    match message:
        case journey_pb2.Journey():
            return _journey_doc(message, include_output)
        case definition_pb2.Audience():
            return _drop_empty(
                {
                    "kind": "Audience",
                    "id": message.id,
                    "name": message.name,
                    "description": message.description,
                    "condition": _condition_doc(message.condition),
                }
            )
        case definition_pb2.ComputedTrait():
            return _drop_empty(
                {
                    "kind": "ComputedTrait",
                    "id": message.id,
                    "name": message.name,
                    "description": message.description,
                    "expression": _condition_doc(message.expression),
                }
            )
        case definition_pb2.Destination():
            type_name = next(
                (
                    name
                    for name, pair in _DESTINATION_TYPES.items()
                    if pair == (message.kind, message.event_mode)
                ),
                "",
            )
            return _drop_empty(
                {"kind": "Destination", "id": message.id, "name": message.name, "type": type_name}
            )
    raise TypeError(f"not a journeys document: {type(message).__name__}")


def _journey_doc(journey: journey_pb2.Journey, include_output: bool) -> dict[str, Any]:
    s = journey.settings
    settings = _drop_empty(
        {
            "exit_after": _duration_text(s.exit_after) if s.HasField("exit_after") else "",
            "reentry_after": (
                _duration_text(s.reentry_after) if s.HasField("reentry_after") else ""
            ),
            "exit_condition": _condition_doc(s.exit_condition),
        }
    )
    doc: dict[str, Any] = {
        "kind": "Journey",
        "id": journey.id,
        "name": journey.name,
        "description": journey.description,
    }
    if include_output:
        doc["status"] = STATUS_NAMES.get(journey.status, "")
    doc["settings"] = settings
    doc["steps"] = [_step_doc(step, include_output) for step in journey.steps]
    return _drop_empty(doc)


def _step_doc(step: journey_pb2.Step, include_output: bool) -> dict[str, Any]:
    kind = step.WhichOneof("kind") or ""
    doc: dict[str, Any] = {"id": step.id, "name": step.name, "type": kind}
    match kind:
        case "entry":
            doc |= {
                "condition": _condition_doc(step.entry.condition),
                "use_historical_data": step.entry.use_historical_data or None,
                "next": step.entry.next_step_id,
            }
        case "wait_duration":
            doc |= {
                "duration": _duration_text(step.wait_duration.duration),
                "next": step.wait_duration.next_step_id,
            }
        case "wait_condition":
            doc |= {
                "condition": _condition_doc(step.wait_condition.condition),
                "next": step.wait_condition.next_step_id,
            }
        case "true_false_split":
            t = step.true_false_split
            doc |= {
                "condition": _condition_doc(t.condition),
                "if_true": t.true_step_id,
                "if_false": t.false_step_id,
            }
        case "multi_branch_split":
            doc["branches"] = [
                _drop_empty(
                    {
                        "name": b.name,
                        "condition": _condition_doc(b.condition),
                        "next": b.next_step_id,
                    }
                )
                for b in step.multi_branch_split.branches
            ]
        case "send_to_destinations":
            d = step.send_to_destinations
            doc |= {
                "destinations": list(d.destination_ids),
                "key": d.key if include_output else "",
                "next": d.next_step_id,
            }
    return _drop_empty(doc, keep=("destinations",) if kind == "send_to_destinations" else ())


def _condition_doc(condition: common_pb2.Condition) -> str | dict[str, Any]:
    """The text; a condition given only as a tree is written as its mapping."""
    if condition.text:
        return condition.text
    for tree in (condition.tree, condition.scalar):
        if tree.ByteSize():
            return json_format.MessageToDict(tree, preserving_proto_field_name=True)
    return ""


def _duration_text(d: Duration) -> str:
    return format_duration(d.ToMilliseconds())


def _drop_empty(doc: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k in keep or v not in ("", None, {}, [])}


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line text as literal blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    if any(c in _YAML_BREAKS or (ord(c) < 0x20 and c != "\n") for c in value):
        style = '"'  # escaped, so the text reads back exactly
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


# Characters YAML reads as line breaks, which a plain or literal scalar would not keep.
_YAML_BREAKS = frozenset("\r\x85\u2028\u2029")


_Dumper.add_representer(str, _text)


def dump_documents(messages: Iterable[Document], *, include_output: bool = False) -> str:
    """Messages as a YAML file of documents separated by ``---``."""
    return yaml.dump_all(
        (to_doc(m, include_output=include_output) for m in messages),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1_000_000,
    )
