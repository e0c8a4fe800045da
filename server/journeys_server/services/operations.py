"""``journeys.v1.OperationService``: long-running work and its progress."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from journeys.v1 import operation_pb2 as pb
from journeys.v1 import operation_pb2_grpc

from journeys_engine import Engine
from journeys_engine.model.operation import Operation
from journeys_server.convert.operations import operation_to_proto
from journeys_server.errors import handle_errors, handle_stream_errors

__all__ = ["OperationServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


class OperationServicer(operation_pb2_grpc.OperationServiceServicer):
    """Operations over gRPC.

    Args:
        engine: The engine running them.
        closing: Set when the server stops: watches end at once (UNAVAILABLE),
            so that the stop is prompt; the caller watches again after a restart.
    """

    def __init__(self, engine: Engine, *, closing: asyncio.Event) -> None:
        self._engine = engine
        self._closing = closing

    @handle_errors
    async def GetOperation(
        self, request: pb.GetOperationRequest, context: Context
    ) -> pb.GetOperationResponse:
        await self._engine.spaces.get(request.space_id)
        operation = await self._engine.operations.get(request.space_id, request.operation_id)
        return pb.GetOperationResponse(operation=operation_to_proto(operation))

    @handle_stream_errors
    async def WatchOperation(
        self, request: pb.WatchOperationRequest, context: Context
    ) -> AsyncIterator[pb.Operation]:
        await self._engine.spaces.get(request.space_id)
        watch = self._engine.operations.watch(request.space_id, request.operation_id)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            while True:
                step: asyncio.Future[Operation] = asyncio.ensure_future(anext(watch))
                await asyncio.wait((step, closing), return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    step.cancel()
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE,
                        "the server is stopping; watch again once it is back "
                        "(the operation goes on after a restart)",
                    )
                try:
                    operation = step.result()
                except StopAsyncIteration:
                    return
                yield operation_to_proto(operation)
        finally:
            closing.cancel()
            with contextlib.suppress(Exception):
                await watch.aclose()

    @handle_errors
    async def ListOperations(
        self, request: pb.ListOperationsRequest, context: Context
    ) -> pb.ListOperationsResponse:
        await self._engine.spaces.get(request.space_id)
        page = await self._engine.operations.list(
            request.space_id, request.page_size, request.page_token
        )
        return pb.ListOperationsResponse(
            operations=[operation_to_proto(op) for op in page.items],
            next_page_token=page.next_page_token,
        )
