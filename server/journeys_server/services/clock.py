"""``journeys.v1.ClockService``: read, set and advance the (manual) clock."""

from __future__ import annotations

from typing import Any

import grpc
from journeys.v1 import clock_pb2, clock_pb2_grpc

from journeys_engine import Engine, InvalidArgumentError
from journeys_server.convert.common import Problems, duration_ms, timestamp_ms, timestamp_proto
from journeys_server.errors import handle_errors

__all__ = ["ClockServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


class ClockServicer(clock_pb2_grpc.ClockServiceServicer):
    """The clock over gRPC."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _now(self) -> Any:
        return timestamp_proto(self._engine.manual_now())

    @handle_errors
    async def GetTime(
        self, request: clock_pb2.GetTimeRequest, context: Context
    ) -> clock_pb2.GetTimeResponse:
        return clock_pb2.GetTimeResponse(now=self._now())

    @handle_errors
    async def AdvanceTime(
        self, request: clock_pb2.AdvanceTimeRequest, context: Context
    ) -> clock_pb2.AdvanceTimeResponse:
        if not request.HasField("by"):
            raise InvalidArgumentError.single("by", "is required")
        problems = Problems()
        ms = duration_ms(request.by, "by", problems)
        problems.raise_any()
        await self._engine.advance(ms)
        return clock_pb2.AdvanceTimeResponse(now=self._now())

    @handle_errors
    async def SetTime(
        self, request: clock_pb2.SetTimeRequest, context: Context
    ) -> clock_pb2.SetTimeResponse:
        if not request.HasField("time"):
            raise InvalidArgumentError.single("time", "is required")
        problems = Problems()
        ms = timestamp_ms(request.time, "time", problems)
        problems.raise_any()
        await self._engine.advance_to(ms)
        return clock_pb2.SetTimeResponse(now=self._now())
