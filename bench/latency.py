"""Latency from ingest to the destination call arriving on a subscription.

Workload (``bench/workload.py``): a real ``journeys serve --manual-clock`` process
with auth on, the five examples published plus one journey (``Bench Ping`` -> a
send step to a ``bench`` destination), and the workload's message stream in
batches of 100, each batch carrying a few ``Bench Ping`` events from new users.
A client writes batch *i* over one ``IngestStream`` call at ``start + i * 100 /
rate``; a ``Subscribe`` stream of ``bench`` (subscribe token) records when each
ping's call arrives. Latency is counted from the instant the batch was *due*,
not from when the client managed to write it, so a server that holds the client
back (flow control) is charged for the wait too.

Two rates: the target's 50,000 events/s offered for one second, and a rate
the engine sustains (half its measured end-to-end throughput when the suite runs
it), which shows the latency of the work itself.

Run from the repository root:  .venv/bin/python bench/latency.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.workload import BATCH, SPACE, USERS, segment_messages, set_up  # noqa: E402, I001

import grpc  # noqa: E402
from journeys.v1 import ingest_pb2, ingest_pb2_grpc  # noqa: E402
from journeys_client import JourneysClient  # noqa: E402
from journeys_client.messages import segment_message  # noqa: E402

from bench.figures import Figure, percentile, table  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.servers import bearer, start_engine  # noqa: E402

__all__ = ["measure"]

TARGET_RATE = 50_000.0
PINGS = 5  # per batch
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


@dataclass
class LatencyRun:
    rate: float  # events/s offered
    events: int
    arrived: list[float] = field(default_factory=list)  # ms, batch due -> ping's call
    missing: int = 0
    written_rate: float = 0.0  # events/s the client managed to write


def ping_batches(
    stream: Sequence[dict[str, Any]], tag: str
) -> list[tuple[ingest_pb2.IngestRequest, list[str]]]:
    """Batches of ``BATCH`` messages, the last ``PINGS`` of each a ping from a new user."""
    out = []
    plain = BATCH - PINGS
    for n, i in enumerate(range(0, len(stream), plain)):
        users = [f"ping-{tag}-{n}-{k}" for k in range(PINGS)]
        raw = [
            *stream[i : i + plain],
            *(
                {"type": "track", "userId": u, "event": PING_EVENT, "messageId": f"m-{u}"}
                for u in users
            ),
        ]
        request = ingest_pb2.IngestRequest(
            space_id=SPACE, batch_id=f"{tag}{n}", messages=[segment_message(m) for m in raw]
        )
        out.append((request, users))
    return out


async def pace(
    target: str,
    token: str,
    requests: Sequence[tuple[ingest_pb2.IngestRequest, list[str]]],
    rate: float,
    due_at: dict[str, float],
) -> float:
    """Writes batch i when due (or as soon as the stream takes it); returns the
    seconds the writes took."""
    async with grpc.aio.insecure_channel(target) as channel:
        await channel.channel_ready()
        call = ingest_pb2_grpc.IngestServiceStub(channel).IngestStream(metadata=bearer(token))

        async def read_acks() -> None:
            for _ in requests:
                response = await call.read()
                assert isinstance(response, ingest_pb2.IngestResponse), response
                assert not response.errors, response.errors

        acks = asyncio.create_task(read_acks())
        started = time.perf_counter()
        due = started
        for request, users in requests:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            for user in users:
                due_at[user] = due
            await call.write(request)
            due += len(request.messages) / rate
        written = time.perf_counter() - started
        await call.done_writing()
        await acks
        return written


async def run(rate: float, seconds: float, seed: int, wait_s: float) -> LatencyRun:
    """One run at ``rate`` events/s offered for ``seconds``, on a fresh server."""
    count = max(1, int(rate * seconds / BATCH)) * (BATCH - PINGS)
    requests = ping_batches(segment_messages(USERS, count, seed), tag=f"r{seed}-")
    result = LatencyRun(rate, sum(len(r.messages) for r, _ in requests))
    due_at: dict[str, float] = {}
    received: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        server, secrets = start_engine(Path(tmp) / "journeys.db", "--max-live-journeys", "6")
        try:
            async with (
                JourneysClient(server.target, timeout=600, token=secrets.admin) as admin,
                JourneysClient(server.target, timeout=600, token=secrets.subscribe) as reader,
            ):
                await set_up(admin, PING_JOURNEY)
                first = asyncio.Event()
                every = asyncio.Event()
                expected = 1 + PINGS * len(requests)

                async def subscribe() -> None:
                    async for item in reader.subscribe("bench", "bench", after=0):
                        if item.HasField("call"):
                            received.setdefault(item.call.profile_key, time.perf_counter())
                            first.set()
                            if len(received) >= expected:
                                every.set()

                listening = asyncio.create_task(subscribe())
                # A warm-up ping: the subscription is known to be live before timing.
                await admin.ingest([{"type": "track", "userId": "warm-up", "event": PING_EVENT}])
                await asyncio.wait_for(first.wait(), 60)
                written = await pace(server.target, secrets.ingest, requests, rate, due_at)
                result.written_rate = result.events / written
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(every.wait(), wait_s)
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listening
        finally:
            server.stop()
    result.arrived = [(received[u] - t) * 1000 for u, t in due_at.items() if u in received]
    result.missing = len(due_at) - len(result.arrived)
    return result


def figures_of(run: LatencyRun, target: bool) -> list[Figure]:
    """p50, p99 and max of one run."""
    label = f"at {run.rate:,.0f} events/s offered"
    wrote = (
        f"{run.events:,} events; the client could write {run.written_rate:,.0f} events/s; "
        f"{len(run.arrived):,} pings arrived, {run.missing} missing"
    )
    rows = []
    for name, q, limit in (("p50", 0.5, 2.0), ("p99", 0.99, 10.0), ("max", 1.0, 50.0)):
        value = percentile(run.arrived, q)
        rows.append(
            Figure(
                f"latency ingest → subscription, {name}, {label}",
                "ms",
                [value],
                target=f"≤ {limit:g} ms" if target else "",
                met=(value <= limit and not run.missing) if target else None,
                note=wrote if name == "p50" else "",
            )
        )
    return rows


def measure(quick: bool, workdir: Path | None = None, sustained: float = 0.0) -> list[Figure]:
    """At the target's 50,000 events/s offered, then at ``sustained`` events/s."""
    if quick:
        burst = asyncio.run(run(2_000, 1.0, seed=7, wait_s=30))
        steady = asyncio.run(run(sustained or 500, 1.0, seed=8, wait_s=30))
    else:
        burst = asyncio.run(run(TARGET_RATE, 1.0, seed=7, wait_s=180))
        steady = asyncio.run(run(sustained or 1_000, 10.0, seed=8, wait_s=60))
    return figures_of(burst, target=not quick) + figures_of(steady, target=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes (CI)")
    parser.add_argument("--sustained", type=float, default=0.0, help="the second rate, events/s")
    args = parser.parse_args()
    print(describe(), flush=True)
    print(table(measure(args.quick, sustained=args.sustained)))


if __name__ == "__main__":
    main()
