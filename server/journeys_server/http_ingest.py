"""Segment-compatible HTTP ingestion (``--http-port``), on the server's own event loop.

Segment's HTTP Tracking API, as its libraries (``analytics-python``,
``@segment/analytics-node``) speak it:

- ``POST /v1/track``, ``/v1/identify``, ``/v1/page``, ``/v1/screen``,
  ``/v1/alias``, ``/v1/group`` take one message (the path names its type);
  ``POST /v1/batch`` (and ``/v1/import``) take ``{"batch": [...]}``, with an
  optional ``sentAt`` and ``context`` applying to every message of the batch;
- the write key is an ``ingest`` (or ``admin``) token of one space, sent as the
  HTTP Basic user name (the password is ignored) or as the body's ``writeKey``;
- a body may be gzipped (``Content-Encoding: gzip``);
- limits: 32 KB for a one-message body and for each message of a batch, 500 KB
  for a batch body (decompressed), at most 2,500 messages;
- answers: ``200 {"success": true}``; ``400`` with the reason (a body that is not
  JSON, too large, a message that does not pass the checks, every problem named
  by field); ``401`` without a known write key; ``403`` for a token that may not
  ingest into one space; ``429`` with ``Retry-After`` when ingestion is saturated.

A request is checked as a whole before anything is written: a refused request
changes nothing. An accepted one goes through :meth:`Engine.ingest` exactly as a
gRPC batch does (the same checks, ``sentAt`` correction, dedup and ingest log)
and takes its turn in the same :class:`~journeys_server.admission.Admission` as
gRPC ingestion, so HTTP ingestion is bounded by the same limits. ``200`` means
committed to the ingest log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import re
import socket
import time
import zlib
from typing import Any

from aiohttp import web

from journeys_engine import (
    Engine,
    FieldViolation,
    InvalidArgumentError,
    JourneysError,
    NotFoundError,
    ResourceExhaustedError,
)
from journeys_engine.access import ALL_SPACES, Role
from journeys_engine.catalog.spaces import DEFAULT_SPACE
from journeys_server.admission import Admission
from journeys_server.metrics import ServerMetrics

__all__ = ["BATCH_PATHS", "MESSAGE_PATHS", "HttpIngest"]

log = logging.getLogger(__name__)

MESSAGE_PATHS = ("track", "identify", "page", "screen", "alias", "group")
"""``/v1/<type>``: one message of that type."""
BATCH_PATHS = ("batch", "import")
"""``/v1/<name>``: a batch."""

_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    429: "too_many_requests",
    503: "unavailable",
}
_READ_CHUNK = 64 * 1024
_GZIP_SLACK = 1024  # a gzip body is at most this much larger than what it holds, usefully


class _RefusedError(Exception):
    """A request answered with an error status (nothing was written)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[FieldViolation] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}

    def response(self) -> web.Response:
        # ``code`` and ``message``, as Segment's libraries read them (``APIError``).
        body: dict[str, Any] = {
            "success": False,
            "code": _CODES.get(self.status, "error"),
            "message": self.message,
        }
        if self.errors:
            body["errors"] = [{"field": v.field, "message": v.description} for v in self.errors]
        return web.json_response(body, status=self.status, headers=self.headers)


class HttpIngest:
    """The HTTP ingestion endpoint of one server.

    Args:
        engine: The engine messages go to.
        admission: The turns ingestion takes (shared with gRPC ingestion).
        insecure: Take every request, with or without a write key, into the
            ``default`` space (``--insecure-no-auth``).
        metrics: Where each acknowledged request is counted (None: nowhere).

    Start with :meth:`start`; :meth:`close` is idempotent.
    """

    def __init__(
        self,
        engine: Engine,
        admission: Admission,
        *,
        insecure: bool = False,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._engine = engine
        self._admission = admission
        self._insecure = insecure
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int, *, grace_seconds: float = 5.0) -> int:
        """Listens on ``host:port`` (0: a free port, the same on every address of
        ``host``); returns the port.

        Raises:
            OSError: the address cannot be bound.
        """
        app = web.Application()
        app.router.add_post("/v1/{kind}", self._handle)
        # Bodies are decompressed here, within the limits, not by aiohttp.
        runner = web.AppRunner(
            app,
            auto_decompress=False,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=grace_seconds,
        )
        await runner.setup()
        try:
            if port == 0:
                # One address: with port 0 each address of a name would get its own port.
                host = await _resolve(host)
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def close(self) -> None:
        """Stops taking requests and lets those in flight finish (up to the grace)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = time.perf_counter()
        kind = request.match_info["kind"]
        if kind not in MESSAGE_PATHS and kind not in BATCH_PATHS:
            raise web.HTTPNotFound(
                text=json.dumps({"success": False, "message": f"no endpoint /v1/{kind}"}),
                content_type="application/json",
            )
        try:
            space_id = self._space(_basic_user(request)) if _has_auth(request) else None
            limit = self._engine.settings.limits
            body = await _read_body(
                request, limit.max_batch_bytes if kind in BATCH_PATHS else limit.max_message_bytes
            )
            if space_id is None:
                key = body.get("writeKey")
                space_id = self._space(key if isinstance(key, str) else None)
            messages, paths = self._messages(kind, body)
            try:
                async with self._admission.turn(
                    len(messages), caller=f"http:{request.remote}", unary=True
                ):
                    # A request is refused whole: one bad message and nothing is written.
                    result = await self._engine.ingest(space_id, messages, whole=True)
            except InvalidArgumentError as err:
                problems = [_in_body(v, paths) for v in err.violations]
                raise _RefusedError(400, _summary(problems), errors=problems) from err
            except ResourceExhaustedError as err:
                seconds = max(1, math.ceil((err.retry_after_ms or 1000) / 1000))
                raise _RefusedError(
                    429, err.message, headers={"Retry-After": str(seconds)}
                ) from err
            except NotFoundError as err:
                raise _RefusedError(401, "the write key's space does not exist") from err
        except _RefusedError as refusal:
            return refusal.response()
        except JourneysError as err:
            log.warning("HTTP ingestion failed: %s", err)
            return _RefusedError(503, "the server cannot take messages now; retry later").response()
        if self._metrics is not None:
            refused = len(result.errors)
            duplicates = len(result.duplicates)
            self._metrics.ingested(
                len(messages),
                len(messages) - refused - duplicates,
                duplicates,
                refused,
                time.perf_counter() - received,
            )
        answer: dict[str, Any] = {"success": True}
        if result.errors:  # (suppressed identifiers: refused on purpose, as Segment drops them)
            answer["refused"] = [
                {"field": v.field.replace("messages[", "batch[", 1), "message": v.description}
                for index in sorted(result.errors)
                for v in result.errors[index]
            ]
        return web.json_response(answer)

    def _space(self, write_key: str | None) -> str:
        """The space a write key sends into."""
        if self._insecure:
            return DEFAULT_SPACE
        if not write_key:
            raise _RefusedError(
                401, "no write key: send it as the HTTP Basic user name (Segment's way)"
            )
        token = self._engine.tokens.find(write_key)
        if token is None:
            raise _RefusedError(401, "the write key is not a valid access token")
        if not token.role.grants(Role.INGEST):
            raise _RefusedError(
                403, f"the write key is a {token.role.value} token; it may not ingest"
            )
        if token.space_id == ALL_SPACES:
            raise _RefusedError(
                403,
                "the write key is a token of every space; a write key is an ingest "
                "token of one space (journeys token create --role ingest)",
            )
        return token.space_id

    def _messages(self, kind: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        """The body's messages, and the path of each in the body (``batch[3]``).

        Raises:
            _RefusedError: 400, for a body that holds no messages or too many.
        """
        limits = self._engine.settings.limits
        if kind in MESSAGE_PATHS:
            message = {k: v for k, v in body.items() if k != "writeKey"}
            message["type"] = kind
            messages, paths = [message], ["body"]
        else:
            batch = body.get("batch")
            if not isinstance(batch, list):
                raise _RefusedError(400, "batch: must be a JSON array of messages")
            if len(batch) > limits.max_batch_messages:
                raise _RefusedError(
                    400,
                    f"batch: holds {len(batch)} messages; at most "
                    f"{limits.max_batch_messages} per batch",
                )
            sent_at = body.get("sentAt")
            shared = body.get("context")
            messages, paths = [], []
            oversized: list[FieldViolation] = []
            for i, item in enumerate(batch):
                path = f"batch[{i}]"
                if not isinstance(item, dict):
                    oversized.append(FieldViolation(path, "must be a JSON object"))
                    continue
                size = len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode())
                if size > limits.max_message_bytes:
                    oversized.append(
                        FieldViolation(
                            path,
                            f"is {size} bytes; a message is at most "
                            f"{limits.max_message_bytes} bytes",
                        )
                    )
                    continue
                message = dict(item)
                if sent_at is not None and "sentAt" not in message:
                    message["sentAt"] = sent_at
                if isinstance(shared, dict):
                    own = message.get("context")
                    message["context"] = {**shared, **own} if isinstance(own, dict) else (
                        shared if own is None else own
                    )  # fmt: skip
                messages.append(message)
                paths.append(path)
            if oversized:
                raise _RefusedError(400, _summary(oversized), errors=oversized)
        return messages, paths


async def _resolve(host: str) -> str:
    """One address of ``host``."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    return str(infos[0][4][0])


_ENGINE_PATH = re.compile(r"messages\[(\d+)\]")


def _in_body(violation: FieldViolation, paths: list[str]) -> FieldViolation:
    """A problem the engine named by ``messages[i]``, named by its place in the body."""
    field = _ENGINE_PATH.sub(lambda m: paths[int(m.group(1))], violation.field, count=1)
    return FieldViolation(field, violation.description)


def _summary(problems: list[FieldViolation]) -> str:
    first = problems[0]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{first.field}: {first.description}{more}"


def _has_auth(request: web.Request) -> bool:
    return "Authorization" in request.headers


def _basic_user(request: web.Request) -> str:
    """The user name of an ``Authorization: Basic`` header (the write key)."""
    scheme, _, credentials = request.headers["Authorization"].partition(" ")
    if scheme.lower() != "basic":
        raise _RefusedError(401, "send the write key with HTTP Basic authentication")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as err:
        raise _RefusedError(401, "the Authorization header is not valid HTTP Basic") from err
    return decoded.partition(":")[0]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _read_body(request: web.Request, limit: int) -> dict[str, Any]:
    """The JSON object of the body, decompressed, at most ``limit`` bytes.

    Raises:
        _RefusedError: 400 for a body too large (compressed or not), a bad gzip
            stream, an unknown encoding, or a body that is not a JSON object.
    """
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise _RefusedError(400, f"Content-Encoding {encoding}: only gzip is supported")
    cap = limit + _GZIP_SLACK if encoding == "gzip" else limit
    if request.content_length is not None and request.content_length > cap:
        raise _RefusedError(400, f"the body is {request.content_length} bytes; at most {limit}")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > cap:
            raise _RefusedError(400, f"the body is over {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            # At most one byte past the limit is ever inflated: a gzip bomb costs nothing.
            data = inflater.decompress(raw, limit + 1)
        except zlib.error as err:
            raise _RefusedError(400, f"the body is not valid gzip: {err}") from err
        if len(data) > limit:
            raise _RefusedError(400, f"the body is over {limit} bytes, decompressed")
        if not inflater.eof:
            raise _RefusedError(400, "the body is not valid gzip: it ends early")
    else:
        data = raw
    try:
        body = json.loads(data, parse_constant=_no_constants)
    except (ValueError, RecursionError) as err:
        raise _RefusedError(400, f"the body is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise _RefusedError(400, "the body must be a JSON object")
    return body
