"""The engine's exceptions: one root, a small tree, structured fields.

::

    JourneysError
    ├── InvalidArgumentError      bad input; ``violations`` names every field
    ├── ConditionError            condition text that is not valid, with its position
    ├── NotFoundError             ``kind`` and ``id`` of what is missing
    ├── AlreadyExistsError        ``kind`` and ``id`` of what is taken
    ├── FailedPreconditionError   refused in the current state; ``violations``
    │   ├── LifecycleError        a lifecycle move or edit the status forbids
    │   ├── LimitExceededError    a space-level limit, e.g. live journeys
    │   └── InUseError            a definition still used by others
    ├── ResourceExhaustedError    a bound is reached; retry later (``retry_after_ms``)
    │   └── QueueFullError        a shard's queue is full (a non-waiting put)
    └── StorageError              the database cannot be opened or used
        └── StoppedError          applying failed earlier; only a restart recovers

The gRPC edge maps each class to one status code; nothing here knows gRPC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "AlreadyExistsError",
    "ConditionError",
    "FailedPreconditionError",
    "FieldViolation",
    "InUseError",
    "InvalidArgumentError",
    "JourneysError",
    "LifecycleError",
    "LimitExceededError",
    "NotFoundError",
    "PreconditionViolation",
    "QueueFullError",
    "ResourceExhaustedError",
    "StorageError",
    "StoppedError",
    "shown",
]


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One problem with one input field.

    Attributes:
        field: Path of the field in the request, e.g. ``journey.steps[2].name``.
        description: What is wrong, as a sentence.
    """

    field: str
    description: str


@dataclass(frozen=True, slots=True)
class PreconditionViolation:
    """One reason a request is refused in the current state.

    Attributes:
        type: A stable upper-case tag, e.g. ``JOURNEY_PUBLISHED``.
        subject: What the violation is about, e.g. a field path or ``journey/ID``.
        description: What is wrong, as a sentence.
    """

    type: str
    subject: str
    description: str


_SHOWN_CHARACTERS = 80


def shown(value: str) -> str:
    """A value from a request as a message quotes it: ``repr``, cut when it is long
    (a message echoes input, and must stay short whatever the input)."""
    if len(value) <= _SHOWN_CHARACTERS:
        return repr(value)
    return f"{value[:_SHOWN_CHARACTERS]!r}\u2026 ({len(value)} characters)"


class JourneysError(Exception):
    """The root of every error the engine raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(JourneysError):
    """The input is invalid; nothing was written."""

    def __init__(self, violations: Iterable[FieldViolation], message: str = "") -> None:
        self.violations = tuple(violations)
        if not message:
            message = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(message or "invalid argument")

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgumentError:
        """An error with one violation."""
        return cls([FieldViolation(field, description)])


class ConditionError(JourneysError):
    """A condition that cannot be used: bad syntax, a type error, or an unsupported construct.

    Attributes:
        line: 1-based line of the offending text (0 when it has no position).
        column: 1-based column.
        detail: What is wrong, without the position.
    """

    def __init__(self, detail: str, *, line: int = 0, column: int = 0) -> None:
        self.detail = detail
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(where + detail)


class NotFoundError(JourneysError):
    """A named resource does not exist."""

    def __init__(
        self, *, kind: str, id: str, space_id: str | None = None, parent: str | None = None
    ) -> None:
        self.kind = kind
        self.id = id
        self.space_id = space_id
        where = f" in space {shown(space_id)}" if space_id is not None else ""
        if parent is not None:  # for example "journey 'welcome'"
            where = f" in {parent}" + where
        super().__init__(f"{kind} {shown(id)} not found{where}")


class AlreadyExistsError(JourneysError):
    """A resource with that id exists already."""

    def __init__(self, *, kind: str, id: str, space_id: str | None = None) -> None:
        self.kind = kind
        self.id = id
        self.space_id = space_id
        where = f" in space {shown(space_id)}" if space_id is not None else ""
        super().__init__(f"{kind} {shown(id)} already exists{where}")


class FailedPreconditionError(JourneysError):
    """The request is well-formed but the current state does not allow it."""

    def __init__(self, message: str, violations: Iterable[PreconditionViolation] = ()) -> None:
        self.violations = tuple(violations)
        super().__init__(message)


class LifecycleError(FailedPreconditionError):
    """A lifecycle move or an edit that the journey's status forbids."""


class LimitExceededError(FailedPreconditionError):
    """A space-level limit would be passed (e.g. published journeys)."""


class InUseError(FailedPreconditionError):
    """A definition cannot be deleted while others use it."""


class ResourceExhaustedError(JourneysError):
    """A bound is reached (queues, limits on load); the caller may retry later.

    Attributes:
        retry_after_ms: How long the caller should wait before retrying, when
            known (the gRPC edge sends it as a ``google.rpc.RetryInfo``).
    """

    def __init__(self, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class QueueFullError(ResourceExhaustedError):
    """A shard's queue is full and the caller asked not to wait."""


class StorageError(JourneysError):
    """The database cannot be opened or used (corrupt, unwritable, too new)."""


class StoppedError(StorageError):
    """Applying or committing messages failed earlier (the cause is chained); the
    engine refuses further work until it restarts and recovers from the database."""
