"""Segment's own Python library (``segment-analytics-python``) sends to ``--http-port``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from journeys_client import JourneysClient
from segment.analytics import Client

from tests.helpers.processes import ServerProcess
from tests.helpers.tokens import bootstrap
from tests.server.test_api import EMAIL, proto_journey


def _send(url: str, write_key: str, *, gzip: bool) -> list[Any]:
    """The calls a collector makes, through the library's queue; returns its errors."""
    errors: list[Any] = []
    analytics = Client(
        write_key,
        host=url,
        gzip=gzip,
        on_error=lambda error, batch: errors.append(error),
        max_retries=1,
    )
    analytics.identify("u1", {"email": "a@example.com", "plan": "pro"})
    analytics.page("u1", "Docs", "Install", {"path": "/docs"})
    analytics.alias("visitor-7", "u1")  # (previous id, user id)
    analytics.track("u1", "Signed Up", {"source": "sdk"})
    analytics.flush()
    analytics.shutdown()
    return errors


async def test_segment_python_sdk_moves_a_published_journey(tmp_path: Path) -> None:
    db = tmp_path / "journeys.db"
    root = await bootstrap(db)
    write_key = await bootstrap(db, "default", "ingest")
    with ServerProcess(db, "--manual-clock", "--http-port", "0", auth=True) as server:
        async with JourneysClient(server.target, token=root, space="default", timeout=10) as client:
            # The library stamps wall-clock times: the manual clock goes there first.
            await client.set_time(int(time.time() * 1000))
            await client.create_destination(EMAIL)
            await client.create_journey(proto_journey())
            await client.publish_journey("j")
            # The server corrects each timestamp by the batch's sentAt (stamped when the
            # library uploads, just after the calls): received on a clock that stood
            # still, they would fall just before the publish. A minute later, they do not.
            await client.advance_time(60_000)

            errors = await asyncio.to_thread(_send, server.http_url, write_key, gzip=True)
            assert errors == []
            refused = await asyncio.to_thread(_send, server.http_url, "jt_wrong", gzip=False)
            assert [getattr(e, "status", None) for e in refused] == [401]

            calls = client.subscribe("email", "sdk-test")
            first = await asyncio.wait_for(anext(calls), 20)
            await calls.aclose()
            assert first.call.journey_id == "j"
            payload = json.loads(first.call.payload)
            assert payload["userId"] == "u1"
            profile = await client.get_profile("u1")
            assert profile.traits["email"] == "a@example.com"
