"""Servers the benchmarks talk to, each in a child process of its own.

- :func:`start_engine`: ``journeys serve`` on a SQLite file, **with auth on**:
  the tokens are made offline on the file first, as an operator does
  (``journeys token create --db``), and every client call carries one.
- :func:`start_noop`: the baseline, a grpc.aio server on the same event loop kind
  that implements ``IngestService`` (decodes each batch, answers
  ``accepted = len(messages)``) and ``SubscriptionService.Subscribe`` (streams
  ready-made calls of the size the engine sends), and nothing else.

Run the no-op server alone with ``python bench/servers.py --serve-noop``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench  # noqa: E402, F401, I001  (first: the project's folders importable)

import grpc  # noqa: E402
from journeys.v1 import (  # noqa: E402
    ingest_pb2,
    ingest_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
)

from journeys_engine import SystemClock  # noqa: E402
from journeys_engine.access import Tokens  # noqa: E402
from journeys_engine.store.database import Database  # noqa: E402

__all__ = ["Child", "Secrets", "bearer", "start_engine", "start_noop"]

_LISTENING = re.compile(r"listening on \S+:(\d+)")
# What a no-op subscription streams: a call of the size the engine sends.
NOOP_PAYLOAD = (
    '{"type":"track","event":"Audience Entered","userId":"user-12345","properties":'
    '{"audience_key":"cart_abandonment","journey_name":"Cart abandonment","step_name":'
    '"Send reminder"},"messageId":"0123456789abcdef0123456789abcdef",'
    '"timestamp":"2026-01-01T00:00:00.000Z"}'
)


class Child:
    """A server in a child process; its port is read from its "listening on" line."""

    def __init__(self, command: Sequence[str]) -> None:
        env = dict(os.environ)
        for name in ("JOURNEYS_SERVER", "JOURNEYS_SPACE", "JOURNEYS_TOKEN"):
            env.pop(name, None)
        env["PYTHONUNBUFFERED"] = "1"
        self.output: list[str] = []
        self.process = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.port = self._port(timeout=120.0)

    def _port(self, timeout: float) -> int:
        assert self.process.stdout is not None
        # The pipe's descriptor itself: lines the file object buffered (the server
        # prints a few at once) would never wake the selector.
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=deadline - time.monotonic()):
                    continue
                chunk = os.read(fd, 65536).decode()
                if not chunk:
                    break
                self.output.append(chunk)
                match = _LISTENING.search("".join(self.output))
                if match:
                    return int(match.group(1))
        self.process.kill()
        raise RuntimeError("server did not start:\n" + "".join(self.output))

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def rss_mb(self, field: str = "VmRSS") -> float:
        """The child's resident memory (``VmHWM``: its peak), MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        """SIGTERM, then waits (a profiled server writes its profile on the way out)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            rest, _ = self.process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, _ = self.process.communicate(timeout=30)
        self.output.append(rest or "")
        if self.process.returncode != 0:
            raise RuntimeError(
                f"server exited with {self.process.returncode}:\n" + "".join(self.output)
            )


@dataclass(frozen=True)
class Secrets:
    """The tokens a benchmark's clients use: admin of every space for setting up,
    ingest and subscribe of the space for the measured traffic."""

    admin: str
    ingest: str
    subscribe: str


def bearer(secret: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying ``secret``."""
    return (("authorization", f"Bearer {secret}"),)


async def make_tokens(db: Path, space: str = "default") -> Secrets:
    """Creates the tokens offline on ``db`` (created when missing), as
    ``journeys token create --db`` does."""
    async with await Database.open(db) as database:
        tokens = Tokens(database, SystemClock())
        await tokens.refresh()
        _, admin = await tokens.create("*", "admin", name="bench-admin")
        _, ingest = await tokens.create(space, "ingest", name="bench-ingest")
        _, subscribe = await tokens.create(space, "subscribe", name="bench-subscribe")
    return Secrets(admin, ingest, subscribe)


def start_engine(
    db: Path, *extra: str, manual_clock: bool = True, profile_to: Path | None = None
) -> tuple[Child, Secrets]:
    """``journeys serve`` on ``db`` with auth on; the tokens are made first."""
    with ThreadPoolExecutor(1) as thread:  # (callers may be running a loop already)
        secrets = thread.submit(asyncio.run, make_tokens(db)).result()
    prefix = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
    clock = ["--manual-clock"] if manual_clock else []
    command = [
        sys.executable, *prefix, "-m", "journeys_cli", "serve", "--db", str(db),
        "--host", "127.0.0.1", "--port", "0", *clock, *extra,
    ]  # fmt: skip
    return Child(command), secrets


def start_noop(calls: int = 0) -> Child:
    """The no-op server; its subscriptions stream ``calls`` calls then end."""
    return Child(
        [sys.executable, str(Path(__file__).resolve()), "--serve-noop", "--calls", str(calls)]
    )


# The no-op server


class NoopIngest(ingest_pb2_grpc.IngestServiceServicer):
    """Decodes each batch (gRPC does) and acknowledges it; nothing else."""

    async def Ingest(  # noqa: N802
        self, request: ingest_pb2.IngestRequest, context: object
    ) -> ingest_pb2.IngestResponse:
        return ingest_pb2.IngestResponse(batch_id=request.batch_id, accepted=len(request.messages))

    async def IngestStream(  # noqa: N802
        self, request_iterator: AsyncIterator[ingest_pb2.IngestRequest], context: object
    ) -> AsyncIterator[ingest_pb2.IngestResponse]:
        async for request in request_iterator:
            yield ingest_pb2.IngestResponse(
                batch_id=request.batch_id, accepted=len(request.messages)
            )


class NoopSubscriptions(subscription_pb2_grpc.SubscriptionServiceServicer):
    """Streams ``calls`` ready-made calls after the requested sequence, ``max_batch`` a
    response as the engine does, then ends (``Ack`` and ``ListMembers`` are left
    unimplemented)."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    async def Subscribe(  # noqa: N802
        self, request: subscription_pb2.SubscribeRequest, context: object
    ) -> AsyncIterator[subscription_pb2.SubscribeResponse]:
        first = request.after_sequence + 1
        batch = max(1, request.max_batch)
        for start in range(first, first + self.calls, batch):
            calls = [
                subscription_pb2.DestinationCall(
                    sequence=sequence,
                    message_id=f"noop-{sequence}",
                    payload=NOOP_PAYLOAD,
                    journey_id="cart-abandonment",
                    step_id="send-reminder",
                    profile_key=f"user-{sequence}",
                    run=1,
                )
                for sequence in range(start, min(start + batch, first + self.calls))
            ]
            if batch == 1:
                yield subscription_pb2.SubscribeResponse(call=calls[0])
            else:
                yield subscription_pb2.SubscribeResponse(
                    calls=subscription_pb2.CallBatch(calls=calls)
                )


async def _serve_noop(calls: int) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(NoopIngest(), server)
    subscriptions = NoopSubscriptions(calls)  # type: ignore[abstract]
    subscription_pb2_grpc.add_SubscriptionServiceServicer_to_server(subscriptions, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"no-op server listening on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    await server.stop(1)


def serve_noop(calls: int) -> None:
    """Runs the no-op server on the loop the real server uses (uvloop when installed)."""
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve_noop(calls))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The benchmarks' no-op gRPC server.")
    parser.add_argument("--serve-noop", action="store_true", required=True)
    parser.add_argument("--calls", type=int, default=0)
    serve_noop(parser.parse_args().calls)
