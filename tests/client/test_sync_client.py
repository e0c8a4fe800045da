"""The blocking client against a real server process: one call of every service, its
streams as generators. (That the generated module is fresh: tests/test_packaging.py.)"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool
from journeys.v1 import simulation_pb2, token_pb2
from journeys_client import JourneysSyncClient, NotFoundError, UnauthenticatedError
from journeys_server import SERVICE_NAMES

from tests.helpers.processes import ServerProcess
from tests.helpers.tokens import bootstrap
from tests.server.test_api import EMAIL, proto_journey


def test_every_async_method_has_a_blocking_twin() -> None:
    import inspect

    from journeys_client import JourneysClient

    asynchronous = {
        name
        for name, fn in vars(JourneysClient).items()
        if not name.startswith("_")
        and (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn))
    }
    assert asynchronous - set(vars(JourneysSyncClient)) == set()


def test_the_blocking_client_reaches_every_service(tmp_path: Path) -> None:
    db = tmp_path / "journeys.db"
    secret = asyncio.run(bootstrap(db))
    reached: set[str] = set()
    with (
        ServerProcess(db, "--manual-clock", auth=True) as server,
        JourneysSyncClient(server.target, token=secret, timeout=20) as client,
    ):
        now = client.advance_time(60_000)
        assert client.get_time() == now
        reached.add("ClockService")
        assert client.create_space("second").id == "second"
        reached.add("SpaceService")
        client.create_destination(EMAIL)
        reached.add("DefinitionService")
        client.create_journey(proto_journey())
        client.publish_journey("j")
        reached.add("JourneyService")
        ack = client.ingest([{"type": "track", "userId": "u1", "event": "Signed Up"}])
        assert ack.accepted == 1
        reached.add("IngestService")
        calls = client.subscribe("email", "sync")
        first = next(calls)
        calls.close()
        assert json.loads(first.call.payload)["userId"] == "u1"
        assert client.ack("email", "sync", first.call.sequence) == first.call.sequence
        reached.add("SubscriptionService")
        stats = client.get_journey_stats("j")
        assert stats.entered_users == 1
        reached.add("ReportingService")
        assert client.list_operations() == []
        reached.add("OperationService")
        stamp = datetime.fromtimestamp(now / 1000 + 1, UTC).isoformat()
        simulated = client.simulate_journey(
            [{"type": "track", "userId": "s1", "event": "Signed Up", "timestamp": stamp}],
            journey_id="j",
            start_time=now,
        )
        assert isinstance(simulated, simulation_pb2.SimulateJourneyResponse)
        assert len(simulated.calls) == 1
        reached.add("SimulationService")
        made = client.create_token(token_pb2.TOKEN_ROLE_INGEST, name="sync")
        assert [t.name for t in client.list_tokens()] == ["sync"]
        reached.add("TokenService")
        assert client.delete_profile("u1").deleted
        with pytest.raises(NotFoundError):
            client.get_profile("u1")
        reached.add("PrivacyService")
        info = client.backup(tmp_path / "copy.db")
        assert info.size_bytes > 0
        reached.add("BackupService")
    assert reached == {name.rpartition(".")[2] for name in SERVICE_NAMES}
    with ServerProcess(db, auth=True) as server:
        with JourneysSyncClient(server.target, token=made.secret) as ingest_only:
            assert ingest_only.ingest([]).accepted == 0
        with JourneysSyncClient(server.target) as anonymous:
            with pytest.raises(UnauthenticatedError):
                anonymous.list_spaces()


def test_the_client_wraps_every_rpc() -> None:
    import re

    import journeys_client.client
    import journeys_client.sending

    source = "".join(
        Path(module.__file__ or "").read_text()
        for module in (journeys_client.client, journeys_client.sending)
    )
    pool = descriptor_pool.Default()
    missing = [
        f"{name}/{method.name}"
        for name in SERVICE_NAMES
        for method in pool.FindServiceByName(name).methods
        if re.search(rf"\.{method.name}\b", source) is None
    ]
    assert missing == []
