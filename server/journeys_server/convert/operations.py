"""Operations and entry previews, engine -> protobuf."""

from __future__ import annotations

from journeys.v1 import journey_pb2, operation_pb2

from journeys_engine.model.operation import Operation, OperationKind, OperationState
from journeys_engine.preview import EntryPreview
from journeys_server.convert.common import timestamp_proto

__all__ = ["operation_to_proto", "preview_to_proto"]

_KINDS = {
    kind: operation_pb2.OperationKind.Value(f"OPERATION_KIND_{kind.name}") for kind in OperationKind
}
_STATES = {
    state: operation_pb2.OperationState.Value(f"OPERATION_STATE_{state.name}")
    for state in OperationState
}


def operation_to_proto(operation: Operation) -> operation_pb2.Operation:
    return operation_pb2.Operation(
        id=operation.id,
        space_id=operation.space_id,
        kind=_KINDS[operation.kind],
        journey_id=operation.journey_id,
        state=_STATES[operation.state],
        profiles_total=operation.profiles_total,
        profiles_scanned=operation.profiles_scanned,
        profiles_entered=operation.profiles_entered,
        events_read=operation.events_read,
        profiles_per_second=operation.profiles_per_second,
        events_per_second=operation.events_per_second,
        start_time=timestamp_proto(operation.start_ms),
        end_time=timestamp_proto(operation.end_ms),
        detail=operation.detail,
    )


def preview_to_proto(preview: EntryPreview) -> journey_pb2.PreviewEntryResponse:
    return journey_pb2.PreviewEntryResponse(
        matching=preview.matching,
        scanned=preview.scanned,
        profile_keys=preview.profile_keys,
        time=timestamp_proto(preview.at),
    )
