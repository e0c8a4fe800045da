"""The gRPC server of the journeys engine (``journeys.v1``)."""

from journeys_server.app import SERVICE_NAMES, JourneysServer, ServerSettings, run
from journeys_server.interceptor import AllowAll, Authorizer, Refusal

__all__ = [
    "SERVICE_NAMES",
    "AllowAll",
    "Authorizer",
    "JourneysServer",
    "Refusal",
    "ServerSettings",
    "run",
]
