"""The one place where every call is authorised.

:class:`AuthorizationInterceptor` asks an :class:`Authorizer` about each call
before its handler runs: first from the metadata alone (the token and the
method), then for each request message (the space and destination it names).
A refusal ends the call with the authorizer's status code and message before
the servicer sees the request. Health checking and reflection are always
admitted.

Streaming calls are counted per grant (an authorizer may refuse one over a
limit) and end with the authorizer's refusal when it withdraws the grant
meanwhile (a revoked token).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import grpc

from journeys_engine.access import Token

__all__ = [
    "AllowAll",
    "AuthorizationInterceptor",
    "Authorizer",
    "Grant",
    "Metadata",
    "Refusal",
]

Metadata = tuple[tuple[str, str | bytes], ...]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic only in the type stubs
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_FIRST_MESSAGE_WAIT = 1.0  # seconds a refused request stream may take to send its first message


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call is not allowed: a status code and a message for the caller."""

    code: grpc.StatusCode
    message: str


@dataclass(frozen=True, slots=True)
class Grant:
    """A call admitted on its metadata; ``token`` is None when access control is off."""

    token: Token | None = None


class Authorizer(Protocol):
    """Decides whether a call may proceed."""

    def authorize(self, method: str, metadata: Metadata) -> Grant | Refusal:
        """Admits the call on its method and metadata, or says why not."""
        ...

    def check(self, grant: Grant, request: Any) -> Refusal | None:
        """None to admit one request message of an admitted call."""
        ...

    def bind(self, grant: Grant) -> None:
        """Makes the grant visible to the servicer (called in the call's task)."""
        ...

    def open_stream(self, grant: Grant, task: asyncio.Task[Any]) -> Refusal | None:
        """Counts a streaming call starting; None to let it start."""
        ...

    def close_stream(self, grant: Grant, task: asyncio.Task[Any]) -> None:
        """Counts a streaming call ending."""
        ...

    def revoked(self, grant: Grant) -> Refusal | None:
        """Why a call cancelled meanwhile must end, when its grant was withdrawn."""
        ...


class AllowAll:
    """Admits every call (a server with access control off)."""

    def authorize(self, method: str, metadata: Metadata) -> Grant | Refusal:
        return Grant()

    def check(self, grant: Grant, request: Any) -> Refusal | None:
        return None

    def bind(self, grant: Grant) -> None:
        return None

    def open_stream(self, grant: Grant, task: asyncio.Task[Any]) -> Refusal | None:
        return None

    def close_stream(self, grant: Grant, task: asyncio.Task[Any]) -> None:
        return None

    def revoked(self, grant: Grant) -> Refusal | None:
        return None


class AuthorizationInterceptor(grpc.aio.ServerInterceptor):
    """Runs the authorizer for every call but health checks and reflection."""

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        metadata = tuple(handler_call_details.invocation_metadata or ())
        granted = self._authorizer.authorize(method, metadata)
        if isinstance(granted, Refusal):
            return _refusing(handler, granted)
        return _Guard(self._authorizer, granted).handler(handler)


class _Guard:
    """Wraps one admitted call's handler: each request is checked, streams counted."""

    def __init__(self, authorizer: Authorizer, grant: Grant) -> None:
        self._authorizer = authorizer
        self._grant = grant

    def handler(self, handler: Handler) -> Handler:
        deserializer = handler.request_deserializer
        serializer = handler.response_serializer
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.stream_stream, requests_streamed=True),
                deserializer,
                serializer,
            )
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, requests_streamed=True),
                deserializer,
                serializer,
            )
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, requests_streamed=False),
                deserializer,
                serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            self._unary(handler.unary_unary, requests_streamed=False), deserializer, serializer
        )

    async def _admit(self, request: Any, context: Context, *, streamed: bool) -> Any:
        """The request to hand on: checked now, or checked as each message arrives."""
        self._authorizer.bind(self._grant)
        if streamed:
            return self._checked(request, context)
        refusal = self._authorizer.check(self._grant, request)
        if refusal is not None:
            await context.abort(refusal.code, refusal.message)
        return request

    async def _checked(self, requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        async for request in requests:
            refusal = self._authorizer.check(self._grant, request)
            if refusal is not None:
                await context.abort(refusal.code, refusal.message)
            yield request

    def _unary(self, behaviour: Any, *, requests_streamed: bool) -> Any:
        async def unary(request: Any, context: Context) -> Any:
            admitted = await self._admit(request, context, streamed=requests_streamed)
            if not requests_streamed:
                return await behaviour(admitted, context)
            async with self._stream(context):
                return await behaviour(admitted, context)

        return unary

    def _streaming(self, behaviour: Any, *, requests_streamed: bool) -> Any:
        if inspect.isasyncgenfunction(behaviour):

            async def generated(request: Any, context: Context) -> AsyncIterator[Any]:
                admitted = await self._admit(request, context, streamed=requests_streamed)
                async with self._stream(context):
                    async for response in behaviour(admitted, context):
                        yield response

            return generated

        async def written(request: Any, context: Context) -> Any:
            admitted = await self._admit(request, context, streamed=requests_streamed)
            async with self._stream(context):
                return await behaviour(admitted, context)

        return written

    def _stream(self, context: Context) -> _OpenStream:
        return _OpenStream(self._authorizer, self._grant, context)


class _OpenStream:
    """Counts a streaming call while it runs; ends it with the authorizer's refusal
    when the authorizer cancelled it (its grant was withdrawn)."""

    def __init__(self, authorizer: Authorizer, grant: Grant, context: Context) -> None:
        self._authorizer = authorizer
        self._grant = grant
        self._context = context
        self._task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        refusal = self._authorizer.open_stream(self._grant, task)
        if refusal is not None:
            await self._context.abort(refusal.code, refusal.message)
        self._task = task

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._task is not None
        self._authorizer.close_stream(self._grant, self._task)
        if isinstance(exc, asyncio.CancelledError):
            refusal = self._authorizer.revoked(self._grant)
            if refusal is not None:
                self._task.uncancel()
                await self._context.abort(refusal.code, refusal.message)


def _refusing(handler: Handler, refusal: Refusal) -> Handler:
    """A handler of the same shape that ends the call with ``refusal``.

    grpc.aio accepts a coroutine (rather than a generator) for streaming
    responses, so one behaviour serves every shape.
    """

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(refusal.code, refusal.message)

    async def refuse_stream(requests: AsyncIterator[Any], context: Context) -> Any:
        # Ending a request stream while its first message is being written makes some
        # clients (grpcio's) report their failed write, INTERNAL, instead of this
        # status: the first message is taken (for a moment at most) before the refusal.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(anext(aiter(requests)), _FIRST_MESSAGE_WAIT)
        await context.abort(refusal.code, refusal.message)

    deserializer = handler.request_deserializer
    serializer = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse_stream, deserializer, serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse_stream, deserializer, serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, deserializer, serializer)
    return grpc.unary_unary_rpc_method_handler(refuse, deserializer, serializer)
