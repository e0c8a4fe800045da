"""``journeys stats``, ``journeys users`` and ``journeys profile``: where users are, and why."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import click
from google.protobuf import json_format
from google.protobuf.message import Message
from journeys.v1 import reporting_pb2
from journeys_client import JourneysClient
from journeys_client.files import STATUS_NAMES, to_doc

from journeys_cli.completion import complete_journey_ids
from journeys_cli.context import with_client
from journeys_cli.output import emit, instant_text, output_option, plural, table
from journeys_cli.privacy import ProfileCommand

__all__ = ["profile", "stats", "stats_data", "tree_text", "users"]

_COLUMNS = ("MEMBERS", "WAITING", "USERS", "RUNS")


# stats


def _kind(step: Mapping[str, Any]) -> str:
    kind = step["type"]
    if kind == "wait_duration":
        return f"wait {step['duration']}"
    if kind == "send_to_destinations":
        return "send → " + (", ".join(step.get("destinations", ())) or "no destination")
    return {
        "entry": "entry",
        "wait_condition": "wait until",
        "true_false_split": "true/false",
        "multi_branch_split": "branches",
    }[kind]


def _children(step: Mapping[str, Any], counts: list[int]) -> Iterator[tuple[str, str | None]]:
    """(edge label, child id) in declared order; splits label each side with its runs."""
    match step["type"]:
        case "true_false_split":
            sides = (("true", step.get("if_true")), ("false", step.get("if_false")))
            for i, (name, child) in enumerate(sides):
                yield f"{name} ({counts[i] if i < len(counts) else 0})", child
        case "multi_branch_split":
            for i, branch in enumerate(step["branches"]):
                yield (
                    f"{branch['name']} ({counts[i] if i < len(counts) else 0})",
                    branch.get("next"),
                )
        case _:
            if step.get("next"):
                yield "", step["next"]


def _tree_rows(
    doc: Mapping[str, Any], stats: reporting_pb2.JourneyStats
) -> list[tuple[str, list[int]]]:
    """The journey drawn as a tree, one (label, counts) row per line."""
    steps = {s["id"]: s for s in doc["steps"]}
    by_step = {s.step_id: s for s in stats.steps}
    rows: list[tuple[str, list[int]]] = []

    def walk(step_id: str, lead: str, branch: str, last_lead: str) -> None:
        step = steps[step_id]
        counts = by_step.get(step_id, reporting_pb2.StepStats())
        rows.append(
            (
                f"{lead}{branch}{step['name']} [{_kind(step)}]",
                [counts.members, counts.waiting, counts.joined_users, counts.joined_runs],
            )
        )
        edges = list(_children(step, list(counts.branch_runs)))
        for i, (label, child) in enumerate(edges):
            last = i == len(edges) - 1
            if step["type"] in ("true_false_split", "multi_branch_split"):
                fork = "└─ " if last else "├─ "
                edge = f"{label} → " if child else f"{label} → (end)"
                if child:
                    walk(child, last_lead + fork, edge, last_lead + ("   " if last else "│  "))
                else:
                    rows.append((last_lead + fork + edge, []))
            elif child:
                walk(child, last_lead + "└─ ", "", last_lead + "   ")

    entry = next(s["id"] for s in doc["steps"] if s["type"] == "entry")
    walk(entry, "", "", "")
    return rows


def stats_data(doc: Mapping[str, Any], stats: reporting_pb2.JourneyStats) -> dict[str, Any]:
    steps = {s["id"]: s for s in doc["steps"]}
    return {
        "journey_id": stats.journey_id,
        "name": doc["name"],
        "status": STATUS_NAMES.get(stats.status, "?"),
        "entered_users": stats.entered_users,
        "entered_runs": stats.entered_runs,
        "in_progress": stats.in_progress,
        "exited_runs": stats.exited_runs,
        "steps": [
            {
                "step_id": s.step_id,
                "name": steps[s.step_id]["name"],
                "type": steps[s.step_id]["type"],
                "members": s.members,
                "waiting": s.waiting,
                "joined_users": s.joined_users,
                "joined_runs": s.joined_runs,
                **({"branch_runs": list(s.branch_runs)} if s.branch_runs else {}),
            }
            for s in stats.steps
        ],
    }


def tree_text(doc: Mapping[str, Any], stats: reporting_pb2.JourneyStats) -> str:
    rows = _tree_rows(doc, stats)
    width = max(len("STEP"), *(len(label) for label, _ in rows))
    widths = [max(len(h), 7) for h in _COLUMNS]
    lines = [
        f"{doc['name']} ({stats.journey_id}) · {STATUS_NAMES.get(stats.status, '?')}",
        f"entered: {plural(stats.entered_users, 'user')} in {plural(stats.entered_runs, 'run')}"
        f" · in progress: {stats.in_progress} · exited: {stats.exited_runs}",
        "",
        "STEP".ljust(width)
        + "".join(h.rjust(w + 2) for h, w in zip(_COLUMNS, widths, strict=True)),
    ]
    for label, counts in rows:
        cells = "".join(str(c).rjust(w + 2) for c, w in zip(counts, widths, strict=False))
        lines.append((label.ljust(width) + cells).rstrip())
    lines += [
        "",
        "MEMBERS: runs in the step now · WAITING: runs held there · "
        "USERS, RUNS: ever joined · (n): runs down each side",
    ]
    return "\n".join(lines)


@click.command()
@click.argument("journey_id", shell_complete=complete_journey_ids)
@output_option()
@with_client
async def stats(client: JourneysClient, journey_id: str, fmt: str) -> None:
    """Draw a journey as a tree with the counts on each step (SPEC §8).

    Per journey: users and runs that entered, runs in progress, runs that
    exited. Per step: MEMBERS (runs that joined it and have not ended; for a
    send step, exactly its list), WAITING (runs held there now), and the users
    and runs that ever joined it. Each side of a split shows how many runs took it.

    \b
    Example:
      journeys stats cart-abandonment
      journeys stats cart-abandonment -o json
    """
    journey = await client.get_journey(journey_id)
    counts = await client.get_journey_stats(journey_id)
    doc = to_doc(journey)
    if fmt == "table":
        click.echo(tree_text(doc, counts))
    else:
        emit(fmt, stats_data(doc, counts))


# users


@click.command()
@click.argument("journey_id", shell_complete=complete_journey_ids)
@click.argument("step_id")
@click.option("--waiting", is_flag=True, help="Only the runs held at the step now.")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="Print at most this many.",
)
@click.option("--all", "every", is_flag=True, help="Print every one (ignores --limit).")
@output_option()
@with_client
async def users(
    client: JourneysClient,
    journey_id: str,
    step_id: str,
    waiting: bool,
    limit: int,
    every: bool,
    fmt: str,
) -> None:
    """List the users at a step: runs that joined it and have not ended, in the
    order they came (with --waiting, only those held there now).

    \b
    Example:
      journeys users cart-abandonment wait-1h --waiting
      journeys users cart-abandonment email-reminder --all -o json
    """
    found = await client.list_step_users(
        journey_id, step_id, waiting_only=waiting, limit=None if every else limit + 1
    )
    more = not every and len(found) > limit
    found = found if every else found[:limit]
    data = [
        {
            "profile_key": u.profile_key,
            "user_id": u.user_id or None,
            "anonymous_id": u.anonymous_id or None,
            "run": u.run,
            "waiting": u.waiting,
        }
        for u in found
    ]
    rows = [
        (d["profile_key"], d["user_id"], d["anonymous_id"], d["run"], "yes" if d["waiting"] else "")
        for d in data
    ]
    emit(fmt, data, headers=("profile", "user id", "anonymous id", "run", "waiting"), rows=rows)
    if more:
        click.echo(f"(the first {limit}; --limit N or --all for more)", err=True)


# profile


def _plain(value: Any) -> Any:
    """JSON data as protobuf's JSON mapping gave it, whole numbers back as integers
    (a Struct keeps every number as a double)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _struct(struct: Message) -> dict[str, Any]:
    data: dict[str, Any] = _plain(json_format.MessageToDict(struct))
    return data


_WAIT_KINDS = {
    reporting_pb2.WAIT_KIND_DURATION: "duration",
    reporting_pb2.WAIT_KIND_CONDITION: "condition",
    reporting_pb2.WAIT_KIND_BRANCHES: "branches",
}


def _profile_data(view: reporting_pb2.Profile) -> dict[str, Any]:
    return {
        "profile_key": view.profile_key,
        "user_id": view.user_id or None,
        "anonymous_id": view.anonymous_id or None,
        "linked_user_id": view.linked_user_id or None,
        "traits": _struct(view.traits),
        "computed_traits": _struct(view.computed_traits),
        "audiences": list(view.audience_ids),
        "journeys": [
            {
                "journey_id": j.journey_id,
                "name": j.journey_name,
                "status": STATUS_NAMES.get(j.status, "?"),
                "runs": j.runs,
                "run": j.run or None,
                "entered_at": instant_text(j.entered_at) or None,
                "exited_at": instant_text(j.exited_at) or None,
                "steps": list(j.step_ids),
                "step_names": list(j.step_names),
                "waits": [
                    {
                        "step_id": w.step_id,
                        "step_name": w.step_name,
                        "kind": _WAIT_KINDS.get(w.kind, "?"),
                        "until": instant_text(w.until) or None,
                        "recheck_at": instant_text(w.recheck_at) or None,
                        "condition": w.condition or None,
                        "untaken_branches": list(w.untaken_branches),
                        "untaken_branch_names": list(w.untaken_branch_names),
                    }
                    for w in j.waits
                ],
                "next_check": instant_text(j.next_check) or None,
                "entry_blocked": j.entry_blocked,
                "reentry_at": instant_text(j.reentry_at) or None,
            }
            for j in view.journeys
        ],
    }


def _waited_for(condition: str, untaken_names: Iterable[str]) -> str:
    """What a run waits for: a condition's text, or the untaken branches' names."""
    return condition or "branches " + ", ".join(untaken_names)


def _wait_text(wait: reporting_pb2.StepWait) -> str:
    if wait.kind == reporting_pb2.WAIT_KIND_DURATION:
        return f"until {instant_text(wait.until)}"
    what = _waited_for(wait.condition, wait.untaken_branch_names)
    recheck = instant_text(wait.recheck_at)
    return f"for {what}" + (f" (re-checked at {recheck})" if recheck else " (on new data)")


def _profile_text(view: reporting_pb2.Profile) -> str:
    ids = [f"user id {view.user_id}"] if view.user_id else []
    if view.anonymous_id:
        ids.append(f"anonymous id {view.anonymous_id}")
    lines = [f"profile {view.profile_key} ({', '.join(ids)})"]
    if view.linked_user_id and view.linked_user_id != view.user_id:
        lines.append(
            f"(its anonymous id is linked to user {view.linked_user_id}: "
            "later messages go to that profile)"
        )
    traits = _struct(view.traits)
    computed = _struct(view.computed_traits)
    lines += ["", "TRAITS", table(("trait", "value"), sorted(traits.items()))]
    lines += ["", "COMPUTED TRAITS", table(("id", "value"), sorted(computed.items()))]
    lines += ["", "AUDIENCES", ", ".join(view.audience_ids) or "(none)"]
    rows = []
    for j in view.journeys:
        where = " → ".join(j.step_names)
        waits = "; ".join(f"{w.step_name} {_wait_text(w)}" for w in j.waits)
        if j.entry_blocked:
            waits = "entry held: its condition must turn false first (it held while paused)"
        elif j.HasField("reentry_at"):
            waits = f"may enter again at {instant_text(j.reentry_at)}"
        elif not j.run and j.runs:
            waits = "entered before; no re-entry"
        elif not j.runs:
            waits = "not entered: the entry condition has not held (or the exit one holds)"
        rows.append(
            (
                j.journey_id,
                STATUS_NAMES.get(j.status, "?"),
                f"{j.run} of {j.runs}" if j.run else f"- of {j.runs}",
                where or "-",
                waits,
                instant_text(j.next_check),
            )
        )
    lines += [
        "",
        "JOURNEYS",
        table(("journey", "status", "run", "steps this run", "waiting", "next check"), rows),
    ]
    return "\n".join(lines)


_WHAT = {
    reporting_pb2.TIMELINE_KIND_ENTERED: "entered",
    reporting_pb2.TIMELINE_KIND_ARRIVED: "arrived",
    reporting_pb2.TIMELINE_KIND_WAITING: "waiting",
    reporting_pb2.TIMELINE_KIND_RECHECKED: "re-checked",
    reporting_pb2.TIMELINE_KIND_PASSED: "passed",
    reporting_pb2.TIMELINE_KIND_SPLIT: "split",
    reporting_pb2.TIMELINE_KIND_BRANCH_TAKEN: "branch taken",
    reporting_pb2.TIMELINE_KIND_SENT: "sent",
    reporting_pb2.TIMELINE_KIND_EXITED: "exited",
}


def _cause_text(cause: reporting_pb2.Cause) -> str:
    match cause.kind:
        case reporting_pb2.CAUSE_KIND_MESSAGE:
            what = cause.message_type + (f" {cause.event!r}" if cause.event else "")
            return f"{what} ({cause.message_id})"
        case reporting_pb2.CAUSE_KIND_TIMER:
            return "timer"
        case reporting_pb2.CAUSE_KIND_DEFINITIONS:
            return "definitions changed"
        case reporting_pb2.CAUSE_KIND_JOURNEY:
            return "journey changed"
        case reporting_pb2.CAUSE_KIND_HISTORY:
            return "historical data"
    return ""


def _detail_text(entry: reporting_pb2.TimelineEntry) -> str:
    match entry.kind:
        case reporting_pb2.TIMELINE_KIND_WAITING:
            if entry.HasField("until"):
                return f"until {instant_text(entry.until)}"
            what = _waited_for(entry.condition, entry.untaken_branch_names)
            recheck = instant_text(entry.recheck_at)
            return f"for {what}" + (f"; re-check at {recheck}" if recheck else "; on new data")
        case reporting_pb2.TIMELINE_KIND_RECHECKED:
            recheck = instant_text(entry.recheck_at)
            return f"still waiting; next re-check at {recheck}" if recheck else "still waiting"
        case reporting_pb2.TIMELINE_KIND_PASSED | reporting_pb2.TIMELINE_KIND_EXITED:
            return entry.reason
        case reporting_pb2.TIMELINE_KIND_SPLIT | reporting_pb2.TIMELINE_KIND_BRANCH_TAKEN:
            return entry.branch
        case reporting_pb2.TIMELINE_KIND_SENT:
            return f"{entry.change} → {entry.destination_id} ({entry.message_id})"
    return ""


def _timeline_data(entry: reporting_pb2.TimelineEntry) -> dict[str, Any]:
    """An entry as JSON data: kinds by name, instants as outputs carry them."""
    data: dict[str, Any] = json_format.MessageToDict(entry, preserving_proto_field_name=True)
    data["sequence"] = entry.sequence
    data["kind"] = reporting_pb2.TimelineKind.Name(entry.kind).removeprefix("TIMELINE_KIND_")
    data["kind"] = data["kind"].lower()
    cause = reporting_pb2.CauseKind.Name(entry.cause.kind).removeprefix("CAUSE_KIND_")
    data["cause"]["kind"] = cause.lower()
    for key in ("time", "until", "recheck_at"):
        if entry.HasField(key):
            data[key] = instant_text(getattr(entry, key))
    return data


@click.command(cls=ProfileCommand)
@click.argument("profile_id", metavar="USER")
@click.option("--anonymous", is_flag=True, help="USER is an anonymous id, not a user id.")
@click.option("--timeline", is_flag=True, help="Print what happened to it, step by step, and why.")
@click.option("--journey", "journey_id", default="", help="With --timeline: one journey only.")
@output_option()
@with_client
async def profile(
    client: JourneysClient,
    profile_id: str,
    anonymous: bool,
    timeline: bool,
    journey_id: str,
    fmt: str,
) -> None:
    """Show a profile: traits, computed traits, audiences, and where it is in
    each journey it entered; with --timeline, every transition with its
    instant and cause (entered, arrived, waiting on what and re-checked when,
    branch taken, sent, exited).

    Actions: `journeys profile delete USER [--suppress]` deletes a profile and
    everything about it; `journeys profile suppression USER` and `journeys
    profile unsuppress USER` show and lift a suppression.

    \b
    Example:
      journeys profile u-123
      journeys profile u-123 --timeline --journey cart-abandonment
      journeys profile 4f6a-anon --anonymous -o json
      journeys profile delete u-123 --suppress
    """
    ids = {"anonymous_id": profile_id} if anonymous else {"user_id": profile_id}
    if journey_id and not timeline:
        raise click.UsageError("--journey goes with --timeline")
    if timeline:
        entries = await client.list_timeline(journey_id=journey_id, **ids)
        if fmt != "table":
            emit(fmt, [_timeline_data(e) for e in entries])
            return
        rows = [
            (
                instant_text(e.time),
                e.journey_id,
                e.run,
                _WHAT[e.kind],
                e.step_name or e.step_id,
                _detail_text(e),
                _cause_text(e.cause),
            )
            for e in entries
        ]
        headers = ("time", "journey", "run", "what", "step", "detail", "cause")
        emit(fmt, [], headers=headers, rows=rows)
        return
    view = await client.get_profile(**ids)
    if fmt != "table":
        emit(fmt, _profile_data(view))
        return
    click.echo(_profile_text(view))
