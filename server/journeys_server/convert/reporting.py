"""Reporting results out: counts, users at a step, profiles, timeline entries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2
from journeys.v1 import reporting_pb2 as pb

from journeys_engine.reporting import JourneyReport, Member, ProfileView, StepWait
from journeys_engine.runtime import WaitKind
from journeys_engine.runtime.timeline import CauseKind, EntryKind, TimelineEntry
from journeys_server.convert.common import timestamp_proto
from journeys_server.convert.journeys import status_to_proto

__all__ = ["member_to_proto", "profile_to_proto", "report_to_proto", "timeline_entry_to_proto"]

_WAIT_KINDS = {
    WaitKind.DURATION: pb.WAIT_KIND_DURATION,
    WaitKind.CONDITION: pb.WAIT_KIND_CONDITION,
    WaitKind.BRANCHES: pb.WAIT_KIND_BRANCHES,
}
_ENTRY_KINDS = {kind: pb.TimelineKind.Value(f"TIMELINE_KIND_{kind.name}") for kind in EntryKind}
_CAUSE_KINDS = {kind: pb.CauseKind.Value(f"CAUSE_KIND_{kind.name}") for kind in CauseKind}


def report_to_proto(report: JourneyReport) -> pb.JourneyStats:
    return pb.JourneyStats(
        journey_id=report.journey.id,
        status=status_to_proto(report.journey.status),
        entered_users=report.entered_users,
        entered_runs=report.entered_runs,
        in_progress=report.in_progress,
        exited_runs=report.exited_runs,
        steps=[
            pb.StepStats(
                step_id=s.step_id,
                members=s.members,
                waiting=s.waiting,
                joined_users=s.joined_users,
                joined_runs=s.joined_runs,
                branch_runs=s.branches,
            )
            for s in report.steps
        ],
    )


def member_to_proto(member: Member) -> pb.StepUser:
    return pb.StepUser(
        profile_key=member.profile_key,
        user_id=member.user_id or "",
        anonymous_id=member.anonymous_id or "",
        run=member.run,
        waiting=member.waiting,
    )


def _struct(data: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def _wait(wait: StepWait) -> pb.StepWait:
    return pb.StepWait(
        step_id=wait.step_id,
        kind=_WAIT_KINDS[wait.kind],
        until=timestamp_proto(wait.until),
        recheck_at=timestamp_proto(wait.recheck_at),
        untaken_branches=wait.untaken,
        step_name=wait.step_name,
        condition=wait.condition or "",
        untaken_branch_names=wait.untaken_names,
    )


def profile_to_proto(view: ProfileView) -> pb.Profile:
    return pb.Profile(
        profile_key=view.profile_key,
        user_id=view.user_id or "",
        anonymous_id=view.anonymous_id or "",
        linked_user_id=view.linked_user_id or "",
        traits=_struct(view.traits),
        computed_traits=_struct(view.computed_traits),
        audience_ids=view.audiences,
        journeys=[
            pb.ProfileJourney(
                journey_id=j.journey_id,
                journey_name=j.name,
                status=status_to_proto(j.status),
                runs=j.runs,
                run=j.run or 0,
                entered_at=timestamp_proto(j.entered_at),
                exited_at=timestamp_proto(j.exited_at),
                step_ids=j.steps,
                step_names=j.step_names,
                waits=[_wait(w) for w in j.waits],
                next_check=timestamp_proto(j.next_check),
                entry_blocked=j.entry_blocked,
                reentry_at=timestamp_proto(j.reentry_at),
            )
            for j in view.journeys
        ],
    )


def timeline_entry_to_proto(entry: TimelineEntry) -> pb.TimelineEntry:
    detail = entry.detail
    cause = entry.cause
    return pb.TimelineEntry(
        sequence=entry.sequence,
        time=timestamp_proto(entry.at),
        journey_id=entry.journey_id,
        run=entry.run,
        kind=_ENTRY_KINDS[entry.kind],
        step_id=entry.step_id or "",
        cause=pb.Cause(
            kind=_CAUSE_KINDS[cause.kind],
            message_id=cause.message_id or "",
            message_type=cause.message_type or "",
            event=cause.event or "",
        ),
        until=timestamp_proto(detail.get("until")),
        recheck_at=timestamp_proto(detail.get("recheck_at")),
        untaken_branches=detail.get("branches", ()),
        reason=detail.get("reason", ""),
        branch=detail.get("branch", ""),
        branch_index=detail.get("index", 0),
        destination_id=detail.get("destination_id", ""),
        message_id=detail.get("message_id", ""),
        change=detail.get("change", ""),
        step_name=detail.get("step_name", ""),
        condition=detail.get("condition", ""),
        untaken_branch_names=detail.get("untaken_names", ()),
    )
