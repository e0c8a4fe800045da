"""The gRPC server: services, health, reflection, start and two-phase stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field

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
    reporting_pb2,
    reporting_pb2_grpc,
    simulation_pb2,
    simulation_pb2_grpc,
    space_pb2,
    space_pb2_grpc,
    subscription_pb2,
    subscription_pb2_grpc,
)

from journeys_engine import Clock, Engine, EngineSettings, StorageError
from journeys_engine.model import Limits
from journeys_server.interceptor import AllowAll, AuthorizationInterceptor, Authorizer
from journeys_server.services.backup import BackupServicer
from journeys_server.services.clock import ClockServicer
from journeys_server.services.definitions import DefinitionServicer
from journeys_server.services.ingest import IngestServicer
from journeys_server.services.journeys import JourneyServicer
from journeys_server.services.operations import OperationServicer
from journeys_server.services.reporting import ReportingServicer
from journeys_server.services.simulation import SimulationServicer
from journeys_server.services.spaces import SpaceServicer
from journeys_server.services.subscriptions import SubscriptionServicer

__all__ = ["SERVICE_NAMES", "JourneysServer", "ServerSettings", "run"]

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
)


_ENGINE = EngineSettings()  # the engine's defaults


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
        insecure_no_auth: Admit every call without a token (local trials only).
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
    insecure_no_auth: bool = False


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

    @classmethod
    async def start(
        cls,
        settings: ServerSettings,
        *,
        clock: Clock | None = None,
        authorizer: Authorizer | None = None,
    ) -> JourneysServer:
        """Opens the engine, binds the port and starts serving.

        Raises:
            StorageError: the database cannot be used.
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
            ),
            clock=clock,
        )
        async with contextlib.AsyncExitStack() as on_failure:
            on_failure.push_async_callback(engine.close)
            server = grpc.aio.server(
                interceptors=[AuthorizationInterceptor(authorizer or AllowAll())],
                # A second server on a busy port must fail, not share it silently.
                options=[("grpc.so_reuseport", 0)],
            )
            space_pb2_grpc.add_SpaceServiceServicer_to_server(SpaceServicer(engine), server)
            journey_pb2_grpc.add_JourneyServiceServicer_to_server(JourneyServicer(engine), server)
            definition_pb2_grpc.add_DefinitionServiceServicer_to_server(
                DefinitionServicer(engine), server
            )
            ingest_pb2_grpc.add_IngestServiceServicer_to_server(IngestServicer(engine), server)
            closing = asyncio.Event()  # set on stop: subscriptions end, so the stop is prompt
            subscription_pb2_grpc.add_SubscriptionServiceServicer_to_server(
                SubscriptionServicer(
                    engine, stall_seconds=settings.subscriber_stall_seconds, closing=closing
                ),
                server,
            )
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
            health_servicer = health.aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
            reflection.enable_server_reflection(
                (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
            )
            address = f"{settings.host}:{settings.port}"
            try:
                port = server.add_insecure_port(address)
            except RuntimeError as err:
                raise OSError(f"cannot listen on {address}: {err}") from err
            # Not serving until what was logged before the start is applied again.
            for name in ("", *SERVICE_NAMES):
                await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            await server.start()
            on_failure.push_async_callback(server.stop, None)
            on_failure.pop_all()
        started = cls(engine, server, port, settings, closing)
        started._health = health_servicer
        started._serving = asyncio.get_running_loop().create_task(started._serve_when_ready())
        return started

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
        if self._serving is not None:
            self._serving.cancel()
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        try:
            await self._server.stop(self.settings.grace_seconds if grace is None else grace)
        finally:
            await self.engine.close()
            self._stopped.set()

    async def __aenter__(self) -> JourneysServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


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
            clock = "manual clock" if settings.manual_clock else "system clock"
            print(
                f"journeys server listening on {settings.host}:{server.port} "
                f"(database {settings.db_path}, {clock})",
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
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
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
