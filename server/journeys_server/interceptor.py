"""The one place where every call is authorised.

:class:`AuthorizationInterceptor` asks an :class:`Authorizer` about each call
before its handler runs. A refusal ends the call with the authorizer's status
code and message, before the servicer sees the request. Health checking and
reflection are always admitted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import grpc

__all__ = ["AllowAll", "AuthorizationInterceptor", "Authorizer", "Metadata", "Refusal"]

Metadata = tuple[tuple[str, str | bytes], ...]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic only in the type stubs

OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call is not allowed: a status code and a message for the caller."""

    code: grpc.StatusCode
    message: str


class Authorizer(Protocol):
    """Decides whether a call may proceed."""

    def authorize(self, method: str, metadata: Metadata) -> Refusal | None:
        """None to admit the call, or the reason to refuse it."""
        ...


class AllowAll:
    """Admits every call (a server with access control off)."""

    def authorize(self, method: str, metadata: Metadata) -> Refusal | None:
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
        refusal = self._authorizer.authorize(method, metadata)
        if refusal is None:
            return handler
        return _refusing(handler, refusal)


def _refusing(handler: Handler, refusal: Refusal) -> Handler:
    """A handler of the same shape that ends the call with ``refusal``.

    grpc.aio accepts a coroutine (rather than a generator) for streaming
    responses, so one behaviour serves every shape.
    """

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(refusal.code, refusal.message)

    deserializer = handler.request_deserializer
    serializer = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, deserializer, serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, deserializer, serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, deserializer, serializer)
    return grpc.unary_unary_rpc_method_handler(refuse, deserializer, serializer)
