"""``journeys.v1.PrivacyService``: profile deletion and suppressions."""

from __future__ import annotations

from typing import Any

import grpc
from journeys.v1 import privacy_pb2 as pb
from journeys.v1 import privacy_pb2_grpc

from journeys_engine import Engine
from journeys_server.convert.common import timestamp_proto
from journeys_server.errors import handle_errors

__all__ = ["PrivacyServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


class PrivacyServicer(privacy_pb2_grpc.PrivacyServiceServicer):
    """Profile deletion and suppressions over gRPC."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @handle_errors
    async def DeleteProfile(
        self, request: pb.DeleteProfileRequest, context: Context
    ) -> pb.DeleteProfileResponse:
        done = await self._engine.delete_profile(
            request.space_id,
            user_id=request.user_id,
            anonymous_id=request.anonymous_id,
            suppress=request.suppress,
        )
        return pb.DeleteProfileResponse(
            deleted=done.deleted,
            profiles_deleted=done.profiles,
            runs_ended=done.runs_ended,
            memberships_removed=done.memberships_removed,
            suppression_expire_time=timestamp_proto(done.suppressed_until),
            identifiers_suppressed=done.suppressed,
        )

    @handle_errors
    async def GetSuppression(
        self, request: pb.GetSuppressionRequest, context: Context
    ) -> pb.GetSuppressionResponse:
        found = await self._engine.get_suppression(
            request.space_id, user_id=request.user_id, anonymous_id=request.anonymous_id
        )
        return pb.GetSuppressionResponse(
            suppressed=found.suppressed, expire_time=timestamp_proto(found.until)
        )

    @handle_errors
    async def DeleteSuppression(
        self, request: pb.DeleteSuppressionRequest, context: Context
    ) -> pb.DeleteSuppressionResponse:
        existed = await self._engine.delete_suppression(
            request.space_id, user_id=request.user_id, anonymous_id=request.anonymous_id
        )
        return pb.DeleteSuppressionResponse(existed=existed)
