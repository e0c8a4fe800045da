"""Python client for the journeys engine's gRPC API (``journeys.v1``)."""

from journeys_client.client import DEFAULT_SERVER, DEFAULT_SPACE, JourneysClient
from journeys_client.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    JourneysClientError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionViolation,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from journeys_client.files import FileFormatError, dump_documents, load_file, parse_documents
from journeys_client.ingester import Ingester
from journeys_client.messages import segment_message
from journeys_client.sending import MessageProblem, SendReport
from journeys_client.sync import JourneysSyncClient

__all__ = [
    "DEFAULT_SERVER",
    "DEFAULT_SPACE",
    "AlreadyExistsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "FileFormatError",
    "Ingester",
    "InvalidArgumentError",
    "JourneysClient",
    "JourneysClientError",
    "JourneysSyncClient",
    "MessageProblem",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionViolation",
    "ResourceExhaustedError",
    "SendReport",
    "UnauthenticatedError",
    "UnavailableError",
    "dump_documents",
    "load_file",
    "parse_documents",
    "segment_message",
]
