"""Destination output streamed to four concurrent named subscribers.

Workload (``bench/workload.py``): a real ``journeys serve --manual-clock`` process
with auth on, the five examples published plus one journey whose entry event
(``Bench Fanout``) leads to a send step to four destinations ``out-1`` ...
``out-4``. N users each send that event (streamed in batches of 100, not timed),
so each destination's outbox holds N calls. Then four ``Subscribe`` streams,
one per destination, each with a subscribe token and on its own connection,
read from sequence 0 at the same time; the figure is 4 * N calls over the time
until the last of them has its N-th call.

Baseline in the same run: the no-op gRPC server (``bench/servers.py``) streaming
N ready-made calls of the engine's call size to each of four subscribers, read
by the same client code.

Run from the repository root:  .venv/bin/python bench/output.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.workload import SPACE, batches, set_up  # noqa: E402, I001

import grpc  # noqa: E402
from journeys.v1 import subscription_pb2, subscription_pb2_grpc  # noqa: E402
from journeys_client import JourneysClient  # noqa: E402

from bench.figures import Figure, table  # noqa: E402
from bench.ingest import stream_batches  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.servers import bearer, start_engine, start_noop  # noqa: E402

__all__ = ["measure"]

DESTINATIONS = ("out-1", "out-2", "out-3", "out-4")
FANOUT_EVENT = "Bench Fanout"
FANOUT_JOURNEY = "\n---\n".join(
    [
        *(f"kind: Destination\nid: {d}\nname: Out {d[-1]}\ntype: track" for d in DESTINATIONS),
        f"""kind: Journey
id: bench-fanout
name: Bench fanout
steps:
- id: fanout
  name: Fanout
  type: entry
  condition: event('{FANOUT_EVENT}').count() >= 1
  next: send
- id: send
  name: Send
  type: send_to_destinations
  destinations: [{", ".join(DESTINATIONS)}]""",
    ]
)


async def read_all(target: str, token: str | None, calls: int, max_batch: int) -> float:
    """Four concurrent subscriptions, each on its own channel, each reading ``calls``
    calls from the start (``max_batch`` a response); seconds until the last is done."""
    channels = [grpc.aio.insecure_channel(target) for _ in DESTINATIONS]
    try:
        for channel in channels:
            await channel.channel_ready()

        async def read(channel: grpc.aio.Channel, destination: str) -> None:
            stub = subscription_pb2_grpc.SubscriptionServiceStub(channel)
            request = subscription_pb2.SubscribeRequest(
                space_id=SPACE,
                destination_id=destination,
                consumer="bench",
                after_sequence=0,
                max_batch=max_batch,
            )
            stream = stub.Subscribe(request, metadata=bearer(token) if token else None)
            seen = 0
            async for item in stream:
                seen += len(item.calls.calls) if item.HasField("calls") else 1
                if seen >= calls:
                    break
            stream.cancel()
            if seen < calls:
                raise RuntimeError(f"{destination}: {seen} of {calls} calls")

        started = time.perf_counter()
        await asyncio.gather(*(read(c, d) for c, d in zip(channels, DESTINATIONS, strict=True)))
        return time.perf_counter() - started
    finally:
        for channel in channels:
            await channel.close()


BATCHED = 100  # calls per response, as the Python and Node.js clients ask by default
MODES = (BATCHED, 1)


async def run_engine(users: int, seed: int) -> dict[int, float]:
    """Calls per second streamed by a fresh real server, by calls per response."""
    stream = [
        {"type": "track", "userId": f"fan-{seed}-{i}", "event": FANOUT_EVENT} for i in range(users)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-output-") as tmp:
        server, secrets = start_engine(Path(tmp) / "journeys.db", "--max-live-journeys", "6")
        try:
            async with JourneysClient(server.target, timeout=600, token=secrets.admin) as admin:
                await set_up(admin, FANOUT_JOURNEY)
                await stream_batches(server.target, batches(stream), token=secrets.ingest)
                await admin.advance_time(1)  # everything applied and in the outbox
            calls = len(DESTINATIONS) * users
            return {
                mode: calls / await read_all(server.target, secrets.subscribe, users, mode)
                for mode in MODES
            }
        finally:
            server.stop()


async def run_noop(users: int) -> dict[int, float]:
    server = start_noop(calls=users)
    try:
        calls = len(DESTINATIONS) * users
        return {mode: calls / await read_all(server.target, None, users, mode) for mode in MODES}
    finally:
        server.stop()


def measure(quick: bool, workdir: Path | None = None) -> list[Figure]:
    """Calls/s to four subscribers, batched and one call per response, against the
    no-op server streaming the same way."""
    users, runs = (500, 1) if quick else (12_500, 3)
    engine: dict[int, list[float]] = {mode: [] for mode in MODES}
    noop: dict[int, list[float]] = {mode: [] for mode in MODES}
    for run in range(runs):
        for which in ("noop", "engine") if run % 2 == 0 else ("engine", "noop"):
            rates = asyncio.run(run_noop(users) if which == "noop" else run_engine(users, run))
            for mode, rate in rates.items():
                (noop if which == "noop" else engine)[mode].append(rate)
        print(
            f"  output run {run + 1}: engine {engine[BATCHED][-1]:,.0f}, "
            f"no-op {noop[BATCHED][-1]:,.0f} calls/s"
        )
    baseline = "no-op gRPC server streaming the same"
    return [
        Figure(
            "destination calls streamed to 4 concurrent named subscribers",
            "calls/s",
            engine[BATCHED],
            target="≥ 50,000",
            met=median(engine[BATCHED]) >= 50_000,
            baseline=baseline,
            baseline_values=noop[BATCHED],
            guard=0.05,
            note=f"{users:,} calls per destination read from sequence 0, up to "
            f"{BATCHED} calls per response (the clients' default `max_batch`)",
        ),
        Figure(
            "the same, one call per response (`max_batch` 1)",
            "calls/s",
            engine[1],
            baseline=baseline,
            baseline_values=noop[1],
            guard=0.05,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes (CI)")
    args = parser.parse_args()
    print(describe(), flush=True)
    print(table(measure(args.quick)))


if __name__ == "__main__":
    main()
