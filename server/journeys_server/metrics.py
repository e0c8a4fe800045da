"""Prometheus metrics of one server, served at ``/metrics`` on a port of their own.

Two kinds of series:

- measured as things happen, cheaply (one update per ingest batch, per call,
  per committed unit, per fired wake-up; never per message): ingest counts and
  batch sizes, ack latency, call outcomes, snapshot flush time, timer lag. The
  engine reports its part through :class:`journeys_engine.observe.EngineObserver`,
  which :class:`ServerMetrics` implements;
- read from the engine's state when scraped (nothing on the hot path): resident
  profiles, shard queue depths, pending wake-ups, outbox backlog per consumer,
  subscribers connected.

Each server has its own registry (several servers in one process do not
clash), and :class:`MetricsEndpoint` serves it over HTTP on the server's own
event loop: a scrape reads engine state on the loop's thread, between two of
the engine's steps, never concurrently with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from journeys_engine import Engine

__all__ = ["CONTENT_TYPE", "MetricsEndpoint", "ServerMetrics"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the Prometheus text format

_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_OUTCOMES = ("accepted", "duplicate", "refused")

Consumers = Tally[tuple[str, str, str]]
"""Subscriptions open now, by (space, destination, consumer)."""


class ServerMetrics:
    """The series of one server, in a registry of its own.

    Attributes:
        registry: What ``/metrics`` exposes.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._messages = Counter(
            "journeys_ingest_messages",
            "Ingested messages by outcome: accepted (logged), duplicate, refused.",
            ["outcome"],
            registry=registry,
        )
        self._accepted, self._duplicates, self._refused = (
            self._messages.labels(outcome) for outcome in _OUTCOMES
        )
        self._batches = Histogram(
            "journeys_ingest_batch_messages",
            "Messages per ingest batch (unary calls and stream batches).",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self._ack = Histogram(
            "journeys_ingest_ack_seconds",
            "From receiving an ingest batch to its ack (logged and queued), waiting included.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._flush = Histogram(
            "journeys_snapshot_flush_seconds",
            "Time to commit one unit of applied work: snapshots, counts, outbox, log floor.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._lag = Histogram(
            "journeys_timer_fire_lag_seconds",
            "How late each wake-up fired after its due instant (engine clock).",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self._calls = Counter(
            "journeys_calls", "gRPC calls ended, by method and status code.", ["method", "code"],
            registry=registry,
        )  # fmt: skip
        self._state: _StateCollector | None = None

    def watch(self, engine: Engine, consumers: Consumers) -> None:
        """Exposes the engine's state, and the subscriptions open, read at each scrape."""
        self._state = _StateCollector(engine, consumers)
        self.registry.register(self._state)

    async def scrape(self) -> bytes:
        """The exposition text now (reads the consumers' cursors first)."""
        if self._state is not None:
            await self._state.refresh()
        return generate_latest(self.registry)

    # Measured as it happens

    def ingested(
        self, messages: int, accepted: int, duplicates: int, refused: int, seconds: float
    ) -> None:
        """An ingest batch was acknowledged ``seconds`` after it was received."""
        self._accepted.inc(accepted)
        self._duplicates.inc(duplicates)
        self._refused.inc(refused)
        self._batches.observe(messages)
        self._ack.observe(seconds)

    def call_ended(self, method: str, code: str) -> None:
        """A gRPC call ended with ``code`` (a ``grpc.StatusCode`` name)."""
        self._calls.labels(method, code).inc()

    def committed(self, seconds: float, actors: int) -> None:
        """(:class:`~journeys_engine.observe.EngineObserver`) a unit was committed."""
        self._flush.observe(seconds)

    def timers_fired(self, lags_ms: Sequence[int]) -> None:
        """(:class:`~journeys_engine.observe.EngineObserver`) wake-ups fired."""
        observe = self._lag.observe
        for lag in lags_ms:
            observe(lag / 1000)


class _StateCollector:
    """Gauges read from the engine when scraped (a custom Prometheus collector)."""

    def __init__(self, engine: Engine, consumers: Consumers) -> None:
        self._engine = engine
        self._consumers = consumers
        self._cursors: list[tuple[str, str, str, int]] = []
        # Destinations subscribed to since the start: they show 0 once nobody is.
        self._subscribed: set[tuple[str, str]] = set()

    async def refresh(self) -> None:
        """Reads the consumers' cursors (the one part that needs the database)."""
        self._cursors = await self._engine.store.cursors()

    def collect(self) -> Iterable[Metric]:
        engine = self._engine
        runtime = engine.runtime
        yield GaugeMetricFamily(
            "journeys_actors_resident",
            "Profiles in memory (the others are in their snapshots).",
            value=sum(len(space.actors) for space in runtime.spaces.values()),
        )
        shards = GaugeMetricFamily(
            "journeys_shard_queue_batches", "Batches queued in each shard.", labels=["shard"]
        )
        for stats in engine.router.stats():
            shards.add_metric([str(stats.shard)], stats.queued)
        yield shards
        yield GaugeMetricFamily(
            "journeys_timers_pending",
            "Wake-ups pending in the in-memory timer wheel (due within the horizon; "
            "later ones wait in the database).",
            value=len(runtime.wheel),
        )
        store = engine.store
        acked = {(space, dest, consumer): seq for space, dest, consumer, seq in self._cursors}
        for key, open_now in self._consumers.items():
            if open_now > 0:
                acked.setdefault(key, 0)  # subscribed, never acknowledged
        backlog = GaugeMetricFamily(
            "journeys_outbox_backlog_calls",
            "Destination calls a consumer has not acknowledged yet.",
            labels=["space", "destination", "consumer"],
        )
        for (space, dest, consumer), seq in sorted(acked.items()):
            backlog.add_metric(
                [space, dest, consumer], max(0, store.last_sequence(space, dest) - seq)
            )
        yield backlog
        connected: Tally[tuple[str, str]] = Tally()
        for (space, dest, _), open_now in self._consumers.items():
            connected[space, dest] += open_now
        self._subscribed.update(connected)
        for pair in self._subscribed:
            connected.setdefault(pair, 0)
        subscribers = GaugeMetricFamily(
            "journeys_subscribers_connected",
            "Subscriptions open now, by destination.",
            labels=["space", "destination"],
        )
        for (space, dest), count in sorted(connected.items()):
            subscribers.add_metric([space, dest], count)
        yield subscribers


class MetricsEndpoint:
    """A minimal HTTP server for ``GET /metrics`` on the running event loop.

    Start with :meth:`start`; :meth:`close` is idempotent.
    """

    _READ_SECONDS = 10.0  # a client that sends no full request head by then is dropped

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listens on ``host:port`` (0: a free port, the same on every address of
        ``host``); returns the port.

        Raises:
            OSError: the address cannot be bound.
        """
        loop = asyncio.get_running_loop()
        if port == 0:
            # One address: with port 0 each address of a name would get its own port.
            infos = await loop.getaddrinfo(
                host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            if not infos:
                raise OSError(f"cannot resolve {host!r}")
            host = str(infos[0][4][0])
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._respond(reader, writer)
        except (
            OSError, ValueError, TimeoutError, asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):  # fmt: skip
            pass  # a client gone, or not speaking HTTP: nothing to answer
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self._READ_SECONDS):
            head = await reader.readuntil(b"\r\n\r\n")  # (bounded by the reader's limit)
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        path = target.split("?", 1)[0]
        if path != "/metrics":
            status, body, kind = "404 Not Found", b"try /metrics\n", "text/plain"
        elif method not in ("GET", "HEAD"):
            status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain"
        else:
            try:
                status, body, kind = "200 OK", await self._metrics.scrape(), CONTENT_TYPE
            except Exception:
                log.exception("collecting the metrics failed")
                status, body, kind = (
                    "500 Internal Server Error",
                    b"see the server log\n",
                    "text/plain",
                )
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode("latin-1")
        )
        if method != "HEAD":
            writer.write(body)
        await writer.drain()

    async def close(self) -> None:
        """Stops listening and ends the scrapes in progress."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
