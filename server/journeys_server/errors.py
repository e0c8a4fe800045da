"""The one table from engine errors to gRPC status codes, with rich details.

Invalid input becomes ``INVALID_ARGUMENT`` with a ``google.rpc.BadRequest``
naming every field; refused state changes become ``FAILED_PRECONDITION`` with a
``google.rpc.PreconditionFailure``. Anything unexpected becomes ``INTERNAL``
with no stack trace sent to the client (it is logged).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from journeys_engine.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    JourneysError,
    NotFoundError,
    ResourceExhaustedError,
    StorageError,
)

__all__ = ["STATUS_CODES", "handle_errors", "handle_stream_errors", "status_for"]

log = logging.getLogger(__name__)

STATUS_CODES: tuple[tuple[type[JourneysError], grpc.StatusCode], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StorageError, grpc.StatusCode.UNAVAILABLE),
    (JourneysError, grpc.StatusCode.INTERNAL),
)


def status_for(error: JourneysError) -> status_pb2.Status:
    """The ``google.rpc.Status`` for an engine error, details included."""
    code = next(code for cls, code in STATUS_CODES if isinstance(error, cls))
    status = status_pb2.Status(code=code.value[0], message=error.message)
    detail = any_pb2.Any()
    if isinstance(error, InvalidArgumentError):
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
        status.details.append(detail)
    elif isinstance(error, FailedPreconditionError) and error.violations:
        detail.Pack(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=v.type, subject=v.subject, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
        status.details.append(detail)
    return status


S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def handle_errors(
    method: Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    """Turns engine errors raised by a unary servicer method into statuses.

    The method runs to its end even when the call is cancelled (a deadline, a client
    gone): a change that has begun is never left half made.
    """
    return _handled(method, shielded=True)


def handle_write_errors(
    method: Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    """Like :func:`handle_errors`, for a server stream written with ``context.write``,
    which a cancelled call ends at once (it changes nothing)."""
    return _handled(method, shielded=False)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Marks a shielded method's outcome as seen once its caller has gone."""
    if not task.cancelled():
        task.exception()


def _handled(
    method: Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]],
    *,
    shielded: bool,
) -> Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    @functools.wraps(method)
    async def wrapper(self: S, request: Req, context: grpc.aio.ServicerContext[Req, Resp]) -> Resp:
        try:
            if not shielded:
                return await method(self, request, context)
            task = asyncio.ensure_future(method(self, request, context))
            task.add_done_callback(_retrieve)
            return await asyncio.shield(task)
        except Exception as err:  # noqa: BLE001 - every error becomes a status
            await _abort_for(context, err, method.__qualname__)
        raise AssertionError("unreachable: abort raises")

    return wrapper


def handle_stream_errors(
    method: Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]]:
    """Turns engine errors raised by a streaming servicer method into statuses."""

    @functools.wraps(method)
    async def wrapper(
        self: S, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[Resp]:
        try:
            async for item in method(self, request, context):
                yield item
        except Exception as err:  # noqa: BLE001 - every error becomes a status
            await _abort_for(context, err, method.__qualname__)

    return wrapper


async def _abort_for(
    context: grpc.aio.ServicerContext[Req, Resp], err: Exception, where: str
) -> None:
    """Ends the call with the status for ``err`` (an abort already under way goes on)."""
    if isinstance(err, grpc.aio.AbortError):
        raise err
    if isinstance(err, JourneysError):
        await _abort(context, status_for(err))
        return
    log.exception("unexpected error in %s", where)
    await _abort(
        context,
        status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; see server log"),
    )


async def _abort(context: grpc.aio.ServicerContext[Req, Resp], status: status_pb2.Status) -> None:
    grpc_status = rpc_status.to_status(status)
    await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)
