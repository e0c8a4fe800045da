"""SubscriptionService on a real server process: named consumers, acks, resume,
stalled consumers, retention gaps, and the members of a send step."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from journeys.v1 import subscription_pb2, subscription_pb2_grpc
from journeys_client import (
    InvalidArgumentError,
    JourneysClient,
    NotFoundError,
    UnavailableError,
)

from tests.helpers.live import (
    HOUR,
    START,
    apply_yaml,
    connect,
    entry_journey,
    read_items,
    read_nothing,
    track,
)
from tests.helpers.processes import ServerProcess

pytestmark = pytest.mark.e2e

SIGNED_UP = entry_journey("event('Signed Up').count() >= 1")
TRIAL = """
kind: Destination
id: crm
name: CRM
type: track
---
kind: Journey
id: trial
name: Trial
settings:
  exit_condition: event('Trial Ended').count() >= 1
steps:
- id: entry
  name: Started a trial
  type: entry
  condition: event('Trial Started').count() >= 1
  next: send
- id: send
  name: Tell the CRM
  type: send_to_destinations
  destinations: [crm]
"""


@pytest.fixture
async def client(manual: ServerProcess) -> AsyncIterator[JourneysClient]:
    async with connect(manual, at=START) as connected:
        await apply_yaml(connected, SIGNED_UP)
        yield connected


async def sign_up(client: JourneysClient, *users: str) -> None:
    ack = await client.ingest([track(user, "Signed Up") for user in users])
    assert ack.accepted == len(users)


def user_of(item: subscription_pb2.SubscribeResponse) -> str:
    return str(json.loads(item.call.payload)["userId"])


async def next_items(
    client: JourneysClient, consumer: str, count: int
) -> list[subscription_pb2.SubscribeResponse]:
    """What a consumer gets when it resumes from its own cursor."""
    return await read_items(client, "hooks", count, consumer=consumer, after=None)


async def test_two_named_consumers_read_one_destination_with_their_own_cursors(
    client: JourneysClient,
) -> None:
    await sign_up(client, "u1", "u2", "u3", "u4")
    for consumer in ("billing", "audit"):
        items = await next_items(client, consumer, 4)
        assert [i.call.sequence for i in items] == [1, 2, 3, 4]
        assert sorted(user_of(i) for i in items) == ["u1", "u2", "u3", "u4"]
    first = await read_items(client, "hooks", 4)
    assert await client.ack("hooks", "billing", 3) == 3
    assert await client.ack("hooks", "audit", 1) == 1
    assert await client.ack("hooks", "billing", 2) == 3  # an ack never moves a cursor back
    await sign_up(client, "u5")
    billing = await next_items(client, "billing", 2)
    audit = await next_items(client, "audit", 4)
    assert [i.call.sequence for i in billing] == [4, 5]
    assert [i.call.sequence for i in audit] == [2, 3, 4, 5]
    # A replay is the same calls: same ids, same payloads.
    assert [i.call for i in audit[:3]] == [i.call for i in first[1:]]
    assert user_of(audit[3]) == "u5"
    # A consumer that acknowledged everything has nothing more until a new call.
    await client.ack("hooks", "billing", 5)
    await read_nothing(client, "hooks", consumer="billing", after=None)


async def test_a_subscription_streams_new_calls_as_they_come(client: JourneysClient) -> None:
    got: list[str] = []

    async def follow() -> None:
        async for item in client.subscribe("hooks", "live"):
            got.append(user_of(item))
            if len(got) == 3:
                return

    follower = asyncio.create_task(follow())
    for user in ("u1", "u2", "u3"):
        await sign_up(client, user)
    await asyncio.wait_for(follower, 20)
    assert got == ["u1", "u2", "u3"]


async def test_subscription_requests_are_checked(client: JourneysClient) -> None:
    await sign_up(client, "u1")
    with pytest.raises(NotFoundError):
        await read_items(client, "nowhere", 1)
    with pytest.raises(InvalidArgumentError) as caught:
        await read_items(client, "hooks", 1, consumer="no spaces allowed")
    assert caught.value.field_violations[0].field == "consumer"
    with pytest.raises(InvalidArgumentError) as caught:
        await client.ack("hooks", "billing", 2)
    assert [(v.field, v.description) for v in caught.value.field_violations] == [
        ("sequence", "2 has not been sent (the last sequence is 1)")
    ]
    with pytest.raises(InvalidArgumentError):
        await client.ack("hooks", "billing", -1)
    with pytest.raises(InvalidArgumentError):
        await read_items(client, "hooks", 1, after=-1)
    # Nothing was moved by the refused calls.
    assert await client.ack("hooks", "billing", 0) == 0


async def test_a_stalled_consumer_is_disconnected_without_delaying_another(
    tmp_path: Path,
) -> None:
    with ServerProcess(
        tmp_path / "journeys.db", "--manual-clock", "--subscriber-stall", "1"
    ) as manual:
        async with connect(manual, at=START) as client:
            await apply_yaml(client, SIGNED_UP)
            # The stalled consumer opens its stream on a channel with a small fixed
            # flow-control window, and never reads.
            options = [("grpc.http2.bdp_probe", 0)]
            async with grpc.aio.insecure_channel(manual.target, options=options) as channel:
                stub = subscription_pb2_grpc.SubscriptionServiceStub(channel)
                stalled = stub.Subscribe(
                    subscription_pb2.SubscribeRequest(
                        space_id="default", destination_id="hooks", consumer="stalled"
                    )
                )
                await stalled.wait_for_connection()
                users = [f"u{i}" for i in range(2000)]
                started = time.monotonic()
                report = await client.send([track(u, "Signed Up") for u in users])
                assert report.accepted == len(users)
                items = await next_items(client, "fast", len(users))
                took = time.monotonic() - started
                assert sorted(user_of(i) for i in items) == sorted(users)
                # Still stalled: it is cut off once the server has waited a second on it.
                received = 0

                async def drain() -> None:
                    nonlocal received
                    async for _ in stalled:
                        received += 1

                await asyncio.sleep(1.5)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await drain()
                assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
                assert "took more than 1 s" in (caught.value.details() or "")
                assert 0 < received < len(users)
            # It resumes from its cursor (it acknowledged nothing) and loses nothing.
            resumed = await next_items(client, "stalled", len(users))
            assert [i.call.sequence for i in resumed] == list(range(1, len(users) + 1))
            assert took < 60


async def test_calls_dropped_by_retention_leave_a_gap_record(tmp_path: Path) -> None:
    with ServerProcess(
        tmp_path / "journeys.db", "--manual-clock", "--outbox-retention", "1h"
    ) as manual:
        async with connect(manual, at=START) as client:
            await apply_yaml(client, SIGNED_UP)
            await sign_up(client, "u1", "u2", "u3")
            await read_items(client, "hooks", 3)
            await client.ack("hooks", "partial", 1)
            await client.ack("hooks", "done", 3)
            await client.set_time(START + 2 * HOUR)  # the three calls are past retention
            await sign_up(client, "u4")
            partial = await next_items(client, "partial", 2)
            assert partial[0].WhichOneof("item") == "gap"
            assert (partial[0].gap.first_sequence, partial[0].gap.last_sequence) == (2, 3)
            assert "retention" in partial[0].gap.reason
            assert (partial[1].call.sequence, user_of(partial[1])) == (4, "u4")
            fresh = await next_items(client, "fresh", 2)
            assert (fresh[0].gap.first_sequence, fresh[0].gap.last_sequence) == (1, 3)
            done = await next_items(client, "done", 1)
            assert done[0].call.sequence == 4
            # An ack past the gap moves the cursor on.
            assert await client.ack("hooks", "partial", 4) == 4
            await read_nothing(client, "hooks", after=4)
        manual.stop()
    log = "".join(manual.output)
    # Sequences 2 and 3 had not been acknowledged by every consumer when dropped.
    assert (
        "the outbox retention dropped 2 unacknowledged calls of destination 'hooks' "
        "in space 'default'" in log
    )


async def test_list_members_pages_the_current_members_of_a_send_step(
    manual: ServerProcess, client: JourneysClient
) -> None:
    await apply_yaml(client, TRIAL)
    await client.ingest(
        [track(u, "Trial Started") for u in ("u3", "u1", "u2", "u4")] + [track("u2", "Trial Ended")]
    )
    members = await client.list_members("trial", "send")
    assert [m.profile_key for m in members] == ["u3", "u1", "u4"]
    assert [(m.user_id, m.run) for m in members][:1] == [("u3", 1)]
    async with grpc.aio.insecure_channel(manual.target) as channel:
        stub = subscription_pb2_grpc.SubscriptionServiceStub(channel)
        request = subscription_pb2.ListMembersRequest(
            space_id="default", journey_id="trial", step_id="send", page_size=2
        )
        first = await stub.ListMembers(request)
        assert [m.profile_key for m in first.members] == ["u3", "u1"]
        request.page_token = first.next_page_token
        second = await stub.ListMembers(request)
        assert [m.profile_key for m in second.members] == ["u4"]
        assert second.next_page_token == ""
    with pytest.raises(InvalidArgumentError) as caught:
        await client.list_members("trial", "entry")
    assert caught.value.field_violations[0].field == "step_id"
    with pytest.raises(NotFoundError):
        await client.list_members("nothing", "send")


async def test_a_subscription_ends_unavailable_when_the_server_stops(
    manual: ServerProcess, client: JourneysClient
) -> None:
    await sign_up(client, "u1")

    async def read_forever() -> None:
        async for _ in client.subscribe("hooks", "watcher"):
            pass

    reader = asyncio.create_task(read_forever())
    await asyncio.sleep(0.3)
    manual.stop()
    with pytest.raises(UnavailableError) as caught:
        await asyncio.wait_for(reader, 30)
    # Ended by the server (not left hanging for the grace period, then cut).
    assert "the server is stopping; resubscribe" in str(caught.value)


async def raw_responses(
    target: str, max_batch: int, calls: int, *, then: asyncio.Event | None = None
) -> list[subscription_pb2.SubscribeResponse]:
    """The responses of one subscription with ``max_batch``, until ``calls`` calls came."""
    responses: list[subscription_pb2.SubscribeResponse] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = subscription_pb2_grpc.SubscriptionServiceStub(channel)
        request = subscription_pb2.SubscribeRequest(
            space_id="default",
            destination_id="hooks",
            consumer="batched",
            after_sequence=0,
            max_batch=max_batch,
        )
        stream = stub.Subscribe(request)
        seen = 0
        async for response in stream:
            responses.append(response)
            seen += len(response.calls.calls) if response.HasField("calls") else 1
            if then is not None and seen == calls - 1:
                then.set()
            if seen >= calls:
                break
        stream.cancel()
    return responses


async def test_a_batched_subscription_carries_the_same_calls_in_fewer_responses(
    client: JourneysClient, manual: ServerProcess
) -> None:
    await sign_up(client, *(f"b{i}" for i in range(120)))
    single = await asyncio.wait_for(raw_responses(manual.target, 1, 120), 20)
    assert all(r.HasField("call") for r in single)
    batched = await asyncio.wait_for(raw_responses(manual.target, 50, 120), 20)
    assert [len(r.calls.calls) for r in batched] == [50, 50, 20]
    assert [c for r in batched for c in r.calls.calls] == [r.call for r in single]

    # A new call is sent as soon as it is committed, alone: a batch never waits to fill.
    caught_up = asyncio.Event()
    later = asyncio.create_task(raw_responses(manual.target, 50, 121, then=caught_up))
    await asyncio.wait_for(caught_up.wait(), 20)
    await sign_up(client, "late")
    responses = await asyncio.wait_for(later, 20)
    assert len(responses[-1].calls.calls) == 1
    assert user_of(subscription_pb2.SubscribeResponse(call=responses[-1].calls.calls[0])) == "late"

    # The client asks for batches and yields one call per item, as before.
    items = await read_items(client, "hooks", 121)
    assert [i.call for i in items[:120]] == [r.call for r in single]
    assert all(i.HasField("call") for i in items)


@pytest.mark.parametrize("max_batch", [-1, 1001])
async def test_a_batch_size_out_of_range_is_refused(client: JourneysClient, max_batch: int) -> None:
    async def subscribe() -> None:
        async for _ in client.subscribe("hooks", "c", after=0, max_batch=max_batch):
            break

    with pytest.raises(InvalidArgumentError) as refused:
        await subscribe()
    assert [v.field for v in refused.value.field_violations] == ["max_batch"]
    assert "between 0 and 1,000" in str(refused.value)
