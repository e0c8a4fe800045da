"""What the client counts for a batch sent twice, and how ``journeys tail`` acknowledges
while the server restarts.

Over the wire, neither a lost ack nor an ack landing during a restart can be
timed, so these drive the pieces directly: the batch accounting with the
acknowledgement a real server gives a resent batch, and the tail's acknowledger
with a client whose first ack fails as a restarting server's does.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from journeys.v1 import ingest_pb2
from journeys_cli.tail import _Acker
from journeys_client import JourneysClientError, UnavailableError
from journeys_client.sending import SendReport, _batches, _count, send_messages


def test_a_resent_batch_counts_its_made_up_ids_as_accepted_not_duplicates() -> None:
    messages = [
        {"type": "track", "userId": "u1", "event": "A"},  # the client makes up its id
        {"type": "track", "userId": "u2", "event": "A", "messageId": "m2"},
    ]
    report = SendReport()
    (batch,) = _batches(messages, "default", 100, report)
    batch.sent = 2  # its first ack was lost: the server had logged both
    _count(batch, ingest_pb2.IngestResponse(accepted=0, duplicates=[0, 1]), report)
    # m2 may have been sent by someone else before: it stays a duplicate.
    assert (report.accepted, report.duplicates) == (1, 1)

    once = SendReport()
    (batch,) = _batches(messages, "default", 100, once)
    batch.sent = 1
    _count(batch, ingest_pb2.IngestResponse(accepted=0, duplicates=[0, 1]), once)
    assert (once.accepted, once.duplicates) == (0, 2)


def test_a_message_no_batch_can_carry_is_refused_by_index_and_the_rest_go() -> None:
    messages: list[dict[str, object]] = [
        {"type": "track", "userId": "u1", "event": "A"},
        {"type": "track", "userId": "u2", "event": "A", "properties": {"x": "y" * 600_000}},
        {"type": "track", "userId": "u3", "event": "A"},
    ]
    report = SendReport()
    batches = list(_batches(messages, "default", 100, report))
    assert [b.indexes for b in batches] == [[0, 2]]
    (problem,) = report.rejected
    assert problem.index == 1
    assert "too large to send" in str(problem)


class _Restarting:
    """Acknowledges like a server, except that its first ack finds it restarting."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.failed = False

    async def ack(self, destination: str, consumer: str, sequence: int) -> int:
        if not self.failed:
            self.failed = True
            raise UnavailableError(grpc.StatusCode.UNAVAILABLE, "the server is restarting")
        self.acked.append(sequence)
        return sequence


async def test_tail_keeps_acknowledging_after_an_ack_fails_during_a_restart() -> None:
    client = _Restarting()
    acker = _Acker(client, "hooks", "tail")  # type: ignore[arg-type]
    acker.printed(1)
    await asyncio.sleep(0.05)  # that ack fails
    for sequence in (2, 3, 4):
        acker.printed(sequence)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.6)  # the retry after the failure
    assert client.acked and client.acked[-1] == 4
    acker.printed(5)
    await acker.close()
    assert client.acked[-1] == 5


class _Stream:
    """An ``IngestStream`` call: acknowledges each batch, or breaks on its first write
    the way grpcio reports a connection lost under a write."""

    def __init__(self, broken: bool) -> None:
        self.broken = broken
        self.responses: list[ingest_pb2.IngestResponse] = []

    async def write(self, request: ingest_pb2.IngestRequest) -> None:
        if self.broken:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.INTERNAL,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details="Internal error from Core",
            )
        self.responses.append(ingest_pb2.IngestResponse(accepted=len(request.messages)))

    async def read(self) -> object:
        return self.responses.pop(0) if self.responses else grpc.aio.EOF

    async def done_writing(self) -> None:
        pass


class _Stub:
    def __init__(self) -> None:
        self.calls = 0

    def IngestStream(self) -> _Stream:
        self.calls += 1
        return _Stream(broken=self.calls == 1)


async def test_a_write_on_a_broken_connection_is_sent_again_not_raised() -> None:
    stub = _Stub()
    messages = [{"type": "track", "userId": f"u{i}", "event": "A"} for i in range(5)]
    report = await send_messages(
        stub,  # type: ignore[arg-type]
        messages,
        space_id="default",
        batch_size=2,
        window=1,
        retries=3,
    )
    assert stub.calls == 2  # the second connection carried everything
    assert (report.accepted, report.batches, report.duplicates) == (5, 3, 0)


async def test_another_internal_error_on_a_write_is_raised() -> None:
    class _Failing(_Stream):
        async def write(self, request: ingest_pb2.IngestRequest) -> None:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(), details="boom"
            )

    class _FailingStub:
        def IngestStream(self) -> _Stream:
            return _Failing(broken=False)

    with pytest.raises(JourneysClientError, match="boom"):
        await send_messages(
            _FailingStub(),  # type: ignore[arg-type]
            [{"type": "track", "userId": "u", "event": "A"}],
            space_id="default",
            batch_size=1,
            window=1,
            retries=3,
        )
