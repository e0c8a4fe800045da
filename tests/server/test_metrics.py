"""Observability: ``/metrics`` series that move with traffic, request ids, JSON logs."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import re
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from journeys.v1 import (
    common_pb2,
    journey_pb2,
    space_pb2,
    space_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
)
from journeys_client import JourneysClient
from journeys_server import JourneysServer, ServerSettings
from journeys_server.logs import CallFilter, CallInfo, JsonFormatter, TextFormatter, bind_call
from prometheus_client.parser import text_string_to_metric_families

from journeys_engine.runtime.router import Batch
from journeys_engine.testing import FakeClock
from tests.helpers.processes import ServerProcess
from tests.server.test_api import EMAIL

HOUR_MS = 3_600_000

SERIES = {
    "journeys_ingest_messages": "counter",
    "journeys_ingest_batch_messages": "histogram",
    "journeys_ingest_ack_seconds": "histogram",
    "journeys_actors_resident": "gauge",
    "journeys_shard_queue_batches": "gauge",
    "journeys_timers_pending": "gauge",
    "journeys_timer_fire_lag_seconds": "histogram",
    "journeys_snapshot_flush_seconds": "histogram",
    "journeys_outbox_backlog_calls": "gauge",
    "journeys_subscribers_connected": "gauge",
    "journeys_calls": "counter",
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


class Scrape:
    """One scrape of ``/metrics``: its families, and each sample's value."""

    def __init__(self, text: str) -> None:
        self.types = {family.name: family.type for family in text_string_to_metric_families(text)}
        self.samples: Samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(server: JourneysServer) -> Scrape:
    status, kind, text = await asyncio.to_thread(
        _get, f"http://127.0.0.1:{server.metrics_port}/metrics"
    )
    assert status == 200
    assert kind.startswith("text/plain; version=0.0.4")
    return Scrape(text)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Waits for a condition the server reaches by itself (a stream it notices closed)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


def waiting_journey() -> journey_pb2.Journey:
    """Signed up, an hour's wait, then a call to the email destination."""
    return journey_pb2.Journey(
        id="j",
        name="Welcome later",
        steps=[
            journey_pb2.Step(
                id="entry",
                name="Signed up",
                entry=journey_pb2.EntryStep(
                    condition=common_pb2.Condition(text="event('Signed Up').count() >= 1"),
                    next_step_id="wait",
                ),
            ),
            journey_pb2.Step(
                id="wait",
                name="An hour",
                wait_duration=journey_pb2.WaitDurationStep(
                    duration=duration_pb2.Duration(seconds=3600), next_step_id="send"
                ),
            ),
            journey_pb2.Step(
                id="send",
                name="Say hi",
                send_to_destinations=journey_pb2.SendToDestinationsStep(destination_ids=["email"]),
            ),
        ],
    )


@pytest.fixture
async def observed(db_path: Path, clock: FakeClock) -> AsyncIterator[JourneysServer]:
    settings = ServerSettings(
        db_path=str(db_path), host="127.0.0.1", port=0, insecure_no_auth=True, metrics_port=0
    )
    async with await JourneysServer.start(settings, clock=clock) as running:
        await running.ready()
        yield running


@pytest.fixture
async def observed_client(observed: JourneysServer) -> AsyncIterator[JourneysClient]:
    async with JourneysClient(f"127.0.0.1:{observed.port}", timeout=10) as connected:
        yield connected


def _signed_up(user: str) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Signed Up", "messageId": f"m-{user}"}


async def test_every_series_is_exposed_and_moves_with_traffic(
    observed: JourneysServer, observed_client: JourneysClient
) -> None:
    client = observed_client
    before = await scrape(observed)
    assert {name: before.types.get(name) for name in SERIES} == SERIES
    assert before.value("journeys_actors_resident") == 0
    assert {before.value("journeys_shard_queue_batches", shard=str(s)) for s in range(4)} == {0}

    await client.create_destination(EMAIL)
    await client.create_journey(waiting_journey())
    await client.publish_journey("j")
    ack = await client.ingest(
        [
            _signed_up("u1"),
            _signed_up("u2"),
            _signed_up("u1"),  # the same messageId: a duplicate
            {"type": "track", "event": "Signed Up"},  # no identity: refused
        ]
    )
    assert (ack.accepted, len(ack.duplicates), len(ack.errors)) == (2, 1, 1)
    await client.ingest([_signed_up("u3")])
    await observed.engine.settle()

    ingested = await scrape(observed)
    messages = "journeys_ingest_messages_total"
    assert ingested.value(messages, outcome="accepted") == 3
    assert ingested.value(messages, outcome="duplicate") == 1
    assert ingested.value(messages, outcome="refused") == 1
    assert ingested.value("journeys_ingest_batch_messages_count") == 2
    assert ingested.value("journeys_ingest_batch_messages_sum") == 5
    assert ingested.value("journeys_ingest_ack_seconds_count") == 2
    assert ingested.value("journeys_ingest_ack_seconds_sum") > 0
    assert ingested.value("journeys_snapshot_flush_seconds_count") >= 1
    assert ingested.value("journeys_actors_resident") == 3
    assert ingested.value("journeys_timers_pending") == 3  # each waits an hour
    ingest_ok = {"method": "journeys.v1.IngestService/Ingest", "code": "OK"}
    assert ingested.value("journeys_calls_total", **ingest_ok) == 2
    assert ingested.value("journeys_timer_fire_lag_seconds_count") == 0

    await observed.engine.advance(HOUR_MS)
    fired = await scrape(observed)
    assert fired.value("journeys_timer_fire_lag_seconds_count") == 3
    assert fired.value("journeys_timer_fire_lag_seconds_sum") == 0  # each at its instant
    assert fired.value("journeys_timers_pending") == 0
    assert fired.value("journeys_snapshot_flush_seconds_count") > ingested.value(
        "journeys_snapshot_flush_seconds_count"
    )

    # A consumer reads the three calls, acknowledges two, and goes away.
    backlog = {"space": "default", "destination": "email", "consumer": "c1"}
    subscribers = {"space": "default", "destination": "email"}
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{observed.port}")
    stream = subscription_pb2_grpc.SubscriptionServiceStub(channel).Subscribe(
        subscription_pb2.SubscribeRequest(space_id="default", destination_id="email", consumer="c1")
    )
    sequences = []
    for _ in range(3):
        item = await stream.read()
        assert isinstance(item, subscription_pb2.SubscribeResponse)
        sequences.append(item.call.sequence)
    assert sequences == [1, 2, 3]
    reading = await scrape(observed)
    assert reading.value("journeys_subscribers_connected", **subscribers) == 1
    assert reading.value("journeys_outbox_backlog_calls", **backlog) == 3
    await client.ack("email", "c1", 2)
    acked = await scrape(observed)
    assert acked.value("journeys_outbox_backlog_calls", **backlog) == 1
    stream.cancel()
    await channel.close()

    async def unsubscribed() -> bool:
        now = await scrape(observed)
        return (
            "journeys_subscribers_connected",
            frozenset(subscribers.items()),
        ) in now.samples and now.value("journeys_subscribers_connected", **subscribers) == 0

    await eventually(unsubscribed)
    gone = await scrape(observed)
    assert gone.value("journeys_outbox_backlog_calls", **backlog) == 1  # its cursor stays


async def test_shard_queue_depth_is_read_when_scraped(
    observed: JourneysServer, observed_client: JourneysClient
) -> None:
    """A shard held busy applying one batch queues the next: the gauge shows it."""
    router = observed.engine.router
    apply = router._apply
    release = asyncio.Event()
    applying = asyncio.Event()

    async def held(batch: Batch) -> None:
        applying.set()
        await release.wait()
        await apply(batch)

    router._apply = held
    try:
        await observed_client.ingest([{"type": "track", "userId": "u1", "event": "A"}])
        await applying.wait()
        await observed_client.ingest([{"type": "track", "userId": "u1", "event": "B"}])
        busy = await scrape(observed)
        depths = [busy.value("journeys_shard_queue_batches", shard=str(s)) for s in range(4)]
        assert sorted(depths) == [0, 0, 0, 1]  # u1's shard: the second batch waits
    finally:
        release.set()
    await observed.engine.settle()
    idle = await scrape(observed)
    assert [idle.value("journeys_shard_queue_batches", shard=str(s)) for s in range(4)] == [0] * 4


async def test_the_endpoint_answers_only_metrics(observed: JourneysServer) -> None:
    status, _, _ = await asyncio.to_thread(_get, f"http://127.0.0.1:{observed.metrics_port}/")
    assert status == 404


async def test_metrics_are_off_by_default(server: JourneysServer) -> None:
    assert server.metrics_port is None
    assert server.settings.metrics_port is None


async def test_two_servers_in_one_process_keep_their_own_series(
    observed: JourneysServer, observed_client: JourneysClient, tmp_path: Path, clock: FakeClock
) -> None:
    settings = ServerSettings(
        db_path=str(tmp_path / "other.db"),
        host="127.0.0.1",
        port=0,
        insecure_no_auth=True,
        metrics_port=0,
    )
    async with await JourneysServer.start(settings, clock=clock) as other:
        await observed_client.ingest([_signed_up("u1")])
        assert (await scrape(observed)).value("journeys_ingest_batch_messages_count") == 1
        assert (await scrape(other)).value("journeys_ingest_batch_messages_count") == 0


# Request ids


async def _get_space(
    server: JourneysServer, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[grpc.StatusCode, dict[str, str | bytes]]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = space_pb2_grpc.SpaceServiceStub(channel).GetSpace(
            space_pb2.GetSpaceRequest(space_id="default"), metadata=metadata, timeout=10
        )
        try:
            await call
        except grpc.aio.AioRpcError as err:
            return err.code(), dict(err.trailing_metadata() or ())
        return await call.code(), dict(await call.trailing_metadata() or ())


async def test_each_call_gets_a_request_id_back(server: JourneysServer) -> None:
    code, trailing = await _get_space(server)
    assert code is grpc.StatusCode.OK
    generated = trailing["x-request-id"]
    assert isinstance(generated, str)
    assert re.fullmatch(r"[0-9a-f]{16}", generated)
    assert (await _get_space(server))[1]["x-request-id"] != generated
    code, trailing = await _get_space(server, (("x-request-id", "client-chose-this"),))
    assert trailing["x-request-id"] == "client-chose-this"
    # One that could not be logged safely is replaced.
    code, trailing = await _get_space(server, (("x-request-id", "has spaces; and {braces}"),))
    replaced = trailing["x-request-id"]
    assert isinstance(replaced, str)
    assert re.fullmatch(r"[0-9a-f]{16}", replaced)


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The server's log records, as the JSON formatter writes them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(CallFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("journeys_server")
    logger.addHandler(handler)
    try:
        yield out
    finally:
        logger.removeHandler(handler)


async def test_log_lines_carry_the_call_and_errors_keep_the_request_id(
    server: JourneysServer, json_logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(space_id: str) -> None:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(server.engine.spaces, "get", broken)
    code, trailing = await _get_space(server, (("x-request-id", "req-42"),))
    assert code is grpc.StatusCode.INTERNAL
    assert trailing["x-request-id"] == "req-42"
    assert "grpc-status-details-bin" in trailing  # the rich status is still there
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert len(lines) == 1
    entry = lines[0]
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "journeys_server.errors"
    assert entry["message"].startswith("unexpected error in SpaceServicer.GetSpace")
    assert (entry["request_id"], entry["method"], entry["space"]) == (
        "req-42",
        "journeys.v1.SpaceService/GetSpace",
        "default",
    )
    assert "RuntimeError: the disk is on fire" in entry["exception"]
    assert entry["time"].endswith("+00:00")


def test_text_lines_stay_as_they_were_outside_a_call() -> None:
    record = logging.LogRecord("journeys_server", logging.INFO, __file__, 1, "hello", (), None)
    CallFilter().filter(record)
    assert TextFormatter().format(record).endswith(" INFO journeys_server hello")

    def inside_a_call() -> str:
        bind_call(CallInfo("abc", "journeys.v1.SpaceService/GetSpace", "default"))
        record = logging.LogRecord("journeys_server", logging.INFO, __file__, 1, "hi", (), None)
        CallFilter().filter(record)
        return TextFormatter().format(record)

    line = contextvars.copy_context().run(inside_a_call)
    assert line.endswith(
        " INFO journeys_server hi "
        "[request_id=abc method=journeys.v1.SpaceService/GetSpace space=default]"
    )


# A real process


@pytest.mark.e2e
def test_serve_logs_json_and_serves_metrics(tmp_path: Path) -> None:
    served = ServerProcess(tmp_path / "journeys.db", "--log-format", "json", "--metrics-port", "0")
    with served:
        found = re.search(r"metrics at (http://\S+/metrics)", "".join(served.output))
        assert found is not None, served.output
        with grpc.insecure_channel(served.target) as channel:
            _, call = space_pb2_grpc.SpaceServiceStub(channel).GetSpace.with_call(
                space_pb2.GetSpaceRequest(space_id="default"),
                metadata=(("x-request-id", "from-the-test"),),
                timeout=30,
            )
            assert ("x-request-id", "from-the-test") in tuple(call.trailing_metadata() or ())
        status, _, text = _get(found.group(1))
        assert status == 200
        get_space = 'journeys_calls_total{code="OK",method="journeys.v1.SpaceService/GetSpace"} 1.0'
        assert get_space in text
        assert served.stop(signal.SIGTERM) == 0
    lines = "".join(served.output).splitlines()
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    assert logged, lines
    for entry in logged:
        assert {"time", "level", "logger", "message"} <= entry.keys()
    assert any(entry["message"].startswith("stopping") for entry in logged)
    # Whatever is not a JSON log line is one of the lines the CLI prints.
    assert all(
        line.startswith(("{", "journeys server", "metrics at", "WARNING: access control"))
        for line in lines
        if line
    ), lines
