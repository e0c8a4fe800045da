"""Hostile input: every RPC fuzzed with generated, mutated and raw requests.

For every method of every service the server registers (found from the
descriptors, so a new RPC is fuzzed without a change here), hypothesis sends
arbitrary messages of its request type, valid requests with a field or two
replaced, and bytes no encoder would write, to one real in-process server on a
real SQLite file, seeded so that valid-looking requests reach deep code
(:mod:`tests.helpers.fuzzing`). Each call must end with OK or a client-error
status, a short message with no traceback, a ``BadRequest`` when it is
``INVALID_ARGUMENT``; a refused call must leave every table as it was; and the
server must still answer a health check and a call right after.

CI runs a fixed (derandomized) set of examples per method, in bounded time. Set
``FUZZ_EXAMPLES`` to run that many random examples per method instead (failures
are kept in the local hypothesis database). Every failure found and fixed is
kept in ``fuzz_corpus/`` (method, request bytes, what was wrong) and replayed
by :func:`test_past_failures_stay_fixed`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import timestamp_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from journeys.v1 import (
    clock_pb2,
    common_pb2,
    definition_pb2,
    definition_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    journey_pb2,
    journey_pb2_grpc,
    space_pb2,
    space_pb2_grpc,
)
from journeys_server import JourneysServer, ServerSettings

from journeys_engine.testing import FakeClock
from tests.helpers.fuzzing import (
    START,
    Rpc,
    Seed,
    Target,
    all_rpcs,
    check_outcome,
    corpus_entry,
    exercise,
    hints_for,
    seed_messages,
    valid_request,
)
from tests.helpers.proto_strategies import messages, mutated, raw_payloads

ON_THE_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # the servers live on it

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
CI_EXAMPLES = 40
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES or CI_EXAMPLES,
    derandomize=not FUZZ_EXAMPLES,  # CI: the same examples every run, no flakes
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
CORPUS = sorted((Path(__file__).parent / "fuzz_corpus").glob("*.json"))
RPCS = all_rpcs()
BY_PATH = {rpc.path: rpc for rpc in RPCS}
STATE_REFUSALS = {
    "ResumeJourney": "nothing is paused in the seed (a paused journey would be resumed)",
    "RevokeToken": "the seed has no token to revoke",
}
"""Methods whose valid request the seeded state refuses; mutations still reach past decoding."""
LAST_DAY_SECONDS = 253_402_214_400  # 9999-12-31T00:00:00Z
_NOTE_LIMIT = 64 * 1024  # larger payloads are shrunk by hypothesis before they matter


async def _start(directory: Path) -> AsyncIterator[Target]:
    settings = ServerSettings(
        db_path=str(directory / "journeys.db"), host="127.0.0.1", port=0, insecure_no_auth=True
    )
    async with await JourneysServer.start(settings, clock=FakeClock.at(START)) as server:
        target = await Target.start(server)
        try:
            yield target
        finally:
            await target.channel.close()
            target.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    """The server every RPC but the clock's is fuzzed against."""
    async for started in _start(tmp_path_factory.mktemp("fuzz")):
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clock_target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    """A server of its own for the clock's RPCs: a valid SetTime to the year 9999 is a
    legitimate write, and would leave the other RPCs fuzzed at the end of time."""
    async for started in _start(tmp_path_factory.mktemp("fuzz-clock")):
        yield started


_STRATEGIES: dict[str, st.SearchStrategy[bytes]] = {}


def requests(rpc: Rpc, seed: Seed) -> st.SearchStrategy[bytes]:
    """Generated, mutated-valid and raw requests for one RPC, as bytes."""
    if rpc.path not in _STRATEGIES:
        valid = valid_request(rpc.method, seed)
        hints = hints_for(seed)

        def encode(message: Any) -> bytes:
            return bytes(message.SerializeToString())

        families = {
            "generated": messages(rpc.method.input_type, hints).map(encode),
            "mutated": mutated(valid, hints).map(encode),
            "raw": raw_payloads(valid),
        }
        # Weighted by family (st.one_of would flatten raw_payloads' own alternatives
        # into its choice and send mostly raw bytes).
        _STRATEGIES[rpc.path] = st.sampled_from(("generated", "mutated", "mutated", "raw")).flatmap(
            families.__getitem__
        )
    return _STRATEGIES[rpc.path]


def _note(rpc: Rpc, payload: bytes) -> None:
    if len(payload) <= _NOTE_LIMIT:
        note(f"corpus entry: {corpus_entry(rpc, payload)}")
    else:
        note(f"{rpc}: a {len(payload)}-byte request")


@ON_THE_MODULE_LOOP
async def test_every_service_the_server_offers_is_fuzzed(target: Target) -> None:
    """As the server lists them (reflection), not only as SERVICE_NAMES says."""

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    offered: set[str] = set()
    stub = reflection_pb2_grpc.ServerReflectionStub(target.channel)
    async for response in stub.ServerReflectionInfo(ask()):
        offered |= {s.name for s in response.list_services_response.service}
    offered -= {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    assert {rpc.method.containing_service.full_name for rpc in RPCS} == offered


@ON_THE_MODULE_LOOP
async def test_the_database_check_sees_a_write(target: Target) -> None:
    """The check that refused calls write nothing could fail: a write changes it."""
    await target.quiesce()
    before = target.fingerprint()
    assert target.fingerprint() == before
    await space_pb2_grpc.SpaceServiceStub(target.channel).ListSpaces(space_pb2.ListSpacesRequest())
    await target.quiesce()
    assert target.fingerprint() == before
    await definition_pb2_grpc.DefinitionServiceStub(target.channel).CreateDestination(
        definition_pb2.CreateDestinationRequest(
            space_id="default",
            destination=definition_pb2.Destination(
                id="fingerprinted", name="F", kind=definition_pb2.DESTINATION_KIND_LIST
            ),
        )
    )
    await target.quiesce()
    assert target.fingerprint() != before


@ON_THE_MODULE_LOOP
async def test_the_valid_requests_are_valid(target: Target, clock_target: Target) -> None:
    """The requests mutations start from are accepted, so mutations reach deep code."""
    refused = {}
    for rpc in RPCS:
        where = clock_target if rpc.moves_the_clock else target
        outcome = await where.call(rpc, valid_request(rpc.method, where.seed).SerializeToString())
        check_outcome(rpc, outcome)
        if outcome.code is not grpc.StatusCode.OK and rpc.method.name not in STATE_REFUSALS:
            refused[rpc.method.name] = f"{outcome.code.name}: {outcome.details}"
        await where.quiesce()
        await where.restore()
    assert not refused, "\n".join(f"{name}: {why}" for name, why in refused.items())


@ON_THE_MODULE_LOOP
@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
async def test_past_failures_stay_fixed(target: Target, clock_target: Target, path: Path) -> None:
    entry = json.loads(path.read_text())
    assert set(entry) == {"method", "request", "bug"}, f"{path.name}: method, request, bug"
    rpc = BY_PATH.get(entry["method"])
    assert rpc is not None, f"{path.name}: no method {entry['method']}"
    where = clock_target if rpc.moves_the_clock else target
    await exercise(where, rpc, base64.b64decode(entry["request"]))


@ON_THE_MODULE_LOOP
# Many examples may run past the per-test timeout; each call has its own deadline.
@pytest.mark.timeout(0 if FUZZ_EXAMPLES else 120)
@pytest.mark.parametrize("rpc", RPCS, ids=[rpc.path.lstrip("/") for rpc in RPCS])
@FUZZ
@given(data=st.data())
async def test_every_rpc_survives_hostile_requests(
    target: Target, clock_target: Target, rpc: Rpc, data: st.DataObject
) -> None:
    where = clock_target if rpc.moves_the_clock else target
    payload = data.draw(requests(rpc, where.seed), label="request")
    _note(rpc, payload)
    outcome = await exercise(where, rpc, payload)
    event(outcome.code.name)  # --hypothesis-show-statistics: how deep the requests got


@ON_THE_MODULE_LOOP
async def test_every_rpc_answers_at_the_end_of_time(clock_target: Target) -> None:
    """On the last day a Timestamp holds, waits and re-checks end past it: every RPC
    still answers, its valid request and hostile ones (run after the clock's own
    fuzzing, on its server, whose clock may be there already)."""
    target = clock_target
    last_day = timestamp_pb2.Timestamp(seconds=LAST_DAY_SECONDS)
    moved = await target.call(
        BY_PATH["/journeys.v1.ClockService/SetTime"],
        clock_pb2.SetTimeRequest(time=last_day).SerializeToString(),
    )
    assert moved.code in (grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION), moved
    acked = await ingest_pb2_grpc.IngestServiceStub(target.channel).Ingest(
        ingest_pb2.IngestRequest(space_id="default", messages=seed_messages("-at-the-end"))
    )
    assert not acked.errors
    for rpc in RPCS:
        if not rpc.moves_the_clock:
            await exercise(target, rpc, valid_request(rpc.method, target.seed).SerializeToString())
    for rpc, payload in _hostile_sample(target.seed, 100):
        await exercise(target, rpc, payload)


def _hostile_sample(seed: Seed, count: int) -> list[tuple[Rpc, bytes]]:
    """``count`` hostile requests across every RPC but the clock's, fixed for CI."""
    fuzzed = [rpc for rpc in RPCS if not rpc.moves_the_clock]
    sample: list[tuple[Rpc, bytes]] = []

    @settings(
        max_examples=count,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.sampled_from(fuzzed).flatmap(lambda rpc: st.tuples(st.just(rpc), requests(rpc, seed)))
    )
    def collect(item: tuple[Rpc, bytes]) -> None:
        sample.append(item)

    collect()
    return sample


@ON_THE_MODULE_LOOP
async def test_a_well_behaved_client_is_served_while_fuzzing(target: Target) -> None:
    sample = _hostile_sample(target.seed, 150)
    stop = asyncio.Event()
    latencies: list[float] = []

    async def well_behaved() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{target.server.port}") as channel:
            ingest = ingest_pb2_grpc.IngestServiceStub(channel)
            journeys = journey_pb2_grpc.JourneyServiceStub(channel)
            spaces = space_pb2_grpc.SpaceServiceStub(channel)
            defs = definition_pb2_grpc.DefinitionServiceStub(channel)
            i = 0
            while not stop.is_set() or i < 5:
                started = time.perf_counter()
                acked = await ingest.Ingest(
                    ingest_pb2.IngestRequest(
                        space_id="default",
                        messages=[
                            ingest_pb2.SegmentMessage(
                                type=ingest_pb2.MESSAGE_TYPE_TRACK,
                                message_id=f"good-{i}",
                                user_id=f"good-{i % 7}",
                                event="Signed Up",
                            )
                        ],
                    ),
                    timeout=5,
                )
                assert (acked.accepted, list(acked.errors)) == (1, [])
                await journeys.ListJourneys(
                    journey_pb2.ListJourneysRequest(space_id="default"), timeout=5
                )
                await spaces.GetSpace(space_pb2.GetSpaceRequest(space_id="default"), timeout=5)
                await defs.CheckCondition(
                    definition_pb2.CheckConditionRequest(
                        space_id="default",
                        condition=common_pb2.Condition(text="event('Signed Up').count() >= 1"),
                    ),
                    timeout=5,
                )
                latencies.append(time.perf_counter() - started)
                i += 1

    async def hostile() -> None:
        limit = asyncio.Semaphore(4)

        async def one(rpc: Rpc, payload: bytes) -> None:
            async with limit:
                check_outcome(rpc, await target.call(rpc, payload))

        try:
            await asyncio.gather(*(one(rpc, payload) for rpc, payload in sample))
        finally:
            stop.set()

    await asyncio.gather(well_behaved(), hostile())
    await target.quiesce()
    await target.restore()
    assert len(latencies) >= 5
    assert max(latencies) < 5.0, f"a well-behaved call took {max(latencies):.1f} s"
