"""Ingestion through Segment's HTTP API (``/v1/batch``) against gRPC ``IngestStream``.

Workload: a real ``journeys serve --manual-clock --http-port 0`` process on a
fresh SQLite file per run with auth on (the write key is an ingest token), the
workload of ``bench/workload.py`` (the five examples published, its messages). The gRPC run
streams the batches over one ``IngestStream`` call with a window of batches in
flight (``bench/ingest.py``'s client); the HTTP run posts the same messages as
``{"batch": [...]}`` bodies (JSON encoded before the clock starts) to
``/v1/batch`` over one keep-alive connection per in-flight request, the same
window. Both count from the first write to the last ``200``/ack (each means
committed to the ingest log), alternating which goes first.

Run from the repository root:  .venv/bin/python bench/http_ingest.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import aiohttp  # noqa: E402
from journeys_client import JourneysClient  # noqa: E402

from bench.ingest import stream_batches  # noqa: E402
from bench.machine import describe, median_range  # noqa: E402
from bench.servers import start_engine  # noqa: E402
from bench.workload import batches as build_batches  # noqa: E402
from bench.workload import segment_messages, set_up  # noqa: E402

_HTTP = re.compile(r"HTTP ingestion \(Segment API\) at (http://\S+:\d+)/v1/")


def http_bodies(stream: Sequence[dict[str, Any]], size: int) -> list[bytes]:
    """The stream as ``/v1/batch`` bodies of ``size`` messages."""
    return [
        json.dumps({"batch": list(stream[i : i + size])}).encode()
        for i in range(0, len(stream), size)
    ]


async def post_bodies(url: str, bodies: Sequence[bytes], window: int, write_key: str) -> float:
    """Posts every body with ``window`` requests in flight; seconds first write -> last 200."""
    queue = list(reversed(bodies))
    connector = aiohttp.TCPConnector(limit=window)
    auth = aiohttp.BasicAuth(write_key, "")
    async with aiohttp.ClientSession(connector=connector, auth=auth) as session:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                async with session.post(
                    f"{url}/v1/batch", data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    text = await response.text()
                    if response.status != 200:
                        raise RuntimeError(f"{response.status}: {text}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(window)))
        return time.perf_counter() - started


async def run(which: str, batches: Any, bodies: Sequence[bytes], window: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        server, secrets = start_engine(Path(tmp) / "journeys.db", "--http-port", "0")
        try:
            match = _HTTP.search("".join(server.output))
            assert match is not None, server.output
            async with JourneysClient(server.target, timeout=600, token=secrets.admin) as client:
                await set_up(client)
            if which == "grpc":
                return await stream_batches(server.target, batches, window, secrets.ingest)
            return await post_bodies(match.group(1), bodies, window, secrets.ingest)
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    stream = segment_messages(args.users, args.messages, seed=5)
    batches = build_batches(stream, args.batch)
    bodies = http_bodies(stream, args.batch)
    print(describe(), flush=True)
    rates: dict[str, list[float]] = {"grpc": [], "http": []}
    for repeat in range(args.repeats):
        order = ("grpc", "http") if repeat % 2 == 0 else ("http", "grpc")
        for which in order:
            rates[which].append(len(stream) / asyncio.run(run(which, batches, bodies, args.window)))
        print(
            f"  run {repeat + 1}: IngestStream {rates['grpc'][-1]:,.0f} events/s, "
            f"/v1/batch {rates['http'][-1]:,.0f} events/s",
            flush=True,
        )
    g, g_lo, g_hi = median_range(rates["grpc"])
    h, h_lo, h_hi = median_range(rates["http"])
    print(
        f"{len(stream):,} messages over {args.users:,} users, batches of {args.batch}, "
        f"window {args.window}, 5 examples published, manual clock; {args.repeats} runs"
    )
    print(f"gRPC IngestStream, first write -> last ack: {g:8,.0f} events/s "
          f"(min {g_lo:,.0f}, max {g_hi:,.0f})")  # fmt: skip
    print(f"HTTP /v1/batch, first write -> last 200:    {h:8,.0f} events/s "
          f"(min {h_lo:,.0f}, max {h_hi:,.0f})")  # fmt: skip
    print(f"ratio HTTP / gRPC:                          {h / g:8.3f}")


if __name__ == "__main__":
    main()
