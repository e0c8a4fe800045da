"""Loading the example journey files into an engine, as apply would."""

from __future__ import annotations

from pathlib import Path

from journeys.v1 import definition_pb2, journey_pb2
from journeys_client.files import KINDS, kind_of, load_file
from journeys_server.convert import (
    Problems,
    audience_from_proto,
    computed_trait_from_proto,
    destination_from_proto,
    journey_from_proto,
)

from journeys_engine import AlreadyExistsError, Engine
from tests.helpers.builders import EXAMPLES


async def load_example(engine: Engine, name: str, *, space: str = "default") -> None:
    """Creates the definitions and the journey of ``examples/<name>.yaml``."""
    docs = sorted(load_file(Path(EXAMPLES) / f"{name}.yaml"), key=lambda d: KINDS.index(kind_of(d)))
    for doc in docs:
        problems = Problems()
        try:
            match doc:
                case definition_pb2.Destination():
                    await engine.definitions.create(space, destination_from_proto(doc, problems))
                case definition_pb2.Audience():
                    await engine.definitions.create(space, audience_from_proto(doc, problems))
                case definition_pb2.ComputedTrait():
                    await engine.definitions.create(space, computed_trait_from_proto(doc, problems))
                case journey_pb2.Journey():
                    await engine.journeys.create(space, journey_from_proto(doc, problems))
        except AlreadyExistsError:
            pass  # a destination several examples share
        problems.raise_any()
