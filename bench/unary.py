"""Unary ``Ingest`` of one event per request.

Workload (``bench/workload.py``): a real ``journeys serve --manual-clock`` process
with auth on, the five examples published, and the workload's messages sent one
per ``Ingest`` call (ingest token) by 64 concurrent callers over 8 channels (8
connections), as the workers of a web back end calling the engine per request
would. Each answer means the
message is committed to the ingest log. The figure counts requests answered per
second over the run.

Baseline in the same run: the no-op gRPC server (``bench/servers.py``) answering
the same unary calls from the same client code.

Run from the repository root:  .venv/bin/python bench/unary.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.workload import USERS, batches, segment_messages, set_up  # noqa: E402, I001

import grpc  # noqa: E402
from journeys.v1 import ingest_pb2, ingest_pb2_grpc  # noqa: E402
from journeys_client import JourneysClient  # noqa: E402

from bench.figures import Figure, table  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.servers import bearer, start_engine, start_noop  # noqa: E402

__all__ = ["measure"]

CALLERS = 64
CHANNELS = 8  # (one grpc.aio channel tops out near the rate being measured)


async def send_each(
    target: str, requests: Sequence[ingest_pb2.IngestRequest], token: str | None
) -> float:
    """Sends every request as its own unary call, ``CALLERS`` at a time; requests/s."""
    metadata = bearer(token) if token else None
    # Separate connections: channels with equal arguments would share one.
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.channel_id", i)]) for i in range(CHANNELS)
    ]
    try:
        for channel in channels:
            await channel.channel_ready()
        stubs = [ingest_pb2_grpc.IngestServiceStub(channel) for channel in channels]
        pending = list(reversed(requests))

        async def caller(stub: ingest_pb2_grpc.IngestServiceAsyncStub) -> None:
            while pending:
                response = await stub.Ingest(pending.pop(), metadata=metadata)
                if response.accepted != 1:
                    raise RuntimeError(f"not accepted: {response}")

        started = time.perf_counter()
        await asyncio.gather(*(caller(stubs[i % CHANNELS]) for i in range(CALLERS)))
        return len(requests) / (time.perf_counter() - started)
    finally:
        for channel in channels:
            await channel.close()


async def run_engine(requests: Sequence[ingest_pb2.IngestRequest]) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-unary-") as tmp:
        server, secrets = start_engine(Path(tmp) / "journeys.db")
        try:
            async with JourneysClient(server.target, timeout=600, token=secrets.admin) as client:
                await set_up(client)
            return await send_each(server.target, requests, secrets.ingest)
        finally:
            server.stop()


async def run_noop(requests: Sequence[ingest_pb2.IngestRequest]) -> float:
    server = start_noop()
    try:
        return await send_each(server.target, requests, None)
    finally:
        server.stop()


def measure(quick: bool, workdir: Path | None = None) -> list[Figure]:
    """Unary requests/s against the no-op server."""
    count, runs = (300, 1) if quick else (6_000, 3)
    requests = batches(segment_messages(USERS, count, seed=11), size=1, prefix="u")
    engine: list[float] = []
    noop: list[float] = []
    for run in range(runs):
        for which in ("noop", "engine") if run % 2 == 0 else ("engine", "noop"):
            rate = asyncio.run(run_noop(requests) if which == "noop" else run_engine(requests))
            (noop if which == "noop" else engine).append(rate)
        print(f"  unary run {run + 1}: engine {engine[-1]:,.0f}, no-op {noop[-1]:,.0f} req/s")
    return [
        Figure(
            "unary Ingest of one event",
            "requests/s",
            engine,
            target="≥ 3,000",
            met=median(engine) >= 3_000,
            baseline="no-op gRPC server, same calls",
            baseline_values=noop,
            guard=0.02,
            note=f"{count:,} requests per run, {CALLERS} concurrent callers on {CHANNELS} "
            "connections",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes (CI)")
    args = parser.parse_args()
    print(describe(), flush=True)
    print(table(measure(args.quick)))


if __name__ == "__main__":
    main()
