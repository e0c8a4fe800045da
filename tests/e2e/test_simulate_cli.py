"""``journeys simulate`` against a real manual-clock server, as a user runs it: the
tree with its counts, every call, JSON lines, bad lines by number — and nothing of
the server changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.builders import EXAMPLES
from tests.helpers.processes import ServerProcess, run_cli

pytestmark = pytest.mark.e2e

EVENTS = """\
# Onboarding, published at 09:00. u3 completed the tutorial the day before: history.
{"type": "track", "userId": "u3", "event": "Tutorial Completed", "timestamp": "2026-03-01T09:00:00Z"}
{"type": "track", "userId": "u1", "event": "Account Created", "timestamp": "2026-03-02T09:00:00Z"}
{"type": "track", "userId": "u2", "event": "Account Created", "timestamp": "2026-03-02T09:00:00Z"}

{"advance": "20m"}
{"type": "track", "userId": "u1", "event": "Tutorial Completed"}
{"advance_to": "2026-03-02T12:00:00Z"}
{"type": "track", "userId": "u3", "event": "Account Created"}
"""
START = "2026-03-02T09:00:00Z"

TREE = """\
Onboarding flow (onboarding) · published
entered: 3 users in 3 runs · in progress: 3 · exited: 0
"""
# (label, MEMBERS, WAITING, USERS, RUNS) per line of the tree
ROWS = [
    ("Account created [entry]", 3, 0, 3, 3),
    ("└─ Wait 1 hour [wait 1h]", 3, 0, 3, 3),
    ("└─ Completed the tutorial [true/false]", 3, 0, 3, 3),
    ("├─ true (2) → Engaged new users [send → email, support, in-app]", 2, 0, 2, 2),
    (
        "└─ false (1) → New users who need help [send → email, support, in-app, advertising]",
        1,
        0,
        1,
        1,
    ),
]
CALLS = [
    ("2026-03-02T10:00:00.000Z", "email", "entered", "u1", "engaged"),
    ("2026-03-02T10:00:00.000Z", "support", "entered", "u1", "engaged"),
    ("2026-03-02T10:00:00.000Z", "in-app", "entered", "u1", "engaged"),
    ("2026-03-02T10:00:00.000Z", "email", "entered", "u2", "needs-help"),
    ("2026-03-02T10:00:00.000Z", "support", "entered", "u2", "needs-help"),
    ("2026-03-02T10:00:00.000Z", "in-app", "entered", "u2", "needs-help"),
    ("2026-03-02T10:00:00.000Z", "advertising", "entered", "u2", "needs-help"),
    ("2026-03-02T13:00:00.000Z", "email", "entered", "u3", "engaged"),
    ("2026-03-02T13:00:00.000Z", "support", "entered", "u3", "engaged"),
    ("2026-03-02T13:00:00.000Z", "in-app", "entered", "u3", "engaged"),
]


def cli(server: ServerProcess, *args: str, stdin: str | None = None) -> str:
    result = run_cli(*args, server=server.target, stdin=stdin)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _definitions_only(tmp_path: Path, example: str) -> Path:
    """The example's destinations and definitions, without its journey."""
    text = (EXAMPLES / f"{example}.yaml").read_text()
    docs = [doc for doc in text.split("\n---\n") if "kind: Journey" not in doc]
    path = tmp_path / f"{example}-definitions.yaml"
    path.write_text("\n---\n".join(docs) + "\n")
    return path


def _server_state(server: ServerProcess) -> list[Any]:
    return [
        json.loads(cli(server, "list", "journeys", "-o", "json")),
        json.loads(cli(server, "stats", "trial-to-paid", "-o", "json")),
        cli(server, "clock", "get"),
        json.loads(cli(server, "users", "trial-to-paid", "convert-trial", "-o", "json")),
    ]


@pytest.fixture
def prepared(manual: ServerProcess, tmp_path: Path) -> tuple[ServerProcess, Path, list[Any]]:
    """The server with onboarding's definitions (not its journey), and another journey
    live with a user in it; the events file; the server's state."""
    cli(manual, "apply", "-f", str(_definitions_only(tmp_path, "onboarding")))
    cli(manual, "apply", "-f", str(EXAMPLES / "trial-to-paid.yaml"))
    cli(manual, "publish", "trial-to-paid")
    cli(manual, "send", "track", "Trial Started", "-u", "u9")
    cli(manual, "clock", "advance", "6d")
    events = tmp_path / "events.jsonl"
    events.write_text(EVENTS)
    state = _server_state(manual)
    assert state[1]["entered_users"] == 1 and "u9" in json.dumps(state[3])
    return manual, events, state


def test_simulate_prints_the_tree_and_every_call(
    prepared: tuple[ServerProcess, Path, list[Any]],
) -> None:
    server, events, before = prepared
    out = cli(
        server,
        "simulate", "-f", str(EXAMPLES / "onboarding.yaml"),
        "--events", str(events), "--start", START, "--until", "30d",
    )  # fmt: skip
    assert out.startswith(TREE)
    lines = out.splitlines()
    for label, *counts in ROWS:
        (line,) = [line for line in lines if line.strip().startswith(label)]
        assert line.split()[-4:] == [str(c) for c in counts], line
    summary = (
        "simulated from 2026-03-02T09:00:00.000Z to 2026-04-01T09:00:00.000Z: 10 destination calls"
    )
    calls = lines[lines.index(summary) + 1 :]
    assert calls[0].split() == ["TIME", "DESTINATION", "CHANGE", "PROFILE", "STEP"]
    assert [tuple(line.split()) for line in calls[1:]] == CALLS
    # Nothing of the server changed: no journey created, stats, clock and outbox as they were.
    assert _server_state(server) == before
    missing = run_cli("get", "journey", "onboarding", server=server.target)
    assert missing.returncode == 1 and "journey 'onboarding' not found" in missing.stderr
    nobody = run_cli("profile", "u1", server=server.target)
    assert nobody.returncode == 1 and "not found" in nobody.stderr


def test_simulate_json_lines(prepared: tuple[ServerProcess, Path, list[Any]]) -> None:
    server, events, before = prepared
    out = cli(
        server,
        "simulate", "-f", str(EXAMPLES / "onboarding.yaml"), "--events", "-",
        "--start", START, "--until", "30d", "--json",
        stdin=events.read_text(),
    )  # fmt: skip
    items = [json.loads(line) for line in out.splitlines()]
    counts = [item for item in items if item["kind"] == "counts"]
    calls = [item for item in items if item["kind"] == "call"]
    assert items == counts + calls
    assert [c["time"] for c in counts] == [
        "2026-03-02T09:00:00.000Z",
        "2026-03-02T09:20:00.000Z",
        "2026-03-02T12:00:00.000Z",
        "2026-04-01T09:00:00.000Z",
    ]
    assert [c["stats"]["entered_users"] for c in counts] == [2, 2, 3, 3]
    assert [(c["time"], c["destination"], c["change"], c["profile"], c["step"]) for c in calls] == (
        CALLS
    )
    email = [c for c in calls if c["destination"] == "email"]
    assert [c["sequence"] for c in email] == [1, 2, 3]
    first = email[0]["payload"]
    assert first["type"] == "track" and first["event"] == "Audience Entered"
    assert first["messageId"] == email[0]["message_id"]
    key = first["context"]["personas"]["computation_key"]
    assert key.startswith("j_o_onboarding_flow__engaged_new_users_")
    assert first["properties"] == {key: "true"}
    assert first["timestamp"] == "2026-03-02T10:00:00.000Z"
    assert _server_state(server) == before


def test_a_stored_journey_is_simulated_by_id(
    prepared: tuple[ServerProcess, Path, list[Any]], tmp_path: Path
) -> None:
    server, _, before = prepared
    events = tmp_path / "trial.jsonl"
    events.write_text('{"type": "track", "userId": "u1", "event": "Trial Started"}\n')
    out = cli(server, "simulate", "--journey", "trial-to-paid", "--events", str(events), "--json")
    calls = [item for item in map(json.loads, out.splitlines()) if item["kind"] == "call"]
    assert calls == []  # the trial waits 5 days; the clock ends where the steps left it
    out = cli(
        server,
        "simulate", "--journey", "trial-to-paid", "--events", str(events), "--until", "6d",
        "--json",
    )  # fmt: skip
    calls = [item for item in map(json.loads, out.splitlines()) if item["kind"] == "call"]
    assert [(c["destination"], c["profile"], c["step"]) for c in calls] == [
        ("email", "u1", "convert-trial"),
        ("support", "u1", "convert-trial"),
        ("advertising", "u1", "convert-trial"),
    ]
    stored = json.loads(cli(server, "get", "journey", "trial-to-paid", "-o", "json"))
    keys = [s["key"] for s in stored["steps"] if s.get("key")]
    assert calls[0]["payload"]["properties"] == {keys[1]: "true"}
    assert _server_state(server) == before


def test_a_bad_events_line_is_reported_by_its_number(
    prepared: tuple[ServerProcess, Path, list[Any]], tmp_path: Path
) -> None:
    server, _, before = prepared
    onboarding = str(EXAMPLES / "onboarding.yaml")
    not_json = tmp_path / "not-json.jsonl"
    not_json.write_text('# fine\n{"advance": "1h"}\n{"type": "track",\n')
    result = run_cli("simulate", "-f", onboarding, "--events", str(not_json), server=server.target)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {not_json}:3: not JSON")
    assert "nothing was simulated" in result.stderr
    assert result.stdout == ""
    refused = tmp_path / "refused.jsonl"
    refused.write_text(
        '{"type": "track", "userId": "u1", "event": "Account Created"}\n'
        "\n"
        '{"type": "track", "userId": "u1"}\n'
        '{"advance_to": "2000-01-01T00:00:00Z"}\n'
    )
    result = run_cli("simulate", "-f", onboarding, "--events", str(refused), server=server.target)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{refused}:3: event: is required for a track call" in result.stderr
    assert f"{refused}:4: advance_to: is 2000-01-01T00:00:00.000Z, before" in result.stderr
    assert result.stdout == ""
    assert _server_state(server) == before
