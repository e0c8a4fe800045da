"""``journeys simulate``: what a journey would do over a script of events, tried out
by the server in an engine of its own, in memory; nothing on the server changes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import click
from google.protobuf.duration_pb2 import Duration
from journeys.v1 import journey_pb2, simulation_pb2
from journeys_client import (
    FileFormatError,
    InvalidArgumentError,
    load_file,
    segment_message,
)
from journeys_client.durations import parse_duration
from journeys_client.files import to_doc

from journeys_cli.completion import complete_journey_ids
from journeys_cli.context import Target, fail, run
from journeys_cli.output import instant_ms, instant_text, plural, table
from journeys_cli.reports import stats_data, tree_text

__all__ = ["simulate"]

_TIMEOUT = 600.0  # seconds: a long script runs on the server before the one reply
_MOVES = ("advance", "advance_to")


@dataclass(frozen=True, slots=True)
class _Script:
    """The steps of an events file, each with its line number."""

    steps: list[simulation_pb2.SimulationStep]
    lines: list[int]

    def first_timestamp(self) -> int | None:
        """The first message's timestamp, epoch ms: the server's default start."""
        for step in self.steps:
            if step.HasField("message") and step.message.HasField("timestamp"):
                return step.message.timestamp.ToMilliseconds()
        return None


def _move(value: dict[str, Any]) -> simulation_pb2.SimulationStep:
    """A clock move line: ``{"advance": "2d"}`` or ``{"advance_to": "2026-01-01T00:00:00Z"}``.

    Raises:
        ValueError: saying what is wrong.
    """
    if len(value) != 1:
        raise ValueError('a clock move is {"advance": "2d"} or {"advance_to": "ISO 8601"} alone')
    ((kind, given),) = value.items()
    if not isinstance(given, str):
        example = '"2d"' if kind == "advance" else '"2026-01-01T00:00:00Z"'
        raise TypeError(f"{kind} takes a string, such as {example}")
    if kind == "advance":
        ms = parse_duration(given)
        if ms <= 0:
            raise ValueError("advance must be more than zero")
        by = Duration()
        by.FromMilliseconds(ms)
        return simulation_pb2.SimulationStep(advance=by)
    try:
        instant = instant_ms(given)
    except ValueError:
        raise ValueError(f"advance_to: {given!r} is not an ISO 8601 instant") from None
    step = simulation_pb2.SimulationStep()
    step.advance_to.FromMilliseconds(instant)
    return step


def _read_script(path: str) -> _Script:
    """Every step of the events file; the first bad line ends the command (nothing is sent)."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read()
    except (OSError, UnicodeDecodeError) as err:
        fail(f"cannot read {path}: {err}")
    script = _Script([], [])
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            value = json.loads(line)
        except ValueError as err:
            fail(f"{path}:{number}: not JSON ({err}); nothing was simulated")
        if not isinstance(value, dict):
            fail(f"{path}:{number}: a line is a JSON object; nothing was simulated")
        try:
            if "type" not in value and any(kind in value for kind in _MOVES):
                step = _move(value)
            else:
                step = simulation_pb2.SimulationStep(message=segment_message(value))
        except (ValueError, TypeError, OverflowError) as err:
            fail(f"{path}:{number}: {err}; nothing was simulated")
        script.steps.append(step)
        script.lines.append(number)
    return script


def _journey_from_file(path: str) -> journey_pb2.Journey:
    try:
        docs = load_file(path)
    except FileFormatError as err:
        fail(str(err))
    journeys = [doc for doc in docs if isinstance(doc, journey_pb2.Journey)]
    if not journeys:
        fail(f"{path} holds no Journey document")
    if len(journeys) > 1:
        ids = ", ".join(j.id or j.name for j in journeys)
        fail(f"{path} holds {len(journeys)} journeys ({ids}); simulate one at a time")
    return journeys[0]


def _refusal(err: InvalidArgumentError, events: str, script: _Script) -> str:
    """The server's refusal, each step named by its line in the events file."""
    lines = ["invalid request:"]
    for violation in err.field_violations:
        field = violation.field
        if field.startswith("steps["):
            index, _, rest = field[len("steps[") :].partition("]")
            if index.isdigit() and int(index) < len(script.lines):
                where = f"{events}:{script.lines[int(index)]}"
                # (a message's fields are named as in the line: "userId", not "message.userId")
                rest = rest.removeprefix(".").removeprefix("message").removeprefix(".")
                field = f"{where}: {rest}" if rest else where
        lines.append(f"  {field}: {violation.description}")
    return "\n".join(lines)


def _print_text(response: simulation_pb2.SimulateJourneyResponse) -> None:
    doc = to_doc(response.journey)
    final = response.counts[-1].stats if response.counts else None
    if final is not None:
        click.echo(tree_text(doc, final))
        click.echo("")
    click.echo(
        f"simulated from {instant_text(response.journey.publish_time)} "
        f"to {instant_text(response.end_time)}: "
        f"{plural(len(response.calls), 'destination call')}"
    )
    rows = [
        (instant_text(call.timestamp), destination, call.change, call.profile_key, call.step_id)
        for call, destination in zip(response.calls, response.destination_ids, strict=True)
    ]
    click.echo(table(("time", "destination", "change", "profile", "step"), rows))


def _json_lines(response: simulation_pb2.SimulateJourneyResponse) -> Iterable[dict[str, Any]]:
    doc = to_doc(response.journey)
    for counts in response.counts:
        yield {
            "kind": "counts",
            "time": instant_text(counts.time),
            "stats": stats_data(doc, counts.stats),
        }
    for call, destination in zip(response.calls, response.destination_ids, strict=True):
        yield {
            "kind": "call",
            "time": instant_text(call.timestamp),
            "destination": destination,
            "sequence": call.sequence,
            "change": call.change,
            "profile": call.profile_key,
            "step": call.step_id,
            "run": call.run,
            "message_id": call.message_id,
            "payload": json.loads(call.payload),
        }


@click.command()
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(dir_okay=False),
    help="A journey file, as apply reads it: its Journey document is simulated.",
)
@click.option(
    "--journey",
    "journey_id",
    shell_complete=complete_journey_ids,
    help="A stored journey (any status) instead of -f.",
)
@click.option(
    "--events",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="JSON lines: Segment messages and clock moves ('-': stdin).",
)
@click.option("--until", help="At the end, move the clock to the start plus this (30d, 12h…).")
@click.option(
    "--start",
    help="The publish instant (ISO 8601). Default: the first event's timestamp, else now.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines: counts per instant, then calls.")
@click.pass_obj
def simulate(
    target: Target,
    path: str | None,
    journey_id: str | None,
    events: str,
    until: str | None,
    start: str | None,
    as_json: bool,
) -> None:
    """Try a journey out: run it over a script of events and print what it would do.

    The server runs its own engine in memory, on a clock of its own, on a copy
    of the space's destinations, audiences and computed traits: the journey is
    published at the start, then each line of --events plays in order. Nothing
    on the server changes: the journey is not created, no message is stored,
    nothing is sent. With -f only the file's Journey document is used; the
    destinations and definitions it describes are NOT created (the server's
    are copied): apply them first.

    Each line of --events is a Segment message, as `journeys send -f` takes
    them, received at its timestamp (the clock moves there first; without
    one, at the clock's time), or a clock move: {"advance": "2d"} or
    {"advance_to": "2026-03-09T00:00:00Z"}. Blank lines and lines starting
    with # are skipped. Messages timestamped before the start are the
    profiles' history, received before the publish.

    Prints the journey's tree with its counts at the end, then every
    destination call (time, destination, change, profile, step); with --json,
    one JSON object per line: {"kind": "counts", ...} per instant, then
    {"kind": "call", ...} per call.

    \b
    Example:
      journeys simulate -f examples/onboarding.yaml --events events.jsonl --until 30d
      journeys simulate --journey onboarding --events events.jsonl --json

    \b
    events.jsonl, for example:
      {"type": "track", "userId": "u1", "event": "Account Created"}
      {"type": "track", "userId": "u2", "event": "Account Created"}
      {"advance": "20m"}
      {"type": "track", "userId": "u1", "event": "Tutorial Completed"}
      {"advance": "7d"}
    """
    if (path is None) == (journey_id is None):
        raise click.UsageError("give the journey: -f FILE or --journey ID (one of them)")
    end_ms = None
    try:
        start_ms = instant_ms(start) if start is not None else None
    except ValueError:
        raise click.BadParameter(
            f"{start!r} is not an ISO 8601 instant", param_hint="--start"
        ) from None
    try:
        until_ms = parse_duration(until) if until is not None else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--until") from None
    journey = _journey_from_file(path) if path is not None else None
    script = _read_script(events)
    if until_ms is not None:
        if start_ms is None:
            first = script.first_timestamp()
            start_ms = first if first is not None else time.time_ns() // 1_000_000
        end_ms = start_ms + until_ms

    async def body() -> simulation_pb2.SimulateJourneyResponse | InvalidArgumentError:
        async with target.client(timeout=_TIMEOUT) as client:
            try:
                return await client.simulate_journey(
                    script.steps,
                    journey_id=journey_id or "",
                    journey=journey,
                    start_time=start_ms,
                    end_time=end_ms,
                )
            except InvalidArgumentError as err:
                return err

    response = run(body(), target)
    if isinstance(response, InvalidArgumentError):
        fail(_refusal(response, events, script))
    if as_json:
        for line in _json_lines(response):
            click.echo(json.dumps(line, ensure_ascii=False))
    else:
        _print_text(response)
