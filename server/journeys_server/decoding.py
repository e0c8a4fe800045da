"""Requests that do not decode are refused with ``INVALID_ARGUMENT``, never ``UNKNOWN``.

gRPC decodes a request before its handler runs. A body that is not a valid
message (a corrupt wire format, invalid UTF-8 in a string field, nesting past
the protobuf depth limit) would make grpc.aio end a unary call with
``UNKNOWN`` and the parser's exception text, and would raise inside the handler
of a request stream (``INTERNAL``). :class:`DecodingInterceptor` wraps every
handler's request decoder, so that such a body ends the call with
``INVALID_ARGUMENT`` and a ``google.rpc.BadRequest`` before the servicer sees
anything. It runs inside the authorization interceptor: a caller that may not
call the method learns that first.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from journeys_engine.errors import FieldViolation, InvalidArgumentError
from journeys_server.errors import abort_with

__all__ = ["DecodingInterceptor"]

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic only in the type stubs
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class _Undecodable:
    """What a request that does not decode becomes, in place of the message."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tolerant(decode: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if decode is None:
        return None

    def tolerant(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as err:  # noqa: BLE001 - whatever the parser raises, the body is bad
            return _Undecodable(str(err) or type(err).__name__)

    return tolerant


async def _refuse(context: Context, request: _Undecodable) -> None:
    description = f"could not be decoded: {request.reason[:200]}"
    await abort_with(
        context,
        InvalidArgumentError([FieldViolation("", description)], f"the request {description}"),
    )


async def _checked(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Undecodable):
            await _refuse(context, request)
        yield request


class DecodingInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every request that does not decode, on every method."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _decoding(handler)


def _decoding(handler: Handler) -> Handler:
    """A handler of the same shape whose behaviour never sees an undecodable request
    (a synchronous behaviour, which none of this server's is, is left as it was)."""
    streamed = handler.request_streaming
    if streamed and handler.response_streaming:
        make: Any = grpc.stream_stream_rpc_method_handler
        behaviour = _wrap(handler.stream_stream, streamed=True)
    elif streamed:
        make = grpc.stream_unary_rpc_method_handler
        behaviour = _wrap(handler.stream_unary, streamed=True)
    elif handler.response_streaming:
        make = grpc.unary_stream_rpc_method_handler
        behaviour = _wrap(handler.unary_stream, streamed=False)
    else:
        make = grpc.unary_unary_rpc_method_handler
        behaviour = _wrap(handler.unary_unary, streamed=False)
    if behaviour is None:
        return handler
    decoded: Handler = make(
        behaviour, _tolerant(handler.request_deserializer), handler.response_serializer
    )
    return decoded


def _wrap(behaviour: Any, *, streamed: bool) -> Any:
    """``behaviour`` behind a check of its request, of the same kind (grpc.aio tells a
    coroutine from an async generator when it calls it); None for a synchronous one."""

    async def admit(request: Any, context: Context) -> Any:
        if streamed:
            return _checked(request, context)
        if isinstance(request, _Undecodable):
            await _refuse(context, request)
        return request

    if inspect.isasyncgenfunction(behaviour):

        async def generated(request: Any, context: Context) -> AsyncIterator[Any]:
            async for response in behaviour(await admit(request, context), context):
                yield response

        return generated
    if inspect.iscoroutinefunction(behaviour):

        async def awaited(request: Any, context: Context) -> Any:
            return await behaviour(await admit(request, context), context)

        return awaited
    return None
