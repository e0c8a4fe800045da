"""Hypothesis strategies for hostile protobuf requests, built from any message descriptor.

Three families, all ending as the bytes sent on the wire:

- :func:`messages`: an arbitrary message of a type, walking its descriptor:
  scalars at their edges (NaN and infinite doubles, the ends of every integer
  range, unknown enum numbers), hostile strings (empty, huge, control
  characters, path-like, bidirectional marks, plausible ids from
  :class:`Hints`), repeated fields up to thousands of items, deep chains of
  recursive messages (``ConditionNode``), and the well-known types at their
  edges: ``Struct`` with 10,000 keys or nested past the decoder's depth limit,
  ``Timestamp`` at year 1 and 9999 and out of range, ``Duration`` negative,
  huge or with disagreeing signs, ``FieldMask`` garbage paths.
- :func:`mutated`: a valid request with one or two fields replaced by such
  values or cleared, so that the rest of the request reaches deep code.
- :func:`raw_payloads`: bytes no encoder would write: random bytes, a valid
  request truncated or with bytes flipped, invalid UTF-8 in a string field,
  unknown fields and wire types.

Large values are built from a few drawn parameters (``[item] * n``) rather than
drawn item by item, which would make each example slow to generate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

__all__ = [
    "HOSTILE_STRINGS",
    "Hints",
    "messages",
    "mutated",
    "raw_payloads",
    "wire_field",
]

F = FieldDescriptor

HOSTILE_STRINGS: tuple[str, ...] = (
    "",
    " ",
    "a",
    "..",
    "../x",
    "../../etc/passwd",
    "a/b",
    "/",
    "\\",
    "C:\\x",
    "\x00",
    "a\x00b",
    "\n",
    "a\r\nb",
    "\t",
    "\x7f",
    "\x1b[31m",
    "\u202eevil",
    "\u200f",
    "\u200b",
    "\ufeff",
    "\ufffd",
    "é",
    "\U0001f600",
    "'",
    '"',
    "');--",
    "%s%n",
    "{}",
    "${x}",
    "*",
    "a" * 64,
    "a" * 65,
    "-a",
    ".a",
    "_a",
    "null",
    "NaN",
    "-1",
    "1e309",
    "9" * 400,
)
"""Short strings that have broken servers: paths, control and bidi characters, quotes."""

_HUGE_LENGTHS = (256, 10_001, 100_000)
_HUGE_CHARS = ("a", "/", "\x00", "é", "\U0001f600", "'(")
_MANY = (51, 1_001, 2_501, 10_000)
_DEEP = (20, 45, 70, 90, 150)  # the decoder refuses past 100 levels in all
_INT_EDGES = (0, 1, -1, 2, 49, 50, 51, 999, 1000, 1001, 2500, 2501, 100_000, 2**31 - 1, 2**53 + 1)
_FLOAT_EDGES = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, 2.0**53 + 2, 0.5)
_ENUM_UNKNOWN = (-1, 99, 2**31 - 1, -(2**31))

_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}

# Seconds at the edges of what a Timestamp may hold (0001-01-01, 9999-12-31) and past them.
_YEAR_1 = -62_135_596_800
_YEAR_9999_END = 253_402_300_799
_SECONDS_EDGES = (
    0,
    -1,
    1,
    _YEAR_1,
    _YEAR_1 - 1,
    _YEAR_9999_END,
    _YEAR_9999_END + 1,
    315_576_000_000,
    315_576_000_001,
    2**63 - 1,
    -(2**63),
)
_NANOS_EDGES = (0, 1, -1, 1_000_000, -1_000_000, 999_999_999, 1_000_000_000, 2**31 - 1, -(2**31))
_DURATION_SECONDS = (1, 60, 86_400, 365 * 86_400, 365 * 86_400 + 1, 10 * 365 * 86_400 + 1)


@dataclass(frozen=True)
class Hints:
    """What makes a hostile request reach deep code.

    Attributes:
        strings: Plausible values by field name (``space_id``: the seeded space);
            a string field of that name takes one of them about half the time.
        timestamp_seconds: A plausible range for Timestamp seconds (around the
            server's clock), drawn from as often as the edges.
    """

    strings: Mapping[str, Sequence[str]] = field(default_factory=dict)
    timestamp_seconds: tuple[int, int] = (0, 2**32)


# Scalars


def _strings(name: str, hints: Hints, *, small: bool) -> st.SearchStrategy[str]:
    options: list[st.SearchStrategy[str]] = [
        st.sampled_from(HOSTILE_STRINGS),
        st.text(max_size=12),
    ]
    if not small:
        options.append(
            st.builds(
                lambda char, n: char * n,
                st.sampled_from(_HUGE_CHARS),
                st.sampled_from(_HUGE_LENGTHS),
            )
        )
    plausible = hints.strings.get(name)
    if plausible:
        options[:0] = [st.sampled_from(plausible)] * len(options)
    return st.one_of(options)


def _integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    candidates = {*_INT_EDGES, *(-v for v in _INT_EDGES), lo, hi}
    edges = sorted(v for v in candidates if lo <= v <= hi)
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def _floats(*, width: int) -> st.SearchStrategy[float]:
    edges = _FLOAT_EDGES if width == 64 else (math.nan, math.inf, -math.inf, 0.0, -0.0, 0.5)
    return st.one_of(st.sampled_from(edges), st.floats(width=width))  # type: ignore[arg-type]


def _invalid_utf8() -> st.SearchStrategy[bytes]:
    return st.sampled_from(
        (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80")
    )


def _scalar(fd: FieldDescriptor, hints: Hints, *, small: bool) -> st.SearchStrategy[Any]:
    kind = fd.type
    if kind == F.TYPE_STRING:
        return _strings(fd.name, hints, small=small)
    if kind == F.TYPE_BYTES:
        return st.one_of(st.binary(max_size=32), _invalid_utf8())
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind == F.TYPE_DOUBLE:
        return _floats(width=64)
    if kind == F.TYPE_FLOAT:
        return _floats(width=32)
    if kind == F.TYPE_ENUM:
        assert fd.enum_type is not None
        known = [v.number for v in fd.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from(_ENUM_UNKNOWN))
    lo, hi = _RANGES[kind]
    return _integers(lo, hi)


# Well-known types


def _timestamps(hints: Hints) -> st.SearchStrategy[Message]:
    from google.protobuf import timestamp_pb2

    lo, hi = hints.timestamp_seconds
    return st.builds(
        timestamp_pb2.Timestamp,
        seconds=st.one_of(st.sampled_from(_SECONDS_EDGES), st.integers(lo, hi)),
        nanos=st.one_of(st.just(0), st.sampled_from(_NANOS_EDGES)),
    )


def _durations() -> st.SearchStrategy[Message]:
    from google.protobuf import duration_pb2

    seconds = st.one_of(
        st.sampled_from(_DURATION_SECONDS),
        st.sampled_from(_SECONDS_EDGES),
        st.builds(lambda s: -s, st.sampled_from(_DURATION_SECONDS)),
    )
    return st.builds(
        duration_pb2.Duration,
        seconds=seconds,
        nanos=st.one_of(st.just(0), st.sampled_from(_NANOS_EDGES)),
    )


def _field_masks(hints: Hints) -> st.SearchStrategy[Message]:
    from google.protobuf import field_mask_pb2

    return st.builds(
        field_mask_pb2.FieldMask,
        paths=st.lists(_strings("paths", hints, small=True), max_size=4),
    )


# (The constructors' keyword arguments copy by parsing, which refuses what is nested
# deeper than the decoder allows; CopyFrom does not.)


def _struct(items: Mapping[str, struct_pb2.Value]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    for key, value in items.items():
        struct.fields[key].CopyFrom(value)
    return struct


def _list_value(items: Sequence[struct_pb2.Value]) -> struct_pb2.ListValue:
    listed = struct_pb2.ListValue()
    for value in items:
        listed.values.add().CopyFrom(value)
    return listed


def _value_of(**kind: Message) -> struct_pb2.Value:
    value = struct_pb2.Value()
    for name, inner in kind.items():
        getattr(value, name).CopyFrom(inner)
    return value


def _deep_value(depth: int, leaf: struct_pb2.Value, *, in_list: bool) -> struct_pb2.Value:
    value = leaf
    for _ in range(depth):
        outer = struct_pb2.Value()
        if in_list:
            outer.list_value.values.add().CopyFrom(value)
        else:
            outer.struct_value.fields["k"].CopyFrom(value)
        value = outer
    return value


def _many_keys(n: int, prefix: str, value: struct_pb2.Value) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    for i in range(n):
        struct.fields[f"{prefix}{i}"].CopyFrom(value)
    return struct


def _leaf_values(hints: Hints) -> st.SearchStrategy[struct_pb2.Value]:
    return st.one_of(
        st.builds(lambda: struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)),
        st.builds(lambda x: struct_pb2.Value(number_value=x), _floats(width=64)),
        st.builds(lambda x: struct_pb2.Value(string_value=x), _strings("value", hints, small=True)),
        st.builds(lambda x: struct_pb2.Value(bool_value=x), st.booleans()),
    )


def _values(hints: Hints, *, small: bool) -> st.SearchStrategy[struct_pb2.Value]:
    leaves = _leaf_values(hints)
    nested = st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(
                lambda items: _value_of(list_value=_list_value(items)),
                st.lists(inner, max_size=3),
            ),
            st.builds(
                lambda items: _value_of(struct_value=_struct(items)),
                st.dictionaries(_strings("key", hints, small=True), inner, max_size=3),
            ),
        ),
        max_leaves=6,
    )
    if small:
        return nested
    deep = st.builds(_deep_value, st.sampled_from(_DEEP), leaves, in_list=st.booleans())
    wide = st.builds(
        lambda n, value: _value_of(struct_value=_many_keys(n, "k", value)),
        st.sampled_from(_MANY),
        leaves,
    )
    return st.one_of(*[nested] * 6, deep, wide)


def _structs(hints: Hints, *, small: bool) -> st.SearchStrategy[Message]:
    values = _values(hints, small=True)
    plain = st.builds(
        _struct,
        st.dictionaries(_strings("key", hints, small=True), values, max_size=5),
    )
    if small:
        return plain
    wide = st.builds(
        _many_keys, st.sampled_from(_MANY), st.sampled_from(("p", "", "\x00", "a.b.")), values
    )
    deep = st.builds(
        lambda depth, leaf: _deep_value(depth, leaf, in_list=False).struct_value,
        st.sampled_from(_DEEP),
        _leaf_values(hints),
    )
    return st.one_of(*[plain] * 6, wide, deep)


def _list_values(hints: Hints, *, small: bool) -> st.SearchStrategy[Message]:
    return st.builds(
        _list_value,
        st.lists(_values(hints, small=small), max_size=4),
    )


def _well_known(
    descriptor: Descriptor, hints: Hints, *, small: bool
) -> st.SearchStrategy[Message] | None:
    match descriptor.full_name:
        case "google.protobuf.Timestamp":
            return _timestamps(hints)
        case "google.protobuf.Duration":
            return _durations()
        case "google.protobuf.FieldMask":
            return _field_masks(hints)
        case "google.protobuf.Struct":
            return _structs(hints, small=small)
        case "google.protobuf.Value":
            return _values(hints, small=small)
        case "google.protobuf.ListValue":
            return _list_values(hints, small=small)
    return None


# Messages


def _self_paths(descriptor: Descriptor) -> list[tuple[FieldDescriptor, ...]]:
    """Field paths (at most two hops, no maps) from a message back to its own type."""
    found: list[tuple[FieldDescriptor, ...]] = []
    for first in descriptor.fields:
        inner = first.message_type
        if inner is None or inner.GetOptions().map_entry:
            continue
        if inner.full_name == descriptor.full_name:
            found.append((first,))
            continue
        for second in inner.fields:
            if (
                second.message_type is not None
                and second.message_type.full_name == descriptor.full_name
            ):
                found.append((first, second))
    return found


def _nest(outer: Message, path: Sequence[FieldDescriptor], inner: Message) -> None:
    container = outer
    for fd in path[:-1]:
        container = (
            getattr(container, fd.name).add() if fd.is_repeated else getattr(container, fd.name)
        )
    last = path[-1]
    if last.is_repeated:
        getattr(container, last.name).add().CopyFrom(inner)
    else:
        getattr(container, last.name).CopyFrom(inner)


def _deep_chain(
    descriptor: Descriptor, path: Sequence[FieldDescriptor], depth: int, leaf: Message
) -> Message:
    cls = GetMessageClass(descriptor)
    message = leaf
    for _ in range(depth):
        outer = cls()
        _nest(outer, path, message)
        message = outer
    return message


_MAX_DEPTH = 4


class _Builder:
    """Strategies for every message type, cached per (type, depth, size)."""

    def __init__(self, hints: Hints) -> None:
        self.hints = hints
        self._cache: dict[tuple[str, int, bool], st.SearchStrategy[Message]] = {}

    def message(
        self, descriptor: Descriptor, depth: int = 0, *, small: bool = False
    ) -> st.SearchStrategy[Message]:
        key = (descriptor.full_name, depth, small)
        if key not in self._cache:
            known = _well_known(descriptor, self.hints, small=small or depth >= _MAX_DEPTH)
            built = known if known is not None else self._composite(descriptor, depth, small)
            paths = _self_paths(descriptor)
            if paths and not small and depth <= 1:
                deep = st.builds(
                    _deep_chain,
                    st.just(descriptor),
                    st.sampled_from(paths),
                    st.sampled_from(_DEEP),
                    self.message(descriptor, _MAX_DEPTH, small=True),
                )
                built = st.one_of(*[built] * 7, deep)
            self._cache[key] = built
        return self._cache[key]

    def _composite(
        self, descriptor: Descriptor, depth: int, small: bool
    ) -> st.SearchStrategy[Message]:
        cls = GetMessageClass(descriptor)

        @st.composite
        def build(draw: st.DrawFn) -> Message:
            message = cls()
            chosen = {
                oneof.name: draw(st.sampled_from([None, *oneof.fields]))
                for oneof in descriptor.oneofs
            }
            for fd in descriptor.fields:
                oneof = fd.containing_oneof
                if oneof is not None:
                    if chosen[oneof.name] is not fd:
                        continue
                elif draw(st.integers(0, depth + 1)):  # fewer fields deeper down
                    continue
                if fd.message_type is not None and depth >= _MAX_DEPTH:
                    continue
                _assign(message, fd, draw(self.value(fd, depth, small=small)))
            return message

        return build()

    def value(self, fd: FieldDescriptor, depth: int, *, small: bool) -> st.SearchStrategy[Any]:
        """A value for the field: a list for a repeated field, a dict for a map."""
        inner = fd.message_type
        if inner is not None and inner.GetOptions().map_entry:
            keys = _scalar(inner.fields_by_name["key"], self.hints, small=True)
            values = self.single(inner.fields_by_name["value"], depth + 1, small=True)
            return st.dictionaries(keys, values, max_size=4)
        one = self.single(fd, depth, small=small)
        if not fd.is_repeated:
            return one
        few = st.lists(one, max_size=3)
        if small:
            return few
        many = st.builds(
            lambda item, n: [item] * n,
            self.single(fd, depth, small=True),
            st.sampled_from(_MANY),
        )
        return st.one_of(few, few, few, many)

    def single(self, fd: FieldDescriptor, depth: int, *, small: bool) -> st.SearchStrategy[Any]:
        if fd.message_type is not None:
            return self.message(fd.message_type, depth + 1, small=small)
        return _scalar(fd, self.hints, small=small)


def _assign(message: Message, fd: FieldDescriptor, value: Any) -> None:
    """Sets a field to a value drawn by :meth:`_Builder.value`."""
    target = getattr(message, fd.name)
    inner = fd.message_type
    if inner is not None and inner.GetOptions().map_entry:
        message.ClearField(fd.name)
        for key, item in value.items():
            if inner.fields_by_name["value"].message_type is not None:
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif fd.is_repeated and inner is not None:
        message.ClearField(fd.name)
        for item in value:  # (extend would re-parse, refusing what is nested too deep)
            target.add().CopyFrom(item)
    elif fd.is_repeated:
        message.ClearField(fd.name)
        target.extend(value)
    elif inner is not None:
        target.CopyFrom(value)
    else:
        setattr(message, fd.name, value)


def messages(descriptor: Descriptor, hints: Hints) -> st.SearchStrategy[Message]:
    """An arbitrary, mostly invalid, message of the type ``descriptor`` describes."""
    return _Builder(hints).message(descriptor)


# Mutations


def _descriptor(message: Message) -> Descriptor:
    return cast(Descriptor, message.DESCRIPTOR)


def _sites(message: Message) -> Iterator[tuple[Message, FieldDescriptor]]:
    """Every field of the message and of the messages set inside it (not inside maps)."""
    for fd in _descriptor(message).fields:
        yield message, fd
        inner = fd.message_type
        if inner is None or inner.GetOptions().map_entry:
            continue
        if fd.is_repeated:
            for item in getattr(message, fd.name):
                yield from _sites(item)
        elif message.HasField(fd.name):
            yield from _sites(getattr(message, fd.name))


def mutated(valid: Message, hints: Hints) -> st.SearchStrategy[Message]:
    """``valid`` with one or two fields (anywhere inside it) replaced or cleared."""
    builder = _Builder(hints)

    @st.composite
    def mutate(draw: st.DrawFn) -> Message:
        message = type(valid)()
        message.CopyFrom(valid)
        for _ in range(draw(st.integers(1, 2))):
            sites = list(_sites(message))
            if not sites:  # an empty message: raw_payloads puts garbage in it
                break
            parent, fd = draw(st.sampled_from(sites))
            action = draw(st.sampled_from(("replace", "replace", "replace", "clear", "append")))
            if action == "clear":
                parent.ClearField(fd.name)
            elif action == "append" and fd.is_repeated and not fd.message_type:
                getattr(parent, fd.name).append(draw(builder.single(fd, 1, small=False)))
            elif (
                action == "append"
                and fd.is_repeated
                and fd.message_type is not None
                and not fd.message_type.GetOptions().map_entry
            ):
                getattr(parent, fd.name).add().CopyFrom(draw(builder.single(fd, 1, small=False)))
            else:
                _assign(parent, fd, draw(builder.value(fd, 1, small=False)))
        return message

    return mutate()


# Raw bytes


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def wire_field(path: Sequence[int], payload: bytes) -> bytes:
    """The wire bytes of a length-delimited ``payload`` at a path of field numbers
    (each but the last a message field); appended to a message, they merge into it."""
    for number in reversed(path):
        payload = _varint(number << 3 | 2) + _varint(len(payload)) + payload
    return payload


def _string_paths(descriptor: Descriptor, depth: int = 0) -> list[tuple[int, ...]]:
    """Field-number paths to the string fields of a message type (a few levels down)."""
    found: list[tuple[int, ...]] = []
    for fd in descriptor.fields:
        if fd.type == F.TYPE_STRING:
            found.append((fd.number,))
        elif fd.message_type is not None and depth < 3:
            found.extend((fd.number, *rest) for rest in _string_paths(fd.message_type, depth + 1))
    return found


def raw_payloads(valid: Message) -> st.SearchStrategy[bytes]:
    """Bytes that are not what an encoder of ``valid``'s type would write (mostly)."""
    encoded = valid.SerializeToString()
    strings = _string_paths(_descriptor(valid)) or [(1,)]

    def flipped(positions: list[int], masks: list[int]) -> bytes:
        out = bytearray(encoded)
        for position, mask in zip(positions, masks, strict=False):
            if out:
                out[position % len(out)] ^= mask
        return bytes(out)

    bad_utf8 = st.builds(
        lambda path, bad, before: encoded + wire_field(path, before.encode() + bad),
        st.sampled_from(strings),
        _invalid_utf8(),
        st.sampled_from(("", "default", "ok")),
    )
    unknown_field = st.builds(
        lambda number, wire_type, tail: encoded + _varint(number << 3 | wire_type) + tail,
        st.sampled_from((0, 15, 1000, 2**29 - 1, 2**29)),
        st.integers(0, 7),
        st.binary(max_size=16),
    )
    huge_length = st.builds(
        lambda path: encoded + wire_field(path, b"")[:-1] + _varint(2**62),
        st.sampled_from(strings),
    )
    options: list[st.SearchStrategy[bytes]] = [
        st.binary(max_size=64),
        st.builds(
            flipped,
            st.lists(st.integers(0, 2**16), min_size=1, max_size=4),
            st.lists(st.integers(1, 255), min_size=1, max_size=4),
        ),
        st.builds(lambda n: encoded[: n % (len(encoded) + 1)], st.integers(0, 2**16)),
        st.builds(lambda tail: encoded + tail, st.binary(min_size=1, max_size=32)),
        bad_utf8,
        bad_utf8,
        unknown_field,
        huge_length,
    ]
    return st.one_of(options)
