"""The Python client through a server killed and restarted mid-way (``kill -9``): the
ingester resends what was not acknowledged, with no duplicate, and a follower
resumes after its last ack."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from journeys.v1 import common_pb2, definition_pb2
from journeys_client import JourneysClient

from tests.helpers.processes import ServerProcess, free_port
from tests.server.test_api import EMAIL, proto_journey

USERS = 20
PER_USER = 60


async def _restart(server: ServerProcess) -> None:
    assert server.process is not None
    server.process.kill()  # kill -9: nothing is flushed or closed
    await asyncio.to_thread(server.process.wait)
    assert server.process.stdout is not None
    server.process.stdout.close()
    await asyncio.to_thread(server.start)


async def test_ingester_and_follower_go_on_through_a_killed_server(tmp_path: Path) -> None:
    port = free_port()
    with ServerProcess(tmp_path / "journeys.db", "--port", str(port)) as server:
        async with JourneysClient(f"127.0.0.1:{port}", timeout=10) as client:
            await client.create_destination(EMAIL)
            count = common_pb2.Condition(text="event('Signed Up').count()")
            await client.create_computed_trait(
                definition_pb2.ComputedTrait(id="signups", name="Sign-ups", expression=count)
            )
            await client.create_journey(proto_journey())
            await client.publish_journey("j")

            async with client.ingester(batch_size=50, max_buffered=200) as ingester:
                for n in range(USERS * PER_USER):
                    # No message ids: the client makes them up, and a resend reuses them.
                    await ingester.add(
                        {"type": "track", "userId": f"u{n % USERS}", "event": "Signed Up"}
                    )
                    assert ingester.held <= 200
                    if n == USERS * PER_USER // 2:
                        await _restart(server)
            report = ingester.report
            assert report.accepted == USERS * PER_USER
            assert report.duplicates == 0 and report.rejected == []
            for user in range(USERS):
                profile = await client.get_profile(f"u{user}")
                assert profile.computed_traits["signups"] == PER_USER  # none lost, none twice

            seen: list[int] = []
            users: set[str] = set()
            async for item in client.follow("email", "resilient", retries=20):
                seen.append(item.call.sequence)
                users.add(json.loads(item.call.payload)["userId"])
                if len(seen) == USERS // 2:
                    await client.ack("email", "resilient", item.call.sequence)
                    await _restart(server)
                if len(seen) == USERS:
                    break
            assert seen == list(
                range(1, USERS + 1)
            )  # resumed after the last item: no gap, no repeat
            assert users == {f"u{n}" for n in range(USERS)}
            async for item in client.subscribe("email", "resilient"):
                assert item.call.sequence == USERS // 2 + 1  # the cursor is the last ack
                break
