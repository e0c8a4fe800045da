"""``journeys send``, ``journeys tail`` and ``journeys clock`` against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.live import HOUR, START, entry_journey, iso
from tests.helpers.processes import ServerProcess, run_cli

pytestmark = pytest.mark.e2e

WAITING = """
kind: Destination
id: hooks
name: Hooks
type: track
---
kind: Journey
id: j
name: J
steps:
- id: entry
  name: Entry
  type: entry
  condition: event('Product Added').where(property('price') > 5).count() >= 1
  next: wait
- id: wait
  name: Wait
  type: wait_duration
  duration: 1h
  next: send
- id: send
  name: Send
  type: send_to_destinations
  destinations: [hooks]
"""


def cli(server: ServerProcess, *args: str, stdin: str | None = None, status: int = 0) -> str:
    result = run_cli(*args, server=server.target, stdin=stdin)
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout if status == 0 else result.stdout + result.stderr


def publish(server: ServerProcess, tmp_path: Path, text: str) -> None:
    path = tmp_path / "journey.yaml"
    path.write_text(text)
    cli(server, "apply", "-f", str(path))
    cli(server, "publish", "j")


def tail(server: ServerProcess, *args: str) -> list[dict[str, object]]:
    out = cli(server, "tail", "hooks", "--idle", "1", *args)
    return [json.loads(line) for line in out.splitlines()]


def test_the_clock_verbs_read_set_and_advance(manual: ServerProcess) -> None:
    assert cli(manual, "clock", "set", "2040-01-02T09:00:00Z") == f"{iso(START)}\n"
    assert cli(manual, "clock", "advance", "1h30m") == f"{iso(START + 90 * 60_000)}\n"
    assert cli(manual, "clock", "get") == f"{iso(START + 90 * 60_000)}\n"
    # Without an offset, the instant is UTC.
    assert cli(manual, "clock", "set", "2040-01-03T00:00:00") == "2040-01-03T00:00:00.000Z\n"

    error = cli(manual, "clock", "set", "2040-01-02T00:00:00Z", status=1)
    assert "the clock cannot go backwards" in error
    error = cli(manual, "clock", "advance", "soon", status=2)
    assert "DURATION" in error
    error = cli(manual, "clock", "set", "tomorrow", status=2)
    assert "is not an ISO 8601 instant" in error
    assert cli(manual, "clock", "get") == "2040-01-03T00:00:00.000Z\n"  # nothing moved


def test_the_clock_verbs_are_refused_on_the_system_clock(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "journeys.db") as server:
        for args in (("get",), ("advance", "1h"), ("set", "2040-01-02T09:00:00Z")):
            error = cli(server, "clock", *args, status=1)
            assert error.startswith("error: ")
            assert "--manual-clock" in error


def test_sent_messages_move_a_journey_and_tail_prints_and_acknowledges_its_calls(
    manual: ServerProcess, tmp_path: Path
) -> None:
    cli(manual, "clock", "set", iso(START))
    publish(manual, tmp_path, WAITING)
    out = cli(manual, "send", "identify", "-u", "u1", "-t", "plan=pro", "-t", '{"seats": 3}')
    assert out.startswith("accepted (log position ")
    sent = ("send", "track", "Product Added", "-u", "u1", "-p", "price=9.99", "--message-id", "m1")
    assert cli(manual, *sent).startswith("accepted")
    assert cli(manual, *sent) == (
        "duplicate: a message with this id was already received; nothing changed\n"
    )
    cli(manual, "send", "track", "Product Added", "-u", "u2", "-p", '{"price": 2, "tags": ["x"]}')
    cli(manual, "clock", "advance", "1h")

    (call,) = tail(manual)
    assert call["userId"] == "u1"
    assert call["timestamp"] == iso(START + HOUR)
    assert tail(manual) == []  # acknowledged as printed: the consumer goes on after it
    (replayed,) = tail(manual, "--from", "1", "--envelope", "--no-ack")
    assert replayed["sequence"] == 1
    assert replayed["stepId"] == "send"
    assert replayed["profileKey"] == "u1"
    assert replayed["payload"] == call
    assert tail(manual, "--consumer", "audit", "-n", "1") == [call]  # its own cursor


def test_send_file_checks_every_line_first_and_reports_refusals_by_line(
    manual: ServerProcess, tmp_path: Path
) -> None:
    cli(manual, "clock", "set", iso(START))
    publish(manual, tmp_path, entry_journey("event('Signed Up').count() >= 1"))
    lines = [
        json.dumps(
            {"type": "track", "userId": f"f{i}", "event": "Signed Up", "messageId": f"f-{i}"}
        )
        for i in range(5)
    ]
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([*lines[:2], "{not json", *lines[2:]]) + "\n")
    listed = json.dumps({"type": "track", "userId": "x", "event": "E", "properties": [[1, 2]]})
    error = cli(manual, "send", "-f", "-", stdin=f"{lines[0]}\n{listed}\n", status=1)
    assert "-:2: properties must be a JSON object, not list; nothing was sent" in error
    error = cli(manual, "send", "-f", str(broken), status=1)
    assert f"{broken}:3: not JSON" in error
    assert "nothing was sent" in error
    assert tail(manual) == []

    # The server refuses what only it can judge (the 32 KB limit), by line.
    too_big = {"type": "track", "userId": "big", "event": "Signed Up", "properties": {}}
    too_big["properties"] = {"blob": "x" * 40_000}
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([lines[0], "", json.dumps(too_big), *lines[1:]]) + "\n")
    out = cli(manual, "send", "-f", str(mixed), "--batch-size", "2", status=1)
    assert f"{mixed}:3: " in out
    assert "5 accepted, 0 duplicates, 1 refused" in out
    # From stdin, again: every message is a duplicate now.
    out = cli(manual, "send", "-f", "-", stdin="\n".join(lines) + "\n")
    assert out == "sent 5 messages in 1 batch: 0 accepted, 5 duplicates, 0 refused\n"
    # A pipe can be read only once: it is kept, as stdin is.
    out = cli(manual, "send", "-f", "/dev/stdin", stdin="\n".join(lines) + "\n")
    assert out == "sent 5 messages in 1 batch: 0 accepted, 5 duplicates, 0 refused\n"
    # A message too large for any batch is refused by line; the others still go.
    huge = {"type": "track", "userId": "huge", "event": "Signed Up", "properties": {}}
    huge["properties"] = {"blob": "x" * 600_000}
    late = json.dumps({"type": "track", "userId": "f5", "event": "Signed Up", "messageId": "f-5"})
    out = cli(
        manual, "send", "-f", "-", stdin=f"{lines[0]}\n{json.dumps(huge)}\n{late}\n", status=1
    )
    assert "-:2: is 600" in out and "too large to send" in out
    assert "1 accepted, 1 duplicates, 1 refused" in out
    cli(manual, "clock", "advance", "1m")
    assert sorted(str(c["userId"]) for c in tail(manual)) == [f"f{i}" for i in range(6)]


def test_send_refuses_incomplete_options_and_sends_nothing(manual: ServerProcess) -> None:
    cases = [
        (("send",), "give a TYPE"),
        (("send", "track", "-u", "u1"), "name the event"),
        (("send", "track", "E"), "give --user-id or --anonymous-id"),
        (("send", "alias", "-u", "u1"), "--previous-id"),
        (("send", "identify", "x", "-u", "u1"), "identify takes no name"),
        (("send", "track", "E", "-u", "u1", "-p", "novalue"), "neither KEY=VALUE nor a JSON"),
        (("send", "track", "E", "-u", "u1", "--timestamp", "yesterday"), "timestamp"),
        (("send", "track", "E", "-u", "u1", "-p", "n=" + "9" * 400), "cannot be sent"),
        (("send", "-f", "-", "-u", "u1"), "--user-id describes one message"),
        (("send", "track", "E", "-u", "u1", "--message-id", ""), "--message-id"),
        (("tail", "hooks", "--from", "9" * 30), "--from"),
        (("tail", "hooks", "--idle", "nan"), "--idle"),
        (("clock", "advance", "99999999999999d"), "DURATION"),
    ]
    for args, reason in cases:
        assert reason in cli(manual, *args, status=2), args
    surrogate = cli(manual, "send", "track", "E", "-u", "u1", "-p", '{"a": "\\ud800"}', status=2)
    assert "cannot be sent" in surrogate and "timestamp" not in surrogate


def test_the_clock_stops_at_the_last_instant_it_can_write(manual: ServerProcess) -> None:
    assert cli(manual, "clock", "set", "9999-12-31T00:00:00Z") == "9999-12-31T00:00:00.000Z\n"
    error = cli(manual, "clock", "advance", "1d", status=1)
    assert "the last instant the engine keeps" in error
    assert cli(manual, "clock", "get") == "9999-12-31T00:00:00.000Z\n"
    # Instants are read exactly, to the millisecond, however far ahead.
    last = "9999-12-31T23:59:59.999Z"
    assert cli(manual, "clock", "set", "9999-12-31T23:59:59.999+00:00") == f"{last}\n"
