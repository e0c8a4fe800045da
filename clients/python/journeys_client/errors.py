"""The client's exceptions: one root, one class per status code that matters.

::

    JourneysClientError           code, message, field_violations, precondition_violations
    ├── FileFormatError           (journeys_client.files) journey files that cannot be sent
    ├── InvalidArgumentError      INVALID_ARGUMENT (field_violations name each bad field)
    ├── NotFoundError             NOT_FOUND
    ├── AlreadyExistsError        ALREADY_EXISTS
    ├── FailedPreconditionError   FAILED_PRECONDITION (precondition_violations say why)
    ├── PermissionDeniedError     PERMISSION_DENIED
    ├── UnauthenticatedError      UNAUTHENTICATED
    ├── ResourceExhaustedError    RESOURCE_EXHAUSTED
    ├── UnavailableError          UNAVAILABLE (server down or unreachable)
    └── DeadlineExceededError     DEADLINE_EXCEEDED
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "AlreadyExistsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InvalidArgumentError",
    "JourneysClientError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionViolation",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
]


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field: its path in the request and what is wrong."""

    field: str
    description: str


@dataclass(frozen=True, slots=True)
class PreconditionViolation:
    """One reason the server's state refused the request."""

    type: str
    subject: str
    description: str


class JourneysClientError(Exception):
    """A call failed; carries the server's status (None for client-side errors) and details."""

    def __init__(
        self,
        code: grpc.StatusCode | None,
        message: str,
        *,
        field_violations: tuple[FieldViolation, ...] = (),
        precondition_violations: tuple[PreconditionViolation, ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field_violations = field_violations
        self.precondition_violations = precondition_violations

    def __str__(self) -> str:
        # The server's message already lists invalid fields; show them once, one per line.
        lines = ["invalid request:"] if self.field_violations else [self.message]
        lines += [f"  {v.field}: {v.description}" for v in self.field_violations]
        lines += [f"  {v.subject}: {v.description}" for v in self.precondition_violations]
        return "\n".join(lines)


class InvalidArgumentError(JourneysClientError):
    """The request was invalid; ``field_violations`` name each field."""


class NotFoundError(JourneysClientError):
    """Something the request named does not exist."""


class AlreadyExistsError(JourneysClientError):
    """The id is taken."""


class FailedPreconditionError(JourneysClientError):
    """The server's current state does not allow the request."""


class PermissionDeniedError(JourneysClientError):
    """The credentials do not allow this call."""


class UnauthenticatedError(JourneysClientError):
    """No valid credentials were sent."""


class ResourceExhaustedError(JourneysClientError):
    """A limit was reached; retry later or send less."""


class UnavailableError(JourneysClientError):
    """The server is down, unreachable or not ready."""


class DeadlineExceededError(JourneysClientError):
    """The call took longer than its timeout."""


# Where gRPC's rich error model carries the google.rpc.Status.
_DETAILS_KEY = "grpc-status-details-bin"

_CLASSES: dict[grpc.StatusCode, type[JourneysClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def from_rpc_error(error: grpc.aio.AioRpcError) -> JourneysClientError:
    """The client exception for a failed call, with the server's rich details."""
    code = error.code()
    message = error.details() or code.name
    fields: list[FieldViolation] = []
    preconditions: list[PreconditionViolation] = []
    for key, value in error.trailing_metadata() or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            bad = error_details_pb2.BadRequest()
            failure = error_details_pb2.PreconditionFailure()
            if detail.Unpack(bad):
                fields += [FieldViolation(v.field, v.description) for v in bad.field_violations]
            elif detail.Unpack(failure):
                preconditions += [
                    PreconditionViolation(v.type, v.subject, v.description)
                    for v in failure.violations
                ]
    cls = _CLASSES.get(code, JourneysClientError)
    return cls(
        code,
        message,
        field_violations=tuple(fields),
        precondition_violations=tuple(preconditions),
    )
