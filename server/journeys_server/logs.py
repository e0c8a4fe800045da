"""Logs that say which call they belong to: request ids, text or JSON lines.

Each gRPC call is given a request id (``journeys_server.calls``), bound here in
a context variable for the call's task, together with its method and space.
:class:`CallFilter` copies them onto every log record emitted while serving
the call, whatever the logger; the formatters print them:

- text (the default): ``TIME LEVEL LOGGER MESSAGE`` and, inside a call,
  `` [request_id=... method=... space=...]``;
- JSON: one object per line with ``time``, ``level``, ``logger``, ``message``,
  ``request_id``, ``method`` and ``space`` inside a call, and ``exception``
  (the traceback text) when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "LOG_FORMATS",
    "REQUEST_ID_KEY",
    "CallFilter",
    "CallInfo",
    "JsonFormatter",
    "TextFormatter",
    "bind_call",
    "configure_logging",
    "current_call",
    "request_id_metadata",
]

LOG_FORMATS = ("text", "json")
REQUEST_ID_KEY = "x-request-id"
"""The metadata key of a call's request id: taken from the client when it sends one,
and sent back in every call's trailing metadata."""


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The call being served: its request id, its method (``Service/Method``) and
    the space its request names ("" until known)."""

    request_id: str
    method: str
    space: str = ""


_CALL: ContextVar[CallInfo | None] = ContextVar("journeys_call", default=None)


def bind_call(info: CallInfo) -> None:
    """Makes ``info`` the current call for the rest of the calling task (each gRPC
    call runs in a task of its own, so nothing needs resetting)."""
    _CALL.set(info)


def current_call() -> CallInfo | None:
    """The call being served by the current task, if any."""
    return _CALL.get()


def request_id_metadata() -> tuple[tuple[str, str], ...]:
    """The current call's request id as metadata (empty outside a call)."""
    info = _CALL.get()
    return () if info is None else ((REQUEST_ID_KEY, info.request_id),)


class CallFilter(logging.Filter):
    """Adds the current call's ``request_id``, ``method`` and ``space`` to each record
    (None outside a call). Attach it to handlers, so it sees every logger's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = _CALL.get()
        record.request_id = None if info is None else info.request_id
        record.method = None if info is None else info.method
        record.space = None if info is None or not info.space else info.space
        return True


class TextFormatter(logging.Formatter):
    """The classic text line, with the call's fields appended inside a call."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return line
        fields = f"request_id={request_id} method={getattr(record, 'method', None)}"
        space = getattr(record, "space", None)
        if space:
            fields += f" space={space}"
        return f"{line} [{fields}]"


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring for its fields)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "method", "space"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Sends the process's logs to stderr in ``log_format`` ("text" or "json"), each
    record carrying its call's request id.

    Raises:
        ValueError: an unknown format.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(CallFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
