"""Opening a channel to a journeys server: plaintext or TLS, with an access token."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

__all__ = ["open_channel"]


def open_channel(
    target: str,
    *,
    token: str | None = None,
    tls: bool = False,
    tls_ca: str | os.PathLike[str] | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
) -> grpc.aio.Channel:
    """A channel to ``target`` that sends ``token`` with every call.

    Any ``tls_`` file (or ``tls``) makes it a TLS channel; ``tls_ca`` replaces
    the system's trusted CA certificates, ``tls_cert`` and ``tls_key`` (together)
    present a client certificate (mutual TLS).

    Raises:
        ValueError: a file cannot be read, or only one of ``tls_cert`` and ``tls_key``.
    """
    interceptors: list[grpc.aio.ClientInterceptor] | None = None
    if token:
        interceptors = [
            kind(token) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)
        ]
    if not (tls or tls_ca or tls_cert or tls_key):
        return grpc.aio.insecure_channel(target, interceptors=interceptors)
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("a client certificate needs both tls_cert and tls_key")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(tls_ca, "tls_ca"),
        private_key=_read(tls_key, "tls_key"),
        certificate_chain=_read(tls_cert, "tls_cert"),
    )
    return grpc.aio.secure_channel(target, credentials, interceptors=interceptors)


def _read(path: str | os.PathLike[str] | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {what} {os.fspath(path)!r}: {err.strerror or err}") from err


class _Bearer:
    """Adds ``authorization: Bearer <token>`` to every call's metadata."""

    def __init__(self, token: str) -> None:
        self._entry = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata: Sequence[tuple[str, str | bytes]] = tuple(details.metadata or ())
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*metadata, self._entry),
            details.credentials,
            details.wait_for_ready,
        )


# grpc.aio files each interceptor under one kind of call only: one class per kind.


class _UnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)
