"""``journeys.v1.SpaceService``."""

from __future__ import annotations

from typing import Any

import grpc
from journeys.v1 import space_pb2, space_pb2_grpc

from journeys_engine import Engine
from journeys_engine.access import ALL_SPACES
from journeys_server.access import CURRENT_TOKEN
from journeys_server.convert import space_to_proto
from journeys_server.errors import handle_errors

__all__ = ["SpaceServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


class SpaceServicer(space_pb2_grpc.SpaceServiceServicer):
    """Spaces over gRPC."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @handle_errors
    async def CreateSpace(
        self, request: space_pb2.CreateSpaceRequest, context: Context
    ) -> space_pb2.CreateSpaceResponse:
        space = await self._engine.spaces.create(request.space.id, request.space.display_name)
        return space_pb2.CreateSpaceResponse(space=space_to_proto(space))

    @handle_errors
    async def GetSpace(
        self, request: space_pb2.GetSpaceRequest, context: Context
    ) -> space_pb2.GetSpaceResponse:
        space = await self._engine.spaces.get(request.space_id)
        return space_pb2.GetSpaceResponse(space=space_to_proto(space))

    @handle_errors
    async def ListSpaces(
        self, request: space_pb2.ListSpacesRequest, context: Context
    ) -> space_pb2.ListSpacesResponse:
        token = CURRENT_TOKEN.get()
        if token is not None and token.space_id != ALL_SPACES:
            # A token of one space sees that space alone (whether others exist is not its business).
            space = await self._engine.spaces.get(token.space_id)
            return space_pb2.ListSpacesResponse(spaces=[space_to_proto(space)])
        page = await self._engine.spaces.list(
            page_size=request.page_size, page_token=request.page_token
        )
        return space_pb2.ListSpacesResponse(
            spaces=[space_to_proto(s) for s in page.items], next_page_token=page.next_page_token
        )
