"""Every call gets a request id, bound for its logs and sent back; its end is counted.

:class:`CallInterceptor` runs first, around every other interceptor, so that
what they log (a refusal, a request that does not decode) carries the id too.
The id is the client's ``x-request-id`` metadata when it sends a usable one (at
most 128 characters of ``[A-Za-z0-9._:/+=-]``), else 16 random hex digits. It
is sent back in the call's trailing metadata as ``x-request-id``, errors
included (:mod:`journeys_server.errors` adds it to the rich status it sends).
With metrics on, each call's status code is counted by method
(``journeys_calls_total``).
"""

from __future__ import annotations

import asyncio
import inspect
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from journeys_server.logs import REQUEST_ID_KEY, CallInfo, bind_call, current_call
from journeys_server.metrics import ServerMetrics

__all__ = ["CallInterceptor", "new_request_id"]

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic only in the type stubs
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_USABLE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def new_request_id() -> str:
    """16 random hex digits (ids, not secrets: a fast generator will do)."""
    return f"{random.getrandbits(64):016x}"


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Binds each call's request id (and method, and space) for logs, sends the id
    back, and counts the call's status code when ``metrics`` is given."""

    def __init__(self, metrics: ServerMetrics | None = None) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        request_id = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == REQUEST_ID_KEY and isinstance(value, str) and _USABLE_ID.fullmatch(value):
                request_id = value
                break
        call = _Call(
            request_id or new_request_id(), handler_call_details.method.lstrip("/"), self._metrics
        )
        return call.handler(handler)


class _Call:
    """One call's wrapping of its handler."""

    def __init__(self, request_id: str, method: str, metrics: ServerMetrics | None) -> None:
        self._request_id = request_id
        self._method = method
        self._metrics = metrics

    def handler(self, handler: Handler) -> Handler:
        streamed = handler.request_streaming
        if streamed and handler.response_streaming:
            make: Any = grpc.stream_stream_rpc_method_handler
            behaviour = self._wrap(handler.stream_stream, streamed=True)
        elif streamed:
            make = grpc.stream_unary_rpc_method_handler
            behaviour = self._wrap(handler.stream_unary, streamed=True)
        elif handler.response_streaming:
            make = grpc.unary_stream_rpc_method_handler
            behaviour = self._wrap(handler.unary_stream, streamed=False)
        else:
            make = grpc.unary_unary_rpc_method_handler
            behaviour = self._wrap(handler.unary_unary, streamed=False)
        if behaviour is None:
            return handler
        wrapped: Handler = make(
            behaviour, handler.request_deserializer, handler.response_serializer
        )
        return wrapped

    def _begin(self, request: Any, context: Context, *, streamed: bool) -> Any:
        """Binds the call (in the call's own task) and sets the id to be sent back."""
        space = "" if streamed else getattr(request, "space_id", "")
        bind_call(CallInfo(self._request_id, self._method, space if isinstance(space, str) else ""))
        context.set_trailing_metadata(((REQUEST_ID_KEY, self._request_id),))
        return _spaced(request) if streamed else request

    def _end(self, context: Context, error: BaseException | None) -> None:
        if self._metrics is None:
            return
        if isinstance(error, asyncio.CancelledError):
            code = "CANCELLED"
        elif error is not None and not isinstance(error, grpc.aio.AbortError):
            code = "UNKNOWN"
        else:
            code = _code_name(context.code())
        self._metrics.call_ended(self._method, code)

    def _wrap(self, behaviour: Any, *, streamed: bool) -> Any:
        if inspect.isasyncgenfunction(behaviour):

            async def generated(request: Any, context: Context) -> AsyncIterator[Any]:
                request = self._begin(request, context, streamed=streamed)
                try:
                    async for response in behaviour(request, context):
                        yield response
                except BaseException as err:
                    self._end(context, err)
                    raise
                self._end(context, None)

            return generated
        if inspect.iscoroutinefunction(behaviour):

            async def awaited(request: Any, context: Context) -> Any:
                request = self._begin(request, context, streamed=streamed)
                try:
                    response = await behaviour(request, context)
                except BaseException as err:
                    self._end(context, err)
                    raise
                self._end(context, None)
                return response

            return awaited
        return None


def _code_name(code: object) -> str:
    """The name of the status a call ended with (OK when none was set)."""
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return _STATUS_NAMES.get(code, "UNKNOWN")
    return "UNKNOWN"


async def _spaced(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream that binds the space its messages name, as they come."""
    async for request in requests:
        space = getattr(request, "space_id", "")
        info = current_call()
        if info is not None and isinstance(space, str) and space != info.space:
            bind_call(CallInfo(info.request_id, info.method, space))
        yield request
