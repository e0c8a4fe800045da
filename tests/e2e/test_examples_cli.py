"""The five example journeys on a real manual-clock server, driven only through the
``journeys`` command line as a user would: apply, publish, send, move the clock, then
read every destination with ``journeys tail`` and compare each call byte for byte with
what SPEC §5.8 and §7 say it must be.

The scripts and the expected (destination, user, step, change, minute) sequences are
those of the in-process tests in ``tests/engine/runtime/test_examples.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.helpers.builders import EXAMPLES
from tests.helpers.harness import MINUTE, Seen
from tests.helpers.live import DAY, START, identify, iso, track
from tests.helpers.processes import ServerProcess, run_cli

pytestmark = pytest.mark.e2e

DAY_MINUTES = 24 * 60  # the expected sequences count time in minutes after START
DESTINATIONS = {  # id: (name, type), as the example files define them
    "email": ("Email", "track"),
    "sms": ("SMS", "track"),
    "support": ("Support", "identify"),
    "in-app": ("In-App", "track"),
    "advertising": ("Advertising", "list"),
}


def cli(server: ServerProcess, *args: str, stdin: str | None = None) -> str:
    """``journeys ARGS`` against ``server``: it must succeed; returns its output."""
    result = run_cli(*args, server=server.target, stdin=stdin)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def at(server: ServerProcess, minutes: int) -> None:
    """Moves the manual clock to ``minutes`` after START (timers fire on the way)."""
    instant = iso(START + minutes * MINUTE)
    assert cli(server, "clock", "set", instant) == f"{instant}\n"


def send(server: ServerProcess, *messages: dict[str, Any]) -> None:
    """Sends Segment messages as JSON lines on stdin, in one batch, all accepted."""
    lines = "".join(json.dumps(m) + "\n" for m in messages)
    out = cli(server, "send", "-f", "-", stdin=lines)
    assert out.endswith(f": {len(messages)} accepted, 0 duplicates, 0 refused\n"), out


def send_one(server: ServerProcess, *args: str) -> None:
    """``journeys send ARGS``: one message, accepted."""
    out = cli(server, "send", *args)
    assert out.startswith("accepted (log position "), out


class Published(NamedTuple):
    journey: str
    keys: dict[str, str]  # send step id: key, as read back
    destinations: set[str]  # every destination its send steps use


def _slug(text: str, empty: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or empty


def publish(
    server: ServerProcess,
    journey: str,
    path: Path | None = None,
    *,
    history: Callable[[], None] | None = None,
    historical: str = "",
) -> Published:
    """At START: applies the example (or ``path``), sends ``history``, publishes it (a
    historical entry printing ``historical``) and reads its keys back."""
    at(server, 0)
    assert f"journey/{journey} created\n" in cli(
        server, "apply", "-f", str(path or EXAMPLES / f"{journey}.yaml")
    )
    if history is not None:
        history()
    lines = cli(server, "publish", journey).splitlines()
    assert lines[0] == f"journey/{journey} published"
    if historical:
        assert re.fullmatch(
            r"historical entry op_[a-z0-9]{12} succeeded: "
            + re.escape(historical)
            + r"( \(\d+ profiles/s\))?",
            lines[1],
        ), lines
    else:
        assert lines[1:] == []
    document = json.loads(cli(server, "get", "journey", journey, "-o", "json"))
    assert document["status"] == "published"
    sends = [s for s in document["steps"] if s["type"] == "send_to_destinations"]
    for step in sends:  # SPEC §4: j_o_ + slug(journey name) + __ + slug(step name) + _ + 6
        prefix = f"j_o_{_slug(document['name'], 'journey')}__{_slug(step['name'], 'step')}_"
        assert re.fullmatch(re.escape(prefix) + "[a-z0-9]{6}", step["key"]), step
    return Published(
        journey,
        {s["id"]: s["key"] for s in sends},
        {d for s in sends for d in s["destinations"]},
    )


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def output_id(journey: str, step: str, user: str, change: str, destination: str) -> str:
    """The id SPEC §5.8 gives an output of run 1."""
    parts = ["default", journey, step, user, 1, change, destination]
    return "jm_" + hashlib.sha256(_compact(parts).encode()).hexdigest()[:32]


def expected_call(journey: str, keys: dict[str, str], seen: Seen) -> str:
    """The payload SPEC §7 prescribes for one output (run 1, no anonymous id)."""
    destination, user, step, change, minute = seen
    entered = change == "entered"
    key, timestamp = keys[step], iso(START + minute * MINUTE)
    message_id = output_id(journey, step, user, change, destination)
    name, kind = DESTINATIONS[destination]
    if kind == "list":
        return _compact(
            {
                "messageId": message_id,
                "key": key,
                "stepId": step,
                "userId": user,
                "anonymousId": None,
                "change": "added" if entered else "removed",
                "run": 1,
                "timestamp": timestamp,
            }
        )
    payload: dict[str, object] = {"type": kind}
    if kind == "track":
        payload["event"] = "Audience Entered" if entered else "Audience Exited"
    payload |= {"userId": user, "anonymousId": None, "messageId": message_id}
    payload["timestamp"] = timestamp
    payload["properties" if kind == "track" else "traits"] = {key: str(entered).lower()}
    payload["context"] = {
        "personas": {
            "computation_class": "journey_step",
            "computation_id": step,
            "computation_key": key,
            "space_id": "default",
            "namespace": "spa_default",
        }
    }
    payload["integrations"] = {"All": False, name: True}
    return _compact(payload)


def _in_spec_order(lines: list[str]) -> list[str]:
    """Calls checked to be in time order; within one instant the order across users is
    unspecified (SPEC §7), so there they are put in user order (one user's own kept)."""
    records = [json.loads(line) for line in lines]
    stamps = [r["timestamp"] for r in records]
    assert stamps == sorted(stamps), lines
    order = sorted(range(len(lines)), key=lambda i: (stamps[i], records[i]["userId"]))
    return [lines[i] for i in order]


def assert_tails(server: ServerProcess, published: Published, seen: list[Seen]) -> None:
    """``journeys tail`` of every destination the journey uses prints exactly ``seen``."""
    expected: dict[str, list[str]] = {d: [] for d in published.destinations}
    for output in seen:
        expected[output[0]].append(expected_call(published.journey, published.keys, output))
    assert set(expected) == published.destinations  # nothing expected elsewhere
    names = sorted(expected)
    with ThreadPoolExecutor(len(names)) as pool:  # each one waits a second for nothing more
        outs = list(pool.map(lambda d: cli(server, "tail", d, "--idle", "1"), names))
    for destination, out in zip(names, outs, strict=True):
        actual = out.splitlines()
        assert _in_spec_order(actual) == _in_spec_order(expected[destination]), destination


def counts(
    server: ServerProcess, journey: str
) -> tuple[tuple[int, ...], dict[str, tuple[Any, ...]]]:
    """``journeys stats -o json``: (entered users, entered runs, in progress, exited), and
    per step (members, waiting, joined users, joined runs[, runs down each side])."""
    data = json.loads(cli(server, "stats", journey, "-o", "json"))
    totals = tuple(data[k] for k in ("entered_users", "entered_runs", "in_progress", "exited_runs"))
    steps = {
        s["step_id"]: (
            s["members"], s["waiting"], s["joined_users"], s["joined_runs"],
            *([s["branch_runs"]] if "branch_runs" in s else []),
        )
        for s in data["steps"]
    }  # fmt: skip
    return totals, steps


CART_STATS = """\
Cart abandonment (cart-abandonment) · published
entered: 3 users in 3 runs · in progress: 0 · exited: 3

STEP                                                                   MEMBERS  WAITING    USERS     RUNS
Cart abandoners [entry]                                                      0        0        3        3
└─ Wait 1 hour [wait 1h]                                                     0        0        3        3
   └─ Still not purchased [true/false]                                       0        0        2        2
      ├─ true (2) → Preferred channel [branches]                             0        0        2        2
      │  ├─ Email (1) → Email reminder [send → email]                        0        0        1        1
      │  ├─ SMS (1) → SMS reminder [send → sms]                              0        0        1        1
      │  └─ High value (1) → Retarget high value [send → advertising]        0        0        1        1
      └─ false (0) → (end)

MEMBERS: runs in the step now · WAITING: runs held there · USERS, RUNS: ever joined · (n): runs down each side
"""


def explain_stuck_user(server: ServerProcess) -> None:
    """At minute 120 u1 (email) is held at the channel split, waiting for the SMS and
    High value branches: the profile and the timeline say so, and why."""
    waiting = json.loads(
        cli(server, "users", "cart-abandonment", "channel", "--waiting", "-o", "json")
    )
    assert [(u["profile_key"], u["run"], u["waiting"]) for u in waiting] == [
        ("u1", 1, True), ("u3", 1, True)
    ]  # fmt: skip
    profile = json.loads(cli(server, "profile", "u1", "-o", "json"))
    assert profile["traits"] == {"preferred_channel": "email"}
    (journey,) = profile["journeys"]
    assert journey["steps"] == [
        "cart-abandoners", "wait-1h", "still-not-purchased", "channel", "email-reminder"
    ]  # fmt: skip
    assert journey["waits"] == [
        {
            "step_id": "channel",
            "step_name": "Preferred channel",
            "kind": "branches",
            "until": None,
            "recheck_at": None,  # only new data (a trait, an order) can change it
            "condition": None,
            "untaken_branches": [1, 2],
            "untaken_branch_names": ["SMS", "High value"],
        }
    ]
    assert journey["next_check"] == iso(START + 7 * DAY)  # exit_after
    table = cli(server, "profile", "u1", "--timeline").splitlines()
    assert table[0].split() == ["TIME", "JOURNEY", "RUN", "WHAT", "STEP", "DETAIL", "CAUSE"]
    assert [line.split("  ")[0] for line in table[1:]] == [iso(START)] * 4 + [
        iso(START + 60 * MINUTE)
    ] * 8
    last = table[-1]
    assert "waiting" in last and "Preferred channel" in last
    assert "for branches SMS, High value; on new data" in last and last.endswith("timer")
    entries = json.loads(cli(server, "profile", "u1", "--timeline", "-o", "json"))
    assert [(e["kind"], e.get("step_id", ""), e["cause"]["kind"]) for e in entries] == [
        ("entered", "", "message"),
        ("arrived", "cart-abandoners", "message"),
        ("arrived", "wait-1h", "message"),
        ("waiting", "wait-1h", "message"),
        ("passed", "wait-1h", "timer"),
        ("arrived", "still-not-purchased", "timer"),
        ("split", "still-not-purchased", "timer"),
        ("arrived", "channel", "timer"),
        ("branch_taken", "channel", "timer"),
        ("arrived", "email-reminder", "timer"),
        ("sent", "email-reminder", "timer"),
        ("waiting", "channel", "timer"),
    ]
    assert entries[0]["cause"]["event"] == "Product Added"
    sent = entries[10]
    assert (sent["destination_id"], sent["change"], sent["time"]) == (
        "email", "entered", iso(START + 60 * MINUTE)
    )  # fmt: skip
    assert sent["message_id"] == output_id(
        "cart-abandonment", "email-reminder", "u1", "entered", "email"
    )


@pytest.fixture
def keeping(tmp_path: Path) -> Iterator[ServerProcess]:
    """A manual-clock server that keeps unread output for 30 days: the calls made at
    minute 60 are read after the clock has moved past the default 7 days."""
    args = ("--manual-clock", "--outbox-retention", "30d")
    with ServerProcess(tmp_path / "journeys.db", *args) as server:
        yield server


def test_cart_abandonment(keeping: ServerProcess) -> None:
    manual = keeping
    published = publish(manual, "cart-abandonment")
    send(
        manual,
        identify("u1", preferred_channel="email"),
        track("u1", "Product Added"),
        identify("u2", preferred_channel="sms"),
        track("u2", "Product Added"),
        {
            "type": "identify",
            "userId": "u3",
            "traits": {"preferred_channel": "sms", "Customer Lifetime Value": 150},
        },
        track("u3", "Product Added"),
    )
    at(manual, 30)
    # Orders within the day: the exit condition ends u2's run before any send.
    send_one(manual, "track", "Order Completed", "-u", "u2", "-p", "revenue=20")
    at(manual, 120)
    explain_stuck_user(manual)
    at(manual, 8 * DAY_MINUTES)
    assert_tails(
        manual,
        published,
        [
            ("email", "u1", "email-reminder", "entered", 60),
            ("sms", "u3", "sms-reminder", "entered", 60),
            ("advertising", "u3", "retarget", "entered", 60),
            ("email", "u1", "email-reminder", "exited", 7 * DAY_MINUTES),
            ("sms", "u3", "sms-reminder", "exited", 7 * DAY_MINUTES),
            ("advertising", "u3", "retarget", "exited", 7 * DAY_MINUTES),
        ],
    )

    # ---- statistics (SPEC §8) -------------------------------------------------------
    assert cli(manual, "stats", "cart-abandonment") == CART_STATS
    assert counts(manual, "cart-abandonment") == ((3, 3, 0, 3), {
        "cart-abandoners": (0, 0, 3, 3),
        "wait-1h": (0, 0, 3, 3),
        "still-not-purchased": (0, 0, 2, 2, [2, 0]),
        "channel": (0, 0, 2, 2, [1, 1, 1]),
        "email-reminder": (0, 0, 1, 1),
        "sms-reminder": (0, 0, 1, 1),
        "retarget": (0, 0, 1, 1),
    })  # fmt: skip


def test_low_recency_winback(manual: ServerProcess) -> None:
    def history() -> None:
        # Before the publish: u1 ordered for 150 two hundred days ago (out of the 180-day
        # window, in its lifetime value), u2 sent something else, u3 ordered ten days ago.
        order = ("track", "Order Completed", "-p")
        send_one(manual, *order, "revenue=150", "-u", "u1", "--timestamp", iso(START - 200 * DAY))
        send_one(manual, *order, "revenue=10", "-u", "u3", "--timestamp", iso(START - 10 * DAY))
        send(manual, track("u2", "Noise"))
        preview = cli(manual, "preview", "winback").splitlines()
        assert preview[0] == f"2 of 3 profiles match the entry of winback now ({iso(START)})"
        assert preview[1:] == ["  u1", "  u2"]

    published = publish(
        manual,
        "winback",
        history=history,
        historical="3 profiles looked at, 2 entered, 2 history events read",
    )
    at(manual, 30)
    send(manual, track("u4", "Noise"))  # new since the publish: enters now
    assert (
        cli(manual, "clock", "advance", "1d1h30m")
        == f"{iso(START + (DAY_MINUTES + 120) * MINUTE)}\n"
    )
    campaign = '{"campaign": {"source": "facebook"}}'
    send_one(manual, "page", "Sale", "-u", "u1", "--context", campaign)
    at(manual, 3 * DAY_MINUTES)
    assert_tails(
        manual,
        published,
        [
            ("email", "u1", "winback-high-value", "entered", 0),
            ("advertising", "u1", "winback-high-value", "entered", 0),
            ("email", "u2", "winback-email", "entered", 0),
            ("email", "u4", "winback-email", "entered", 30),
            ("email", "u1", "discount", "entered", DAY_MINUTES + 120),
        ],
    )
    timeline = json.loads(cli(manual, "profile", "u1", "--timeline", "-o", "json"))
    assert (timeline[0]["kind"], timeline[0]["cause"]) == ("entered", {"kind": "history"})
    assert timeline[0]["time"] == iso(START)

    # ---- statistics (SPEC §8) -------------------------------------------------------
    assert counts(manual, "winback") == ((3, 3, 3, 0), {
        "low-recency": (3, 0, 3, 3),
        "high-value": (3, 0, 3, 3, [1, 2]),
        "winback-high-value": (1, 0, 1, 1),
        "wait-1d": (1, 0, 1, 1),
        "clicked-campaign": (1, 0, 1, 1),
        "discount": (1, 0, 1, 1),
        "winback-email": (2, 0, 2, 2),
    })  # fmt: skip


def test_trial_to_paid(manual: ServerProcess) -> None:
    published = publish(manual, "trial-to-paid")
    send(
        manual,
        track("u1", "Trial Started"),
        track("u2", "Trial Started"),
        track("u3", "Subscription Started"),
        track("u3", "Trial Started"),
    )
    at(manual, 2 * DAY_MINUTES)
    send_one(manual, "track", "Subscription Started", "-u", "u1")
    at(manual, 6 * DAY_MINUTES)
    assert_tails(
        manual,
        published,
        [
            ("email", "u1", "thank-subscriber", "entered", 5 * DAY_MINUTES),
            ("support", "u1", "thank-subscriber", "entered", 5 * DAY_MINUTES),
            ("email", "u2", "convert-trial", "entered", 5 * DAY_MINUTES),
            ("support", "u2", "convert-trial", "entered", 5 * DAY_MINUTES),
            ("advertising", "u2", "convert-trial", "entered", 5 * DAY_MINUTES),
        ],
    )

    # ---- statistics (SPEC §8) -------------------------------------------------------
    assert counts(manual, "trial-to-paid") == ((2, 2, 2, 0), {
        "trial-started": (2, 0, 2, 2),
        "wait-5d": (2, 0, 2, 2),
        "subscribed": (2, 0, 2, 2, [1, 1]),
        "thank-subscriber": (1, 0, 1, 1),
        "convert-trial": (1, 0, 1, 1),
    })  # fmt: skip


def test_onboarding(manual: ServerProcess) -> None:
    published = publish(manual, "onboarding")
    send(manual, track("u1", "Account Created"), track("u2", "Account Created"))
    at(manual, 20)
    send_one(manual, "track", "Tutorial Completed", "-u", "u1")
    at(manual, 120)
    assert_tails(
        manual,
        published,
        [
            ("email", "u1", "engaged", "entered", 60),
            ("support", "u1", "engaged", "entered", 60),
            ("in-app", "u1", "engaged", "entered", 60),
            ("email", "u2", "needs-help", "entered", 60),
            ("support", "u2", "needs-help", "entered", 60),
            ("in-app", "u2", "needs-help", "entered", 60),
            ("advertising", "u2", "needs-help", "entered", 60),
        ],
    )

    # ---- statistics (SPEC §8) -------------------------------------------------------
    assert counts(manual, "onboarding") == ((2, 2, 2, 0), {
        "account-created": (2, 0, 2, 2),
        "wait-1h": (2, 0, 2, 2),
        "tutorial-completed": (2, 0, 2, 2, [1, 1]),
        "engaged": (1, 0, 1, 1),
        "needs-help": (1, 0, 1, 1),
    })  # fmt: skip


def test_paid_subscription_acquisition(manual: ServerProcess) -> None:
    published = publish(manual, "paid-subscription")
    free = {"Subscription Plan Type": "Free"}
    send(
        manual,
        track("u1", "Subscription Started", **free),
        track("u2", "Subscription Started", **free),
    )
    at(manual, 3 * DAY_MINUTES)
    paid = "Subscription Plan Type=paid"
    send_one(manual, "track", "Subscription Started", "-u", "u1", "-p", paid)
    at(manual, 9 * DAY_MINUTES)
    week = 60 + 7 * DAY_MINUTES
    assert_tails(
        manual,
        published,
        [
            ("email", "u1", "welcome", "entered", 60),
            ("email", "u2", "welcome", "entered", 60),
            ("email", "u1", "thank-paid", "entered", week),
            ("email", "u2", "push-paid", "entered", week),
            ("advertising", "u2", "push-paid", "entered", week),
        ],
    )

    # ---- statistics (SPEC §8) -------------------------------------------------------
    assert counts(manual, "paid-subscription") == ((2, 2, 2, 0), {
        "free-trial": (2, 0, 2, 2),
        "wait-1h": (2, 0, 2, 2),
        "welcome": (2, 0, 2, 2),
        "wait-7d": (2, 0, 2, 2),
        "converted": (2, 0, 2, 2, [1, 1]),
        "thank-paid": (1, 0, 1, 1),
        "push-paid": (1, 0, 1, 1),
    })  # fmt: skip


def test_the_other_read_verbs_print_each_format(manual: ServerProcess) -> None:
    publish(manual, "onboarding")
    at(manual, 0)
    assert json.loads(cli(manual, "clock", "get", "-o", "json")) == {"now": iso(START)}
    assert cli(manual, "clock", "get", "-o", "yaml") == f"now: '{iso(START)}'\n"
    steps = cli(manual, "get", "journey", "onboarding", "-o", "table").splitlines()
    assert steps[0] == "Onboarding flow (onboarding) · published"
    assert steps[1].split() == ["STEP", "NAME", "TYPE", "HOLDS"]
    assert [line.split()[0] for line in steps[2:]] == [
        "account-created", "wait-1h", "tutorial-completed", "engaged", "needs-help"
    ]  # fmt: skip
    text = "event('Signup').count() >= 1"
    checked = json.loads(cli(manual, "condition", "check", text, "-o", "json"))
    assert checked["text"] == text and "comparison" in checked["tree"]
    assert cli(manual, "condition", "check", text).startswith(f"{text}\n")


def test_shell_completion_offers_the_servers_journey_ids(manual: ServerProcess) -> None:
    publish(manual, "onboarding")
    words = f"journeys --server {manual.target} stats on"
    env = dict(os.environ, COMP_WORDS=words, COMP_CWORD="4", _JOURNEYS_COMPLETE="bash_complete")
    done = subprocess.run(
        [sys.executable, "-m", "journeys_cli"], env=env, capture_output=True, text=True, check=False
    )
    assert done.stdout.split() == ["plain,onboarding"], done.stderr
    env["COMP_WORDS"] = "journeys --server 127.0.0.1:1 stats on"  # nobody there: no offers
    done = subprocess.run(
        [sys.executable, "-m", "journeys_cli"], env=env, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "")
