"""``journeys tail``: a destination's calls as JSON lines, acknowledged as printed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
from typing import Any

import click
from journeys.v1 import subscription_pb2
from journeys_client import JourneysClient, UnavailableError

from journeys_cli.context import with_client
from journeys_cli.output import instant_text

__all__ = ["tail"]

_CLOSE_RETRIES = 20  # half a second apart


def _envelope(call: subscription_pb2.DestinationCall) -> dict[str, Any]:
    return {
        "sequence": call.sequence,
        "messageId": call.message_id,
        "journeyId": call.journey_id,
        "stepId": call.step_id,
        "profileKey": call.profile_key,
        "run": call.run,
        "change": call.change,
        "timestamp": instant_text(call.timestamp),
        "payload": json.loads(call.payload),
    }


class _Acker:
    """Acknowledges the last printed sequence in the background, coalescing acks."""

    def __init__(self, client: JourneysClient, destination: str, consumer: str) -> None:
        self._client = client
        self._destination = destination
        self._consumer = consumer
        self._printed = 0
        self._acked = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def printed(self, sequence: int) -> None:
        self._printed = sequence
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
            except UnavailableError:  # the server is restarting: acknowledge once it is back
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _flush(self) -> None:
        if self._printed > self._acked:
            target = self._printed
            await self._client.ack(self._destination, self._consumer, target)
            self._acked = max(self._acked, target)

    async def close(self) -> None:
        """Stops the background acks and acknowledges the last printed call, retrying
        for a while if the server is restarting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for attempt in range(_CLOSE_RETRIES):
            try:
                await self._flush()
                return
            except UnavailableError:
                if attempt == _CLOSE_RETRIES - 1:
                    raise
                await asyncio.sleep(0.5)


@click.command()
@click.argument("destination")
@click.option(
    "--consumer", default="tail", show_default=True, help="The subscription's consumer name."
)
@click.option(
    "--from",
    "start",
    type=click.IntRange(1, 2**62),
    help="Start at this sequence (default: after the consumer's last ack).",
)
@click.option("-n", "--count", type=click.IntRange(1), help="Stop after this many calls.")
@click.option(
    "--idle",
    type=click.FloatRange(0, 10**9, min_open=True),
    help="Stop once no call has come for this many seconds.",
)
@click.option("--no-ack", is_flag=True, help="Read without moving the consumer's cursor.")
@click.option(
    "--envelope",
    is_flag=True,
    help="Print each call with its sequence, journey, step and profile around the payload.",
)
@with_client
async def tail(
    client: JourneysClient,
    destination: str,
    consumer: str,
    start: int | None,
    count: int | None,
    idle: float | None,
    no_ack: bool,
    envelope: bool,
) -> None:
    """Print a destination's calls as JSON lines, then follow new ones.

    Each printed call is acknowledged for the consumer, so running it again
    goes on where it stopped; --from replays from any kept sequence. Calls
    the outbox retention dropped before they were acknowledged are reported on
    stderr as a gap. Reconnects when the server restarts.

    \b
    Example:
      journeys tail braze
      journeys tail braze --consumer audit --from 1 --count 100 --envelope
    """
    if idle is not None and math.isnan(idle):
        raise click.BadParameter("must be a number of seconds", param_hint="--idle")
    after = None if start is None else start - 1
    acker = _Acker(client, destination, consumer)
    printed = 0
    stream = client.follow(destination, consumer, after=after)
    try:
        while count is None or printed < count:
            try:
                item = await asyncio.wait_for(stream.__anext__(), idle)
            except (StopAsyncIteration, TimeoutError):
                break
            if item.HasField("gap"):
                gap = item.gap
                click.echo(
                    f"warning: calls {gap.first_sequence}-{gap.last_sequence} are gone: "
                    f"{gap.reason}",
                    err=True,
                )
                if not no_ack:
                    acker.printed(gap.last_sequence)
                continue
            call = item.call
            line = json.dumps(_envelope(call), separators=(",", ":")) if envelope else call.payload
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except BrokenPipeError:  # the reader went away: this line was not delivered
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                break
            printed += 1
            if not no_ack:
                acker.printed(call.sequence)
    finally:
        await stream.aclose()
        await acker.close()
