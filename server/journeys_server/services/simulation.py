"""``journeys.v1.SimulationService``: what a journey would do, tried out in memory."""

from __future__ import annotations

from typing import Any

import grpc
from journeys.v1 import simulation_pb2, simulation_pb2_grpc

from journeys_engine import Engine, InvalidArgumentError
from journeys_engine.simulation import Simulation, simulate_journey
from journeys_server.convert import Problems
from journeys_server.convert.simulation import simulation_from_proto, simulation_to_proto
from journeys_server.errors import handle_read_errors
from journeys_server.services.requests import checked_write

__all__ = ["SimulationServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


class SimulationServicer(simulation_pb2_grpc.SimulationServiceServicer):
    """Simulations over gRPC: each runs an engine of its own, in memory; the
    server's engine is only read (the space's definitions, a stored journey)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @handle_read_errors
    async def SimulateJourney(
        self, request: simulation_pb2.SimulateJourneyRequest, context: Context
    ) -> simulation_pb2.SimulateJourneyResponse:
        problems = Problems()
        decoded = simulation_from_proto(
            request, problems, max_message_bytes=self._engine.settings.limits.max_message_bytes
        )

        async def simulate(validate_only: bool) -> Simulation:
            try:
                return await simulate_journey(
                    self._engine,
                    request.space_id,
                    journey_id=decoded.journey_id,
                    journey=decoded.journey,
                    steps=decoded.steps,
                    start_time=decoded.start_time,
                    end_time=decoded.end_time,
                    validate_only=validate_only,
                )
            except InvalidArgumentError as err:
                raise InvalidArgumentError(decoded.as_sent(err.violations)) from err

        # While decoding found problems the engine only checks, so that the request
        # is refused as a whole, every problem named.
        simulation = await checked_write(problems, simulate, validate_only=False)
        return simulation_to_proto(simulation)
