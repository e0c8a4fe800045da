"""``journeys.v1.DefinitionService``: audiences, computed traits, destinations."""

from __future__ import annotations

from typing import Any

import grpc
from journeys.v1 import definition_pb2 as pb
from journeys.v1 import definition_pb2_grpc

from journeys_engine import Engine
from journeys_engine.model import Audience, ComputedTrait, DefinitionKind, Destination
from journeys_server.convert import (
    Problems,
    audience_from_proto,
    audience_to_proto,
    computed_trait_from_proto,
    computed_trait_to_proto,
    condition_from_proto,
    condition_to_proto,
    destination_from_proto,
    destination_to_proto,
    expression_from_proto,
    expression_to_proto,
)
from journeys_server.errors import handle_errors
from journeys_server.services.requests import checked_write

__all__ = ["DefinitionServicer"]

Context = grpc.aio.ServicerContext[Any, Any]
_AUDIENCE, _TRAIT, _DESTINATION = (
    DefinitionKind.AUDIENCE,
    DefinitionKind.COMPUTED_TRAIT,
    DefinitionKind.DESTINATION,
)


class DefinitionServicer(definition_pb2_grpc.DefinitionServiceServicer):
    """Definitions over gRPC."""

    def __init__(self, engine: Engine) -> None:
        self._defs = engine.definitions

    # Audiences

    @handle_errors
    async def CreateAudience(
        self, request: pb.CreateAudienceRequest, context: Context
    ) -> pb.CreateAudienceResponse:
        problems = Problems()
        given = audience_from_proto(request.audience, problems)
        created = await checked_write(
            problems,
            lambda dry: self._defs.create(request.space_id, given, validate_only=dry),
            validate_only=request.validate_only,
        )
        assert isinstance(created, Audience)
        return pb.CreateAudienceResponse(audience=audience_to_proto(created))

    @handle_errors
    async def GetAudience(
        self, request: pb.GetAudienceRequest, context: Context
    ) -> pb.GetAudienceResponse:
        found = await self._defs.get(request.space_id, _AUDIENCE, request.audience_id)
        assert isinstance(found, Audience)
        return pb.GetAudienceResponse(audience=audience_to_proto(found))

    @handle_errors
    async def ListAudiences(
        self, request: pb.ListAudiencesRequest, context: Context
    ) -> pb.ListAudiencesResponse:
        page = await self._defs.list(
            request.space_id, _AUDIENCE, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListAudiencesResponse(
            audiences=[audience_to_proto(a) for a in page.items if isinstance(a, Audience)],
            next_page_token=page.next_page_token,
        )

    @handle_errors
    async def UpdateAudience(
        self, request: pb.UpdateAudienceRequest, context: Context
    ) -> pb.UpdateAudienceResponse:
        problems = Problems()
        given = audience_from_proto(request.audience, problems)
        updated = await checked_write(
            problems,
            lambda dry: self._defs.update(
                request.space_id,
                given,
                update_mask=tuple(request.update_mask.paths),
                validate_only=dry,
            ),
            validate_only=request.validate_only,
        )
        assert isinstance(updated, Audience)
        return pb.UpdateAudienceResponse(audience=audience_to_proto(updated))

    @handle_errors
    async def DeleteAudience(
        self, request: pb.DeleteAudienceRequest, context: Context
    ) -> pb.DeleteAudienceResponse:
        await self._defs.delete(request.space_id, _AUDIENCE, request.audience_id)
        return pb.DeleteAudienceResponse()

    # Computed traits

    @handle_errors
    async def CreateComputedTrait(
        self, request: pb.CreateComputedTraitRequest, context: Context
    ) -> pb.CreateComputedTraitResponse:
        problems = Problems()
        given = computed_trait_from_proto(request.computed_trait, problems)
        created = await checked_write(
            problems,
            lambda dry: self._defs.create(request.space_id, given, validate_only=dry),
            validate_only=request.validate_only,
        )
        assert isinstance(created, ComputedTrait)
        return pb.CreateComputedTraitResponse(computed_trait=computed_trait_to_proto(created))

    @handle_errors
    async def GetComputedTrait(
        self, request: pb.GetComputedTraitRequest, context: Context
    ) -> pb.GetComputedTraitResponse:
        found = await self._defs.get(request.space_id, _TRAIT, request.computed_trait_id)
        assert isinstance(found, ComputedTrait)
        return pb.GetComputedTraitResponse(computed_trait=computed_trait_to_proto(found))

    @handle_errors
    async def ListComputedTraits(
        self, request: pb.ListComputedTraitsRequest, context: Context
    ) -> pb.ListComputedTraitsResponse:
        page = await self._defs.list(
            request.space_id, _TRAIT, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListComputedTraitsResponse(
            computed_traits=[
                computed_trait_to_proto(t) for t in page.items if isinstance(t, ComputedTrait)
            ],
            next_page_token=page.next_page_token,
        )

    @handle_errors
    async def UpdateComputedTrait(
        self, request: pb.UpdateComputedTraitRequest, context: Context
    ) -> pb.UpdateComputedTraitResponse:
        problems = Problems()
        given = computed_trait_from_proto(request.computed_trait, problems)
        updated = await checked_write(
            problems,
            lambda dry: self._defs.update(
                request.space_id,
                given,
                update_mask=tuple(request.update_mask.paths),
                validate_only=dry,
            ),
            validate_only=request.validate_only,
        )
        assert isinstance(updated, ComputedTrait)
        return pb.UpdateComputedTraitResponse(computed_trait=computed_trait_to_proto(updated))

    @handle_errors
    async def DeleteComputedTrait(
        self, request: pb.DeleteComputedTraitRequest, context: Context
    ) -> pb.DeleteComputedTraitResponse:
        await self._defs.delete(request.space_id, _TRAIT, request.computed_trait_id)
        return pb.DeleteComputedTraitResponse()

    # Destinations

    @handle_errors
    async def CreateDestination(
        self, request: pb.CreateDestinationRequest, context: Context
    ) -> pb.CreateDestinationResponse:
        problems = Problems()
        given = destination_from_proto(request.destination, problems)
        created = await checked_write(
            problems,
            lambda dry: self._defs.create(request.space_id, given, validate_only=dry),
            validate_only=request.validate_only,
        )
        assert isinstance(created, Destination)
        return pb.CreateDestinationResponse(destination=destination_to_proto(created))

    @handle_errors
    async def GetDestination(
        self, request: pb.GetDestinationRequest, context: Context
    ) -> pb.GetDestinationResponse:
        found = await self._defs.get(request.space_id, _DESTINATION, request.destination_id)
        assert isinstance(found, Destination)
        return pb.GetDestinationResponse(destination=destination_to_proto(found))

    @handle_errors
    async def ListDestinations(
        self, request: pb.ListDestinationsRequest, context: Context
    ) -> pb.ListDestinationsResponse:
        page = await self._defs.list(
            request.space_id,
            _DESTINATION,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListDestinationsResponse(
            destinations=[
                destination_to_proto(d) for d in page.items if isinstance(d, Destination)
            ],
            next_page_token=page.next_page_token,
        )

    @handle_errors
    async def UpdateDestination(
        self, request: pb.UpdateDestinationRequest, context: Context
    ) -> pb.UpdateDestinationResponse:
        problems = Problems()
        given = destination_from_proto(request.destination, problems)
        updated = await checked_write(
            problems,
            lambda dry: self._defs.update(
                request.space_id,
                given,
                update_mask=tuple(request.update_mask.paths),
                validate_only=dry,
            ),
            validate_only=request.validate_only,
        )
        assert isinstance(updated, Destination)
        return pb.UpdateDestinationResponse(destination=destination_to_proto(updated))

    @handle_errors
    async def DeleteDestination(
        self, request: pb.DeleteDestinationRequest, context: Context
    ) -> pb.DeleteDestinationResponse:
        await self._defs.delete(request.space_id, _DESTINATION, request.destination_id)
        return pb.DeleteDestinationResponse()

    # Conditions

    @handle_errors
    async def CheckCondition(
        self, request: pb.CheckConditionRequest, context: Context
    ) -> pb.CheckConditionResponse:
        problems = Problems()
        if request.kind == pb.CONDITION_KIND_COMPUTED_TRAIT:
            expression = expression_from_proto(request.condition, "condition", problems)
            checked = await checked_write(
                problems,
                lambda _: self._defs.check_condition(request.space_id, expression, expression=True),
                validate_only=True,
            )
            return pb.CheckConditionResponse(condition=expression_to_proto(checked))
        if request.kind != pb.CONDITION_KIND_UNSPECIFIED:
            problems.report("kind", f"{request.kind} is not a condition kind")
        condition = condition_from_proto(request.condition, "condition", problems)
        checked = await checked_write(
            problems,
            lambda _: self._defs.check_condition(request.space_id, condition),
            validate_only=True,
        )
        return pb.CheckConditionResponse(condition=condition_to_proto(checked))
