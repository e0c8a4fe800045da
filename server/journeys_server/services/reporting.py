"""``journeys.v1.ReportingService``: counts, users at a step, profiles, timelines."""

from __future__ import annotations

from typing import Any

import grpc
from journeys.v1 import reporting_pb2 as pb
from journeys.v1 import reporting_pb2_grpc

from journeys_engine import Engine
from journeys_server.convert.reporting import (
    member_to_proto,
    profile_to_proto,
    report_to_proto,
    timeline_entry_to_proto,
)
from journeys_server.errors import handle_errors

__all__ = ["ReportingServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


class ReportingServicer(reporting_pb2_grpc.ReportingServiceServicer):
    """Reporting over gRPC."""

    def __init__(self, engine: Engine) -> None:
        self._reporting = engine.reporting

    @handle_errors
    async def GetJourneyStats(
        self, request: pb.GetJourneyStatsRequest, context: Context
    ) -> pb.GetJourneyStatsResponse:
        report = await self._reporting.journey(request.space_id, request.journey_id)
        return pb.GetJourneyStatsResponse(stats=report_to_proto(report))

    @handle_errors
    async def ListStepUsers(
        self, request: pb.ListStepUsersRequest, context: Context
    ) -> pb.ListStepUsersResponse:
        page = await self._reporting.step_users(
            request.space_id,
            request.journey_id,
            request.step_id,
            waiting=request.waiting_only,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListStepUsersResponse(
            users=[member_to_proto(m) for m in page.items], next_page_token=page.next_page_token
        )

    @handle_errors
    async def GetProfile(
        self, request: pb.GetProfileRequest, context: Context
    ) -> pb.GetProfileResponse:
        view = await self._reporting.profile(
            request.space_id, user_id=request.user_id, anonymous_id=request.anonymous_id
        )
        return pb.GetProfileResponse(profile=profile_to_proto(view))

    @handle_errors
    async def ListTimeline(
        self, request: pb.ListTimelineRequest, context: Context
    ) -> pb.ListTimelineResponse:
        page = await self._reporting.timeline(
            request.space_id,
            user_id=request.user_id,
            anonymous_id=request.anonymous_id,
            journey_id=request.journey_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListTimelineResponse(
            entries=[timeline_entry_to_proto(e) for e in page.items],
            next_page_token=page.next_page_token,
        )
