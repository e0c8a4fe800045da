"""An asyncio client for the journeys.v1 API.

Example::

    async with JourneysClient("localhost:50051", space="default") as client:
        journey = await client.get_journey("cart-abandonment")
        await client.publish_journey(journey.id)

Every method raises a :class:`~journeys_client.errors.JourneysClientError`
subclass on failure, carrying the server's field-level details.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from journeys.v1 import (
    backup_pb2,
    backup_pb2_grpc,
    clock_pb2,
    clock_pb2_grpc,
    common_pb2,
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

from journeys_client.channels import open_channel
from journeys_client.errors import JourneysClientError, UnavailableError, from_rpc_error
from journeys_client.ingester import Ingester
from journeys_client.messages import segment_message
from journeys_client.sending import SendReport, send_messages

__all__ = ["DEFAULT_SERVER", "DEFAULT_SPACE", "JourneysClient"]

DEFAULT_SERVER = "localhost:50051"
DEFAULT_SPACE = "default"

T = TypeVar("T")


class JourneysClient:
    """A connection to a journeys server, scoped to one space by default.

    Args:
        target: ``host:port`` of the server.
        space: The space calls use unless they name another.
        timeout: Seconds each call may take.
        token: The access token sent with every call (``authorization: Bearer``).
        tls: Connect over TLS, trusting the system's CA certificates unless
            ``tls_ca`` names others. Implied by any other ``tls_`` argument.
        tls_ca: A PEM file of the CA certificates that sign the server's.
        tls_cert: A PEM client certificate chain file, for mutual TLS.
        tls_key: The PEM private key file of ``tls_cert``.
        channel: An existing channel to use instead of opening one (the token
            and TLS arguments then do not apply).
    """

    def __init__(
        self,
        target: str = DEFAULT_SERVER,
        *,
        space: str = DEFAULT_SPACE,
        timeout: float = 30.0,
        token: str | None = None,
        tls: bool = False,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.target = target
        self.space = space
        self.timeout = timeout
        self._channel = channel or open_channel(
            target, token=token, tls=tls, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key
        )
        self._spaces = space_pb2_grpc.SpaceServiceStub(self._channel)
        self._journeys = journey_pb2_grpc.JourneyServiceStub(self._channel)
        self._definitions = definition_pb2_grpc.DefinitionServiceStub(self._channel)
        self._ingest = ingest_pb2_grpc.IngestServiceStub(self._channel)
        self._subscriptions = subscription_pb2_grpc.SubscriptionServiceStub(self._channel)
        self._reporting = reporting_pb2_grpc.ReportingServiceStub(self._channel)
        self._clock = clock_pb2_grpc.ClockServiceStub(self._channel)
        self._backups = backup_pb2_grpc.BackupServiceStub(self._channel)
        self._operations = operation_pb2_grpc.OperationServiceStub(self._channel)
        self._privacy = privacy_pb2_grpc.PrivacyServiceStub(self._channel)
        self._tokens = token_pb2_grpc.TokenServiceStub(self._channel)

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()

    async def __aenter__(self) -> JourneysClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, rpc: Callable[..., Awaitable[T]], request: object) -> T:
        try:
            return await rpc(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None

    async def _all(
        self,
        fetch: Callable[[str], Awaitable[tuple[Sequence[T], str]]],
        limit: int | None = None,
    ) -> list[T]:
        """Every item of a paged list (the first ``limit`` when given)."""
        items: list[T] = []
        token = ""
        while limit is None or len(items) < limit:
            page, token = await fetch(token)
            items.extend(page)
            if not token:
                break
        return items if limit is None else items[:limit]

    def _space(self, space: str | None) -> str:
        return self.space if space is None else space

    # Spaces

    async def create_space(self, space_id: str, display_name: str = "") -> space_pb2.Space:
        """Creates a space."""
        request = space_pb2.CreateSpaceRequest(
            space=space_pb2.Space(id=space_id, display_name=display_name)
        )
        response = await self._call(self._spaces.CreateSpace, request)
        return response.space

    async def get_space(self, space_id: str | None = None) -> space_pb2.Space:
        """Reads a space (the client's by default)."""
        request = space_pb2.GetSpaceRequest(space_id=self._space(space_id))
        return (await self._call(self._spaces.GetSpace, request)).space

    async def list_spaces(self) -> list[space_pb2.Space]:
        """Every space, in creation order."""

        async def fetch(token: str) -> tuple[Sequence[space_pb2.Space], str]:
            request = space_pb2.ListSpacesRequest(page_token=token, page_size=1000)
            response = await self._call(self._spaces.ListSpaces, request)
            return response.spaces, response.next_page_token

        return await self._all(fetch)

    # Journeys

    async def create_journey(
        self,
        journey: journey_pb2.Journey,
        *,
        journey_id: str = "",
        validate_only: bool = False,
        space: str | None = None,
    ) -> journey_pb2.CreateJourneyResponse:
        """Creates a draft journey; the response carries it and any warnings."""
        request = journey_pb2.CreateJourneyRequest(
            space_id=self._space(space),
            journey=journey,
            journey_id=journey_id,
            validate_only=validate_only,
        )
        return await self._call(self._journeys.CreateJourney, request)

    async def get_journey(
        self, journey_id: str, *, space: str | None = None
    ) -> journey_pb2.Journey:
        """Reads one journey."""
        request = journey_pb2.GetJourneyRequest(space_id=self._space(space), journey_id=journey_id)
        return (await self._call(self._journeys.GetJourney, request)).journey

    async def list_journeys(
        self,
        *,
        status: journey_pb2.JourneyStatus.ValueType = journey_pb2.JOURNEY_STATUS_UNSPECIFIED,
        space: str | None = None,
    ) -> list[journey_pb2.Journey]:
        """Every journey of the space (of one status when given), in creation order."""

        async def fetch(token: str) -> tuple[Sequence[journey_pb2.Journey], str]:
            request = journey_pb2.ListJourneysRequest(
                space_id=self._space(space), page_token=token, page_size=1000, status=status
            )
            response = await self._call(self._journeys.ListJourneys, request)
            return response.journeys, response.next_page_token

        return await self._all(fetch)

    async def update_journey(
        self,
        journey: journey_pb2.Journey,
        *,
        update_mask: Sequence[str] = (),
        validate_only: bool = False,
        space: str | None = None,
    ) -> journey_pb2.UpdateJourneyResponse:
        """Replaces the masked fields (name, description, settings, steps; all when empty)."""
        request = journey_pb2.UpdateJourneyRequest(
            space_id=self._space(space),
            journey=journey,
            update_mask=FieldMask(paths=list(update_mask)),
            validate_only=validate_only,
        )
        return await self._call(self._journeys.UpdateJourney, request)

    async def delete_journey(self, journey_id: str, *, space: str | None = None) -> None:
        """Deletes a journey and its runs."""
        request = journey_pb2.DeleteJourneyRequest(
            space_id=self._space(space), journey_id=journey_id
        )
        await self._call(self._journeys.DeleteJourney, request)

    async def publish_journey(
        self, journey_id: str, *, space: str | None = None
    ) -> journey_pb2.PublishJourneyResponse:
        """draft -> published. With historical data, ``operation_id`` names the
        historical entry it started (:meth:`watch_operation`)."""
        request = journey_pb2.PublishJourneyRequest(
            space_id=self._space(space), journey_id=journey_id
        )
        return await self._call(self._journeys.PublishJourney, request)

    async def preview_entry(
        self, journey_id: str, *, limit: int = 0, space: str | None = None
    ) -> journey_pb2.PreviewEntryResponse:
        """How many stored profiles match the journey's entry condition now over their
        history, and the first ``limit`` of them (0: 10). Changes nothing."""
        request = journey_pb2.PreviewEntryRequest(
            space_id=self._space(space), journey_id=journey_id, limit=limit
        )
        return await self._call(self._journeys.PreviewEntry, request)

    # Operations

    async def get_operation(
        self, operation_id: str, *, space: str | None = None
    ) -> operation_pb2.Operation:
        """An operation (a historical entry) as it stands."""
        request = operation_pb2.GetOperationRequest(
            space_id=self._space(space), operation_id=operation_id
        )
        return (await self._call(self._operations.GetOperation, request)).operation

    async def list_operations(self, *, space: str | None = None) -> list[operation_pb2.Operation]:
        """Every operation of the space, in the order they began."""

        async def fetch(token: str) -> tuple[Sequence[operation_pb2.Operation], str]:
            request = operation_pb2.ListOperationsRequest(
                space_id=self._space(space), page_token=token
            )
            page = await self._call(self._operations.ListOperations, request)
            return page.operations, page.next_page_token

        return await self._all(fetch)

    async def watch_operation(
        self, operation_id: str, *, space: str | None = None
    ) -> AsyncGenerator[operation_pb2.Operation, None]:
        """The operation now, then each time its progress moves, until it ends."""
        request = operation_pb2.WatchOperationRequest(
            space_id=self._space(space), operation_id=operation_id
        )
        call = self._operations.WatchOperation(request)
        try:
            async for operation in call:
                yield operation
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None
        finally:
            call.cancel()  # (a caller that stops early ends the call on the server too)

    async def wait_operation(
        self, operation_id: str, *, space: str | None = None
    ) -> operation_pb2.Operation:
        """Returns once the operation ended, as it ended."""
        last = None
        async for operation in self.watch_operation(operation_id, space=space):
            last = operation
        assert last is not None
        return last

    async def pause_journey(
        self, journey_id: str, *, space: str | None = None
    ) -> journey_pb2.Journey:
        """published -> paused."""
        request = journey_pb2.PauseJourneyRequest(
            space_id=self._space(space), journey_id=journey_id
        )
        return (await self._call(self._journeys.PauseJourney, request)).journey

    async def resume_journey(
        self, journey_id: str, *, space: str | None = None
    ) -> journey_pb2.Journey:
        """paused -> published."""
        request = journey_pb2.ResumeJourneyRequest(
            space_id=self._space(space), journey_id=journey_id
        )
        return (await self._call(self._journeys.ResumeJourney, request)).journey

    async def archive_journey(
        self, journey_id: str, *, space: str | None = None
    ) -> journey_pb2.Journey:
        """published or paused -> archived."""
        request = journey_pb2.ArchiveJourneyRequest(
            space_id=self._space(space), journey_id=journey_id
        )
        return (await self._call(self._journeys.ArchiveJourney, request)).journey

    async def clone_journey(
        self, journey_id: str, *, new_journey_id: str = "", space: str | None = None
    ) -> journey_pb2.Journey:
        """Copies a journey into a new draft."""
        request = journey_pb2.CloneJourneyRequest(
            space_id=self._space(space), journey_id=journey_id, new_journey_id=new_journey_id
        )
        return (await self._call(self._journeys.CloneJourney, request)).journey

    async def simulate_journey(
        self,
        steps: Iterable[Mapping[str, Any] | simulation_pb2.SimulationStep] = (),
        *,
        journey_id: str = "",
        journey: journey_pb2.Journey | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        space: str | None = None,
    ) -> simulation_pb2.SimulateJourneyResponse:
        """Runs one journey over messages and clock moves in an engine of its own, in
        memory, and returns its counts after each instant and every destination call.

        Give ``journey_id`` (a stored journey of any status, published anew with its
        ids and keys) or ``journey`` (checked as :meth:`create_journey` checks it).
        Each step is a Segment-spec message in its JSON form (as for :meth:`ingest`),
        received at its timestamp, or a ``SimulationStep`` moving the clock
        (``advance`` or ``advance_to``). ``start_time`` (the publish) and ``end_time``
        are epoch milliseconds. The server copies the space's definitions and
        changes nothing.
        """
        request = simulation_pb2.SimulateJourneyRequest(
            space_id=self._space(space),
            steps=[
                step
                if isinstance(step, simulation_pb2.SimulationStep)
                else simulation_pb2.SimulationStep(message=segment_message(step))
                for step in steps
            ],
        )
        if journey is not None:
            request.journey.CopyFrom(journey)
        else:
            request.journey_id = journey_id
        for field, ms in (("start_time", start_time), ("end_time", end_time)):
            if ms is not None:
                getattr(request, field).FromMilliseconds(ms)
        stub = simulation_pb2_grpc.SimulationServiceStub(self._channel)
        return await self._call(stub.SimulateJourney, request)

    # Access tokens

    async def create_token(
        self,
        role: token_pb2.TokenRole.ValueType,
        *,
        name: str = "",
        destination_ids: Sequence[str] = (),
        space: str | None = None,
    ) -> token_pb2.CreateTokenResponse:
        """Creates a token for the space (``"*"``: every space); the response holds
        its secret, which is never shown again."""
        request = token_pb2.CreateTokenRequest(
            space_id=self._space(space), role=role, name=name, destination_ids=destination_ids
        )
        return await self._call(self._tokens.CreateToken, request)

    async def list_tokens(self, *, space: str | None = None) -> list[token_pb2.Token]:
        """Every token of the space (``"*"``: every token), oldest first."""

        async def fetch(page_token: str) -> tuple[Sequence[token_pb2.Token], str]:
            request = token_pb2.ListTokensRequest(
                space_id=self._space(space), page_token=page_token
            )
            page = await self._call(self._tokens.ListTokens, request)
            return page.tokens, page.next_page_token

        return await self._all(fetch)

    async def revoke_token(self, token_id: str, *, space: str | None = None) -> token_pb2.Token:
        """Revokes a token of the space (``"*"``: of any space); returns it as it was."""
        request = token_pb2.RevokeTokenRequest(space_id=self._space(space), token_id=token_id)
        return (await self._call(self._tokens.RevokeToken, request)).token

    # Audiences

    async def create_audience(
        self,
        audience: definition_pb2.Audience,
        *,
        validate_only: bool = False,
        space: str | None = None,
    ) -> definition_pb2.Audience:
        """Creates an audience."""
        request = definition_pb2.CreateAudienceRequest(
            space_id=self._space(space), audience=audience, validate_only=validate_only
        )
        return (await self._call(self._definitions.CreateAudience, request)).audience

    async def get_audience(
        self, audience_id: str, *, space: str | None = None
    ) -> definition_pb2.Audience:
        """Reads an audience."""
        request = definition_pb2.GetAudienceRequest(
            space_id=self._space(space), audience_id=audience_id
        )
        return (await self._call(self._definitions.GetAudience, request)).audience

    async def list_audiences(self, *, space: str | None = None) -> list[definition_pb2.Audience]:
        """Every audience of the space."""

        async def fetch(token: str) -> tuple[Sequence[definition_pb2.Audience], str]:
            request = definition_pb2.ListAudiencesRequest(
                space_id=self._space(space), page_token=token, page_size=1000
            )
            response = await self._call(self._definitions.ListAudiences, request)
            return response.audiences, response.next_page_token

        return await self._all(fetch)

    async def update_audience(
        self,
        audience: definition_pb2.Audience,
        *,
        update_mask: Sequence[str] = (),
        validate_only: bool = False,
        space: str | None = None,
    ) -> definition_pb2.Audience:
        """Replaces the masked fields (name, description, condition; all when empty)."""
        request = definition_pb2.UpdateAudienceRequest(
            space_id=self._space(space),
            audience=audience,
            update_mask=FieldMask(paths=list(update_mask)),
            validate_only=validate_only,
        )
        return (await self._call(self._definitions.UpdateAudience, request)).audience

    async def delete_audience(self, audience_id: str, *, space: str | None = None) -> None:
        """Deletes an audience no live journey uses."""
        request = definition_pb2.DeleteAudienceRequest(
            space_id=self._space(space), audience_id=audience_id
        )
        await self._call(self._definitions.DeleteAudience, request)

    # Computed traits

    async def create_computed_trait(
        self,
        trait: definition_pb2.ComputedTrait,
        *,
        validate_only: bool = False,
        space: str | None = None,
    ) -> definition_pb2.ComputedTrait:
        """Creates a computed trait."""
        request = definition_pb2.CreateComputedTraitRequest(
            space_id=self._space(space), computed_trait=trait, validate_only=validate_only
        )
        return (await self._call(self._definitions.CreateComputedTrait, request)).computed_trait

    async def get_computed_trait(
        self, trait_id: str, *, space: str | None = None
    ) -> definition_pb2.ComputedTrait:
        """Reads a computed trait."""
        request = definition_pb2.GetComputedTraitRequest(
            space_id=self._space(space), computed_trait_id=trait_id
        )
        return (await self._call(self._definitions.GetComputedTrait, request)).computed_trait

    async def list_computed_traits(
        self, *, space: str | None = None
    ) -> list[definition_pb2.ComputedTrait]:
        """Every computed trait of the space."""

        async def fetch(token: str) -> tuple[Sequence[definition_pb2.ComputedTrait], str]:
            request = definition_pb2.ListComputedTraitsRequest(
                space_id=self._space(space), page_token=token, page_size=1000
            )
            response = await self._call(self._definitions.ListComputedTraits, request)
            return response.computed_traits, response.next_page_token

        return await self._all(fetch)

    async def update_computed_trait(
        self,
        trait: definition_pb2.ComputedTrait,
        *,
        update_mask: Sequence[str] = (),
        validate_only: bool = False,
        space: str | None = None,
    ) -> definition_pb2.ComputedTrait:
        """Replaces the masked fields (name, description, expression; all when empty)."""
        request = definition_pb2.UpdateComputedTraitRequest(
            space_id=self._space(space),
            computed_trait=trait,
            update_mask=FieldMask(paths=list(update_mask)),
            validate_only=validate_only,
        )
        return (await self._call(self._definitions.UpdateComputedTrait, request)).computed_trait

    async def delete_computed_trait(self, trait_id: str, *, space: str | None = None) -> None:
        """Deletes a computed trait nothing live uses."""
        request = definition_pb2.DeleteComputedTraitRequest(
            space_id=self._space(space), computed_trait_id=trait_id
        )
        await self._call(self._definitions.DeleteComputedTrait, request)

    # Destinations

    async def create_destination(
        self,
        destination: definition_pb2.Destination,
        *,
        validate_only: bool = False,
        space: str | None = None,
    ) -> definition_pb2.Destination:
        """Creates a destination."""
        request = definition_pb2.CreateDestinationRequest(
            space_id=self._space(space), destination=destination, validate_only=validate_only
        )
        return (await self._call(self._definitions.CreateDestination, request)).destination

    async def get_destination(
        self, destination_id: str, *, space: str | None = None
    ) -> definition_pb2.Destination:
        """Reads a destination."""
        request = definition_pb2.GetDestinationRequest(
            space_id=self._space(space), destination_id=destination_id
        )
        return (await self._call(self._definitions.GetDestination, request)).destination

    async def list_destinations(
        self, *, space: str | None = None
    ) -> list[definition_pb2.Destination]:
        """Every destination of the space."""

        async def fetch(token: str) -> tuple[Sequence[definition_pb2.Destination], str]:
            request = definition_pb2.ListDestinationsRequest(
                space_id=self._space(space), page_token=token, page_size=1000
            )
            response = await self._call(self._definitions.ListDestinations, request)
            return response.destinations, response.next_page_token

        return await self._all(fetch)

    async def update_destination(
        self,
        destination: definition_pb2.Destination,
        *,
        update_mask: Sequence[str] = (),
        validate_only: bool = False,
        space: str | None = None,
    ) -> definition_pb2.Destination:
        """Renames a destination (its kind and event mode are fixed)."""
        request = definition_pb2.UpdateDestinationRequest(
            space_id=self._space(space),
            destination=destination,
            update_mask=FieldMask(paths=list(update_mask)),
            validate_only=validate_only,
        )
        return (await self._call(self._definitions.UpdateDestination, request)).destination

    async def delete_destination(self, destination_id: str, *, space: str | None = None) -> None:
        """Deletes a destination no live journey uses."""
        request = definition_pb2.DeleteDestinationRequest(
            space_id=self._space(space), destination_id=destination_id
        )
        await self._call(self._definitions.DeleteDestination, request)

    # Conditions

    async def check_condition(
        self,
        condition: common_pb2.Condition | str,
        *,
        computed_trait: bool = False,
        space: str | None = None,
    ) -> common_pb2.Condition:
        """Checks a condition (or a computed-trait expression); returns its canonical
        text and tree, or raises InvalidArgumentError naming the line and column."""
        if isinstance(condition, str):
            condition = common_pb2.Condition(text=condition)
        kind = (
            definition_pb2.CONDITION_KIND_COMPUTED_TRAIT
            if computed_trait
            else definition_pb2.CONDITION_KIND_UNSPECIFIED
        )
        request = definition_pb2.CheckConditionRequest(
            space_id=self._space(space), condition=condition, kind=kind
        )
        return (await self._call(self._definitions.CheckCondition, request)).condition

    # Ingestion

    async def ingest(
        self, messages: Sequence[Mapping[str, Any]], *, batch_id: str = "", space: str | None = None
    ) -> ingest_pb2.IngestResponse:
        """Sends one batch of Segment-spec messages (JSON form) and returns its ack."""
        request = ingest_pb2.IngestRequest(
            space_id=self._space(space),
            messages=[segment_message(m) for m in messages],
            batch_id=batch_id,
        )
        return await self._call(self._ingest.Ingest, request)

    def ingester(
        self,
        *,
        batch_size: int = 500,
        linger: float = 0.05,
        max_buffered: int = 10_000,
        retries: int = 10,
        space: str | None = None,
    ) -> Ingester:
        """A background sender for messages produced one at a time: ``add`` each,
        batches go over ``IngestStream`` (resent, without duplicates, when the
        connection drops). Use as ``async with``; see :class:`Ingester`.

        Example::

            async with client.ingester() as ingester:
                async for event in collector:
                    await ingester.add(event)
        """
        return Ingester(
            self._ingest,
            self._space(space),
            batch_size=batch_size,
            linger=linger,
            max_buffered=max_buffered,
            retries=retries,
        )

    async def send(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 500,
        window: int = 8,
        retries: int = 5,
        space: str | None = None,
    ) -> SendReport:
        """Streams messages in batches over ``IngestStream`` and totals the acks.

        ``messages`` is read lazily, cut into batches of at most ``batch_size``
        messages and the server's byte limit, with ``window`` batches in flight.
        Messages without a ``messageId`` get one first, so a batch sent again
        after a lost connection is acknowledged as duplicates, never applied
        twice; unacknowledged batches are sent again, up to ``retries`` times in
        a row, while the server is unavailable. Refused messages are reported by
        their index in ``messages``.
        """
        return await send_messages(
            self._ingest,
            messages,
            space_id=self._space(space),
            batch_size=batch_size,
            window=window,
            retries=retries,
        )

    # Subscriptions

    async def subscribe(
        self,
        destination_id: str,
        consumer: str,
        *,
        after: int | None = None,
        space: str | None = None,
        max_batch: int = 100,
    ) -> AsyncGenerator[subscription_pb2.SubscribeResponse, None]:
        """The destination's calls after ``after`` (default: the consumer's last ack), then
        new ones as they come; each item is a call or a gap.

        The server sends the calls that are ready up to ``max_batch`` per response
        (far more calls per second than one per response); they are yielded one
        at a time all the same. ``max_batch=1`` asks for one call per response.
        """
        request = subscription_pb2.SubscribeRequest(
            space_id=self._space(space),
            destination_id=destination_id,
            consumer=consumer,
            max_batch=max_batch,
        )
        if after is not None:
            request.after_sequence = after
        call = self._subscriptions.Subscribe(request)
        try:
            async for item in call:
                if item.HasField("calls"):
                    for one in item.calls.calls:
                        yield subscription_pb2.SubscribeResponse(call=one)
                else:
                    yield item
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None
        finally:
            call.cancel()  # (a caller that stops early ends the subscription on the server)

    async def follow(
        self,
        destination_id: str,
        consumer: str,
        *,
        after: int | None = None,
        retries: int = 10,
        space: str | None = None,
        max_batch: int = 100,
    ) -> AsyncGenerator[subscription_pb2.SubscribeResponse, None]:
        """Like :meth:`subscribe`, resuming after the last item seen when the connection
        drops (a restart, or a consumer judged too slow)."""
        attempt = 0
        while True:
            try:
                async for item in self.subscribe(
                    destination_id, consumer, after=after, space=space, max_batch=max_batch
                ):
                    attempt = 0
                    after = item.call.sequence if item.HasField("call") else item.gap.last_sequence
                    yield item
                return
            except UnavailableError:
                if attempt >= retries:
                    raise
                attempt += 1
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))

    async def ack(
        self, destination_id: str, consumer: str, sequence: int, *, space: str | None = None
    ) -> int:
        """Acknowledges every call up to ``sequence``; returns the consumer's cursor."""
        request = subscription_pb2.AckRequest(
            space_id=self._space(space),
            destination_id=destination_id,
            consumer=consumer,
            sequence=sequence,
        )
        return (await self._call(self._subscriptions.Ack, request)).acked_sequence

    async def list_members(
        self, journey_id: str, step_id: str, *, space: str | None = None
    ) -> list[subscription_pb2.Member]:
        """Every current member of a send step, in joining order."""

        async def fetch(token: str) -> tuple[Sequence[subscription_pb2.Member], str]:
            request = subscription_pb2.ListMembersRequest(
                space_id=self._space(space),
                journey_id=journey_id,
                step_id=step_id,
                page_token=token,
                page_size=1000,
            )
            response = await self._call(self._subscriptions.ListMembers, request)
            return response.members, response.next_page_token

        return await self._all(fetch)

    # Reporting

    async def get_journey_stats(
        self, journey_id: str, *, space: str | None = None
    ) -> reporting_pb2.JourneyStats:
        """A journey's counts, and its steps' counts depth-first from the entry."""
        request = reporting_pb2.GetJourneyStatsRequest(
            space_id=self._space(space), journey_id=journey_id
        )
        return (await self._call(self._reporting.GetJourneyStats, request)).stats

    async def list_step_users(
        self,
        journey_id: str,
        step_id: str,
        *,
        waiting_only: bool = False,
        limit: int | None = None,
        space: str | None = None,
    ) -> list[reporting_pb2.StepUser]:
        """The runs at a step (or only those held there), in the order they came;
        the first ``limit`` when given."""

        async def fetch(token: str) -> tuple[Sequence[reporting_pb2.StepUser], str]:
            request = reporting_pb2.ListStepUsersRequest(
                space_id=self._space(space),
                journey_id=journey_id,
                step_id=step_id,
                waiting_only=waiting_only,
                page_token=token,
                page_size=min(limit or 1000, 1000),
            )
            response = await self._call(self._reporting.ListStepUsers, request)
            return response.users, response.next_page_token

        return await self._all(fetch, limit)

    async def get_profile(
        self, user_id: str = "", *, anonymous_id: str = "", space: str | None = None
    ) -> reporting_pb2.Profile:
        """A profile now, by user id or (instead) by anonymous id."""
        request = reporting_pb2.GetProfileRequest(
            space_id=self._space(space), user_id=user_id, anonymous_id=anonymous_id
        )
        return (await self._call(self._reporting.GetProfile, request)).profile

    async def list_timeline(
        self,
        user_id: str = "",
        *,
        anonymous_id: str = "",
        journey_id: str = "",
        space: str | None = None,
    ) -> list[reporting_pb2.TimelineEntry]:
        """A profile's whole timeline, oldest first (one journey's when named)."""

        async def fetch(token: str) -> tuple[Sequence[reporting_pb2.TimelineEntry], str]:
            request = reporting_pb2.ListTimelineRequest(
                space_id=self._space(space),
                user_id=user_id,
                anonymous_id=anonymous_id,
                journey_id=journey_id,
                page_token=token,
                page_size=1000,
            )
            response = await self._call(self._reporting.ListTimeline, request)
            return response.entries, response.next_page_token

        return await self._all(fetch)

    # Privacy

    async def delete_profile(
        self,
        user_id: str | None = None,
        *,
        anonymous_id: str | None = None,
        suppress: bool = False,
        space: str | None = None,
    ) -> privacy_pb2.DeleteProfileResponse:
        """Deletes a profile and everything about it, by user id or (instead) by
        anonymous id; its runs end, sending "exited" / "removed" to the
        destinations it is a member of. With ``suppress``, its ids' later messages
        are refused for the server's suppression period. An unknown profile is no
        error (``deleted`` is false)."""
        request = privacy_pb2.DeleteProfileRequest(
            space_id=self._space(space),
            user_id=user_id or "",
            anonymous_id=anonymous_id or "",
            suppress=suppress,
        )
        return await self._call(self._privacy.DeleteProfile, request)

    async def get_suppression(
        self,
        user_id: str | None = None,
        *,
        anonymous_id: str | None = None,
        space: str | None = None,
    ) -> privacy_pb2.GetSuppressionResponse:
        """Whether messages with a user id (or an anonymous id) are refused now."""
        request = privacy_pb2.GetSuppressionRequest(
            space_id=self._space(space), user_id=user_id or "", anonymous_id=anonymous_id or ""
        )
        return await self._call(self._privacy.GetSuppression, request)

    async def delete_suppression(
        self,
        user_id: str | None = None,
        *,
        anonymous_id: str | None = None,
        space: str | None = None,
    ) -> bool:
        """Lifts a user id's (or an anonymous id's) suppression; returns whether
        it was suppressed."""
        request = privacy_pb2.DeleteSuppressionRequest(
            space_id=self._space(space), user_id=user_id or "", anonymous_id=anonymous_id or ""
        )
        return (await self._call(self._privacy.DeleteSuppression, request)).existed

    # Clock

    async def get_time(self) -> int:
        """The manual clock's time (ms since the epoch)."""
        response = await self._call(self._clock.GetTime, clock_pb2.GetTimeRequest())
        return response.now.ToMilliseconds()

    async def advance_time(self, ms: int) -> int:
        """Advances the manual clock by ``ms``, applying everything due; returns now (ms)."""
        by = Duration()
        by.FromMilliseconds(ms)
        response = await self._call(self._clock.AdvanceTime, clock_pb2.AdvanceTimeRequest(by=by))
        return response.now.ToMilliseconds()

    async def set_time(self, ms: int) -> int:
        """Moves the manual clock to ``ms`` (never backwards); returns now (ms)."""
        time = Timestamp()
        time.FromMilliseconds(ms)
        response = await self._call(self._clock.SetTime, clock_pb2.SetTimeRequest(time=time))
        return response.now.ToMilliseconds()

    # Backup

    async def backup(
        self, path: str | os.PathLike[str], *, overwrite: bool = False
    ) -> backup_pb2.BackupInfo:
        """Saves a consistent copy of the server's database to ``path``.

        The copy is written to ``PATH.partial`` (owner-only), checked (its size,
        and the SQLite header's schema version, against what the server
        announced), flushed to disk and only then renamed to ``path``, so
        ``path`` is never a partial copy: on any failure, or when the call is
        cancelled, it is left as it was and the ``.partial`` file is deleted. A
        server started on the copy (``journeys serve --db PATH``) goes on from
        the instant it was taken.

        The call has no deadline (a copy takes as long as the database is
        large); bound it with ``asyncio.timeout`` if need be.

        Args:
            path: Where to save the copy.
            overwrite: Replace an existing file at ``path``.

        Returns:
            The copy's size and schema version.

        Raises:
            JourneysClientError: ``path`` exists (and ``overwrite`` is not set),
                ``PATH.partial`` exists (another backup is writing it, or one was
                killed: delete it), the file cannot be written, or what arrived
                is not the copy the server announced (``code`` is None for each
                of these); or the server refused (a subclass for its status:
                ``FailedPreconditionError`` for an in-memory database).
        """
        target = Path(os.fspath(path))
        partial = target.with_name(target.name + ".partial")
        fd = await asyncio.to_thread(_create_partial, partial, target, overwrite)
        placed = False
        try:
            with os.fdopen(fd, "wb") as file:
                info = await self._receive_backup(file)
                await asyncio.to_thread(_flush, file)
            await asyncio.to_thread(_check_copy, partial, info)
            await asyncio.to_thread(_place, partial, target, overwrite)
            placed = True
        except OSError as err:
            raise JourneysClientError(None, f"cannot write the backup: {err}") from err
        finally:
            if not placed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial)
        return info

    async def _receive_backup(self, file: BinaryIO) -> backup_pb2.BackupInfo:
        """Writes the streamed copy to ``file``; returns what the server announced."""
        info: backup_pb2.BackupInfo | None = None
        received = 0
        call = self._backups.Backup(backup_pb2.BackupRequest())
        try:
            async for chunk in call:
                if info is None:
                    if not chunk.HasField("info"):
                        raise JourneysClientError(
                            None, "the backup stream did not begin with the copy's size"
                        )
                    info = chunk.info
                received += len(chunk.data)
                if received > info.size_bytes:
                    raise JourneysClientError(
                        None,
                        f"the server sent more than the {info.size_bytes} bytes it announced",
                    )
                await asyncio.to_thread(file.write, chunk.data)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None
        finally:
            call.cancel()  # a no-op once the stream has ended; stops the server otherwise
        if info is None:
            raise JourneysClientError(None, "the backup stream ended before any data")
        if received != info.size_bytes:
            raise JourneysClientError(
                None,
                f"the backup stream ended after {received} of {info.size_bytes} bytes",
            )
        return info


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _exists_error(target: Path) -> JourneysClientError:
    return JourneysClientError(None, f"{target} already exists; pass overwrite=True to replace it")


def _create_partial(partial: Path, target: Path, overwrite: bool) -> int:
    """Refuses an existing target (unless ``overwrite``); creates ``partial`` owner-only."""
    if not overwrite and os.path.lexists(target):
        raise _exists_error(target)
    try:
        return os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise JourneysClientError(
            None,
            f"{partial} exists: another backup is writing it, or one was interrupted "
            "(delete it and retry)",
        ) from None
    except OSError as err:
        raise JourneysClientError(None, f"cannot create {partial}: {err.strerror}") from err


def _flush(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())


def _check_copy(path: Path, info: backup_pb2.BackupInfo) -> None:
    """Checks that the received file is an SQLite database of the announced version."""
    with path.open("rb") as file:
        header = file.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise JourneysClientError(None, "the backup received is not an SQLite database")
    version = int.from_bytes(header[60:64], "big")  # PRAGMA user_version
    if version != info.schema_version:
        raise JourneysClientError(
            None,
            f"the backup received has schema version {version}, "
            f"not the {info.schema_version} the server announced",
        )


def _place(partial: Path, target: Path, overwrite: bool) -> None:
    """Renames the finished copy to ``target`` in one step, then makes that durable."""
    if overwrite:
        os.replace(partial, target)
    else:
        # A hard link never replaces an existing file, whatever appeared meanwhile.
        try:
            os.link(partial, target)
        except FileExistsError:
            raise _exists_error(target) from None
        except OSError:  # a file system without hard links
            if os.path.lexists(target):
                raise _exists_error(target) from None
            os.replace(partial, target)
        else:
            os.unlink(partial)
    with contextlib.suppress(OSError):  # not every platform can sync a folder
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
