"""One servicer per journeys.v1 service."""
