"""The client's exceptions: one root, one class per status code that matters.

::

    JourneysClientError           code, message, field_violations, precondition_violations,
    │                             retry_delay
    ├── FileFormatError           (journeys_client.files) journey files that cannot be sent
    ├── InvalidArgumentError      INVALID_ARGUMENT (field_violations name each bad field)
    ├── NotFoundError             NOT_FOUND
    ├── AlreadyExistsError        ALREADY_EXISTS
    ├── FailedPreconditionError   FAILED_PRECONDITION (precondition_violations say why)
    ├── PermissionDeniedError     PERMISSION_DENIED
    ├── UnauthenticatedError      UNAUTHENTICATED
    ├── ResourceExhaustedError    RESOURCE_EXHAUSTED (a limit; retry_delay says when to retry)
    ├── UnavailableError          UNAVAILABLE (server down or unreachable)
    └── DeadlineExceededError     DEADLINE_EXCEEDED
"""

from __future__ import annotations

import re
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
    """A call failed; carries the server's status (None for client-side errors) and details.

    ``retry_delay`` is the seconds the server asks the caller to wait before trying
    again (its ``google.rpc.RetryInfo``), or None when it gave no advice.
    """

    def __init__(
        self,
        code: grpc.StatusCode | None,
        message: str,
        *,
        field_violations: tuple[FieldViolation, ...] = (),
        precondition_violations: tuple[PreconditionViolation, ...] = (),
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field_violations = field_violations
        self.precondition_violations = precondition_violations
        self.retry_delay = retry_delay

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
    """A limit was reached; retry later (after ``retry_delay`` seconds when the server
    said) or send less."""


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
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        message = _explained(message)
    fields: list[FieldViolation] = []
    preconditions: list[PreconditionViolation] = []
    retry_delay: float | None = None
    for key, value in error.trailing_metadata() or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            bad = error_details_pb2.BadRequest()
            failure = error_details_pb2.PreconditionFailure()
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(bad):
                fields += [FieldViolation(v.field, v.description) for v in bad.field_violations]
            elif detail.Unpack(failure):
                preconditions += [
                    PreconditionViolation(v.type, v.subject, v.description)
                    for v in failure.violations
                ]
            elif detail.Unpack(retry):
                retry_delay = retry.retry_delay.ToMilliseconds() / 1000
    cls = _CLASSES.get(code, JourneysClientError)
    return cls(
        code,
        message,
        field_violations=tuple(fields),
        precondition_violations=tuple(preconditions),
        retry_delay=retry_delay,
    )


# gRPC itself refuses some calls before the server's code sees them, in words of its own.
_SIZE = re.compile(r"(CLIENT|SERVER): (Received|Sent) message larger than max \((\d+) vs\. (\d+)\)")
_CONCURRENT = "Concurrent RPC limit exceeded!"


def _explained(message: str) -> str:
    """gRPC's own words for a limit, said in terms of what to do."""
    if _CONCURRENT in message:
        return (
            "the server is running as many calls at once as it allows "
            "(journeys serve --max-concurrent-calls); retry after a backoff"
        )
    found = _SIZE.search(message)
    if found is None:
        return message
    side, direction, size, limit = found.groups()
    if side == "SERVER" and direction == "Received":
        return (
            f"the request is {size} bytes, more than the server takes in one message "
            f"({limit}, journeys serve --max-receive-message-bytes): send less in each call"
        )
    if side == "SERVER":
        return (
            f"the response would be {size} bytes, more than the server sends in one "
            f"message ({limit}, journeys serve --max-send-message-bytes): ask for less "
            "(a smaller page)"
        )
    return (
        f"the response is {size} bytes, more than this client takes in one message "
        f"({limit}): ask for less (a smaller page)"
    )
