"""Streaming messages to ``IngestStream``: batching, a window of batches in
flight, and sending again what was not acknowledged when the connection drops."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
from journeys.v1 import ingest_pb2, ingest_pb2_grpc

from journeys_client.errors import FieldViolation, from_rpc_error
from journeys_client.messages import segment_message

__all__ = ["MessageProblem", "SendReport", "send_messages"]

# The server's default limits (SPEC §10); a batch is cut before either is reached.
MAX_BATCH_MESSAGES = 2500
MAX_BATCH_BYTES = 500 * 1024
_FRAMING = 16  # bytes of field tag and length around each message in a batch
_BROKEN_WRITE = "Internal error from Core"  # grpcio: a write on a connection that broke


@dataclass(frozen=True, slots=True)
class MessageProblem:
    """A message the server refused: its index in the whole input, and why."""

    index: int
    problems: tuple[FieldViolation, ...]

    def __str__(self) -> str:
        return "; ".join(f"{p.field}: {p.description}" for p in self.problems)


@dataclass(slots=True)
class SendReport:
    """What became of a whole send: batches acknowledged, messages accepted and
    duplicates, and the refused ones (by the server, or too large for any batch)."""

    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[MessageProblem] = field(default_factory=list)


@dataclass(slots=True)
class _Batch:
    indexes: list[int]  # of its messages in the whole input
    request: ingest_pb2.IngestRequest
    generated: set[int] = field(default_factory=set)  # positions whose id the client made
    sent: int = 0  # times written to a stream


def _batches(
    messages: Iterable[Mapping[str, Any]], space_id: str, batch_size: int, report: SendReport
) -> Iterator[_Batch]:
    size = min(batch_size, MAX_BATCH_MESSAGES)
    current = _Batch([], ingest_pb2.IngestRequest(space_id=space_id))
    count = 0
    for index, raw in enumerate(messages):
        message = segment_message(raw)
        grows = message.ByteSize() + _FRAMING
        if grows > MAX_BATCH_BYTES:  # no batch can carry it: refused here, the rest go on
            problem = FieldViolation("", f"is {grows - _FRAMING} bytes; too large to send")
            report.rejected.append(MessageProblem(index, (problem,)))
            continue
        pending = current.request
        if pending.messages and (
            len(pending.messages) >= size or pending.ByteSize() + grows > MAX_BATCH_BYTES
        ):
            yield current
            count += 1
            current = _Batch([], ingest_pb2.IngestRequest(space_id=space_id))
        if not current.indexes:
            current.request.batch_id = str(count)
        if not raw.get("messageId"):
            current.generated.add(len(current.indexes))
        current.indexes.append(index)
        current.request.messages.append(message)
    if current.indexes:
        yield current


async def send_messages(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub,
    messages: Iterable[Mapping[str, Any]],
    *,
    space_id: str,
    batch_size: int,
    window: int,
    retries: int,
) -> SendReport:
    """Streams ``messages`` (read lazily) and totals the acks (see ``JourneysClient.send``)."""
    if batch_size < 1 or window < 1:
        raise ValueError("batch_size and window must be at least 1")
    report = SendReport()
    source = _batches(messages, space_id, batch_size, report)
    unacked: deque[_Batch] = deque()
    attempt = 0
    while True:
        progress = report.batches
        try:
            await _stream(stub, source, unacked, window, report)
            report.rejected.sort(key=lambda problem: problem.index)
            return report
        except grpc.aio.AioRpcError as err:
            if err.code() is not grpc.StatusCode.UNAVAILABLE:
                raise from_rpc_error(err) from None
            attempt = 0 if report.batches > progress else attempt
            if attempt >= retries:
                raise from_rpc_error(err) from None
            attempt += 1
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))


async def _stream(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub,
    source: Iterator[_Batch],
    unacked: deque[_Batch],
    window: int,
    report: SendReport,
) -> None:
    call = stub.IngestStream()
    written = 0  # of the unacked batches, how many went out on this call

    async def read_one() -> None:
        nonlocal written
        response = await call.read()
        if response is grpc.aio.EOF:
            # (A stream that ended with an error status raised it in read.)
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details="the server ended the ingest stream before acknowledging every batch",
            )
        _count(unacked.popleft(), cast(ingest_pb2.IngestResponse, response), report)
        written -= 1

    while written < len(unacked):  # what an earlier connection left unacknowledged
        unacked[written].sent += 1
        await _write(call, unacked[written].request)
        written += 1
        if written >= window:
            await read_one()
    for batch in source:
        unacked.append(batch)
        batch.sent += 1
        await _write(call, batch.request)
        written += 1
        if written >= window:
            await read_one()
    await call.done_writing()
    while unacked:
        await read_one()


async def _write(call: Any, request: ingest_pb2.IngestRequest) -> None:
    """Writes one batch. A write on a connection that broke before the server's
    status arrived (the server was killed, say) is reported by grpcio as
    ``INTERNAL`` "Internal error from Core"; it is the connection's loss, so it is
    raised as ``UNAVAILABLE``, which the caller resends after."""
    try:
        await call.write(request)
    except grpc.aio.AioRpcError as err:
        if err.code() is grpc.StatusCode.INTERNAL and err.details() == _BROKEN_WRITE:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details="the connection broke while a batch was being written",
            ) from err
        raise


def _count(batch: _Batch, response: ingest_pb2.IngestResponse, report: SendReport) -> None:
    report.batches += 1
    # A batch sent again after its ack was lost: an id this client made up can only be
    # a duplicate of the first attempt, which the server accepted.
    resent = {i for i in response.duplicates if batch.sent > 1 and i in batch.generated}
    report.accepted += response.accepted + len(resent)
    report.duplicates += len(response.duplicates) - len(resent)
    for error in response.errors:
        problems = tuple(FieldViolation(p.field, p.message) for p in error.problems)
        report.rejected.append(MessageProblem(batch.indexes[error.index], problems))
