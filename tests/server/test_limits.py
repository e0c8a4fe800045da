"""Server limits on load, in process with small values: each refuses with
RESOURCE_EXHAUSTED and a message that says what to do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import journeys_server.app
import pytest
from journeys.v1 import (
    definition_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
)
from journeys_client import JourneysClient, ResourceExhaustedError, UnavailableError
from journeys_client.errors import from_rpc_error
from journeys_server import JourneysServer, ServerSettings
from journeys_server.admission import Admission
from journeys_server.services.ingest import IngestServicer

from journeys_engine import Engine
from journeys_engine.testing import FakeClock

HOOKS = definition_pb2.Destination(
    id="hooks",
    name="Hooks",
    kind=definition_pb2.DESTINATION_KIND_EVENT,
    event_mode=definition_pb2.EVENT_MODE_TRACK,
)
# Each client its own connection (channels of one process otherwise share one).
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


@pytest.fixture
def admissions(monkeypatch: pytest.MonkeyPatch) -> list[Admission]:
    """The ingest admission of each server started in the test."""
    made: list[Admission] = []

    class Recorded(IngestServicer):
        def __init__(self, engine: Engine, **limits: int) -> None:
            super().__init__(engine, **limits)
            made.append(self.admission)

    monkeypatch.setattr(journeys_server.app, "IngestServicer", Recorded)
    return made


@asynccontextmanager
async def serving(db_path: Path, clock: FakeClock, **limits: Any) -> AsyncIterator[JourneysServer]:
    settings = ServerSettings(
        db_path=str(db_path), host="127.0.0.1", port=0, insecure_no_auth=True, **limits
    )
    async with await JourneysServer.start(settings, clock=clock) as server:
        await server.ready()
        yield server


@asynccontextmanager
async def client_of(server: JourneysServer) -> AsyncIterator[JourneysClient]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=OWN_CONNECTION)
    async with JourneysClient(channel=channel, timeout=10) as client:
        yield client


def track(user: str, n: int = 0, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Signed Up",
        "messageId": f"{user}-{n}",
        "properties": properties,
    }


# Calls at once


async def test_calls_beyond_the_concurrent_limit_are_refused_with_a_clear_message(
    db_path: Path, clock: FakeClock
) -> None:
    async with serving(db_path, clock, max_concurrent_calls=2) as server:
        async with client_of(server) as client:
            await client.create_destination(HOOKS)
            stub = subscription_pb2_grpc.SubscriptionServiceStub(client._channel)
            request = subscription_pb2.SubscribeRequest(
                space_id="default", destination_id="hooks", consumer="c"
            )
            open_streams = [stub.Subscribe(request) for _ in range(2)]
            for stream in open_streams:
                await stream.wait_for_connection()  # the server has begun both
            with pytest.raises(ResourceExhaustedError) as caught:
                await client.get_space()
            assert str(caught.value) == (
                "the server is running as many calls at once as it allows "
                "(journeys serve --max-concurrent-calls); retry after a backoff"
            )
            # A call ending makes room again.
            open_streams[0].cancel()
            await _eventually(client.get_space)
            open_streams[1].cancel()


async def _eventually(call: Callable[[], Awaitable[object]], timeout: float = 5.0) -> None:
    """Retries ``call`` while it is refused for load, until ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                await call()
                return
            except ResourceExhaustedError:
                await asyncio.sleep(0.05)


# Message sizes


async def test_a_request_over_the_receive_limit_is_refused_before_it_is_decoded(
    db_path: Path, clock: FakeClock
) -> None:
    limit = 64 * 1024
    async with serving(db_path, clock, max_receive_message_bytes=limit) as server:
        async with client_of(server) as client:
            messages = [track("u", n, note="x" * 1000) for n in range(100)]  # ~100 KB
            with pytest.raises(ResourceExhaustedError) as caught:
                await client.ingest(messages)
            message = str(caught.value)
            assert message.startswith("the request is ")
            assert f"more than the server takes in one message ({limit}, " in message
            assert "--max-receive-message-bytes): send less in each call" in message
            # Nothing was taken in; a batch under the limit is.
            assert (await client.ingest(messages[:10])).accepted == 10
            assert (await client.get_profile("u")).user_id == "u"


async def test_a_response_over_the_send_limit_fails_its_call_with_a_clear_message(
    db_path: Path, clock: FakeClock
) -> None:
    limit = 16 * 1024
    async with serving(db_path, clock, max_send_message_bytes=limit) as server:
        async with client_of(server) as client:
            # Every message refused: the acknowledgement lists a problem for each.
            refused = [{"type": "track", "event": "No user"} for _ in range(500)]
            with pytest.raises(ResourceExhaustedError) as caught:
                await client.ingest(refused)
            message = str(caught.value)
            assert message.startswith("the response would be ")
            assert f"more than the server sends in one message ({limit}, " in message
            assert "--max-send-message-bytes): ask for less" in message
            assert (await client.ingest(refused[:5])).accepted == 0  # a small one goes


# Ingest admission


@asynccontextmanager
async def held_ingest(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[asyncio.Event]:
    """Ingestion stops inside the engine until the event is set (the batches taken
    in keep their places meanwhile)."""
    release = asyncio.Event()
    ingest = engine.ingest

    async def held(space_id: str, messages: Sequence[Any]) -> Any:
        await release.wait()
        return await ingest(space_id, messages)

    monkeypatch.setattr(engine, "ingest", held)
    try:
        yield release
    finally:
        release.set()


async def test_unary_ingest_beyond_the_line_is_refused_with_retry_advice_and_streams_wait(
    db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, admissions: list[Admission]
) -> None:
    async with serving(db_path, clock, max_ingest_messages=10, max_ingest_waiting=5) as server:
        [admission] = admissions
        async with (
            client_of(server) as first,
            client_of(server) as second,
            held_ingest(server.engine, monkeypatch) as release,
        ):
            # Ten messages take every place; five more wait in line.
            taking = asyncio.ensure_future(first.ingest([track("a", n) for n in range(10)]))
            await _until(lambda: admission.stats.taking_in == 10)
            waiting = asyncio.ensure_future(second.ingest([track("b", n) for n in range(5)]))
            await _until(lambda: admission.stats.waiting_unary == 5)
            assert admission.stats.taking_in == 10
            # One more message would make the line too long: refused, with advice.
            stub = ingest_pb2_grpc.IngestServiceStub(second._channel)
            request = ingest_pb2.IngestRequest(
                space_id="default",
                messages=[
                    ingest_pb2.SegmentMessage(
                        type=ingest_pb2.MESSAGE_TYPE_TRACK, user_id="b", event="x"
                    )
                ],
            )
            with pytest.raises(grpc.aio.AioRpcError) as raw:
                await stub.Ingest(request)
            assert raw.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert from_rpc_error(raw.value).retry_delay == 1.0
            assert "retry after 1 s, with backoff, or send over IngestStream" in (
                raw.value.details() or ""
            )
            with pytest.raises(ResourceExhaustedError) as caught:
                await second.ingest([track("b", 99)])
            assert caught.value.retry_delay == 1.0
            # A stream's batch is never refused: it waits its turn (flow control).
            streamed = asyncio.ensure_future(first.send([track("c", n) for n in range(3)]))
            await _until(lambda: admission.stats.waiting == 8)
            assert not streamed.done()
            release.set()
            assert (await taking).accepted == 10
            assert (await waiting).accepted == 5
            assert (await streamed).accepted == 3
        assert admission.stats.taking_in == admission.stats.waiting == 0


async def test_a_flood_on_one_connection_does_not_shut_out_a_call_on_another(
    db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, admissions: list[Admission]
) -> None:
    async with serving(db_path, clock, max_ingest_messages=10, max_ingest_waiting=20) as server:
        [admission] = admissions
        async with (
            client_of(server) as flood,
            client_of(server) as calm,
            held_ingest(server.engine, monkeypatch) as release,
        ):
            batches = []
            for i in range(3):  # one taken in, two waiting
                batches.append(
                    asyncio.ensure_future(flood.ingest([track("f", 10 * i + n) for n in range(10)]))
                )
                held = 10 * (i + 1)
                await _until(lambda: admission.stats.taking_in + admission.stats.waiting == held)  # noqa: B023
            # The line is full of the flood's calls; the calm call takes the place of
            # the flood's newest, which is refused.
            calm_call = asyncio.ensure_future(calm.ingest([track("c")]))
            await _until(lambda: admission.stats.waiting_unary == 11)
            release.set()
            assert (await calm_call).accepted == 1
            outcomes = await asyncio.gather(*batches, return_exceptions=True)
            assert [o.accepted for o in outcomes[:2] if not isinstance(o, BaseException)] == [
                10,
                10,
            ]
            assert isinstance(outcomes[2], ResourceExhaustedError)  # the newest went
            assert outcomes[2].retry_delay == 1.0


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Waits (yielding to the server's tasks) until ``condition`` holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# Connections


async def test_connections_beyond_the_limit_are_closed(db_path: Path, clock: FakeClock) -> None:
    async with serving(db_path, clock, max_connections=1) as server:
        async with client_of(server) as first, client_of(server) as second:
            await first.get_space()
            with pytest.raises(UnavailableError):
                await second.get_space()
            await first.get_space()  # the connection that got in is served on
