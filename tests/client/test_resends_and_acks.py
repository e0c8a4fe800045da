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
from journeys.v1 import ingest_pb2
from journeys_cli.tail import _Acker
from journeys_client import UnavailableError
from journeys_client.sending import SendReport, _batches, _count


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
