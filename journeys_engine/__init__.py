"""The journeys engine: moves users through customer journeys in real time.

The engine imports no gRPC; the server under ``server/`` adapts it to the
``journeys.v1`` protobuf API. Public names are re-exported here.
"""

from journeys_engine.catalog import DEFAULT_SPACE, Page, Saved
from journeys_engine.clock import Clock, ManualClock, SystemClock
from journeys_engine.engine import Engine, EngineSettings
from journeys_engine.errors import (
    AlreadyExistsError,
    ConditionError,
    FailedPreconditionError,
    FieldViolation,
    InUseError,
    InvalidArgumentError,
    JourneysError,
    LifecycleError,
    LimitExceededError,
    NotFoundError,
    PreconditionViolation,
    QueueFullError,
    ResourceExhaustedError,
    StoppedError,
    StorageError,
)
from journeys_engine.messages import Message, MessageType
from journeys_engine.model.lifecycle import Move
from journeys_engine.runtime import Change, MemorySink, Output, Sink, Unit

__all__ = [
    "DEFAULT_SPACE",
    "AlreadyExistsError",
    "Change",
    "Clock",
    "ConditionError",
    "Engine",
    "EngineSettings",
    "FailedPreconditionError",
    "FieldViolation",
    "InUseError",
    "InvalidArgumentError",
    "JourneysError",
    "LifecycleError",
    "LimitExceededError",
    "ManualClock",
    "MemorySink",
    "Message",
    "MessageType",
    "Move",
    "NotFoundError",
    "Output",
    "Page",
    "PreconditionViolation",
    "QueueFullError",
    "ResourceExhaustedError",
    "Saved",
    "Sink",
    "StoppedError",
    "StorageError",
    "SystemClock",
    "Unit",
]
