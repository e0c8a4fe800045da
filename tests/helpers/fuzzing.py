"""A seeded in-process server to fuzz, every RPC called generically, and the checks.

:class:`Target` is one real server on a real SQLite file and a fake clock,
seeded (:func:`seed`) with destinations, an audience, a computed trait, two
published journeys (one with a historical entry, so there is an operation), a
rich draft and some profiles, so that a valid-looking request reaches deep
code. :func:`valid_request` builds a valid request for any RPC from the field
names and message types of its request (a new RPC is covered without a
change here); :func:`exercise` sends one payload and checks what the issue
asks for: a status from :data:`ALLOWED`, a short message with no traceback, a
``BadRequest`` for ``INVALID_ARGUMENT``, nothing written for a refused (or
read-only, or validate-only) call, and the server still answering.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import (
    descriptor_pool,
    duration_pb2,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
)
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from journeys.v1 import (
    common_pb2,
    definition_pb2,
    definition_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    journey_pb2,
    journey_pb2_grpc,
    simulation_pb2,
    space_pb2,
    space_pb2_grpc,
)
from journeys_server import SERVICE_NAMES, JourneysServer
from journeys_server.convert import condition_to_proto, expression_to_proto, journey_to_proto

from journeys_engine.errors import NotFoundError
from journeys_engine.model import (
    Branch,
    Condition,
    DefinitionKind,
    EntryStep,
    Journey,
    JourneySettings,
    JourneyStatus,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)
from journeys_engine.model.limits import DAY_MS, HOUR_MS
from journeys_engine.model.operation import OperationState
from tests.helpers.proto_strategies import Hints

__all__ = [
    "ALLOWED",
    "START",
    "MAX_MESSAGE_BYTES",
    "Outcome",
    "Rpc",
    "Seed",
    "Target",
    "all_rpcs",
    "corpus_entry",
    "exercise",
    "hints_for",
    "seed_messages",
    "valid_request",
]

ALLOWED = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
"""Every status a hostile request may get (plus DEADLINE_EXCEEDED on a server stream,
which may be a legitimately long-lived stream that our short deadline ended)."""

MAX_MESSAGE_BYTES = 1024
"""The longest status message allowed. The message and the details travel in the
HTTP/2 trailers, which clients cap at 8 KiB by default (``grpc.max_metadata_size``):
past that a client sees a transport error instead of the server's answer. A message
is for a person to read; the details name the fields."""

UNARY_DEADLINE = 60.0
"""A call (but a server stream) that has not ended by then hangs: the test fails. The
longest legitimate call known takes half of it: SimulateJourney of 10,000 clock moves
(about 3 ms each on a 2-core machine; the API allows 100,000)."""
STREAM_DEADLINE = 0.3  # how long a server stream is read, at most
STREAM_ITEMS = 2  # how many items of a server stream are read, at most
SERVING_DEADLINE = 5.0  # the health check and GetSpace after each call
_DETAILS_KEY = "grpc-status-details-bin"
_READ_ONLY = ("Get", "List", "Check", "Preview", "Watch", "Subscribe", "Backup", "Simulate")

START = "2026-03-02T09:00:00Z"  # as tests/conftest.py
START_SECONDS = 1_772_442_000
EMAIL, IDENTIFY, ADS, SPARE = "email", "ids", "ads", "spare"
USERS = ("u1", "u2", "u3", "u4", "u5")


# The RPCs


@dataclass(frozen=True)
class Rpc:
    """One method of the API, called generically with bytes in and out."""

    path: str
    method: MethodDescriptor

    @property
    def request_class(self) -> type[Message]:
        return GetMessageClass(self.method.input_type)

    @property
    def read_only(self) -> bool:
        return self.method.name.startswith(_READ_ONLY)

    @property
    def moves_the_clock(self) -> bool:
        return self.method.containing_service.name == "ClockService"

    def __str__(self) -> str:
        return self.path


def all_rpcs() -> list[Rpc]:
    """Every method of every service the server registers, from the descriptors."""
    pool = descriptor_pool.Default()
    return [
        Rpc(f"/{service.full_name}/{method.name}", method)
        for service in (pool.FindServiceByName(name) for name in SERVICE_NAMES)
        for method in service.methods
    ]


# What the seed holds, and valid requests


def _condition(text: str) -> common_pb2.Condition:
    message = condition_to_proto(Condition(text))
    assert message is not None
    return message


def welcome_journey() -> Journey:
    return Journey(
        id="welcome",
        space_id="",
        name="Welcome",
        settings=JourneySettings(),
        steps=(
            EntryStep(
                "entry", "Signed up", Condition("event('Signed Up').count() >= 1"), False, "send"
            ),
            SendToDestinationsStep("send", "Say hi", (EMAIL, ADS), "", "wait"),
            WaitDurationStep("wait", "Wait a day", DAY_MS, "split"),
            TrueFalseSplitStep(
                "split", "Bought", Condition("event('Order Completed').count() >= 1"), "thank"
            ),
            SendToDestinationsStep("thank", "Thank buyers", (IDENTIFY,)),
        ),
    )


def history_journey() -> Journey:
    return Journey(
        id="history",
        space_id="",
        name="From history",
        settings=JourneySettings(),
        steps=(
            EntryStep(
                "entry",
                "Ever bought",
                Condition("event('Order Completed').count() >= 1"),
                True,
                "send",
            ),
            SendToDestinationsStep("send", "Tell ads", (ADS,)),
        ),
    )


def draft_journey() -> Journey:
    """A draft using every step kind and setting, conditions of every leaf kind."""
    return Journey(
        id="draft",
        space_id="",
        name="Rich draft",
        description="Every step kind",
        settings=JourneySettings(
            exit_after_ms=30 * DAY_MS,
            reentry_after_ms=DAY_MS,
            exit_condition=Condition("audience('vips')"),
        ),
        steps=(
            EntryStep(
                "entry",
                "Entry",
                Condition(
                    "event('Signed Up').where(context('campaign.source') = 'ads')"
                    ".within(7 days).count() >= 1 AND trait('plan') = 'pro'"
                ),
                True,
                "wait",
            ),
            WaitDurationStep("wait", "Wait", HOUR_MS, "until"),
            WaitConditionStep("until", "Until", Condition("computed_trait('clv') > 100"), "split"),
            TrueFalseSplitStep(
                "split",
                "Split",
                Condition(
                    "event('Order Completed').where(property('revenue') > 10)"
                    ".between(1 days, 3 days).sum(property('revenue')) >= 50"
                ),
                "branches",
                None,
            ),
            MultiBranchSplitStep(
                "branches",
                "Branches",
                (
                    Branch("a", Condition("trait('when').before_date('2026-01-01')"), "send"),
                    Branch(
                        "b",
                        Condition("NOT ( audience('vips') ) OR trait('x').one_of([1, 'y'])"),
                        "more",
                    ),
                ),
            ),
            SendToDestinationsStep("send", "Send", (EMAIL, ADS)),
            SendToDestinationsStep("more", "Send more", (IDENTIFY,)),
        ),
    )


def _journey_proto(journey: Journey, *, keep_id: bool = True) -> journey_pb2.Journey:
    message = journey_to_proto(journey)
    for name in ("status", "create_time", "update_time", "publish_time", "space_id"):
        message.ClearField(name)
    if not keep_id:
        message.ClearField("id")
    return message


def _one_form(journey: journey_pb2.Journey) -> journey_pb2.Journey:
    """The journey with its entry condition as text alone and the others as trees
    alone: a mutation of either then reaches its own conversion, not a mismatch."""
    conditions = [journey.settings.exit_condition]
    for step in journey.steps:
        kind = step.WhichOneof("kind")
        if kind == "multi_branch_split":
            conditions += [branch.condition for branch in step.multi_branch_split.branches]
        elif kind == "entry":
            step.entry.condition.ClearField("tree")
        elif kind in ("wait_condition", "true_false_split"):
            conditions.append(getattr(step, kind).condition)
    for condition in conditions:
        condition.ClearField("text")
    return journey


def _timestamp(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


def _struct(fields: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(fields)
    return struct


def seed_messages(suffix: str = "") -> list[ingest_pb2.SegmentMessage]:
    """Profiles of every kind of history: sign-ups, orders, identify, page, alias, group."""
    mt = ingest_pb2
    out = []
    for i, user in enumerate(USERS):
        out.append(
            mt.SegmentMessage(
                type=mt.MESSAGE_TYPE_TRACK,
                message_id=f"seed-{user}-signup{suffix}",
                user_id=user,
                event="Signed Up",
                context=_struct({"campaign": {"source": "ads"}, "n": i}),
            )
        )
        out.append(
            mt.SegmentMessage(
                type=mt.MESSAGE_TYPE_IDENTIFY,
                message_id=f"seed-{user}-identify{suffix}",
                user_id=user,
                traits=_struct({"plan": "pro" if i % 2 else "free", "when": "2025-06-01"}),
            )
        )
    out += [
        mt.SegmentMessage(
            type=mt.MESSAGE_TYPE_TRACK,
            message_id=f"seed-order{suffix}",
            user_id="u1",
            event="Order Completed",
            properties=_struct({"revenue": 120.5, "items": [1, "two", None]}),
            timestamp=_timestamp(START_SECONDS - 60),
            sent_at=_timestamp(START_SECONDS - 30),
        ),
        mt.SegmentMessage(
            type=mt.MESSAGE_TYPE_PAGE,
            message_id=f"seed-page{suffix}",
            anonymous_id="a1",
            name="Home",
            properties=_struct({"path": "/"}),
        ),
        mt.SegmentMessage(
            type=mt.MESSAGE_TYPE_ALIAS,
            message_id=f"seed-alias{suffix}",
            user_id="u1",
            previous_id="a1",
        ),
        mt.SegmentMessage(
            type=mt.MESSAGE_TYPE_GROUP,
            message_id=f"seed-group{suffix}",
            user_id="u2",
            group_id="g1",
            traits=_struct({"name": "Acme"}),
        ),
        mt.SegmentMessage(
            type=mt.MESSAGE_TYPE_SCREEN,
            message_id=f"seed-screen{suffix}",
            user_id="u3",
            name="Settings",
        ),
    ]
    return out


@dataclass(frozen=True)
class Seed:
    """What the seed created that requests name (generated ids among them)."""

    operation_id: str


VALID_STRINGS: Mapping[str, str] = {
    "space_id": "default",
    "journey_id": "welcome",
    "step_id": "send",
    "destination_id": EMAIL,
    "destination_ids": EMAIL,
    "audience_id": "vips",
    "computed_trait_id": "clv",
    "user_id": "u1",
    "consumer": "fuzzer",
    "batch_id": "b1",
    "name": "Fuzzed",
}
"""The value a valid request gives a string field of this name (see :func:`valid_request`)."""


def _valid_messages(seed: Seed) -> Mapping[str, Callable[[], Any]]:
    """Valid values by message type: one message, or a list for a repeated field."""
    return {
        "journeys.v1.Journey": lambda: _one_form(_journey_proto(draft_journey())),
        "journeys.v1.Audience": lambda: definition_pb2.Audience(
            id="vips",
            name="VIPs",
            condition=common_pb2.Condition(text="event('Order Completed').count() >= 3"),
        ),
        "journeys.v1.ComputedTrait": lambda: definition_pb2.ComputedTrait(
            id="clv",
            name="CLV",
            expression=expression_to_proto(
                Condition("event('Order Completed').sum(property('revenue'))")
            ),
        ),
        "journeys.v1.Destination": lambda: definition_pb2.Destination(
            id=EMAIL,
            name="Email",
            kind=definition_pb2.DESTINATION_KIND_EVENT,
            event_mode=definition_pb2.EVENT_MODE_TRACK,
        ),
        "journeys.v1.Space": lambda: space_pb2.Space(id="fuzzed", display_name="Fuzzed"),
        "journeys.v1.Condition": lambda: _condition(
            "event('Signed Up').within(2 hours).count() >= 1 AND trait('plan') != 'free'"
        ),
        "journeys.v1.SegmentMessage": lambda: seed_messages("-again"),
        "journeys.v1.SimulationStep": lambda: (
            [simulation_pb2.SimulationStep(message=m) for m in seed_messages()[:4]]
            + [
                simulation_pb2.SimulationStep(advance=duration_pb2.Duration(seconds=86_400)),
                simulation_pb2.SimulationStep(advance_to=_timestamp(START_SECONDS + 3 * 86_400)),
            ]
        ),
        "google.protobuf.Timestamp": lambda: _timestamp(START_SECONDS + 3600),
        "google.protobuf.Duration": lambda: duration_pb2.Duration(seconds=60),
        "google.protobuf.FieldMask": lambda: field_mask_pb2.FieldMask(paths=["name"]),
        "_operation_id": lambda: seed.operation_id,
    }


# Requests that would be refused or pointless as the generic builder makes them.
_ADJUST: Mapping[str, Callable[[Any], object]] = {
    "CreateJourney": lambda r: (r.journey.ClearField("id"), r.ClearField("journey_id")),
    "CreateAudience": lambda r: r.audience.ClearField("id"),
    "CreateComputedTrait": lambda r: r.computed_trait.ClearField("id"),
    "CreateDestination": lambda r: setattr(r.destination, "id", "fuzzed-dest"),
    "UpdateJourney": lambda r: r.update_mask.ClearField("paths"),
    "PublishJourney": lambda r: setattr(r, "journey_id", "draft"),
    "DeleteJourney": lambda r: setattr(r, "journey_id", "draft"),
    "CloneJourney": lambda r: setattr(r, "new_journey_id", ""),
    "DeleteDestination": lambda r: setattr(r, "destination_id", SPARE),
    "Subscribe": lambda r: setattr(r, "after_sequence", 0),
    "Ack": lambda r: setattr(r, "sequence", 1),
    "SimulateJourney": lambda r: (
        r.start_time.CopyFrom(_timestamp(START_SECONDS)),
        r.end_time.CopyFrom(_timestamp(START_SECONDS + 4 * 86_400)),
    ),
    "CreateToken": lambda r: setattr(  # a subscribe token: the one that names destinations
        r,
        "role",
        r.DESCRIPTOR.fields_by_name["role"].enum_type.values_by_name["TOKEN_ROLE_SUBSCRIBE"].number,
    ),
}


def valid_request(method: MethodDescriptor, seed: Seed) -> Message:
    """A request the server accepts (or refuses only for the state it is in), built
    from the request's field names and message types."""
    builders = _valid_messages(seed)
    request = GetMessageClass(method.input_type)()
    for fd in method.input_type.fields:
        _fill(request, fd, builders)
    adjust = _ADJUST.get(method.name)
    if adjust is not None:
        adjust(request)
    return request


def _fill(request: Message, fd: FieldDescriptor, builders: Mapping[str, Callable[[], Any]]) -> None:
    if fd.message_type is not None:
        build = builders.get(fd.message_type.full_name)
        if build is None:
            return
        value = build()
        if fd.is_repeated:
            for item in value if isinstance(value, list) else [value]:
                getattr(request, fd.name).add().CopyFrom(item)
        else:
            getattr(request, fd.name).CopyFrom(value)
    elif fd.type == FieldDescriptor.TYPE_STRING:
        value = (
            builders["_operation_id"]() if fd.name == "operation_id" else VALID_STRINGS.get(fd.name)
        )
        if value is None:
            return
        if fd.is_repeated:
            getattr(request, fd.name).append(value)
        else:
            setattr(request, fd.name, value)
    elif fd.name in ("page_size", "limit"):
        setattr(request, fd.name, 10)


def hints_for(seed: Seed) -> Hints:
    """Plausible values by field name, so that a hostile request often names real things."""
    ids = ["welcome", "draft", "history", "vips", "clv", EMAIL, IDENTIFY, ADS, "fuzzed"]
    steps = ["entry", "send", "wait", "split", "thank", "until", "branches"]
    conditions = [
        "event('Signed Up').count() >= 1",
        "audience('vips')",
        "computed_trait('clv') > 100",
        "trait('plan') = 'pro'",
        "event('Order Completed').sum(property('revenue'))",
        "event('A').within(0 minutes).count() >= 1",
        "event('A').within(99999999999999999999 days).count() >= 1",
        "event('A').between(3 days, 1 days).count() >= 1",
        "event('A').count() >= 99999999999999999999999",
        "trait('t') = 1e309",
        "trait('t').before_date('0000-00-00')",
        "trait('t').after_date('9999-12-31T23:59:59.999Z')",
        "trait('t').within_last(9223372036854775807 weeks)",
        "event('A').where(property('p') = 'x').mode(property('p'), 99999999999999999999) = 1",
        "NOT ( " * 2000 + "audience('a')" + " )" * 2000,
        "(" * 3000 + "audience('a')" + ")" * 3000,
        " OR ".join(f"audience('a{i}')" for i in range(60)),
        "event('" + "e" * 9000 + "').count() >= 1",
        "audience('vips') AND audience('vips') AND audience('vips')",
        "trait('\x00') = '\u202e'",
    ]
    strings: dict[str, list[str]] = {
        "space_id": ["default"],
        "journey_id": ids,
        "new_journey_id": ["", "copy-1", "welcome"],
        "id": ids,
        "step_id": steps,
        "next_step_id": steps,
        "true_step_id": steps,
        "false_step_id": steps,
        "destination_id": [EMAIL, IDENTIFY, ADS],
        "destination_ids": [EMAIL, IDENTIFY, ADS],
        "audience_id": ["vips"],
        "computed_trait_id": ["clv"],
        "operation_id": [seed.operation_id],
        "user_id": list(USERS),
        "anonymous_id": ["a1"],
        "previous_id": ["a1"],
        "consumer": ["fuzzer"],
        "event": ["Signed Up", "Order Completed"],
        "text": conditions,
        "trait": ["plan", "when"],
        "computed_trait": ["clv"],
        "property": ["revenue", "items"],
        "context": ["campaign.source"],
        "paths": [
            "name",
            "description",
            "settings",
            "steps",
            "condition",
            "expression",
            "event_mode",
            "kind",
            "settings.exit_after",
            "name.name",
        ],
        "key": ["j_o_welcome__say_hi_abc123", "j_o_x__y_" + "a" * 300],
        "page_token": ["", "AAAA", "eyJ4IjoxfQ==", "-1"],
        "value": ["1", "pro", "2026-01-01"],
    }
    return Hints(strings, (START_SECONDS - 365 * 86_400, START_SECONDS + 365 * 86_400))


# The server under test


@dataclass(frozen=True)
class Outcome:
    """How one call ended."""

    code: grpc.StatusCode
    details: str
    trailing: tuple[tuple[str, str | bytes], ...]
    items: int
    seconds: float


class Target:
    """A seeded server and a channel to it; checks and restores between calls."""

    def __init__(self, server: JourneysServer, channel: grpc.aio.Channel, seed: Seed) -> None:
        self.server = server
        self.channel = channel
        self.seed = seed
        self._db = sqlite3.connect(f"file:{server.engine.database_path}?mode=ro", uri=True)
        self._version: int | None = None
        self._digest = ""
        self._restored = 0
        self._wrote = True  # an accepted write since the operations were last waited for
        self._rpcs = {rpc.path: rpc for rpc in all_rpcs()}

    def close(self) -> None:
        self._db.close()

    @classmethod
    async def start(cls, server: JourneysServer) -> Target:
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{server.port}",
            options=[("grpc.max_receive_message_length", -1)],
        )
        seed = await _seed(channel, server)
        return cls(server, channel, seed)

    # Calls

    async def call(self, rpc: Rpc, payload: bytes) -> Outcome:
        """Sends ``payload`` as the request (the only one of a request stream). A
        server stream, which may be long-lived by design, is read for at most
        :data:`STREAM_ITEMS` items or :data:`STREAM_DEADLINE` seconds; a
        bidirectional stream ends once the request stream has, and is read whole."""
        method, path = rpc.method, rpc.path
        started = time.perf_counter()
        items = 0
        raw: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}
        try:
            if method.server_streaming and method.client_streaming:
                responses = self.channel.stream_stream(path, **raw)(
                    iter([payload]), timeout=UNARY_DEADLINE
                )
                async for _ in responses:
                    items += 1
            elif method.server_streaming:
                stream = self.channel.unary_stream(path, **raw)(payload, timeout=STREAM_DEADLINE)
                async for _ in stream:
                    items += 1
                    if items >= STREAM_ITEMS:
                        stream.cancel()
                        break
            elif method.client_streaming:
                await self.channel.stream_unary(path, **raw)(
                    iter([payload]), timeout=UNARY_DEADLINE
                )
            else:
                await self.channel.unary_unary(path, **raw)(payload, timeout=UNARY_DEADLINE)
        except grpc.aio.AioRpcError as err:
            trailing = tuple((k, v) for k, v in (err.trailing_metadata() or ()))
            return Outcome(
                err.code(), err.details() or "", trailing, items, time.perf_counter() - started
            )
        self._wrote = self._wrote or not rpc.read_only
        return Outcome(grpc.StatusCode.OK, "", (), items, time.perf_counter() - started)

    async def still_serving(self) -> None:
        """The server answers a health check and a trivial call promptly."""
        started = time.perf_counter()
        health = await health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(), timeout=SERVING_DEADLINE
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        space = await space_pb2_grpc.SpaceServiceStub(self.channel).GetSpace(
            space_pb2.GetSpaceRequest(space_id="default"), timeout=SERVING_DEADLINE
        )
        assert space.space.id == "default"
        assert time.perf_counter() - started < SERVING_DEADLINE

    # The database

    async def quiesce(self) -> None:
        """Waits until nothing is being applied and no historical entry runs.

        Only an accepted write starts a historical entry: after anything else the
        operations are not looked at (a refused call that started one would show
        as a change of the database anyway).
        """
        engine = self.server.engine
        await engine.settle()
        if not self._wrote:
            return
        self._wrote = False
        token = ""
        while True:
            spaces = await engine.spaces.list(page_size=1000, page_token=token)
            for space in spaces.items:
                ops = await engine.operations.list(space.id, 1000, "")
                for op in ops.items:
                    if op.state is OperationState.RUNNING:
                        await engine.operations.wait(space.id, op.id)
            token = spaces.next_page_token
            if not token:
                break
        await engine.settle()

    def fingerprint(self) -> str:
        """A digest of every row of every table, as another connection reads it.

        ``PRAGMA data_version`` on this connection changes exactly when another
        connection (the server's) committed, so the digest is computed again only
        after a commit.
        """
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        if version != self._version:
            self._version = version
            self._digest = _digest(self._db)
        return self._digest

    async def restore(self) -> None:
        """Puts back what an accepted call changed of the seed that later requests name."""
        await _restore_definitions(self.channel, self.server)
        await self._restore_journeys()
        await self._restore_profiles()

    async def _restore_profiles(self) -> None:
        engine = self.server.engine
        try:
            await engine.reporting.profile("default", user_id=USERS[0], anonymous_id="")
            return
        except NotFoundError:  # deleted (PrivacyService): sent again, under new message ids
            pass
        self._restored += 1
        unsuppress = self._rpcs.get("/journeys.v1.PrivacyService/DeleteSuppression")
        if unsuppress is not None:
            for user in USERS:
                request: Any = unsuppress.request_class(space_id="default", user_id=user)
                await self.call(unsuppress, request.SerializeToString())
        await ingest_pb2_grpc.IngestServiceStub(self.channel).Ingest(
            ingest_pb2.IngestRequest(
                space_id="default", messages=seed_messages(f"-{self._restored}")
            )
        )
        await engine.settle()

    async def _restore_journeys(self) -> None:
        journeys = self.server.engine.journeys
        stub = journey_pb2_grpc.JourneyServiceStub(self.channel)
        for journey, live in ((welcome_journey(), True), (draft_journey(), False)):
            try:
                status = (await journeys.get("default", journey.id)).status
            except NotFoundError:  # gone: created again below
                status = None
            if status is JourneyStatus.PAUSED and live:
                await stub.ResumeJourney(
                    journey_pb2.ResumeJourneyRequest(space_id="default", journey_id=journey.id)
                )
                continue
            wanted = JourneyStatus.PUBLISHED if live else JourneyStatus.DRAFT
            if status is wanted:
                continue
            if status is not None:
                await stub.DeleteJourney(
                    journey_pb2.DeleteJourneyRequest(space_id="default", journey_id=journey.id)
                )
            await _create_journey(self.channel, journey, publish=live)


def _seeded_definitions() -> list[Any]:
    kinds = definition_pb2
    destinations = [
        kinds.Destination(id=dest_id, name=dest_id.title(), kind=kind, event_mode=mode)
        for dest_id, kind, mode in (
            (EMAIL, kinds.DESTINATION_KIND_EVENT, kinds.EVENT_MODE_TRACK),
            (IDENTIFY, kinds.DESTINATION_KIND_EVENT, kinds.EVENT_MODE_IDENTIFY),
            (ADS, kinds.DESTINATION_KIND_LIST, kinds.EVENT_MODE_UNSPECIFIED),
            (SPARE, kinds.DESTINATION_KIND_LIST, kinds.EVENT_MODE_UNSPECIFIED),
        )
    ]
    return [
        *destinations,
        kinds.Audience(
            id="vips", name="VIPs", condition=_condition("event('Order Completed').count() >= 3")
        ),
        kinds.ComputedTrait(
            id="clv",
            name="CLV",
            expression=expression_to_proto(
                Condition("event('Order Completed').sum(property('revenue'))")
            ),
        ),
    ]


async def _restore_definitions(channel: grpc.aio.Channel, server: JourneysServer) -> None:
    """Creates each seeded definition that is missing."""
    stub = definition_pb2_grpc.DefinitionServiceStub(channel)
    for definition in _seeded_definitions():
        kind = {
            "Destination": DefinitionKind.DESTINATION,
            "Audience": DefinitionKind.AUDIENCE,
            "ComputedTrait": DefinitionKind.COMPUTED_TRAIT,
        }[definition.DESCRIPTOR.name]
        try:
            await server.engine.definitions.get("default", kind, definition.id)
            continue
        except NotFoundError:
            pass
        if isinstance(definition, definition_pb2.Destination):
            await stub.CreateDestination(
                definition_pb2.CreateDestinationRequest(space_id="default", destination=definition)
            )
        elif isinstance(definition, definition_pb2.Audience):
            await stub.CreateAudience(
                definition_pb2.CreateAudienceRequest(space_id="default", audience=definition)
            )
        elif isinstance(definition, definition_pb2.ComputedTrait):
            await stub.CreateComputedTrait(
                definition_pb2.CreateComputedTraitRequest(
                    space_id="default", computed_trait=definition
                )
            )


def _digest(db: sqlite3.Connection) -> str:
    digest = hashlib.sha256()
    with db:
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        for table in tables:
            rows = sorted(repr(row) for row in db.execute(f'SELECT * FROM "{table}"'))
            digest.update(f"{table}:{len(rows)}\n".encode())
            for row in rows:
                digest.update(row.encode())
    return digest.hexdigest()


async def _create_journey(channel: grpc.aio.Channel, journey: Journey, *, publish: bool) -> str:
    stub = journey_pb2_grpc.JourneyServiceStub(channel)
    await stub.CreateJourney(
        journey_pb2.CreateJourneyRequest(
            space_id="default", journey=_journey_proto(journey), journey_id=journey.id
        )
    )
    if not publish:
        return ""
    published = await stub.PublishJourney(
        journey_pb2.PublishJourneyRequest(space_id="default", journey_id=journey.id)
    )
    return published.operation_id


async def _seed(channel: grpc.aio.Channel, server: JourneysServer) -> Seed:
    await server.ready()
    spaces = space_pb2_grpc.SpaceServiceStub(channel)
    await spaces.CreateSpace(space_pb2.CreateSpaceRequest(space=space_pb2.Space(id="other")))
    await _restore_definitions(channel, server)
    await _create_journey(channel, welcome_journey(), publish=True)
    ingest = ingest_pb2_grpc.IngestServiceStub(channel)
    response = await ingest.Ingest(
        ingest_pb2.IngestRequest(space_id="default", messages=seed_messages())
    )
    assert not response.errors, response.errors
    await server.engine.settle()
    operation_id = await _create_journey(channel, history_journey(), publish=True)
    assert operation_id
    await _create_journey(channel, draft_journey(), publish=False)
    await server.engine.operations.wait("default", operation_id)
    await server.engine.settle()
    return Seed(operation_id=operation_id)


# One call, checked


def corpus_entry(rpc: Rpc, payload: bytes, bug: str = "TODO: what was wrong") -> str:
    """The JSON of a corpus file replaying this call (tests/server/fuzz_corpus/)."""
    return json.dumps(
        {"method": rpc.path, "request": base64.b64encode(payload).decode(), "bug": bug}
    )


def _bad_request(
    trailing: tuple[tuple[str, str | bytes], ...],
) -> error_details_pb2.BadRequest | None:
    for key, value in trailing:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                request = error_details_pb2.BadRequest()
                if detail.Unpack(request):
                    return request
    return None


def _validate_only(rpc: Rpc, payload: bytes) -> bool:
    if "validate_only" not in rpc.method.input_type.fields_by_name:
        return False
    try:
        request: Any = rpc.request_class.FromString(payload)
    except DecodeError:
        return False
    return bool(request.validate_only)


def check_outcome(rpc: Rpc, outcome: Outcome) -> None:
    """The status, message and details a hostile call may end with."""
    long_lived = rpc.method.server_streaming and not rpc.method.client_streaming
    allowed = ALLOWED | ({grpc.StatusCode.DEADLINE_EXCEEDED} if long_lived else set())
    assert outcome.code in allowed, f"{rpc}: {outcome.code.name}: {outcome.details[:300]!r}"
    if outcome.code is grpc.StatusCode.OK:
        return
    message = outcome.details
    assert message.strip(), f"{rpc}: {outcome.code.name} without a message"
    assert len(message.encode()) <= MAX_MESSAGE_BYTES, (
        f"{rpc}: a {len(message.encode())}-byte message: {message[:300]!r}…"
    )
    assert "Traceback" not in message and 'File "' not in message, message
    # The client's own limit on trailers (16 KiB): the server's answer never arrived.
    assert "metadata size" not in message, f"{rpc}: the answer was lost: {message}"
    if outcome.code is grpc.StatusCode.INVALID_ARGUMENT:
        bad = _bad_request(outcome.trailing)
        assert bad is not None and bad.field_violations, f"{rpc}: no BadRequest: {message!r}"


async def exercise(
    target: Target, rpc: Rpc, payload: bytes, *, check_writes: bool = True
) -> Outcome:
    """Sends one payload and checks everything the fuzz suite promises about it."""
    if check_writes:
        await target.quiesce()
        before = target.fingerprint()
    outcome = await target.call(rpc, payload)
    check_outcome(rpc, outcome)
    if check_writes:
        await target.quiesce()
        if outcome.code is not grpc.StatusCode.OK:
            why = f"refused with {outcome.code.name}"
        elif rpc.read_only:
            why = "read-only"
        elif _validate_only(rpc, payload):
            why = "validate_only"
        else:
            why = ""
        if why:
            assert target.fingerprint() == before, f"{rpc} ({why}) changed the database"
    await target.still_serving()
    if outcome.code is grpc.StatusCode.OK and not rpc.read_only:
        await target.restore()
    return outcome
