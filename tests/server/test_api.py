"""The gRPC API on a real port: status codes, rich error details, health, reflection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from journeys.v1 import common_pb2, definition_pb2, journey_pb2
from journeys_client import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    JourneysClient,
    JourneysClientError,
    NotFoundError,
)
from journeys_server import (
    SERVICE_NAMES,
    AllowAll,
    Grant,
    JourneysServer,
    Refusal,
    ServerSettings,
)

from journeys_engine.testing import FakeClock

EMAIL = definition_pb2.Destination(
    id="email",
    name="Email",
    kind=definition_pb2.DESTINATION_KIND_EVENT,
    event_mode=definition_pb2.EVENT_MODE_TRACK,
)


def proto_journey(journey_id: str = "j") -> journey_pb2.Journey:
    cond = common_pb2.Condition
    return journey_pb2.Journey(
        id=journey_id,
        name="Welcome",
        steps=[
            journey_pb2.Step(
                id="entry",
                name="Signed up",
                entry=journey_pb2.EntryStep(
                    condition=cond(text="event('Signed Up').count() >= 1"), next_step_id="send"
                ),
            ),
            journey_pb2.Step(
                id="send",
                name="Say hi",
                send_to_destinations=journey_pb2.SendToDestinationsStep(destination_ids=["email"]),
            ),
        ],
    )


async def test_journey_round_trip_and_lifecycle(client: JourneysClient) -> None:
    await client.create_destination(EMAIL)
    created = (await client.create_journey(proto_journey())).journey
    assert created.status == journey_pb2.JOURNEY_STATUS_DRAFT
    assert created.space_id == "default"
    key = created.steps[1].send_to_destinations.key
    assert key.startswith("j_o_welcome__say_hi_")
    fetched = await client.get_journey("j")
    assert fetched == created
    published = (await client.publish_journey("j")).journey
    assert published.status == journey_pb2.JOURNEY_STATUS_PUBLISHED
    assert published.HasField("publish_time")
    assert [j.id for j in await client.list_journeys()] == ["j"]
    assert await client.list_journeys(status=journey_pb2.JOURNEY_STATUS_DRAFT) == []
    paused = await client.pause_journey("j")
    assert paused.status == journey_pb2.JOURNEY_STATUS_PAUSED
    assert (await client.resume_journey("j")).status == journey_pb2.JOURNEY_STATUS_PUBLISHED
    copy = await client.clone_journey("j", new_journey_id="copy")
    assert copy.name == "Copy of Welcome"
    assert copy.steps[1].send_to_destinations.key != key
    assert (await client.archive_journey("j")).status == journey_pb2.JOURNEY_STATUS_ARCHIVED
    await client.delete_journey("j")
    with pytest.raises(NotFoundError, match="journey 'j' not found"):
        await client.get_journey("j")


async def test_invalid_input_names_every_field(client: JourneysClient) -> None:
    bad = proto_journey()
    bad.name = ""
    bad.steps[1].send_to_destinations.destination_ids.append("email")
    with pytest.raises(InvalidArgumentError) as caught:
        await client.create_journey(bad)
    fields = [v.field for v in caught.value.field_violations]
    assert fields == [
        "journey.name",
        "journey.steps[1].send_to_destinations.destination_ids[0]",
        "journey.steps[1].send_to_destinations.destination_ids[1]",
    ]
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert await client.list_journeys() == []


async def test_refused_moves_carry_precondition_details(client: JourneysClient) -> None:
    await client.create_destination(EMAIL)
    await client.create_journey(proto_journey())
    with pytest.raises(
        FailedPreconditionError, match="cannot pause journey 'j': it is draft"
    ) as caught:
        await client.pause_journey("j")
    violation = caught.value.precondition_violations[0]
    assert (violation.type, violation.subject) == ("JOURNEY_STATUS", "journey/j")


async def test_live_edits_are_refused_naming_the_fields(client: JourneysClient) -> None:
    await client.create_destination(EMAIL)
    await client.create_journey(proto_journey())
    live = (await client.publish_journey("j")).journey
    live.steps[0].name = "Renamed entry"
    live.name = "Renamed journey"
    with pytest.raises(FailedPreconditionError) as caught:
        await client.update_journey(live)
    assert [v.subject for v in caught.value.precondition_violations] == ["journey.steps[0].name"]
    assert (await client.get_journey("j")).name == "Welcome"
    response = await client.update_journey(live, update_mask=["name"])
    assert response.journey.name == "Renamed journey"


async def test_already_exists(client: JourneysClient) -> None:
    await client.create_destination(EMAIL)
    with pytest.raises(AlreadyExistsError, match="destination 'email' already exists"):
        await client.create_destination(EMAIL)
    await client.create_space("acme")
    with pytest.raises(AlreadyExistsError):
        await client.create_space("acme")


async def test_definitions_round_trip(client: JourneysClient) -> None:
    aud = definition_pb2.Audience(
        id="vips",
        name="VIPs",
        description="Big spenders",
        condition=common_pb2.Condition(text="event('Order Completed').count() >= 3"),
    )
    created = await client.create_audience(aud)
    assert (created.id, created.name, created.condition.text) == (
        "vips",
        "VIPs",
        aud.condition.text,
    )
    assert await client.get_audience("vips") == created
    trait = definition_pb2.ComputedTrait(
        id="clv",
        name="CLV",
        expression=common_pb2.Condition(text="event('Order Completed').sum(property('revenue'))"),
    )
    assert (await client.create_computed_trait(trait)).expression.text == trait.expression.text
    assert [t.id for t in await client.list_computed_traits()] == ["clv"]
    list_dest = definition_pb2.Destination(
        id="ads", name="Ads", kind=definition_pb2.DESTINATION_KIND_LIST
    )
    created_dest = await client.create_destination(list_dest)
    assert created_dest.event_mode == definition_pb2.EVENT_MODE_UNSPECIFIED
    renamed = definition_pb2.Destination(id="ads", name="Advertising")
    assert (await client.update_destination(renamed)).kind == definition_pb2.DESTINATION_KIND_LIST
    updated = await client.update_audience(
        definition_pb2.Audience(id="vips", name="Top"), update_mask=["name"]
    )
    assert updated.condition.text == aud.condition.text
    await client.delete_audience("vips")
    await client.delete_computed_trait("clv")
    await client.delete_destination("ads")
    assert await client.list_audiences() == [] == await client.list_destinations()


def _space_scoped_methods() -> list[tuple[str, MethodDescriptor]]:
    """(full method path, descriptor) of every RPC whose request names a space."""
    pool = descriptor_pool.Default()
    found = []
    for service_name in SERVICE_NAMES:
        service = pool.FindServiceByName(service_name)
        for method in service.methods:
            if "space_id" in method.input_type.fields_by_name:
                found.append((f"/{service.full_name}/{method.name}", method))
    return found


SPACE_SCOPED = _space_scoped_methods()


def test_the_space_scoped_rpcs_were_found() -> None:
    # JourneyService 11, DefinitionService 16, GetSpace 1, IngestService 2,
    # SubscriptionService 3, ReportingService 4, OperationService 3, SimulationService 1,
    # TokenService 3, PrivacyService 3
    assert len(SPACE_SCOPED) == 47


async def _call_once(channel: grpc.aio.Channel, path: str, method: MethodDescriptor) -> None:
    request = GetMessageClass(method.input_type)(space_id="nowhere")
    kwargs: dict[str, Any] = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": lambda b: b,
    }
    if method.client_streaming:
        stream = channel.stream_stream(path, **kwargs)
        async for _ in stream(iter([request]), timeout=10):
            pass
    elif method.server_streaming:
        async for _ in channel.unary_stream(path, **kwargs)(request, timeout=10):
            pass
    else:
        await channel.unary_unary(path, **kwargs)(request, timeout=10)


@pytest.mark.parametrize(("path", "method"), SPACE_SCOPED, ids=[p for p, _ in SPACE_SCOPED])
async def test_every_rpc_refuses_an_unknown_space(
    server: JourneysServer, client: JourneysClient, path: str, method: MethodDescriptor
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call_once(channel, path, method)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "space 'nowhere' not found"
    assert [s.id for s in await client.list_spaces()] == ["default"]


async def test_health_and_reflection(server: JourneysServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", *SERVICE_NAMES):
            response = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert response.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        names = set()
        async for response in reflection.ServerReflectionInfo(ask()):
            names |= {s.name for s in response.list_services_response.service}
    assert set(SERVICE_NAMES) <= names
    assert "grpc.health.v1.Health" in names


class DenyJourneys(AllowAll):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def authorize(
        self, method: str, metadata: tuple[tuple[str, str | bytes], ...]
    ) -> Grant | Refusal:
        self.seen.append(method)
        if method.startswith("/journeys.v1.JourneyService/"):
            return Refusal(grpc.StatusCode.PERMISSION_DENIED, "not for you")
        return Grant()


async def test_every_call_passes_the_authorization_seam(db_path: Path, clock: FakeClock) -> None:
    authorizer = DenyJourneys()
    settings = ServerSettings(db_path=str(db_path), host="127.0.0.1", port=0)
    async with await JourneysServer.start(settings, clock=clock, authorizer=authorizer) as server:
        async with JourneysClient(f"127.0.0.1:{server.port}") as client:
            with pytest.raises(JourneysClientError, match="not for you") as caught:
                await client.list_journeys()
            assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED
            assert [s.id for s in await client.list_spaces()] == ["default"]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                response = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest()
                )
            assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert authorizer.seen == [
        "/journeys.v1.JourneyService/ListJourneys",
        "/journeys.v1.SpaceService/ListSpaces",
    ]


async def test_unexpected_errors_become_internal_without_details(
    server: JourneysServer, client: JourneysClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(server.engine.spaces, "list", broken)
    with pytest.raises(JourneysClientError) as caught:
        await client.list_spaces()
    assert caught.value.code is grpc.StatusCode.INTERNAL
    assert "secret" not in str(caught.value)
