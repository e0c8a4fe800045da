"""End-to-end ingest over gRPC: a real server against a no-op server, same batches.

Workload (``bench/workload.py``): a real ``journeys serve --manual-clock`` process
with auth on, on a fresh SQLite file (WAL, ``synchronous=NORMAL``: acks survive a
killed process), the five examples published, Segment messages of 380 to 520 bytes
over 100,000 users, turned into batches of 100 before the clock starts and
streamed over one ``IngestStream`` call (ingest token) with a window of batches
in flight. An ack means the batch is committed to the ingest log. The figure
counts from the first write until everything is applied and its profiles and
outbox are committed (a final ``AdvanceTime`` of 1 ms on the manual clock
returns only then).

Baseline in the same run, alternating which goes first: a no-op grpc.aio server
in its own process (``bench/servers.py``) that decodes each batch and answers
``accepted = len(messages)``, fed the same batches by the same client.

Run from the repository root:  .venv/bin/python bench/ingest.py
"""

from __future__ import annotations

import argparse
import asyncio
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.workload import USERS, batches, segment_messages, set_up  # noqa: E402, I001

import grpc  # noqa: E402
from journeys.v1 import ingest_pb2, ingest_pb2_grpc  # noqa: E402
from journeys_client import JourneysClient  # noqa: E402

from bench.figures import TIMES, Figure, table  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.servers import bearer, start_engine, start_noop  # noqa: E402

__all__ = ["measure", "run_engine", "run_noop", "stream_batches"]

WINDOW = 16  # batches in flight on the stream


async def stream_batches(
    target: str,
    requests: Sequence[ingest_pb2.IngestRequest],
    window: int = WINDOW,
    token: str | None = None,
) -> float:
    """Streams ``requests`` over one ``IngestStream`` call with ``window`` in flight, as
    ``journeys_client`` does; returns seconds from the first write to the last ack."""
    total = sum(len(b.messages) for b in requests)
    metadata = bearer(token) if token else None
    async with grpc.aio.insecure_channel(target) as channel:
        await channel.channel_ready()
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        started = time.perf_counter()
        call = stub.IngestStream(metadata=metadata)
        accepted = 0
        in_flight = 0

        async def read_one() -> None:
            nonlocal accepted, in_flight
            response = await call.read()
            assert isinstance(response, ingest_pb2.IngestResponse), response
            assert not response.errors, response.errors
            accepted += response.accepted
            in_flight -= 1

        for request in requests:
            await call.write(request)
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
    applied: float  # seconds, first write -> everything applied and committed
    peak_rss_mb: float


async def run_engine(
    requests: Sequence[ingest_pb2.IngestRequest],
    window: int = WINDOW,
    profile_to: Path | None = None,
) -> EngineRun:
    """One run against a fresh real server."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        server, secrets = start_engine(Path(tmp) / "journeys.db", profile_to=profile_to)
        try:
            async with JourneysClient(server.target, timeout=600, token=secrets.admin) as client:
                await set_up(client)
                started = time.perf_counter()
                acked = await stream_batches(server.target, requests, window, secrets.ingest)
                await client.advance_time(1)  # returns once everything queued is applied
                applied = time.perf_counter() - started
            return EngineRun(acked, applied, server.rss_mb("VmHWM"))
        finally:
            server.stop()


async def run_noop(requests: Sequence[ingest_pb2.IngestRequest], window: int = WINDOW) -> float:
    """Seconds for the no-op server to take the same batches."""
    server = start_noop()
    try:
        return await stream_batches(server.target, requests, window)
    finally:
        server.stop()


def measure(quick: bool, workdir: Path | None = None) -> list[Figure]:
    """The end-to-end figure against the no-op server (and the ack-only figure)."""
    events, runs = (2_000, 1) if quick else (40_000, 3)
    requests = batches(segment_messages(USERS, events, seed=5))
    applied: list[float] = []
    acked: list[float] = []
    noop: list[float] = []
    rss: list[float] = []
    for run in range(runs):
        # Alternate which goes first, so neither always gets the cooler machine.
        for which in ("noop", "engine") if run % 2 == 0 else ("engine", "noop"):
            if which == "noop":
                noop.append(events / asyncio.run(run_noop(requests)))
            else:
                result = asyncio.run(run_engine(requests))
                applied.append(events / result.applied)
                acked.append(events / result.acked)
                rss.append(result.peak_rss_mb)
        print(f"  ingest run {run + 1}: engine {applied[-1]:,.0f}, no-op {noop[-1]:,.0f}/s")
    noop_name = "no-op gRPC server, same batches"
    return [
        Figure(
            "end-to-end ingest (acked, applied, outputs committed)",
            "events/s",
            applied,
            target=f"≥ 100,000 and ≥ 0.25 {TIMES} no-op",
            met=median(applied) >= max(100_000, 0.25 * median(noop)),
            baseline=noop_name,
            baseline_values=noop,
            guard=0.001,
            note=f"{events:,} events per run in batches of 100, {WINDOW} in flight; "
            f"server peak RSS {median(rss):,.0f} MB",
        ),
        Figure(
            "ingest, first write → last durable ack",
            "events/s",
            acked,
            baseline=noop_name,
            baseline_values=noop,
        ),
    ]


def profile_report(path: Path, top: int) -> str:
    """The ``top`` functions of a cProfile file by own and by cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return "\n".join(
        line for line in out.getvalue().splitlines() if "/" in line or "ncalls" in line
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes (CI)")
    parser.add_argument(
        "--profile-server", type=Path, default=None,
        help="instead, run the engine once under cProfile (40,000 events), saving it here",
    )  # fmt: skip
    args = parser.parse_args()
    print(describe(), flush=True)
    if args.profile_server is not None:
        requests = batches(segment_messages(USERS, 40_000, seed=5))
        asyncio.run(run_engine(requests, profile_to=args.profile_server))
        print(profile_report(args.profile_server, 25))
        return
    print(table(measure(args.quick)))


if __name__ == "__main__":
    main()
