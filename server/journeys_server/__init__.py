"""The gRPC server of the journeys engine (``journeys.v1``)."""

from journeys_server.access import TokenAuthorizer
from journeys_server.app import SERVICE_NAMES, JourneysServer, ServerSettings, StartError, run
from journeys_server.interceptor import AllowAll, Authorizer, Grant, Refusal

__all__ = [
    "SERVICE_NAMES",
    "AllowAll",
    "Authorizer",
    "Grant",
    "JourneysServer",
    "Refusal",
    "ServerSettings",
    "StartError",
    "TokenAuthorizer",
    "run",
]
