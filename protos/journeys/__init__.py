"""Generated Python code for the journeys protobuf API (see ``journeys.v1``)."""
