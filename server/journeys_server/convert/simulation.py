"""Simulations on the wire: ``SimulateJourneyRequest`` in, ``SimulateJourneyResponse`` out.

The journey, the messages, the stats and the destination calls go through the
converters CreateJourney, Ingest, GetJourneyStats and Subscribe use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from journeys.v1 import simulation_pb2

from journeys_engine.errors import FieldViolation
from journeys_engine.model import Journey
from journeys_engine.simulation import Advance, AdvanceTo, Receive, ScriptStep, Simulation
from journeys_engine.store.durable import OutboxRecord
from journeys_server.convert.common import Problems, duration_ms, timestamp_ms, timestamp_proto
from journeys_server.convert.journeys import journey_from_proto, journey_to_proto
from journeys_server.convert.messages import call_to_proto, message_problems, message_to_json
from journeys_server.convert.reporting import report_to_proto

__all__ = ["SimulationRequest", "simulation_from_proto", "simulation_to_proto"]

_STEP = re.compile(r"^steps\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class SimulationRequest:
    """A ``SimulateJourneyRequest`` in the engine's terms.

    Attributes:
        journey_id: The stored journey to simulate, or empty.
        journey: The journey given whole, or None.
        steps: The steps the wire form could decode, in order.
        positions: Where each of ``steps`` stood in the request.
        start_time: The publish instant, if given.
        end_time: Where the clock ends, if given.
    """

    journey_id: str
    journey: Journey | None
    steps: tuple[ScriptStep, ...]
    positions: tuple[int, ...]
    start_time: int | None
    end_time: int | None

    def as_sent(self, violations: Iterable[FieldViolation]) -> list[FieldViolation]:
        """The engine's violations with step indexes as the request numbered them."""

        def renumber(match: re.Match[str]) -> str:
            index = int(match.group(1))
            return f"steps[{self.positions[index] if index < len(self.positions) else index}]"

        return [
            FieldViolation(_STEP.sub(renumber, v.field, count=1), v.description) for v in violations
        ]


def simulation_from_proto(
    request: simulation_pb2.SimulateJourneyRequest, problems: Problems, *, max_message_bytes: int
) -> SimulationRequest:
    """The request in the engine's terms.

    What only the wire form can get wrong (a step of no kind, a duration finer than
    a millisecond, a message over the size limit, the journey's own wire problems)
    goes to ``problems``, and such a step is left out.
    """
    journey = None
    if request.WhichOneof("source") == "journey":
        journey = journey_from_proto(request.journey, problems)
    steps: list[ScriptStep] = []
    positions: list[int] = []
    for i, step in enumerate(request.steps):
        path = f"steps[{i}]"
        found = len(problems.found)
        decoded: ScriptStep | None = None
        match step.WhichOneof("kind"):
            case "message":
                size = step.message.ByteSize()
                if size > max_message_bytes:  # (as Ingest refuses it)
                    problems.report(
                        f"{path}.message",
                        f"is {size} bytes; a message is at most {max_message_bytes} bytes",
                    )
                elif wire := message_problems(step.message, f"{path}.message"):
                    problems.found.extend(wire)
                else:
                    decoded = Receive(message_to_json(step.message))
            case "advance":
                decoded = Advance(duration_ms(step.advance, f"{path}.advance", problems))
            case "advance_to":
                decoded = AdvanceTo(timestamp_ms(step.advance_to, f"{path}.advance_to", problems))
            case _:
                problems.report(path, "must hold a message, an advance or an advance_to")
        if decoded is not None and len(problems.found) == found:
            steps.append(decoded)
            positions.append(i)
    return SimulationRequest(
        journey_id=request.journey_id,
        journey=journey,
        steps=tuple(steps),
        positions=tuple(positions),
        start_time=(
            timestamp_ms(request.start_time, "start_time", problems)
            if request.HasField("start_time")
            else None
        ),
        end_time=(
            timestamp_ms(request.end_time, "end_time", problems)
            if request.HasField("end_time")
            else None
        ),
    )


def simulation_to_proto(simulation: Simulation) -> simulation_pb2.SimulateJourneyResponse:
    calls = []
    for call in simulation.calls:
        o = call.output
        record = OutboxRecord(
            call.sequence,
            o.message_id,
            o.payload,
            o.timestamp,
            o.journey_id,
            o.step_id,
            o.profile_key,
            o.run,
            o.change,
        )
        calls.append(call_to_proto(record))
    return simulation_pb2.SimulateJourneyResponse(
        journey=journey_to_proto(simulation.journey),
        counts=[
            simulation_pb2.SimulatedCounts(
                time=timestamp_proto(c.time), stats=report_to_proto(c.report)
            )
            for c in simulation.counts
        ],
        calls=calls,
        destination_ids=[call.destination_id for call in simulation.calls],
        end_time=timestamp_proto(simulation.end_time),
    )
