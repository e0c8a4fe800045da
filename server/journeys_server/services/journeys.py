"""``journeys.v1.JourneyService``."""

from __future__ import annotations

from typing import Any

import grpc
from journeys.v1 import journey_pb2, journey_pb2_grpc

from journeys_engine import Engine, Move
from journeys_server.convert import (
    Problems,
    journey_from_proto,
    journey_to_proto,
    status_from_proto,
    warnings_to_proto,
)
from journeys_server.convert.operations import preview_to_proto
from journeys_server.errors import handle_errors
from journeys_server.services.requests import checked_write

__all__ = ["JourneyServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


class JourneyServicer(journey_pb2_grpc.JourneyServiceServicer):
    """Journeys and their lifecycle over gRPC."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @handle_errors
    async def CreateJourney(
        self, request: journey_pb2.CreateJourneyRequest, context: Context
    ) -> journey_pb2.CreateJourneyResponse:
        problems = Problems()
        journey = journey_from_proto(request.journey, problems)
        saved = await checked_write(
            problems,
            lambda dry: self._engine.journeys.create(
                request.space_id, journey, journey_id=request.journey_id, validate_only=dry
            ),
            validate_only=request.validate_only,
        )
        return journey_pb2.CreateJourneyResponse(
            journey=journey_to_proto(saved.journey), warnings=warnings_to_proto(saved.warnings)
        )

    @handle_errors
    async def GetJourney(
        self, request: journey_pb2.GetJourneyRequest, context: Context
    ) -> journey_pb2.GetJourneyResponse:
        journey = await self._engine.journeys.get(request.space_id, request.journey_id)
        return journey_pb2.GetJourneyResponse(journey=journey_to_proto(journey))

    @handle_errors
    async def ListJourneys(
        self, request: journey_pb2.ListJourneysRequest, context: Context
    ) -> journey_pb2.ListJourneysResponse:
        await self._engine.spaces.get(request.space_id)
        page = await self._engine.journeys.list(
            request.space_id,
            status=status_from_proto(request.status, "status"),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return journey_pb2.ListJourneysResponse(
            journeys=[journey_to_proto(j) for j in page.items],
            next_page_token=page.next_page_token,
        )

    @handle_errors
    async def UpdateJourney(
        self, request: journey_pb2.UpdateJourneyRequest, context: Context
    ) -> journey_pb2.UpdateJourneyResponse:
        problems = Problems()
        journey = journey_from_proto(request.journey, problems)
        saved = await checked_write(
            problems,
            lambda dry: self._engine.journeys.update(
                request.space_id,
                journey,
                update_mask=tuple(request.update_mask.paths),
                validate_only=dry,
            ),
            validate_only=request.validate_only,
        )
        return journey_pb2.UpdateJourneyResponse(
            journey=journey_to_proto(saved.journey), warnings=warnings_to_proto(saved.warnings)
        )

    @handle_errors
    async def DeleteJourney(
        self, request: journey_pb2.DeleteJourneyRequest, context: Context
    ) -> journey_pb2.DeleteJourneyResponse:
        await self._engine.journeys.delete(request.space_id, request.journey_id)
        return journey_pb2.DeleteJourneyResponse()

    @handle_errors
    async def PublishJourney(
        self, request: journey_pb2.PublishJourneyRequest, context: Context
    ) -> journey_pb2.PublishJourneyResponse:
        journey, operation = await self._engine.publish_journey(
            request.space_id, request.journey_id
        )
        return journey_pb2.PublishJourneyResponse(
            journey=journey_to_proto(journey),
            operation_id="" if operation is None else operation.id,
        )

    @handle_errors
    async def PauseJourney(
        self, request: journey_pb2.PauseJourneyRequest, context: Context
    ) -> journey_pb2.PauseJourneyResponse:
        journey = await self._engine.journeys.move(request.space_id, request.journey_id, Move.PAUSE)
        return journey_pb2.PauseJourneyResponse(journey=journey_to_proto(journey))

    @handle_errors
    async def ResumeJourney(
        self, request: journey_pb2.ResumeJourneyRequest, context: Context
    ) -> journey_pb2.ResumeJourneyResponse:
        journey = await self._engine.journeys.move(
            request.space_id, request.journey_id, Move.RESUME
        )
        return journey_pb2.ResumeJourneyResponse(journey=journey_to_proto(journey))

    @handle_errors
    async def ArchiveJourney(
        self, request: journey_pb2.ArchiveJourneyRequest, context: Context
    ) -> journey_pb2.ArchiveJourneyResponse:
        journey = await self._engine.journeys.move(
            request.space_id, request.journey_id, Move.ARCHIVE
        )
        return journey_pb2.ArchiveJourneyResponse(journey=journey_to_proto(journey))

    @handle_errors
    async def CloneJourney(
        self, request: journey_pb2.CloneJourneyRequest, context: Context
    ) -> journey_pb2.CloneJourneyResponse:
        journey = await self._engine.journeys.clone(
            request.space_id, request.journey_id, new_journey_id=request.new_journey_id
        )
        return journey_pb2.CloneJourneyResponse(journey=journey_to_proto(journey))

    @handle_errors
    async def PreviewEntry(
        self, request: journey_pb2.PreviewEntryRequest, context: Context
    ) -> journey_pb2.PreviewEntryResponse:
        preview = await self._engine.preview_entry(
            request.space_id, request.journey_id, request.limit
        )
        return preview_to_proto(preview)
