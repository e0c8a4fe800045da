"""End-to-end ingestion over gRPC: a real server against a no-op server, same batches.

Workload: a real ``journeys serve --manual-clock`` process on a fresh SQLite file
(WAL, ``synchronous=NORMAL``: the default, kill-safe durability), the five
example journeys applied and published (winback's entry switched to events
since publish, as ``bench/runtime.py`` does, since a historical entry cannot be
published), and the Segment-like message stream of ``bench/runtime.py`` (the
examples' events, noise events no condition uses, 15% identify calls) over N
users. The messages are turned into ``IngestRequest`` batches before the clock
starts, then streamed over one ``IngestStream`` call with a window of batches in
flight; each acknowledgement means the batch is committed to the ingest log.
Throughput counts from the first write to the last ack; "applied" adds the
wait until everything acknowledged is applied and committed (a final
``AdvanceTime`` of 1 ms on the manual clock returns only then).

Baseline in the same run: a no-op grpc.aio server, in its own process like the
real one, implementing ``journeys.v1.IngestService/IngestStream``: it decodes
each request and answers ``accepted = len(messages)``. Same client code, same
batches. Ratio = engine events/s / no-op events/s.

Latency: a fresh server with one more journey (``Bench Ping`` -> a send step to
a ``bench`` track destination), fed the same kind of stream paced to half the
measured engine throughput, with a few pings from new users in every batch; the
time from a batch's write to each of its pings' calls arriving on a
``Subscribe`` stream of ``bench`` is the latency.

Run from the repository root:  .venv/bin/python bench/ingest.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import pstats
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(ROOT),
    str(ROOT / "server"),
    str(ROOT / "clients" / "python"),
    str(ROOT / "protos"),
]

import grpc  # noqa: E402
from journeys.v1 import ingest_pb2, ingest_pb2_grpc, journey_pb2  # noqa: E402
from journeys_cli.apply import apply_documents  # noqa: E402
from journeys_client import JourneysClient, load_file, parse_documents  # noqa: E402
from journeys_client.files import Document  # noqa: E402
from journeys_client.messages import segment_message  # noqa: E402

from bench.machine import describe, median_range  # noqa: E402
from bench.runtime import messages  # noqa: E402

EXAMPLES = ("cart-abandonment", "onboarding", "paid-subscription", "trial-to-paid", "winback")
PING_EVENT = "Bench Ping"
PING_JOURNEY = f"""
kind: Destination
id: bench
name: Bench
type: track
---
kind: Journey
id: bench-ping
name: Bench ping
steps:
- id: ping
  name: Ping
  type: entry
  condition: event('{PING_EVENT}').count() >= 1
  next: send
- id: send
  name: Send
  type: send_to_destinations
  destinations: [bench]
"""
_LISTENING = re.compile(r"listening on \S+:(\d+)")


# The no-op server (run in its own process: ``bench/ingest.py --serve-noop``)


class NoopIngest(ingest_pb2_grpc.IngestServiceServicer):
    """Decodes each batch (gRPC does) and acknowledges it; nothing else."""

    async def Ingest(  # noqa: N802
        self, request: ingest_pb2.IngestRequest, context: object
    ) -> ingest_pb2.IngestResponse:
        return ingest_pb2.IngestResponse(accepted=len(request.messages))

    async def IngestStream(  # noqa: N802
        self, request_iterator: AsyncIterator[ingest_pb2.IngestRequest], context: object
    ) -> AsyncIterator[ingest_pb2.IngestResponse]:
        async for request in request_iterator:
            yield ingest_pb2.IngestResponse(accepted=len(request.messages))


async def _serve_noop() -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(NoopIngest(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"no-op server listening on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    await server.stop(1)


def serve_noop() -> None:
    """Runs the no-op server on the loop the real server uses (uvloop when installed)."""
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve_noop())


# Child processes


class Child:
    """A server in a child process; its port is read from its "listening on" line."""

    def __init__(self, command: Sequence[str]) -> None:
        env = dict(os.environ)
        env.pop("JOURNEYS_SERVER", None)
        env.pop("JOURNEYS_SPACE", None)
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
        self.port = self._port(timeout=60.0)

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

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
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


def start_noop() -> Child:
    return Child([sys.executable, str(Path(__file__).resolve()), "--serve-noop"])


def start_engine(db: Path, *extra: str, profile_to: Path | None = None) -> Child:
    prefix = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
    return Child(
        [
            sys.executable, *prefix, "-m", "journeys_cli", "serve", "--db", str(db),
            "--host", "127.0.0.1", "--port", "0", "--manual-clock", "--insecure-no-auth",
            *extra,
        ]
    )  # fmt: skip


# Journeys


def example_documents() -> list[Document]:
    """The five examples' documents; winback's entry on events since publish."""
    docs: list[Document] = []
    for name in EXAMPLES:
        for doc in load_file(ROOT / "examples" / f"{name}.yaml"):
            if isinstance(doc, journey_pb2.Journey) and doc.id == "winback":
                for step in doc.steps:
                    if step.WhichOneof("kind") == "entry":
                        step.entry.use_historical_data = False
            docs.append(doc)
    return docs


async def set_up(client: JourneysClient, *, ping: bool) -> None:
    """Applies the documents (a destination several files share, once) and publishes
    every journey."""
    docs = example_documents() + (parse_documents(PING_JOURNEY) if ping else [])
    await apply_documents(client, docs)
    for doc in docs:
        if isinstance(doc, journey_pb2.Journey):
            await client.publish_journey(doc.id)


# Sending


def build_batches(
    stream: Sequence[dict[str, Any]], size: int
) -> tuple[list[ingest_pb2.IngestRequest], float]:
    """The stream as requests (what ``JourneysClient.send`` builds), and µs per message."""
    started = time.perf_counter()
    batches = []
    for i in range(0, len(stream), size):
        batches.append(
            ingest_pb2.IngestRequest(
                space_id="default",
                batch_id=str(i // size),
                messages=[segment_message(m) for m in stream[i : i + size]],
            )
        )
    return batches, (time.perf_counter() - started) / max(1, len(stream)) * 1e6


async def stream_batches(
    target: str, batches: Sequence[ingest_pb2.IngestRequest], window: int
) -> float:
    """Streams ``batches`` over one ``IngestStream`` call with ``window`` in flight, as
    ``journeys_client.sending`` does; returns seconds from the first write to the last ack."""
    total = sum(len(b.messages) for b in batches)
    async with grpc.aio.insecure_channel(target) as channel:
        await channel.channel_ready()
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        started = time.perf_counter()
        call = stub.IngestStream()
        accepted = 0
        in_flight = 0

        async def read_one() -> None:
            nonlocal accepted, in_flight
            response = await call.read()
            assert isinstance(response, ingest_pb2.IngestResponse), response
            assert not response.errors, response.errors
            accepted += response.accepted
            in_flight -= 1

        for batch in batches:
            await call.write(batch)
            in_flight += 1
            if in_flight >= window:
                await read_one()
        await call.done_writing()
        while in_flight:
            await read_one()
        elapsed = time.perf_counter() - started
    if accepted != total:
        raise RuntimeError(f"{accepted} of {total} messages accepted")
    return elapsed


@dataclass
class EngineRun:
    acked: float  # seconds, first write -> last ack
    applied: float  # seconds, first write -> everything applied
    peak_rss_mb: float
    calls: int = 0


async def run_engine(
    batches: Sequence[ingest_pb2.IngestRequest], window: int, profile_to: Path | None = None
) -> EngineRun:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        server = start_engine(Path(tmp) / "journeys.db", profile_to=profile_to)
        try:
            async with JourneysClient(server.target, timeout=600) as client:
                await set_up(client, ping=False)
                started = time.perf_counter()
                acked = await stream_batches(server.target, batches, window)
                await client.advance_time(1)  # returns once everything queued is applied
                applied = time.perf_counter() - started
            return EngineRun(acked, applied, server.peak_rss_mb())
        finally:
            server.stop()


async def run_noop(batches: Sequence[ingest_pb2.IngestRequest], window: int) -> float:
    server = start_noop()
    try:
        return await stream_batches(server.target, batches, window)
    finally:
        server.stop()


# Latency


@dataclass
class LatencyRun:
    rate: float  # events/s offered
    sent_events: int
    pings: int
    arrived: list[float] = field(default_factory=list)  # ms, ping write -> call received
    acks: list[float] = field(default_factory=list)  # ms, batch write -> ack
    missing: int = 0
    late_batches: int = 0  # batches written later than their schedule by over one interval


def ping_batches(
    stream: Sequence[dict[str, Any]], size: int, pings: int
) -> list[tuple[ingest_pb2.IngestRequest, list[str]]]:
    """Batches of ``size`` messages: ``size - pings`` from ``stream`` then ``pings`` pings,
    each from a new user; with the users of its pings."""
    out = []
    plain = max(1, size - pings)
    for n, i in enumerate(range(0, len(stream), plain)):
        users = [f"ping-{n}-{k}" for k in range(pings)]
        raw = [
            *stream[i : i + plain],
            *(
                {"type": "track", "userId": u, "event": PING_EVENT, "messageId": f"m-{u}"}
                for u in users
            ),
        ]
        request = ingest_pb2.IngestRequest(
            space_id="default", batch_id=str(n), messages=[segment_message(m) for m in raw]
        )
        out.append((request, users))
    return out


async def run_latency(
    batches: Sequence[tuple[ingest_pb2.IngestRequest, list[str]]], rate: float, window: int
) -> LatencyRun:
    result = LatencyRun(rate, sum(len(b.messages) for b, _ in batches), 0)
    sent_at: dict[str, float] = {}
    received: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        # Six live journeys: the five examples and the ping journey.
        server = start_engine(Path(tmp) / "journeys.db", "--max-live-journeys", "6")
        try:
            async with JourneysClient(server.target, timeout=600) as client:
                await set_up(client, ping=True)
                first_ping = asyncio.Event()
                every_ping = asyncio.Event()
                expected = 1 + sum(len(users) for _, users in batches)

                async def subscribe() -> None:
                    async for item in client.subscribe("bench", "bench", after=0):
                        if item.HasField("call"):
                            received.setdefault(item.call.profile_key, time.perf_counter())
                            first_ping.set()
                            if len(received) >= expected:
                                every_ping.set()

                reader = asyncio.create_task(subscribe())
                # A warm-up ping, so the subscription is known to be live before timing.
                warm = {"type": "track", "userId": "warm-up", "event": PING_EVENT}
                await client.ingest([warm])
                await asyncio.wait_for(first_ping.wait(), 60)
                await pace(server.target, batches, rate, window, sent_at, result)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(every_ping.wait(), 60)
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        finally:
            server.stop()
    result.pings = len(sent_at)
    result.arrived = [(received[u] - t) * 1000 for u, t in sent_at.items() if u in received]
    result.missing = len(sent_at) - len(result.arrived)
    return result


async def pace(
    target: str,
    batches: Sequence[tuple[ingest_pb2.IngestRequest, list[str]]],
    rate: float,
    window: int,
    sent_at: dict[str, float],
    result: LatencyRun,
) -> None:
    """Writes batch i at ``start + i * size / rate`` (never more than ``window`` unacked)."""
    async with grpc.aio.insecure_channel(target) as channel:
        await channel.channel_ready()
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        call = stub.IngestStream()
        slots = asyncio.Semaphore(window)
        written: asyncio.Queue[float] = asyncio.Queue()

        async def read_acks() -> None:
            for _ in batches:
                response = await call.read()
                assert isinstance(response, ingest_pb2.IngestResponse), response
                assert not response.errors, response.errors
                result.acks.append((time.perf_counter() - await written.get()) * 1000)
                slots.release()

        acks = asyncio.create_task(read_acks())
        started = time.perf_counter()
        due = started
        for request, users in batches:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            now = time.perf_counter()
            interval = len(request.messages) / rate
            if now - due > interval:
                result.late_batches += 1
            for user in users:
                sent_at[user] = now
            written.put_nowait(now)
            await call.write(request)
            due += interval
        await call.done_writing()
        await acks


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# Profile


def profile_report(path: Path, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    by_own = [line for line in out.getvalue().splitlines() if "/" in line or "ncalls" in line]
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(top * 2)
    by_cumulative = [
        line for line in out.getvalue().splitlines() if "/" in line or "ncalls" in line
    ]
    return "\n".join(["by own time:", *by_own, "by cumulative time:", *by_cumulative])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=400_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=25.0, help="latency run, seconds")
    parser.add_argument("--pings-per-batch", type=int, default=5)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="latency run, events/s (default: half the engine's)"
    )
    parser.add_argument(
        "--profile-server", type=Path, default=None,
        help="also run the engine once under cProfile, saving the profile here",
    )  # fmt: skip
    parser.add_argument("--serve-noop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_noop:
        serve_noop()
        return

    stream = messages(args.users, args.messages, seed=5)
    batches, convert_us = build_batches(stream, args.batch)
    print(describe(), flush=True)
    engine_runs: list[EngineRun] = []
    noop_rates: list[float] = []
    for repeat in range(args.repeats):
        # Alternate which goes first, so neither always gets the cooler machine.
        order = ("noop", "engine") if repeat % 2 == 0 else ("engine", "noop")
        for which in order:
            if which == "noop":
                noop_rates.append(len(stream) / asyncio.run(run_noop(batches, args.window)))
            else:
                engine_runs.append(asyncio.run(run_engine(batches, args.window)))
        print(
            f"  run {repeat + 1}: engine {len(stream) / engine_runs[-1].acked:,.0f} events/s, "
            f"no-op {noop_rates[-1]:,.0f} events/s",
            flush=True,
        )

    acked = [len(stream) / r.acked for r in engine_runs]
    applied = [len(stream) / r.applied for r in engine_runs]
    drain = [r.applied - r.acked for r in engine_runs]
    e, e_lo, e_hi = median_range(acked)
    a, a_lo, a_hi = median_range(applied)
    d, d_lo, d_hi = median_range(drain)
    n, n_lo, n_hi = median_range(noop_rates)

    rate = args.rate or e / 2
    plain = max(1, args.batch - args.pings_per_batch)
    needed = int(rate * args.duration / args.batch) + 1
    latency_stream = messages(args.users, needed * plain, seed=7)
    paced = ping_batches(latency_stream, args.batch, args.pings_per_batch)
    latency = asyncio.run(run_latency(paced, rate, args.window))

    profile = ""
    if args.profile_server is not None:
        asyncio.run(run_engine(batches, args.window, profile_to=args.profile_server))
        profile = profile_report(args.profile_server, 15)

    print(
        f"{len(stream):,} messages over {args.users:,} users, batches of {args.batch}, "
        f"window {args.window}, 5 examples published (winback entry: events since publish), "
        f"manual clock, WAL synchronous=NORMAL; {args.repeats} runs"
    )
    print(f"client JSON -> proto (not timed):  {convert_us:8.1f} us/msg")
    print(
        f"engine, first write -> last ack:   {e:8,.0f} events/s (min {e_lo:,.0f}, max {e_hi:,.0f})"
    )
    print(
        f"engine, first write -> applied:    {a:8,.0f} events/s (min {a_lo:,.0f}, max {a_hi:,.0f})"
    )
    print(f"engine, last ack -> applied:       {d:8.2f} s (min {d_lo:.2f}, max {d_hi:.2f})")
    print(
        f"no-op server, same batches:        {n:8,.0f} events/s (min {n_lo:,.0f}, max {n_hi:,.0f})"
    )
    print(f"ratio engine / no-op:              {e / n:8.3f}")
    print(
        "engine server peak RSS:            "
        + ", ".join(f"{r.peak_rss_mb:,.0f}" for r in engine_runs)
        + " MB"
    )
    print(
        f"latency at {latency.rate:,.0f} events/s for {args.duration:g} s "
        f"({latency.sent_events:,} events, {latency.pings:,} pings, "
        f"{args.pings_per_batch} per batch; {latency.late_batches} batches late, "
        f"{latency.missing} pings missing):"
    )
    if latency.arrived:
        arrived = latency.arrived
        print(
            f"  write -> call on subscription:   p50 {percentile(arrived, 0.5):7.1f} ms, "
            f"p99 {percentile(arrived, 0.99):7.1f} ms, max {max(arrived):7.1f} ms"
        )
    if latency.acks:
        acks = latency.acks
        print(
            f"  write -> durable ack:            p50 {percentile(acks, 0.5):7.1f} ms, "
            f"p99 {percentile(acks, 0.99):7.1f} ms, max {max(acks):7.1f} ms"
        )
    if profile:
        print(f"where the server's time goes (cProfile of one engine run, {args.profile_server}):")
        print(profile)


if __name__ == "__main__":
    main()
