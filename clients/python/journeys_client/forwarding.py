"""Forwarding a destination's calls to an HTTP endpoint (a Segment-style webhook).

A :class:`Forwarder` subscribes to a destination as a named consumer and POSTs each
call's payload, the Segment-spec JSON, to one URL:

- **In order per user.** Calls for one profile are POSTed one after another, in
  sequence order; calls for different profiles go concurrently, at most ``window``
  in flight in all. While the window is full the subscription is not read further.
- **Retried until a 2xx.** A connection error, a timeout or any non-2xx answer is
  tried again after a capped exponential backoff with jitter (:class:`RetryPolicy`),
  or after the ``Retry-After`` a 429 or 503 asks for. After ``max_attempts`` the
  forwarder stops with :class:`DeliveryFailedError`, that call unacknowledged.
- **Acknowledged only once delivered.** Acks are cumulative, so the consumer's
  cursor moves to the end of the longest run of calls that all got a 2xx, batched
  (every ``ack_every`` calls or ``ack_interval`` seconds). A stop (or a crash)
  sends again, on the next start, whatever was not acknowledged: delivery is at
  least once, and ``X-Journeys-Message-Id`` lets the receiver drop repeats.

Exceptions::

    JourneysClientError
    └── DeliveryFailedError   a call got no 2xx in max_attempts (sequence, message_id,
                              attempts, status, reason)
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import httpx
from journeys.v1 import subscription_pb2

from journeys_client.client import JourneysClient
from journeys_client.errors import DeadlineExceededError, JourneysClientError, UnavailableError

__all__ = [
    "DeliveryFailedError",
    "ForwardStats",
    "Forwarder",
    "RetryPolicy",
    "forward",
]

logger = logging.getLogger("journeys_client.forwarding")

Sleep = Callable[[float], Awaitable[None]]

_FINAL_ACK_TRIES = 5  # half a second apart, when the server is restarting


def _user_agent() -> str:
    try:
        version = metadata.version("journeys-engine")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"journeys-forward/{version}"


class DeliveryFailedError(JourneysClientError):
    """A call got no 2xx answer in the attempts allowed; it was not acknowledged."""

    def __init__(
        self,
        *,
        sequence: int,
        message_id: str,
        attempts: int,
        status: int | None,
        reason: str,
    ) -> None:
        super().__init__(
            None,
            f"call {sequence} (message {message_id}) was not delivered after "
            f"{attempts} attempt{'s' if attempts != 1 else ''}: {reason}; "
            f"it is not acknowledged and comes again on the next start",
        )
        self.sequence = sequence
        self.message_id = message_id
        self.attempts = attempts
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How failed POSTs are tried again.

    Attempt ``n`` (from 1) that fails waits ``initial * factor ** (n - 1)`` seconds,
    at most ``maximum``, each spread by up to ``jitter`` of itself either way; a
    ``Retry-After`` on a 429 or 503 is waited instead when longer (at most
    ``max_retry_after``).

    Args:
        initial: The first wait, in seconds.
        factor: What each wait is multiplied by.
        maximum: The longest wait from the backoff.
        jitter: The fraction each wait is spread by, 0 to 1.
        max_attempts: Attempts per call before the forwarder gives up and stops
            (None: never give up).
        max_retry_after: The longest ``Retry-After`` honoured, in seconds.
    """

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2
    max_attempts: int | None = 10
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if not (self.initial >= 0 and self.factor >= 1 and self.maximum >= self.initial):
            raise ValueError("the backoff needs initial >= 0, factor >= 1, maximum >= initial")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None: unlimited)")

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt ``attempt`` (from 1)."""
        exponent = min(attempt - 1, 64)  # past the cap long before; keeps the power finite
        base = min(self.maximum, self.initial * self.factor**exponent)
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        wait = min(self.maximum, base * (1 + spread))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


@dataclass(frozen=True, slots=True)
class ForwardStats:
    """What a forwarder did: calls delivered, failed attempts, calls skipped as a gap,
    calls read but not delivered when it stopped, and the consumer's last ack."""

    delivered: int
    failed_attempts: int
    gap_calls: int
    abandoned: int
    acked: int


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


async def _first(*aws: Coroutine[Any, Any, Any], within: float | None = None) -> None:
    """Waits until one of ``aws`` is done (or ``within`` seconds pass), then cancels the
    others."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        await asyncio.wait(tasks, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Forwarder:
    """POSTs a destination's calls to a URL until stopped; see the module docstring.

    Args:
        client: The journeys client to subscribe and acknowledge with.
        destination_id: The destination whose calls are forwarded.
        consumer: The subscription's consumer name (its cursor is the progress).
        url: The ``http`` or ``https`` URL each call is POSTed to.
        headers: Extra request headers (authorization, say).
        window: Calls in flight at once, across users.
        timeout: Seconds one POST may take before it counts as failed.
        retry: The backoff and the attempts allowed.
        idle: Stop once no call has come for this many seconds and every call
            read is delivered (None: run until :meth:`stop`).
        grace: Seconds a stop waits for calls in flight to be delivered.
        ack_interval: Seconds between acks at most, while calls are delivered.
        ack_every: Acknowledge at once when this many calls are ready to be.
        reconnects: Attempts to subscribe again after the server goes away
            (a restart), a few seconds apart, before giving up.
        http: An ``httpx.AsyncClient`` to post with (the forwarder's own
            otherwise); its transport is how tests stand in for a receiver.
        sleep: What waits out a backoff (``asyncio.sleep``; tests pass a fake).
        rng: The jitter's random source.
    """

    def __init__(
        self,
        client: JourneysClient,
        destination_id: str,
        consumer: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        window: int = 16,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        idle: float | None = None,
        grace: float = 10.0,
        ack_interval: float = 0.2,
        ack_every: int = 100,
        reconnects: int = 60,
        http: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if window < 1:
            raise ValueError("window must be at least 1")
        if not timeout > 0 or (idle is not None and not idle > 0):
            raise ValueError("timeout and idle must be more than zero seconds")
        self._client = client
        self._destination = destination_id
        self._consumer = consumer
        self._url = parsed
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": _user_agent(),
            **(headers or {}),
        }
        self._window_size = window
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._idle = idle
        self._grace = grace
        self._ack_interval = ack_interval
        self._ack_every = ack_every
        self._reconnects = reconnects
        self._http = http
        self._sleep = sleep
        self._rng = rng or random.Random()

        self._window = asyncio.Semaphore(window)
        self._queues: dict[str, deque[subscription_pb2.DestinationCall]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._no_workers = asyncio.Event()
        self._no_workers.set()
        # Sequences read and not yet delivered, in the order read (increasing), so the
        # first is the lowest: every sequence before it is delivered or a gap.
        self._pending: dict[int, None] = {}
        self._read_upto = 0
        self._acked = 0
        self._progress = asyncio.Event()  # more is acknowledgeable than is acknowledged
        self._batch_full = asyncio.Event()  # ack_every calls are
        self._stopping = asyncio.Event()
        self._abort = asyncio.Event()
        self._failure: Exception | None = None
        self._started = False
        self._delivered = 0
        self._failed_attempts = 0
        self._gap_calls = 0

    # Control

    def stop(self) -> None:
        """Stops taking calls, letting those in flight finish for ``grace`` seconds;
        a second stop abandons them at once. Either way, only delivered calls are
        acknowledged."""
        if self._stopping.is_set():
            self._abort.set()
        self._stopping.set()

    @property
    def stats(self) -> ForwardStats:
        """What the forwarder has done so far."""
        return ForwardStats(
            delivered=self._delivered,
            failed_attempts=self._failed_attempts,
            gap_calls=self._gap_calls,
            abandoned=len(self._pending),
            acked=self._acked,
        )

    async def run(self) -> ForwardStats:
        """Forwards until stopped, idle, or a call cannot be delivered.

        Raises:
            DeliveryFailedError: A call got no 2xx in ``max_attempts``.
            JourneysClientError: The subscription or an ack failed (the destination
                does not exist, the token may not subscribe, the server stayed away).
        """
        if self._started:
            raise RuntimeError("a Forwarder runs once")
        self._started = True
        async with contextlib.AsyncExitStack() as stack:
            http = self._http
            if http is None:
                http = await stack.enter_async_context(
                    httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
                )
            acker = asyncio.create_task(self._ack_loop())
            reader = asyncio.create_task(self._read(http))
            try:
                await self._run_phases(reader)
            finally:
                for task in (reader, *self._workers.values()):
                    task.cancel()
                await asyncio.gather(reader, *self._workers.values(), return_exceptions=True)
                acker.cancel()
                await asyncio.gather(acker, return_exceptions=True)
                await self._final_ack()
        if self._failure is not None:
            raise self._failure
        stats = self.stats
        logger.info(
            "stopped: %d delivered, %d failed attempts, %d calls in gaps, %d abandoned, "
            "acknowledged up to %d",
            stats.delivered,
            stats.failed_attempts,
            stats.gap_calls,
            stats.abandoned,
            stats.acked,
        )
        return stats

    async def _run_phases(self, reader: asyncio.Task[None]) -> None:
        # Intake: until idle, a stop, or a failure.
        await _first(asyncio.wait({reader}), self._stopping.wait(), self._abort.wait())
        if reader.done():
            reader.result()  # the subscription's error, if it failed
        else:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        # Drain: what was read goes on being delivered, with its retries.
        if not self._stopping.is_set():
            await _first(self._no_workers.wait(), self._stopping.wait(), self._abort.wait())
        if self._stopping.is_set() and not self._abort.is_set():
            await _first(self._no_workers.wait(), self._abort.wait(), within=self._grace)

    def _fail(self, err: Exception) -> None:
        if self._failure is None:
            self._failure = err
        self._abort.set()

    # Reading

    async def _read(self, http: httpx.AsyncClient) -> None:
        stream = self._client.follow(
            self._destination, self._consumer, after=None, retries=self._reconnects
        )
        try:
            while True:
                await self._window.acquire()
                try:
                    item = await asyncio.wait_for(anext(stream), self._idle)
                except (StopAsyncIteration, TimeoutError):
                    self._window.release()
                    return
                if item.HasField("gap"):
                    self._window.release()
                    self._gap(item.gap)
                else:
                    self._take(item.call, http)
        finally:
            await stream.aclose()

    def _gap(self, gap: subscription_pb2.Gap) -> None:
        count = gap.last_sequence - gap.first_sequence + 1
        self._gap_calls += count
        logger.warning(
            "calls %d-%d of %s are gone (%s): skipped",
            gap.first_sequence,
            gap.last_sequence,
            self._destination,
            gap.reason,
        )
        self._read_upto = max(self._read_upto, gap.last_sequence)
        self._advanced()

    def _take(self, call: subscription_pb2.DestinationCall, http: httpx.AsyncClient) -> None:
        self._pending[call.sequence] = None
        self._read_upto = max(self._read_upto, call.sequence)
        queue = self._queues.get(call.profile_key)
        if queue is not None:  # its worker is still on an earlier call of this user
            queue.append(call)
            return
        self._queues[call.profile_key] = deque([call])
        self._no_workers.clear()
        worker = asyncio.create_task(self._work(call.profile_key, http))
        self._workers[call.profile_key] = worker

    # Delivering

    async def _work(self, key: str, http: httpx.AsyncClient) -> None:
        queue = self._queues[key]
        try:
            while queue:
                call = queue[0]
                await self._deliver(call, http)
                queue.popleft()
                del self._pending[call.sequence]
                self._delivered += 1
                self._window.release()
                self._advanced()
        except Exception as err:  # noqa: BLE001 - run() raises it, after the final ack
            self._fail(err)
        finally:
            # No await since the loop's last check: nothing was queued for this user.
            del self._queues[key]
            del self._workers[key]
            if not self._workers:
                self._no_workers.set()

    async def _deliver(
        self, call: subscription_pb2.DestinationCall, http: httpx.AsyncClient
    ) -> None:
        attempt = 0
        while True:
            attempt += 1
            headers = {
                **self._headers,
                "X-Journeys-Destination": self._destination,
                "X-Journeys-Sequence": str(call.sequence),
                "X-Journeys-Message-Id": call.message_id,
                "X-Journeys-Attempt": str(attempt),
            }
            status: int | None = None
            retry_after: float | None = None
            try:
                response = await http.post(
                    self._url, content=call.payload.encode(), headers=headers, timeout=self._timeout
                )
            except httpx.TransportError as err:  # refused, reset, timed out
                reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            else:
                status = response.status_code
                if response.is_success:
                    logger.info(
                        "delivered %d (%s) for %s: HTTP %d",
                        call.sequence,
                        call.message_id,
                        call.profile_key,
                        status,
                    )
                    return
                reason = f"HTTP {status}"
                if status in (429, 503):
                    retry_after = _retry_after(response)
            self._failed_attempts += 1
            limit = self._retry.max_attempts
            if limit is not None and attempt >= limit:
                failed = DeliveryFailedError(
                    sequence=call.sequence,
                    message_id=call.message_id,
                    attempts=attempt,
                    status=status,
                    reason=reason,
                )
                logger.error("%s", failed)
                raise failed
            wait = self._retry.delay(attempt, retry_after, self._rng)
            logger.info(
                "attempt %d of %d (%s) failed: %s; again in %.2fs",
                attempt,
                call.sequence,
                call.message_id,
                reason,
                wait,
            )
            await self._sleep(wait)

    # Acknowledging

    def _ackable(self) -> int:
        """The highest sequence whose every call, and every call before, is delivered."""
        if self._pending:
            return next(iter(self._pending)) - 1
        return self._read_upto

    def _advanced(self) -> None:
        ready = self._ackable() - self._acked
        if ready > 0:
            self._progress.set()
        if ready >= self._ack_every:
            self._batch_full.set()

    async def _ack_loop(self) -> None:
        while True:
            await self._progress.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._ack_interval):
                    await self._batch_full.wait()
            self._progress.clear()
            self._batch_full.clear()
            try:
                await self._flush()
            except (UnavailableError, DeadlineExceededError) as err:
                logger.warning("acknowledging failed (%s); trying again", err.message)
                self._progress.set()
                await asyncio.sleep(self._ack_interval)
            except Exception as err:  # noqa: BLE001 - run() raises it
                self._fail(err)
                return

    async def _flush(self) -> None:
        target = self._ackable()
        if target > self._acked:
            await self._client.ack(self._destination, self._consumer, target)
            self._acked = max(self._acked, target)
            logger.debug("acknowledged up to %d", target)

    async def _final_ack(self) -> None:
        for attempt in range(_FINAL_ACK_TRIES):
            try:
                await self._flush()
                return
            except (UnavailableError, DeadlineExceededError) as err:
                if attempt == _FINAL_ACK_TRIES - 1:
                    logger.warning(
                        "could not acknowledge up to %d (%s): those calls will come again",
                        self._ackable(),
                        err.message,
                    )
                    return
                await asyncio.sleep(0.5)
            except JourneysClientError as err:
                logger.warning("could not acknowledge up to %d: %s", self._ackable(), err)
                return


async def forward(
    client: JourneysClient,
    destination_id: str,
    consumer: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    window: int = 16,
    timeout: float = 10.0,  # noqa: ASYNC109 - each POST's, not the whole run's
    retry: RetryPolicy | None = None,
    idle: float | None = None,
    grace: float = 10.0,
    http: httpx.AsyncClient | None = None,
    sleep: Sleep = asyncio.sleep,
) -> ForwardStats:
    """Forwards a destination's calls to ``url`` until idle, or a call fails for good.

    A shorthand for :meth:`Forwarder.run`; see :class:`Forwarder` for the arguments.
    """
    forwarder = Forwarder(
        client,
        destination_id,
        consumer,
        url,
        headers=headers,
        window=window,
        timeout=timeout,
        retry=retry,
        idle=idle,
        grace=grace,
        http=http,
        sleep=sleep,
    )
    return await forwarder.run()
