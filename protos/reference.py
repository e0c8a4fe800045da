"""Writes docs/api-reference.md: every service, message and enum of journeys.v1,
with the comments of the ``.proto`` files.

Run from anywhere: ``python protos/reference.py``. ``--check`` fails when the
committed page is stale (the test suite runs it), so the reference cannot drift
from the protos.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "journeys" / "v1"
TARGET = ROOT.parent / "docs" / "api-reference.md"

_LABELS = {descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED: "repeated "}
_SCALARS = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in descriptor_pb2.FieldDescriptorProto.Type.items()
}
# Paths into a FileDescriptorProto (descriptor.proto field numbers).
_MESSAGE, _ENUM, _SERVICE = 4, 5, 6
_FIELD, _NESTED, _NESTED_ENUM, _VALUE, _METHOD = 2, 3, 4, 2, 2


def descriptors() -> descriptor_pb2.FileDescriptorSet:
    """The journeys.v1 files as protoc parses them, comments included."""
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{well_known}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *sorted(str(p.relative_to(ROOT)) for p in PACKAGE.glob("*.proto")),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def render() -> str:
    """The page's text."""
    lines = [
        "# API reference (`journeys.v1`)",
        "",
        "Generated from `protos/journeys/v1/*.proto` by `protos/reference.py`; do",
        "not edit. [api.md](api.md) explains the conventions, errors and",
        "guarantees; this page lists every service, message and enum with the",
        "protos' own comments.",
        "",
    ]
    for file in descriptors().file:
        comments = {
            tuple(location.path): location.leading_comments.strip()
            for location in file.source_code_info.location
            if location.leading_comments.strip()
        }
        lines += [f"## {Path(file.name).name}", ""]
        for i, service in enumerate(file.service):
            lines += _heading(f"service {service.name}", comments.get((_SERVICE, i)))
            lines += ["| RPC | request | response | |", "|---|---|---|---|"]
            for j, method in enumerate(service.method):
                request = ("stream " if method.client_streaming else "") + _short(method.input_type)
                response = ("stream " if method.server_streaming else "") + _short(
                    method.output_type
                )
                note = _cell(comments.get((_SERVICE, i, _METHOD, j)))
                lines.append(f"| `{method.name}` | {request} | {response} | {note} |")
            lines.append("")
        for i, message in enumerate(file.message_type):
            lines += _message(message, (_MESSAGE, i), comments, message.name)
        for i, enum in enumerate(file.enum_type):
            lines += _enum(enum, (_ENUM, i), comments, enum.name)
    return "\n".join(lines).rstrip() + "\n"


def _message(
    message: descriptor_pb2.DescriptorProto,
    path: tuple[int, ...],
    comments: dict[tuple[int, ...], str],
    name: str,
) -> list[str]:
    lines = _heading(f"message {name}", comments.get(path))
    if message.field:
        lines += ["| field | type | number | |", "|---|---|---|---|"]
        for j, field in enumerate(message.field):
            kind = _short(field.type_name) if field.type_name else _SCALARS[field.type]
            label = _LABELS.get(field.label, "")
            if field.proto3_optional:
                label = "optional "
            note = _cell(comments.get((*path, _FIELD, j)))
            lines.append(f"| `{field.name}` | {label}{kind} | {field.number} | {note} |")
        lines.append("")
    for j, nested in enumerate(message.nested_type):
        if nested.options.map_entry:
            continue
        lines += _message(nested, (*path, _NESTED, j), comments, f"{name}.{nested.name}")
    for j, enum in enumerate(message.enum_type):
        lines += _enum(enum, (*path, _NESTED_ENUM, j), comments, f"{name}.{enum.name}")
    return lines


def _enum(
    enum: descriptor_pb2.EnumDescriptorProto,
    path: tuple[int, ...],
    comments: dict[tuple[int, ...], str],
    name: str,
) -> list[str]:
    lines = _heading(f"enum {name}", comments.get(path))
    lines += ["| value | number | |", "|---|---|---|"]
    for j, value in enumerate(enum.value):
        note = _cell(comments.get((*path, _VALUE, j)))
        lines.append(f"| `{value.name}` | {value.number} | {note} |")
    return [*lines, ""]


def _heading(title: str, comment: str | None) -> list[str]:
    lines = [f"### {title}", ""]
    if comment:
        lines += [" ".join(comment.split()), ""]
    return lines


def _short(type_name: str) -> str:
    """``.journeys.v1.Journey`` as ``Journey``; well-known types keep their package."""
    name = type_name.lstrip(".")
    return f"`{name.removeprefix('journeys.v1.')}`"


def _cell(comment: str | None) -> str:
    return " ".join((comment or "").split()).replace("|", "\\|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the page is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python protos/reference.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
