"""The one table from engine errors to gRPC status codes, with rich details.

Invalid input becomes ``INVALID_ARGUMENT`` with a ``google.rpc.BadRequest``
naming every field; refused state changes become ``FAILED_PRECONDITION`` with a
``google.rpc.PreconditionFailure``; a bound reached under load becomes
``RESOURCE_EXHAUSTED`` with a ``google.rpc.RetryInfo`` when the engine says how
long to wait. Anything unexpected becomes ``INTERNAL`` with no stack trace sent
to the client (it is logged). Messages and details are
bounded, however much of the request they echo.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
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
from journeys_server.logs import request_id_metadata

__all__ = [
    "MAX_DETAILS_BYTES",
    "MAX_MESSAGE_BYTES",
    "STATUS_CODES",
    "abort_with",
    "handle_errors",
    "handle_read_errors",
    "handle_stream_errors",
    "handle_write_errors",
    "status_for",
]

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


MAX_MESSAGE_BYTES = 1024
"""The longest status message sent (UTF-8). The message and the details travel in the
HTTP/2 trailers, which a client accepts up to 8 KiB by default
(``grpc.max_metadata_size``): past that it sees a transport error instead of the
answer. Input is echoed in messages, so an unbounded request would otherwise get one."""

MAX_DETAILS_BYTES = 2048
"""The most bytes of violations listed in the details; the rest are counted, not listed."""

_MAX_PART_BYTES = 256  # one field path or description in the details


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, marked with an ellipsis."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "\u2026"


def _listed(items: Sequence[tuple[str, ...]]) -> tuple[list[tuple[str, ...]], int]:
    """As many of the items as fit in :data:`MAX_DETAILS_BYTES`, each part cut, and
    how many were left out."""
    listed: list[tuple[str, ...]] = []
    used = 0
    for i, item in enumerate(items):
        parts = tuple(_cut(part, _MAX_PART_BYTES) for part in item)
        used += sum(len(part.encode()) for part in parts)
        if used > MAX_DETAILS_BYTES:
            return listed, len(items) - i
        listed.append(parts)
    return listed, 0


def status_for(error: JourneysError) -> status_pb2.Status:
    """The ``google.rpc.Status`` for an engine error, details included (both bounded:
    :data:`MAX_MESSAGE_BYTES`, :data:`MAX_DETAILS_BYTES`)."""
    code = next(code for cls, code in STATUS_CODES if isinstance(error, cls))
    status = status_pb2.Status(code=code.value[0], message=_cut(error.message, MAX_MESSAGE_BYTES))
    detail = any_pb2.Any()
    if isinstance(error, InvalidArgumentError):
        fields, more = _listed([(v.field, v.description) for v in error.violations])
        if more:
            fields.append(("", f"and {more} more problems, not listed"))
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=field, description=text)
                    for field, text in fields
                ]
            )
        )
        status.details.append(detail)
    elif isinstance(error, FailedPreconditionError) and error.violations:
        reasons, more = _listed([(v.type, v.subject, v.description) for v in error.violations])
        if more:
            reasons.append(("MORE", "", f"and {more} more reasons, not listed"))
        detail.Pack(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=kind, subject=subject, description=text
                    )
                    for kind, subject, text in reasons
                ]
            )
        )
        status.details.append(detail)
    elif isinstance(error, ResourceExhaustedError) and error.retry_after_ms is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(error.retry_after_ms)
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
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


def handle_read_errors(
    method: Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    """Like :func:`handle_errors`, for a unary call that changes nothing: a cancelled
    call (a deadline, a client gone) ends its work at once instead of running on for
    nobody (a long simulation, say)."""
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


async def abort_with(
    context: grpc.aio.ServicerContext[Req, Resp], error: JourneysError
) -> NoReturn:
    """Ends the call with the status for ``error``, details included."""
    await _abort(context, status_for(error))
    raise AssertionError("unreachable: abort raises")


async def _abort(context: grpc.aio.ServicerContext[Req, Resp], status: status_pb2.Status) -> None:
    grpc_status = rpc_status.to_status(status)
    # Trailing metadata given to abort replaces what the call set: the request id
    # (journeys_server.calls) goes along with the details.
    trailing = (*grpc_status.trailing_metadata, *request_id_metadata())
    await context.abort(grpc_status.code, grpc_status.details, trailing)
