"""The command line against a real server process, as a user drives it."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.builders import EXAMPLE_FILES, EXAMPLES
from tests.helpers.processes import ServerProcess, run_cli

pytestmark = pytest.mark.e2e

JOURNEY_IDS = ["cart-abandonment", "onboarding", "paid-subscription", "trial-to-paid", "winback"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "journeys.db") as server:
        yield server


def ok(*args: str, server: ServerProcess, space: str | None = None) -> str:
    result = run_cli(*args, server=server.target, space=space)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(*args: str, server: ServerProcess, space: str | None = None) -> str:
    result = run_cli(*args, server=server.target, space=space)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    return result.stderr


def apply_examples(server: ServerProcess) -> str:
    args = [arg for path in EXAMPLE_FILES for arg in ("-f", str(path))]
    return ok("apply", *args, server=server)


def test_the_examples_apply_and_publish(served: ServerProcess) -> None:
    out = apply_examples(served)
    lines = out.splitlines()
    assert "destination/email created" in lines
    assert "computed-trait/clv created" in lines
    assert lines.count("destination/email unchanged") == 0  # the same document once per file
    assert [line for line in lines if line.startswith("journey/")] == [
        f"journey/{j} created" for j in JOURNEY_IDS
    ]
    for journey_id in JOURNEY_IDS[:4]:
        assert ok("publish", journey_id, server=served) == f"journey/{journey_id} published\n"
    # Winback's entry uses historical data: nobody is stored yet, so nobody enters.
    published, summary = ok("publish", "winback", server=served).splitlines()
    assert published == "journey/winback published"
    assert re.fullmatch(
        r"historical entry op_[a-z0-9]{12} succeeded: 0 profiles looked at, 0 entered, "
        r"0 history events read( \(\d+ profiles/s\))?",
        summary,
    ), summary
    table = ok("list", "journeys", server=served)
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert set(rows) == set(JOURNEY_IDS)
    assert "published" in rows["onboarding"] and "published" in rows["winback"]
    # Applying again changes nothing.
    again = apply_examples(served).splitlines()
    assert all(line.endswith(" unchanged") for line in again), again


def test_get_output_applies_back_unchanged(served: ServerProcess, tmp_path: Path) -> None:
    apply_examples(served)
    ok("publish", "cart-abandonment", server=served)
    saved = tmp_path / "cart.yaml"
    text = ok("get", "journey", "cart-abandonment", server=served)
    assert "status: published" in text and "key: j_o_cart_abandonment__email_reminder_" in text
    saved.write_text(text)
    assert ok("apply", "-f", str(saved), server=served) == "journey/cart-abandonment unchanged\n"
    # A live journey accepts a rename and refuses a structural edit, naming it.
    saved.write_text(text.replace("name: Cart abandonment", "name: Abandoned carts"))
    assert (
        ok("apply", "-f", str(saved), server=served) == "journey/cart-abandonment updated (name)\n"
    )
    saved.write_text(text.replace("duration: 1h", "duration: 2h"))
    error = refused("apply", "-f", str(saved), server=served)
    assert "journey.steps[1].wait_duration.duration" in error
    as_json = json.loads(ok("get", "journey", "cart-abandonment", "-o", "json", server=served))
    assert as_json["name"] == "Abandoned carts"
    assert as_json["steps"][1]["duration"] == "1h"


def test_invalid_files_and_requests_print_clear_errors(
    served: ServerProcess, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "onboarding.yaml").read_text().replace("duration: 1h", "duration: 0s")
    )
    error = refused("apply", "-f", str(bad), server=served)
    assert "journey.steps[1].wait_duration.duration: must be more than zero" in error
    assert ok("list", "journeys", server=served).strip() == "(none)"
    typo = tmp_path / "typo.yaml"
    typo.write_text("kind: Destination\nid: d\nname: D\ntpye: list\n")
    error = refused("apply", "-f", str(typo), server=served)
    assert "tpye: is not a known field (did you mean 'type'?)" in error
    assert "space 'nowhere' not found" in refused(
        "list", "journeys", server=served, space="nowhere"
    )
    assert "journey 'ghost' not found" in refused("publish", "ghost", server=served)
    missing = refused("apply", "-f", str(tmp_path / "missing.yaml"), server=served)
    assert "missing.yaml" in missing


def test_unreachable_server() -> None:
    result = run_cli("list", "journeys", server="127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the journeys server at 127.0.0.1:1")
    assert "Traceback" not in result.stderr


def test_spaces_and_definitions(served: ServerProcess) -> None:
    assert ok("space", "create", "acme", "--display-name", "Acme Inc.", server=served) == (
        "space/acme created\n"
    )
    spaces = json.loads(ok("list", "spaces", "-o", "json", server=served))
    assert [(s["id"], s["display_name"]) for s in spaces] == [
        ("default", "Default"),
        ("acme", "Acme Inc."),
    ]
    ok("apply", "-f", str(EXAMPLES / "trial-to-paid.yaml"), server=served, space="acme")
    assert ok("list", "journeys", server=served).strip() == "(none)"
    destinations = ok("list", "destinations", server=served, space="acme")
    assert "support" in destinations and "identify" in destinations
    ok("publish", "trial-to-paid", server=served, space="acme")
    error = refused("delete", "destination", "support", server=served, space="acme")
    assert "used by published journey 'trial-to-paid'" in error
    ok("delete", "trial-to-paid", server=served, space="acme")
    assert ok("delete", "destination", "support", server=served, space="acme") == (
        "destination/support deleted\n"
    )


def test_lifecycle_verbs(served: ServerProcess) -> None:
    ok("apply", "-f", str(EXAMPLES / "onboarding.yaml"), server=served)
    assert ok("publish", "onboarding", server=served) == "journey/onboarding published\n"
    assert ok("pause", "onboarding", server=served) == "journey/onboarding paused\n"
    assert ok("resume", "onboarding", server=served) == "journey/onboarding resumed\n"
    assert ok("clone", "onboarding", "--id", "onboarding-2", server=served) == (
        "journey/onboarding-2 created (clone of onboarding)\n"
    )
    assert ok("archive", "onboarding", server=served) == "journey/onboarding archived\n"
    assert "it is archived" in refused("resume", "onboarding", server=served)
    assert ok("delete", "onboarding", server=served) == "journey/onboarding deleted\n"
    listed = json.loads(ok("list", "journeys", "-o", "json", server=served))
    assert [(j["id"], j["name"], j["status"]) for j in listed] == [
        ("onboarding-2", "Copy of Onboarding flow", "draft")
    ]


def test_restart_keeps_everything(tmp_path: Path) -> None:
    db = tmp_path / "journeys.db"
    with ServerProcess(db) as first:
        apply_examples(first)
        ok("publish", "onboarding", server=first)
        ok("space", "create", "acme", server=first)
        ok("clone", "onboarding", "--id", "copy", server=first)
        before = {
            "journeys": ok("list", "journeys", "-o", "json", server=first),
            "spaces": ok("list", "spaces", "-o", "json", server=first),
            "destinations": ok("list", "destinations", "-o", "json", server=first),
            "traits": ok("list", "computed-traits", "-o", "json", server=first),
        }
        assert first.stop(signal.SIGTERM) == 0
        assert "journeys server stopped" in "".join(first.output)
    with ServerProcess(db) as second:
        after = {
            "journeys": ok("list", "journeys", "-o", "json", server=second),
            "spaces": ok("list", "spaces", "-o", "json", server=second),
            "destinations": ok("list", "destinations", "-o", "json", server=second),
            "traits": ok("list", "computed-traits", "-o", "json", server=second),
        }
        assert after == before
        assert len(json.loads(after["journeys"])) == 6
        # The restarted server still enforces what it stored: keys, statuses, limits.
        assert "it is published" in refused("publish", "onboarding", server=second)


def test_a_database_from_a_newer_server_is_refused(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "journeys.db"
    with ServerProcess(db) as server:
        assert server.stop() == 0
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version=999")
    result = run_cli("serve", "--db", str(db), "--port", "0")
    assert result.returncode == 2
    assert "newer than this server understands" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_on_every_verb_has_an_example() -> None:
    for verb in ("serve", "apply", "get", "list", "publish", "pause", "resume", "archive",
                 "clone", "delete"):  # fmt: skip
        result = run_cli(verb, "--help")
        assert result.returncode == 0
        assert "Example:" in result.stdout, verb


def test_a_busy_port_is_refused(served: ServerProcess, tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        "--db",
        str(tmp_path / "other.db"),
        "--host",
        "127.0.0.1",
        "--port",
        str(served.port),
        "--insecure-no-auth",
    )
    assert result.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{served.port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_condition_check(served: ServerProcess) -> None:
    out = ok("condition", "check", 'event("A").within(1 day).count()>=1', server=served)
    lines = out.splitlines()
    assert lines[0] == "event('A').within(1 days).count() >= 1"
    assert "comparator: COMPARATOR_GTE" in out
    as_json = json.loads(
        ok(
            "condition",
            "check",
            "--computed-trait",
            "event('A').sum(property('p'))",
            "-o",
            "json",
            server=served,
        )
    )
    assert as_json["tree"]["event"]["reducer"]["kind"] == "REDUCER_KIND_SUM"
    bad = "event('A').count() >= 1 AND\n  trait('x').count() > 1"
    error = refused("condition", "check", bad, server=served)
    assert "line 2, column 14: count(...) reduces an event stream" in error
    # the offending line, with a caret under column 14 (after a 4-space indent)
    assert error.rstrip().endswith("\n      trait('x').count() > 1\n" + " " * 17 + "^")
