"""Journey files that cannot be sent: each problem named, never a stray exception."""

from __future__ import annotations

import pytest
from journeys_client.files import FileFormatError, parse_documents

from tests.helpers.processes import run_cli

WAIT_STEP = """
kind: Journey
id: j
name: J
steps:
- id: e
  name: E
  type: entry
  condition: event('A').count() >= 1
  next: w
- id: w
  name: W
  type: wait_duration
  duration: {duration}
"""
EXIT_AFTER = """
kind: Journey
id: j
name: J
settings:
  exit_after: {duration}
steps:
- id: e
  name: E
  type: entry
  condition: event('A').count() >= 1
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(FileFormatError) as caught:
        parse_documents(text, "f.yaml")
    return caught.value.problems


@pytest.mark.parametrize(
    ("template", "duration", "field"),
    [
        (WAIT_STEP, "99999999999999999d", "f.yaml.steps[1].duration"),
        (EXIT_AFTER, "1000000000000000w", "f.yaml.settings.exit_after"),
    ],
)
def test_a_duration_too_long_to_send_is_a_format_problem(
    template: str, duration: str, field: str
) -> None:
    problems = _problems(template.format(duration=duration))
    assert problems == [f"{field}: {duration!r} is too long a duration"]


def test_an_empty_document_is_reported() -> None:
    text = "kind: Destination\nid: d\nname: D\ntype: list\n---\n{}\n"
    assert _problems(text) == ["f.yaml: document 2: is empty"]


def test_an_empty_step_is_reported() -> None:
    text = WAIT_STEP.format(duration="1d") + "- {}\n"
    assert _problems(text) == ["f.yaml.steps[2]: is empty"]


def test_delete_with_a_kind_and_no_id_is_a_usage_error() -> None:
    result = run_cli("delete", "audience", server="127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: journeys delete")
    assert "name the audience to delete: journeys delete audience ID" in result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot reach" not in result.stderr
    assert result.stdout == ""
