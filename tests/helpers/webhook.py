"""A webhook receiver on a real socket: a minimal HTTP/1.1 server that answers each
POST as a script says (an error status, a Retry-After, a reset connection, a slow
answer) and records what it received and what it answered 2xx to."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RESET", "Answer", "Request", "WebhookReceiver"]


@dataclass(frozen=True, slots=True)
class Request:
    """One POST as received: its headers (lower-case names) and JSON body."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def sequence(self) -> int:
        return int(self.headers["x-journeys-sequence"])

    @property
    def message_id(self) -> str:
        return self.headers["x-journeys-message-id"]

    @property
    def user(self) -> str:
        return str(self.body["userId"])


@dataclass(frozen=True, slots=True)
class Answer:
    """How to answer: a status, extra headers, and seconds to wait before answering."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


RESET = Answer(status=0)  # close the connection without answering


class WebhookReceiver:
    """Listens on 127.0.0.1 on a free port; ``script(request, attempt)`` (attempt: how
    many times this message id has come, from 1) says how to answer each POST."""

    def __init__(self, script: Callable[[Request, int], Answer]) -> None:
        self._script = script
        self._server: asyncio.Server | None = None
        self.requests: list[Request] = []  # in arrival order
        self.succeeded: list[Request] = []  # recorded before the 2xx is written
        self._attempts: dict[str, int] = {}
        self._progress = asyncio.Event()
        self._closing = asyncio.Event()
        self._connections: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    def delivered_ids(self) -> set[str]:
        return {r.message_id for r in self.succeeded}

    async def wait_delivered(self, count: int, timeout: float = 20.0) -> None:
        """Waits until ``count`` distinct message ids got a 2xx."""
        async with asyncio.timeout(timeout):
            while len(self.delivered_ids()) < count:
                self._progress.clear()
                await self._progress.wait()

    async def __aenter__(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._closing.set()
        for writer in self._connections:
            writer.transport.abort()
        await asyncio.gather(*self._connections.values())
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[writer] = task
        try:
            while not self._closing.is_set() and await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            del self._connections[writer]
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        method, path, _ = line.decode().split(" ", 2)
        assert method == "POST", method
        headers: dict[str, str] = {}
        while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        request = Request(path, headers, json.loads(body))
        self.requests.append(request)
        attempt = self._attempts[request.message_id] = self._attempts.get(request.message_id, 0) + 1
        answer = self._script(request, attempt)
        if answer.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), answer.delay)
        if answer is RESET or answer.status == 0 or self._closing.is_set():
            writer.transport.abort()
            return False
        if 200 <= answer.status < 300 and not answer.delay:
            self.succeeded.append(request)
            self._progress.set()
        extra = "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items())
        writer.write(
            f"HTTP/1.1 {answer.status} Scripted\r\nContent-Length: 0\r\n{extra}\r\n".encode()
        )
        await writer.drain()
        return True
