"""``journeys profile delete|suppression|unsuppress`` against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.processes import ServerProcess, run_cli

pytestmark = pytest.mark.e2e

LIST_JOURNEY = """
kind: Destination
id: ads
name: Ads
type: list
---
kind: Journey
id: j
name: J
steps:
- id: entry
  name: Entry
  type: entry
  condition: event('Signed Up').count() >= 1
  next: send
- id: send
  name: Send
  type: send_to_destinations
  destinations: [ads]
"""


def cli(server: ServerProcess, *args: str, status: int = 0) -> str:
    result = run_cli(*args, server=server.target)
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout if status == 0 else result.stdout + result.stderr


def test_profile_delete_suppress_then_send_reports_the_refusal(
    manual: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "journey.yaml"
    path.write_text(LIST_JOURNEY)
    cli(manual, "apply", "-f", str(path))
    cli(manual, "publish", "j")
    cli(manual, "send", "track", "Signed Up", "-u", "u1", "-a", "a1")
    cli(manual, "send", "track", "Signed Up", "-u", "u2")
    assert "profile u1 (" in cli(manual, "profile", "u1")

    # Not on a terminal, a deletion must be confirmed with --yes.
    refused = cli(manual, "profile", "delete", "u1", status=1)
    assert "confirm it with --yes" in refused
    assert "profile u1 (" in cli(manual, "profile", "u1")

    out = cli(manual, "profile", "delete", "u1", "--suppress", "--yes")
    lines = out.splitlines()
    assert lines[0] == (
        "deleted 1 profile of user 'u1': 1 run ended, 1 membership removed downstream"
    )
    assert lines[1].startswith("suppressed 2 ids: their messages are refused until ")

    # The list destination is told; the profile is gone; the person's messages are refused.
    calls = [json.loads(line) for line in cli(manual, "tail", "ads", "--idle", "1").splitlines()]
    assert [(c["userId"], c["change"]) for c in calls] == [
        ("u1", "added"),
        ("u2", "added"),
        ("u1", "removed"),
    ]
    assert "profile 'u1' not found" in cli(manual, "profile", "u1", status=1)
    for ids in (("-u", "u1"), ("-a", "a1")):
        sent = cli(manual, "send", "track", "Back", *ids, status=1)
        assert "the server refused the message" in sent and "suppressed:" in sent, sent
    assert "accepted" in cli(manual, "send", "track", "Page", "-u", "u2")
    assert "entered" in cli(manual, "profile", "u2", "--timeline")  # (USER is still a user)

    status = cli(manual, "profile", "suppression", "u1", "-o", "json")
    assert json.loads(status)["suppressed"] is True
    assert "is suppressed until" in cli(manual, "profile", "suppression", "a1", "--anonymous")
    assert "no longer suppressed" in cli(manual, "profile", "unsuppress", "u1")
    assert "was not suppressed" in cli(manual, "profile", "unsuppress", "u1")
    assert "accepted" in cli(manual, "send", "track", "Back", "-u", "u1")
    assert "no profile of user 'ghost' found" in cli(manual, "profile", "delete", "ghost", "-y")
