"""``journeys.v1.SubscriptionService``: destination calls streamed to named consumers."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import grpc
from journeys.v1 import subscription_pb2 as pb
from journeys.v1 import subscription_pb2_grpc

from journeys_engine import Engine, InvalidArgumentError
from journeys_engine.ids import id_problem
from journeys_engine.model import DefinitionKind
from journeys_engine.store.durable import OutboxRecord
from journeys_server.convert import fill_call
from journeys_server.errors import handle_errors, handle_write_errors

__all__ = ["SubscriptionServicer"]

Context = grpc.aio.ServicerContext[Any, Any]
_PAGE = 256
MAX_BATCH = 1_000  # calls per response, at most
_CALL_OVERHEAD = 64  # bytes of a call beyond its text: numbers, its timestamp, tags, lengths


class SubscriptionServicer(subscription_pb2_grpc.SubscriptionServiceServicer):
    """Subscriptions over gRPC.

    Args:
        engine: The engine.
        stall_seconds: A consumer that takes longer than this to take one call
            is disconnected (it resumes from its cursor).
        closing: Set when the server stops: every subscription ends with
            UNAVAILABLE, and its consumer resumes from its cursor elsewhere or later.
        batch_bytes: A response of a batched subscription is sent once its calls
            reach this size, whatever ``max_batch`` allows (a quarter of the
            largest message the server sends, so that one more call still fits).

    Attributes:
        connected: Subscriptions open now, by (space, destination, consumer)
            (read by the metrics).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        stall_seconds: float = 10.0,
        closing: asyncio.Event | None = None,
        batch_bytes: int = 1024 * 1024,
    ) -> None:
        self._engine = engine
        self._batch_bytes = batch_bytes
        self._stall = stall_seconds
        self._closing = closing or asyncio.Event()
        self.connected: Counter[tuple[str, str, str]] = Counter()

    async def _check(self, space_id: str, destination_id: str, consumer: str | None) -> None:
        await self._engine.definitions.get(space_id, DefinitionKind.DESTINATION, destination_id)
        if consumer is not None:
            problem = id_problem(consumer)
            if problem is not None:
                raise InvalidArgumentError.single("consumer", problem)

    @handle_write_errors
    async def Subscribe(  # type: ignore[override]
        self, request: pb.SubscribeRequest, context: Context
    ) -> None:
        # Written with context.write rather than yielded, so that a write that
        # does not complete in time (a stalled consumer) can be noticed.
        space, destination = request.space_id, request.destination_id
        await self._check(space, destination, request.consumer)
        store = self._engine.store
        if request.HasField("after_sequence"):
            if request.after_sequence < 0:
                raise InvalidArgumentError.single("after_sequence", "must not be negative")
            after = request.after_sequence
        else:
            after = await store.cursor(space, destination, request.consumer)
        if not 0 <= request.max_batch <= MAX_BATCH:
            raise InvalidArgumentError.single(
                "max_batch", f"must be between 0 and {MAX_BATCH:,} calls per response"
            )
        # Headers now, so a client waiting for the connection knows it is subscribed.
        await context.send_initial_metadata(())
        key = (space, destination, request.consumer)
        self.connected[key] += 1
        try:
            await self._stream(context, space, destination, after, max(1, request.max_batch))
        finally:
            self.connected[key] -= 1
            if self.connected[key] <= 0:
                del self.connected[key]

    async def _stream(
        self, context: Context, space: str, destination: str, after: int, batch: int
    ) -> None:
        """Sends the destination's calls after ``after``, then new ones as they come;
        with ``batch`` > 1, the calls ready at once go up to ``batch`` a response (and
        to about ``batch_bytes``)."""
        store = self._engine.store
        page = batch * max(1, _PAGE // batch)  # (whole batches a page)
        while True:
            if self._closing.is_set():
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    "the server is stopping; resubscribe to resume from the cursor",
                )
            records = await store.read(space, destination, after, page)
            # Calls the retention dropped (before the subscription began, or while
            # it was reading) are named, never skipped silently.
            dropped_through = records[0].sequence - 1 if records else None
            if not records and store.last_sequence(space, destination) > after:
                dropped_through = store.last_sequence(space, destination)
            if dropped_through is not None and dropped_through > after:
                await self._write(context, pb.SubscribeResponse(gap=_gap(after, dropped_through)))
                after = dropped_through
            if not records:
                await self._wait(space, destination, after)
                continue
            if batch == 1:
                for record in records:
                    single = pb.SubscribeResponse()
                    fill_call(single.call, record)
                    await self._write(context, single)
                    after = record.sequence
                continue
            # ``bound`` is at least the response's size: a character is at most four
            # bytes of UTF-8. The exact size is taken only once the bound reaches
            # the budget (a few times a response at most, none for most).
            response = pb.SubscribeResponse()
            calls = response.calls.calls
            bound = 0
            for record in records:
                fill_call(calls.add(), record)
                bound += 4 * _characters(record) + _CALL_OVERHEAD
                if bound >= self._batch_bytes:
                    bound = response.ByteSize()
                if len(calls) >= batch or bound >= self._batch_bytes:
                    await self._write(context, response)
                    after = record.sequence
                    response = pb.SubscribeResponse()
                    calls = response.calls.calls
                    bound = 0
            if calls:
                await self._write(context, response)
                after = records[-1].sequence

    async def _wait(self, space: str, destination: str, after: int) -> None:
        """Returns once there is a call after ``after``, or the server is stopping."""
        more = asyncio.ensure_future(self._engine.store.wait(space, destination, after))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((more, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            more.cancel()
            closing.cancel()

    async def _write(self, context: Context, response: pb.SubscribeResponse) -> None:
        try:
            await asyncio.wait_for(context.write(response), timeout=self._stall)
        except TimeoutError:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the consumer took more than {self._stall:g} s to take a call; "
                "resubscribe to resume from its cursor",
            )

    @handle_errors
    async def Ack(self, request: pb.AckRequest, context: Context) -> pb.AckResponse:
        await self._check(request.space_id, request.destination_id, request.consumer)
        acked = await self._engine.store.ack(
            request.space_id, request.destination_id, request.consumer, request.sequence
        )
        return pb.AckResponse(acked_sequence=acked)

    @handle_errors
    async def ListMembers(
        self, request: pb.ListMembersRequest, context: Context
    ) -> pb.ListMembersResponse:
        page = await self._engine.reporting.step_users(
            request.space_id,
            request.journey_id,
            request.step_id,
            send_only=True,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListMembersResponse(
            members=[
                pb.Member(
                    profile_key=m.profile_key,
                    user_id=m.user_id or "",
                    anonymous_id=m.anonymous_id or "",
                    run=m.run,
                )
                for m in page.items
            ],
            next_page_token=page.next_page_token,
        )


def _characters(record: OutboxRecord) -> int:
    """The characters of a call's text fields."""
    return (
        len(record.payload)
        + len(record.message_id)
        + len(record.journey_id)
        + len(record.step_id)
        + len(record.profile_key)
        + len(record.change.value)
    )


def _gap(after: int, through: int) -> pb.Gap:
    return pb.Gap(
        first_sequence=after + 1,
        last_sequence=through,
        reason=(
            "no longer stored: dropped by the outbox retention, or deleted once every "
            "consumer of the destination had acknowledged them"
        ),
    )
