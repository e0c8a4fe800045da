"""The edges the fuzz suite found (tests/server/test_fuzz.py), each pinned on its own.

Timestamps a protobuf ``Timestamp`` cannot hold, status messages and details
that grew with the input, and a simulation that ran on after its caller gave up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from journeys.v1 import ingest_pb2, ingest_pb2_grpc, simulation_pb2, simulation_pb2_grpc
from journeys_server import JourneysServer
from journeys_server.convert.common import Problems, timestamp_ms, timestamp_proto
from journeys_server.errors import MAX_DETAILS_BYTES, MAX_MESSAGE_BYTES, status_for
from journeys_server.services import simulation as simulation_service

from journeys_engine.clock import format_ms, parse_iso_ms
from journeys_engine.errors import FieldViolation, InvalidArgumentError, NotFoundError
from journeys_engine.model import Condition, EntryStep, Journey, SendToDestinationsStep
from journeys_engine.simulation import simulate_journey
from tests.helpers.builders import add_destination

YEAR_500 = -46_388_678_400  # 0500-01-01T00:00:00Z


@pytest.fixture
async def channel(server: JourneysServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened


def test_timestamps_outside_what_a_timestamp_holds_are_problems() -> None:
    problems = Problems()
    assert timestamp_ms(Timestamp(seconds=-62_135_596_801), "before_year_1", problems) == 0
    assert timestamp_ms(Timestamp(seconds=253_402_300_800), "after_9999", problems) == 0
    assert timestamp_ms(Timestamp(seconds=0, nanos=-1), "nanos", problems) == 0
    assert timestamp_ms(Timestamp(seconds=253_402_300_799, nanos=999_999_999), "ok", problems) == (
        253_402_300_799_999
    )
    assert timestamp_ms(Timestamp(seconds=-62_135_596_800), "ok", problems) == -62_135_596_800_000
    assert [v.field for v in problems.found] == ["before_year_1", "after_9999", "nanos"]


def test_an_instant_past_the_last_day_is_sent_as_no_time() -> None:
    last = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
    stamp = timestamp_proto(last)
    assert stamp is not None
    assert stamp.ToMilliseconds() == last
    assert timestamp_proto(last + 1) is None  # a wait ending after it: never
    assert timestamp_proto(None) is None


def test_years_before_1000_are_written_with_four_digits() -> None:
    assert format_ms(YEAR_500 * 1000) == "0500-01-01T00:00:00.000Z"
    assert format_ms(-62_135_596_800_000) == "0001-01-01T00:00:00.000Z"
    assert parse_iso_ms(format_ms(YEAR_500 * 1000 + 7)) == YEAR_500 * 1000 + 7


async def test_a_bad_timestamp_refuses_its_message_alone(channel: grpc.aio.Channel) -> None:
    def track(message_id: str, **times: Timestamp) -> ingest_pb2.SegmentMessage:
        message = ingest_pb2.SegmentMessage(
            type=ingest_pb2.MESSAGE_TYPE_TRACK,
            message_id=message_id,
            user_id="u1",
            event="Signed Up",
        )
        for name, time in times.items():
            getattr(message, name).CopyFrom(time)
        return message

    response = await ingest_pb2_grpc.IngestServiceStub(channel).Ingest(
        ingest_pb2.IngestRequest(
            space_id="default",
            messages=[
                track("bad-nanos", timestamp=Timestamp(seconds=1, nanos=-1)),
                track("year-500", timestamp=Timestamp(seconds=YEAR_500)),
                track("bad-sent-at", sent_at=Timestamp(seconds=2**62)),
            ],
        )
    )
    assert response.accepted == 1
    assert [(e.index, [p.field for p in e.problems]) for e in response.errors] == [
        (0, ["messages[0].timestamp"]),
        (2, ["messages[2].sent_at"]),
    ]


def test_status_messages_and_details_stay_small_whatever_the_input() -> None:
    many = InvalidArgumentError(
        [FieldViolation(f"journey.steps[{i}]", "x" * 300) for i in range(1000)]
    )
    status = status_for(many)
    assert len(status.message.encode()) <= MAX_MESSAGE_BYTES
    assert status.message.endswith("\u2026")
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    listed = bad.field_violations[:-1]
    assert 0 < len(listed) < 1000
    assert sum(len(v.field) + len(v.description.encode()) for v in listed) <= MAX_DETAILS_BYTES
    assert bad.field_violations[-1].description == (
        f"and {1000 - len(listed)} more problems, not listed"
    )
    small = status_for(InvalidArgumentError.single("name", "is required"))
    assert small.message == "name: is required"


def test_a_long_id_is_cut_where_a_message_quotes_it() -> None:
    message = NotFoundError(kind="journey", id="\x00" * 10_000, space_id="default").message
    assert len(message) < 400
    assert message.endswith("\u2026 (10000 characters) not found in space 'default'")
    assert NotFoundError(kind="journey", id="j").message == "journey 'j' not found"


async def test_a_simulation_stops_when_its_caller_gives_up(
    server: JourneysServer, channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_destination(server.engine)
    journey = Journey(
        id="j",
        space_id="",
        name="J",
        steps=(
            EntryStep("entry", "E", Condition("event('A').count() >= 1"), False, "send"),
            SendToDestinationsStep("send", "S", ("email",)),
        ),
    )
    await server.engine.journeys.create("default", journey, journey_id="j")
    ended: list[str] = []
    done = asyncio.Event()
    simulate = simulate_journey

    async def watched(*args: Any, **kwargs: Any) -> Any:
        try:
            return await simulate(*args, **kwargs)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise
        finally:
            done.set()

    monkeypatch.setattr(simulation_service, "simulate_journey", watched)
    request = simulation_pb2.SimulateJourneyRequest(
        space_id="default",
        journey_id="j",
        steps=[simulation_pb2.SimulationStep(advance=Duration(seconds=60))] * 5_000,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await simulation_pb2_grpc.SimulationServiceStub(channel).SimulateJourney(
            request, timeout=0.3
        )
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(done.wait(), 5)
    assert ended == ["cancelled"]
