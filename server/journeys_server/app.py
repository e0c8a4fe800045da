"""The gRPC server: services, health, reflection, start and two-phase stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from journeys.v1 import (
    backup_pb2,
    backup_pb2_grpc,
    clock_pb2,
    clock_pb2_grpc,
    definition_pb2,
    definition_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    journey_pb2,
    journey_pb2_grpc,
    operation_pb2,
    operation_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    reporting_pb2,
    reporting_pb2_grpc,
    simulation_pb2,
    simulation_pb2_grpc,
    space_pb2,
    space_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
    token_pb2,
    token_pb2_grpc,
)

from journeys_engine import Clock, Engine, EngineSettings, StorageError
from journeys_engine.model import Limits
from journeys_engine.model.limits import MINUTE_MS
from journeys_server.access import TokenAuthorizer
from journeys_server.calls import CallInterceptor
from journeys_server.collector import tune_collector
from journeys_server.decoding import DecodingInterceptor
from journeys_server.http_ingest import HttpIngest
from journeys_server.interceptor import AllowAll, AuthorizationInterceptor, Authorizer
from journeys_server.logs import configure_logging
from journeys_server.metrics import MetricsEndpoint, ServerMetrics
from journeys_server.services.backup import BackupServicer
from journeys_server.services.clock import ClockServicer
from journeys_server.services.definitions import DefinitionServicer
from journeys_server.services.ingest import IngestServicer
from journeys_server.services.journeys import JourneyServicer
from journeys_server.services.operations import OperationServicer
from journeys_server.services.privacy import PrivacyServicer
from journeys_server.services.reporting import ReportingServicer
from journeys_server.services.simulation import SimulationServicer
from journeys_server.services.spaces import SpaceServicer
from journeys_server.services.subscriptions import SubscriptionServicer
from journeys_server.services.tokens import TokenServicer

__all__ = ["SERVICE_NAMES", "JourneysServer", "ServerSettings", "StartError", "run"]

log = logging.getLogger("journeys_server")

SERVICE_NAMES: tuple[str, ...] = (
    space_pb2.DESCRIPTOR.services_by_name["SpaceService"].full_name,
    journey_pb2.DESCRIPTOR.services_by_name["JourneyService"].full_name,
    definition_pb2.DESCRIPTOR.services_by_name["DefinitionService"].full_name,
    ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name,
    subscription_pb2.DESCRIPTOR.services_by_name["SubscriptionService"].full_name,
    reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"].full_name,
    clock_pb2.DESCRIPTOR.services_by_name["ClockService"].full_name,
    backup_pb2.DESCRIPTOR.services_by_name["BackupService"].full_name,
    simulation_pb2.DESCRIPTOR.services_by_name["SimulationService"].full_name,
    operation_pb2.DESCRIPTOR.services_by_name["OperationService"].full_name,
    privacy_pb2.DESCRIPTOR.services_by_name["PrivacyService"].full_name,
    token_pb2.DESCRIPTOR.services_by_name["TokenService"].full_name,
)


_ENGINE = EngineSettings()  # the engine's defaults
TOKEN_REFRESH_SECONDS = 5.0  # tokens another process created or revoked are seen this soon
KEEPALIVE_TIMEOUT_MS = 20_000  # an unanswered keepalive ping closes its connection this soon


class StartError(Exception):
    """The server cannot start as configured (the message says what to do)."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How the server runs.

    Attributes:
        db_path: The SQLite database file (created when missing).
        host: The interface to listen on.
        port: The port; 0 picks a free one.
        manual_clock: Run on a manual clock (tests, demos).
        fsync: Power-loss-safe commits.
        limits: Size and count limits.
        grace_seconds: How long a graceful stop waits for calls in flight.
        subscriber_stall_seconds: A subscriber that takes longer than this to
            take one call is disconnected (it resumes from its cursor).
        passivate_after_ms: A profile unused this long leaves memory (its
            snapshot brings it back when needed).
        timeline_retention_ms: How long profile timeline entries are kept.
        history_retention_ms: How long each space's event history (the logged
            messages) is kept for historical entry and preview.
        suppression_ms: How long a deleted profile's identifiers stay suppressed
            when its deletion asks for it (their messages refused).
        insecure_no_auth: Admit every call without a token (local trials only).
            Without it, a database with no access token refuses to start.
        max_streams_per_token: Streaming calls one token may have open at once.
        max_concurrent_calls: Calls of every kind the server runs at once (open
            streams included); gRPC refuses more with RESOURCE_EXHAUSTED.
        max_receive_message_bytes: The largest request message taken; larger
            ones are refused with RESOURCE_EXHAUSTED before they are decoded.
        max_send_message_bytes: The largest response message sent; a larger
            one fails its call with RESOURCE_EXHAUSTED.
        max_ingest_messages: Ingested messages (of unary calls and stream
            batches) taken in at once: decoded, checked, logged and queued.
        max_ingest_waiting: Messages of unary ``Ingest`` calls that may wait
            for a turn beyond those; a call that would pass it is refused with
            RESOURCE_EXHAUSTED and a retry delay. (A stream's next batch always
            waits: its sender is held back by flow control.)
        stream_window_bytes: How much of a call's request stream the server
            takes ahead of its reading (HTTP/2 flow control; no larger windows
            are probed for). A fast sender on a stream the server reads slowly
            waits once this much is in flight.
        max_connections: Client connections open at once; more are closed as
            they arrive.
        connection_idle_ms: A connection without a call for this long is
            closed (a client reconnects by itself when it next calls).
        keepalive_ms: The server pings a connection quiet this long, and
            closes it when the ping is not answered within 20 s: a client gone
            without closing (a crash, a lost network) frees its streams.
        tls_cert: A PEM certificate chain file: serve TLS instead of plaintext.
        tls_key: The PEM private key file of ``tls_cert``.
        tls_client_ca: A PEM file of the CA certificates that sign client
            certificates: clients must present one (mutual TLS).
        metrics_port: Serve Prometheus metrics at ``http://host:PORT/metrics``
            (0 picks a free port; None: no metrics, and no cost).
        http_port: Serve Segment-compatible HTTP ingestion (``POST /v1/track``,
            ``/v1/batch``…) on this port (0 picks a free port; None: off).
        log_format: ``text`` or ``json`` (one object per line), for :func:`run`.
    """

    db_path: str = "./journeys.db"
    host: str = "localhost"
    port: int = 50051
    manual_clock: bool = False
    fsync: bool = False
    limits: Limits = field(default_factory=Limits)
    grace_seconds: float = 5.0
    subscriber_stall_seconds: float = 10.0
    passivate_after_ms: int = _ENGINE.passivate_after_ms
    timeline_retention_ms: int = _ENGINE.timeline_retention_ms
    history_retention_ms: int = _ENGINE.history_retention_ms
    suppression_ms: int = _ENGINE.suppression_ms
    insecure_no_auth: bool = False
    max_streams_per_token: int = 100
    max_concurrent_calls: int = 1000
    max_receive_message_bytes: int = 4 * 1024 * 1024
    max_send_message_bytes: int = 4 * 1024 * 1024
    max_ingest_messages: int = 5_000
    max_ingest_waiting: int = 10_000
    stream_window_bytes: int = 256 * 1024
    max_connections: int = 1000
    connection_idle_ms: int = 5 * MINUTE_MS
    keepalive_ms: int = MINUTE_MS
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    metrics_port: int | None = None
    http_port: int | None = None
    log_format: str = "text"


class JourneysServer:
    """A running server: an engine behind a gRPC port.

    Start with :meth:`start`; stop with :meth:`stop` (idempotent) or ``async with``.
    """

    def __init__(
        self,
        engine: Engine,
        server: grpc.aio.Server,
        port: int,
        settings: ServerSettings,
        closing: asyncio.Event,
    ):
        self.engine = engine
        self.port = port
        self.settings = settings
        self._server = server
        self._closing = closing
        self._stopped = asyncio.Event()
        self._stopping = False
        self._health: health.aio.HealthServicer | None = None
        self._serving: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._metrics: MetricsEndpoint | None = None
        self.metrics_port: int | None = None  # where /metrics is served, when it is
        self._http: HttpIngest | None = None
        self.http_port: int | None = None  # where HTTP ingestion is served, when it is

    @classmethod
    async def start(
        cls,
        settings: ServerSettings,
        *,
        clock: Clock | None = None,
        authorizer: Authorizer | None = None,
    ) -> JourneysServer:
        """Opens the engine, binds the port and starts serving.

        Without ``authorizer``, calls are checked against the database's access
        tokens (or all admitted, with ``settings.insecure_no_auth``).

        Raises:
            StorageError: the database cannot be used.
            StartError: no access token exists (and auth is on), or the TLS
                files cannot be used.
            OSError: the address cannot be bound.
        """
        engine = await Engine.open(
            settings.db_path,
            settings=EngineSettings(
                limits=settings.limits,
                fsync=settings.fsync,
                manual_clock=settings.manual_clock,
                passivate_after_ms=settings.passivate_after_ms,
                timeline_retention_ms=settings.timeline_retention_ms,
                history_retention_ms=settings.history_retention_ms,
                suppression_ms=settings.suppression_ms,
            ),
            clock=clock,
        )
        async with contextlib.AsyncExitStack() as on_failure:
            on_failure.push_async_callback(engine.close)
            credentials = _tls_credentials(settings)
            metrics = None if settings.metrics_port is None else ServerMetrics()
            if authorizer is None:
                authorizer = _authorizer(settings, engine)
            server = grpc.aio.server(
                # Request ids outermost: what the others log carries the call's id.
                # Then authorization: a caller that may not call learns that before
                # whether its request decodes.
                interceptors=[
                    CallInterceptor(metrics),
                    AuthorizationInterceptor(authorizer),
                    DecodingInterceptor(),
                ],
                # Limits on load (docs/api.md, "Limits and overload"): calls beyond
                # this are refused with RESOURCE_EXHAUSTED before any handler runs.
                maximum_concurrent_rpcs=settings.max_concurrent_calls,
                options=[
                    # A second server on a busy port must fail, not share it silently.
                    ("grpc.so_reuseport", 0),
                    ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
                    ("grpc.max_send_message_length", settings.max_send_message_bytes),
                    # Windows probed larger (BDP) let each connection buffer megabytes
                    # the server has not asked for yet: keep them at a fixed size.
                    ("grpc.http2.bdp_probe", 0),
                    ("grpc.http2.lookahead_bytes", settings.stream_window_bytes),
                    ("grpc.max_allowed_incoming_connections", settings.max_connections),
                    ("grpc.max_connection_idle_ms", settings.connection_idle_ms),
                    ("grpc.keepalive_time_ms", settings.keepalive_ms),
                    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
                    # Keepalive pings go on over a quiet stream (a subscription waiting
                    # for calls): that is where a vanished client must be noticed.
                    ("grpc.http2.max_pings_without_data", 0),
                ],
            )
            space_pb2_grpc.add_SpaceServiceServicer_to_server(SpaceServicer(engine), server)
            journey_pb2_grpc.add_JourneyServiceServicer_to_server(JourneyServicer(engine), server)
            definition_pb2_grpc.add_DefinitionServiceServicer_to_server(
                DefinitionServicer(engine), server
            )
            ingest = IngestServicer(
                engine,
                max_messages=settings.max_ingest_messages,
                max_waiting=settings.max_ingest_waiting,
            )
            ingest.metrics = metrics
            ingest_pb2_grpc.add_IngestServiceServicer_to_server(ingest, server)
            closing = asyncio.Event()  # set on stop: subscriptions end, so the stop is prompt
            subscriptions = SubscriptionServicer(
                engine,
                stall_seconds=settings.subscriber_stall_seconds,
                closing=closing,
                batch_bytes=settings.max_send_message_bytes // 4,
            )
            subscription_pb2_grpc.add_SubscriptionServiceServicer_to_server(subscriptions, server)
            reporting_pb2_grpc.add_ReportingServiceServicer_to_server(
                ReportingServicer(engine), server
            )
            clock_pb2_grpc.add_ClockServiceServicer_to_server(ClockServicer(engine), server)
            backup_pb2_grpc.add_BackupServiceServicer_to_server(BackupServicer(engine), server)
            simulation_pb2_grpc.add_SimulationServiceServicer_to_server(
                SimulationServicer(engine), server
            )
            operation_pb2_grpc.add_OperationServiceServicer_to_server(
                OperationServicer(engine, closing=closing), server
            )
            privacy_pb2_grpc.add_PrivacyServiceServicer_to_server(PrivacyServicer(engine), server)
            token_pb2_grpc.add_TokenServiceServicer_to_server(TokenServicer(engine), server)
            health_servicer = health.aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
            reflection.enable_server_reflection(
                (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
            )
            address = f"{settings.host}:{settings.port}"
            try:
                if credentials is None:
                    port = server.add_insecure_port(address)
                else:
                    port = server.add_secure_port(address, credentials)
            except RuntimeError as err:
                raise OSError(f"cannot listen on {address}: {err}") from err
            endpoint = None
            if metrics is not None and settings.metrics_port is not None:
                engine.observer = metrics
                metrics.watch(engine, subscriptions.connected)
                endpoint = MetricsEndpoint(metrics)
                await endpoint.start(settings.host, settings.metrics_port)
                on_failure.push_async_callback(endpoint.close)
            http = None
            if settings.http_port is not None:
                http = HttpIngest(
                    engine,
                    ingest.admission,
                    insecure=settings.insecure_no_auth,
                    metrics=metrics,
                )
                await http.start(
                    settings.host, settings.http_port, grace_seconds=settings.grace_seconds
                )
                on_failure.push_async_callback(http.close)
            # Not serving until what was logged before the start is applied again.
            for name in ("", *SERVICE_NAMES):
                await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            await server.start()
            on_failure.push_async_callback(server.stop, None)
            on_failure.pop_all()
        started = cls(engine, server, port, settings, closing)
        started._health = health_servicer
        if endpoint is not None:
            started._metrics, started.metrics_port = endpoint, endpoint.port
        if http is not None:
            started._http, started.http_port = http, http.port
        loop = asyncio.get_running_loop()
        started._serving = loop.create_task(started._serve_when_ready())
        started._refreshing = loop.create_task(started._refresh_tokens())
        return started

    async def _refresh_tokens(self) -> None:
        """Sees tokens created or revoked by another process (``journeys token --db``)."""
        while True:
            await asyncio.sleep(TOKEN_REFRESH_SECONDS)
            try:
                await self.engine.tokens.refresh()
            except StorageError:
                log.exception("reading the access tokens failed; trying again")

    async def ready(self) -> None:
        """Returns once health reports SERVING (or the replay failed)."""
        if self._serving is not None:
            await asyncio.shield(self._serving)

    async def _serve_when_ready(self) -> None:
        try:
            await self.engine.ready()
        except Exception:
            log.exception("applying the log again after the start failed; not serving")
            return
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        if self._health is not None:
            for name in ("", *SERVICE_NAMES):
                await self._health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Stops taking calls, lets calls in flight finish, then closes the engine."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self._closing.set()
        for task in (self._serving, self._refreshing):
            if task is not None:
                task.cancel()
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        grace = self.settings.grace_seconds if grace is None else grace
        try:
            if self._http is not None:
                # Both intakes stop at once; each lets its requests in flight finish.
                await asyncio.gather(self._server.stop(grace), self._http.close())
            else:
                await self._server.stop(grace)
        finally:
            if self._metrics is not None:
                await self._metrics.close()  # (no scrape reads an engine closing)
            await self.engine.close()
            self._stopped.set()

    async def __aenter__(self) -> JourneysServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _authorizer(settings: ServerSettings, engine: Engine) -> Authorizer:
    if settings.insecure_no_auth:
        return AllowAll()  # (``journeys serve`` prints a warning)
    if engine.tokens.count == 0:
        raise StartError(
            f"no access token exists in {settings.db_path}, so no call could be admitted. "
            "Create the first one (it is printed once) with\n"
            f"  journeys token create --db {settings.db_path} --all-spaces --role admin\n"
            "or run with --insecure-no-auth to try the server locally without access control."
        )
    return TokenAuthorizer(engine.tokens, max_streams_per_token=settings.max_streams_per_token)


def _tls_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """The server's TLS credentials, or None to serve plaintext."""
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.tls_client_ca is not None:
            raise StartError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise StartError("--tls-cert and --tls-key go together")
    cert = _read_pem(settings.tls_cert, "--tls-cert", "CERTIFICATE")
    key = _read_pem(settings.tls_key, "--tls-key", "PRIVATE KEY")
    client_ca = None
    if settings.tls_client_ca is not None:
        client_ca = _read_pem(settings.tls_client_ca, "--tls-client-ca", "CERTIFICATE")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _read_pem(path: str, option: str, kind: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise StartError(f"{option} {path}: {err.strerror or err}") from err
    if b"-----BEGIN " not in data or kind.encode() not in data:
        raise StartError(f"{option} {path}: not a PEM file holding a {kind.lower()}")
    return data


async def _serve(settings: ServerSettings) -> None:
    # Signal handlers go in before anything starts, so that no signal is ever
    # handled by default: the first one stops gracefully, a second exits at once.
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()

    def on_signal() -> None:
        if stop_requested.is_set():
            log.warning("second signal: exiting now")
            os._exit(130)
        log.info("stopping: finishing calls in flight (signal again to exit at once)")
        stop_requested.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        server = await JourneysServer.start(settings)
        try:
            await server.ready()
            tune_collector()
            clock = "manual clock" if settings.manual_clock else "system clock"
            scheme = "TLS" if settings.tls_cert else "plaintext"
            if server.metrics_port is not None:  # (before the line starters wait for)
                print(
                    f"metrics at http://{settings.host}:{server.metrics_port}/metrics", flush=True
                )
            if server.http_port is not None:
                print(
                    f"HTTP ingestion (Segment API) at http://{settings.host}:{server.http_port}/v1/",
                    flush=True,
                )
            print(
                f"journeys server listening on {settings.host}:{server.port} "
                f"({scheme}, database {settings.db_path}, {clock})",
                flush=True,
            )
            if settings.insecure_no_auth:
                print(
                    "WARNING: access control is off (--insecure-no-auth): anyone who can "
                    f"reach {settings.host}:{server.port} can read and change every space.",
                    file=sys.stderr,
                    flush=True,
                )
            await stop_requested.wait()
        finally:
            await server.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("journeys server stopped", flush=True)


def run(settings: ServerSettings) -> int:
    """Runs a server until SIGINT or SIGTERM; returns the process exit code."""
    configure_logging(settings.log_format)
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(settings))
    except StorageError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    except StartError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
