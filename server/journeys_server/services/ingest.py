"""``journeys.v1.IngestService``: batches of Segment messages, acknowledged once logged.

Overload: a bounded number of messages is taken in at once
(:mod:`journeys_server.admission`). A stream's next batch waits for its turn, so
gRPC flow control holds a fast sender back; a unary call waits too while few others
do, and beyond that is refused with ``RESOURCE_EXHAUSTED`` and a retry delay.
Either way the memory held by ingestion stays bounded, however much is sent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from journeys.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc

from journeys_engine import Engine, FieldViolation, InvalidArgumentError
from journeys_server.admission import Admission
from journeys_server.convert.messages import message_problems, message_to_json
from journeys_server.errors import handle_errors, handle_stream_errors
from journeys_server.metrics import ServerMetrics

__all__ = ["IngestServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Ingestion over gRPC, unary and streamed.

    Args:
        engine: The engine.
        max_messages: Messages taken in at once (see :class:`Admission`).
        max_waiting: Messages of unary calls that may wait for a turn; a call
            that would take the line past it is refused.

    Attributes:
        metrics: Where each acknowledged batch is counted (None: nowhere).
    """

    def __init__(
        self, engine: Engine, *, max_messages: int = 5_000, max_waiting: int = 10_000
    ) -> None:
        self._engine = engine
        self.admission = Admission(max_messages, max_waiting)
        self.metrics: ServerMetrics | None = None

    def _acked(self, response: ingest_pb2.IngestResponse, messages: int, received: float) -> None:
        """Counts a batch acknowledged now, received at ``received`` (perf counter)."""
        if self.metrics is not None:
            refused = len(response.errors)
            duplicates = len(response.duplicates)
            self.metrics.ingested(
                messages,
                messages - refused - duplicates,
                duplicates,
                refused,
                time.perf_counter() - received,
            )

    def _check_size(self, request: ingest_pb2.IngestRequest) -> None:
        """Refuses a batch over the limits before it waits for a turn."""
        limits = self._engine.settings.limits
        count = len(request.messages)
        if count > limits.max_batch_messages:
            raise InvalidArgumentError.single(
                "messages", f"holds {count} messages; at most {limits.max_batch_messages} per batch"
            )
        size = request.ByteSize()
        if size > limits.max_batch_bytes:
            raise InvalidArgumentError.single(
                "messages", f"is {size} bytes; a batch is at most {limits.max_batch_bytes} bytes"
            )

    async def _ingest(self, request: ingest_pb2.IngestRequest) -> ingest_pb2.IngestResponse:
        limits = self._engine.settings.limits
        errors: dict[int, tuple[FieldViolation, ...]] = {}
        sendable: list[dict[str, Any]] = []
        indexes: list[int] = []
        for i, message in enumerate(request.messages):
            message_size = message.ByteSize()
            if message_size > limits.max_message_bytes:
                errors[i] = (
                    FieldViolation(
                        f"messages[{i}]",
                        f"is {message_size} bytes; a message is at most "
                        f"{limits.max_message_bytes} bytes",
                    ),
                )
                continue
            problems = message_problems(message, f"messages[{i}]")
            if problems:
                errors[i] = tuple(problems)
                continue
            sendable.append(message_to_json(message))
            indexes.append(i)
        result = await self._engine.ingest(request.space_id, sendable)
        response = ingest_pb2.IngestResponse(batch_id=request.batch_id, accepted=result.accepted)
        for local, index in enumerate(indexes):
            if local in result.errors:
                errors[index] = tuple(
                    FieldViolation(
                        v.field.replace(f"messages[{local}]", f"messages[{index}]", 1),
                        v.description,
                    )
                    for v in result.errors[local]
                )
            position = result.positions[local]
            if position is not None:
                response.positions.append(position)
        response.duplicates.extend(indexes[local] for local in result.duplicates)
        for index in sorted(errors):
            response.errors.append(
                ingest_pb2.MessageError(
                    index=index,
                    problems=[
                        common_pb2.Warning(field=v.field, message=v.description)
                        for v in errors[index]
                    ],
                )
            )
        return response

    @handle_errors
    async def Ingest(
        self, request: ingest_pb2.IngestRequest, context: Context
    ) -> ingest_pb2.IngestResponse:
        received = time.perf_counter()
        self._check_size(request)
        async with self.admission.turn(len(request.messages), caller=context.peer(), unary=True):
            response = await self._ingest(request)
        self._acked(response, len(request.messages), received)
        return response

    @handle_stream_errors
    async def IngestStream(
        self, request_iterator: AsyncIterator[ingest_pb2.IngestRequest], context: Context
    ) -> AsyncIterator[ingest_pb2.IngestResponse]:
        # One batch at a time: the next is read only once this one has had its turn
        # and is logged and queued, so gRPC flow control holds a fast sender back.
        caller = context.peer()
        async for request in request_iterator:
            received = time.perf_counter()
            self._check_size(request)
            async with self.admission.turn(len(request.messages), caller=caller, unary=False):
                response = await self._ingest(request)
            self._acked(response, len(request.messages), received)
            yield response
