"""Every verb of the ``journeys`` command line explains itself with an example."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
from click.testing import CliRunner
from journeys_cli.main import cli


def _verbs(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _verbs(command, (*path, name))
        else:
            yield (*path, name)


def test_every_verb_has_help_with_an_example() -> None:
    verbs = list(_verbs(cli))
    some = {("serve",), ("stats",), ("users",), ("profile",), ("backup",), ("completion",)}
    assert some <= set(verbs)
    runner = CliRunner()
    for verb in verbs:
        result = runner.invoke(cli, [*verb, "--help"])
        assert result.exit_code == 0, verb
        assert "Example:" in result.output, verb
        assert f"journeys {' '.join(verb)}" in result.output.split("Example:")[1], verb


def test_every_read_verb_takes_the_three_output_formats() -> None:
    runner = CliRunner()
    for verb in (
        ("get",), ("list",), ("stats",), ("users",), ("profile",), ("clock", "get"),
        ("condition", "check"),
    ):  # fmt: skip
        result = runner.invoke(cli, [*verb, "--help"])
        assert "-o, --output [table|json|yaml]" in result.output, verb


def test_completion_scripts_complete_verbs_for_each_shell() -> None:
    runner = CliRunner()
    for shell in ("bash", "zsh", "fish"):
        result = runner.invoke(cli, ["completion", shell])
        assert result.exit_code == 0 and "_JOURNEYS_COMPLETE" in result.output, shell
    refused = runner.invoke(cli, ["completion", "powershell"])
    assert refused.exit_code == 2 and "powershell" in refused.output


def test_verbs_other_than_serve_start_without_the_server_or_the_engine() -> None:
    code = (
        "import sys; import journeys_cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('journeys_server', 'journeys_engine')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_serve_refuses_a_zero_duration_before_starting() -> None:
    for option in ("--passivate-after", "--timeline-retention", "--outbox-retention"):
        result = CliRunner().invoke(cli, ["serve", option, "0s"])
        assert result.exit_code == 2, (option, result.output)
        assert f"Invalid value for '{option}': '0s' must be more than zero" in result.output
