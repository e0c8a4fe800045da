"""Who may call what: the rule for every RPC, and the token authorizer.

Each RPC has a :class:`Rule`: the role it needs and what it is scoped to — the
space its request names (``space_id``), the whole server, or nothing (any valid
token). A method without a rule needs an admin token of every space, so an RPC
added without thinking about access is closed, not open.

Refusals never tell whether another space exists: a token of space A asking
about space B hears the same words whether B exists or not.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from typing import Any

import grpc

from journeys_engine.access import ALL_SPACES, SECRET_PREFIX, Role, Token, Tokens
from journeys_server.interceptor import Grant, Metadata, Refusal

__all__ = ["CURRENT_TOKEN", "RULES", "Rule", "Scope", "TokenAuthorizer", "rule_for"]

CURRENT_TOKEN: ContextVar[Token | None] = ContextVar("journeys_token", default=None)
"""The token of the call being served (None when access control is off)."""


class Scope(Enum):
    """What a call reaches."""

    SPACE = "space"  # the space the request's ``space_id`` names
    SERVER = "server"  # the whole server: only an admin token of every space
    ANY = "any"  # nothing of a space: any valid token (the servicer shows only its spaces)


@dataclass(frozen=True, slots=True)
class Rule:
    """What a call needs.

    Attributes:
        role: The role it needs; None when any role will do.
        scope: What it reaches.
        destination: The request's ``destination_id`` must be one the token reads.
    """

    role: Role | None
    scope: Scope
    destination: bool = False


_ADMIN_OF_SPACE = Rule(Role.ADMIN, Scope.SPACE)
_ADMIN_OF_SERVER = Rule(Role.ADMIN, Scope.SERVER)
_READ_STREAM = Rule(Role.SUBSCRIBE, Scope.SPACE, destination=True)

RULES: dict[str, Rule] = {
    # A key is a service (every method of it) or ``service/Method``.
    "journeys.v1.SpaceService/CreateSpace": _ADMIN_OF_SERVER,
    "journeys.v1.SpaceService/GetSpace": Rule(None, Scope.SPACE),
    "journeys.v1.SpaceService/ListSpaces": Rule(None, Scope.ANY),
    "journeys.v1.JourneyService": _ADMIN_OF_SPACE,
    "journeys.v1.DefinitionService": _ADMIN_OF_SPACE,
    "journeys.v1.IngestService": Rule(Role.INGEST, Scope.SPACE),
    "journeys.v1.SubscriptionService/Subscribe": _READ_STREAM,
    "journeys.v1.SubscriptionService/Ack": _READ_STREAM,
    "journeys.v1.SubscriptionService/ListMembers": _ADMIN_OF_SPACE,
    "journeys.v1.ReportingService": _ADMIN_OF_SPACE,
    "journeys.v1.ClockService/GetTime": Rule(None, Scope.ANY),
    "journeys.v1.ClockService/AdvanceTime": _ADMIN_OF_SERVER,
    "journeys.v1.ClockService/SetTime": _ADMIN_OF_SERVER,
    "journeys.v1.BackupService": _ADMIN_OF_SERVER,
    "journeys.v1.SimulationService": _ADMIN_OF_SPACE,
    "journeys.v1.OperationService": _ADMIN_OF_SPACE,
    "journeys.v1.TokenService": _ADMIN_OF_SPACE,
    "journeys.v1.PrivacyService": _ADMIN_OF_SPACE,
}


def rule_for(method: str) -> Rule:
    """The rule for a method path such as ``/journeys.v1.IngestService/Ingest``."""
    name = method.lstrip("/")
    service = name.partition("/")[0]
    return RULES.get(name) or RULES.get(service) or _ADMIN_OF_SERVER


_MISSING = Refusal(
    grpc.StatusCode.UNAUTHENTICATED,
    "this call needs an access token: send the metadata 'authorization: Bearer <token>'",
)
_INVALID = Refusal(grpc.StatusCode.UNAUTHENTICATED, "the access token is not valid")
_REVOKED = Refusal(grpc.StatusCode.UNAUTHENTICATED, "the access token was revoked")


@dataclass(frozen=True, slots=True)
class _Granted(Grant):
    """A call admitted by a token, with the rule its messages are checked against."""

    rule: Rule = Rule(None, Scope.ANY)
    method: str = ""


class TokenAuthorizer:
    """Admits calls that carry a valid token allowed to make them.

    Args:
        tokens: The engine's tokens.
        max_streams_per_token: Streaming calls one token may have open at once.
    """

    def __init__(self, tokens: Tokens, *, max_streams_per_token: int) -> None:
        self._tokens = tokens
        self._max_streams = max_streams_per_token
        self._streams: defaultdict[str, set[asyncio.Task[Any]]] = defaultdict(set)
        tokens.on_revoke.append(self._end_streams)

    def authorize(self, method: str, metadata: Metadata) -> Grant | Refusal:
        secret = _bearer(metadata)
        if secret is None:
            return _MISSING
        token = self._tokens.find(secret) if secret.startswith(SECRET_PREFIX) else None
        if token is None:
            return _INVALID
        rule = rule_for(method)
        name = method.rpartition("/")[2]
        if rule.role is not None and not token.role.grants(rule.role):
            return Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{name} needs a token with the role {rule.role.value}; "
                f"this token's role is {token.role.value}",
            )
        if rule.scope is Scope.SERVER and token.space_id != ALL_SPACES:
            return Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{name} reaches the whole server: it needs an admin token of every space",
            )
        return _Granted(token=token, rule=rule, method=name)

    def check(self, grant: Grant, request: Any) -> Refusal | None:
        if not isinstance(grant, _Granted) or grant.token is None:
            return None
        token = grant.token
        if not self._tokens.live(token.id):
            return _REVOKED
        if grant.rule.scope is Scope.SPACE:
            space_id = getattr(request, "space_id", "")
            if not token.covers(space_id):
                return Refusal(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"the token does not grant access to space {space_id!r}",
                )
        if grant.rule.destination:
            destination_id = getattr(request, "destination_id", "")
            if not token.reads(destination_id):
                return Refusal(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"the token does not grant access to destination {destination_id!r}",
                )
        return None

    def bind(self, grant: Grant) -> None:
        CURRENT_TOKEN.set(grant.token)

    def open_stream(self, grant: Grant, task: asyncio.Task[Any]) -> Refusal | None:
        if grant.token is None:
            return None
        open_now = self._streams[grant.token.id]
        if len(open_now) >= self._max_streams:
            return Refusal(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this token already has {len(open_now)} streams open, the most allowed "
                f"(--max-streams-per-token); close one and retry",
            )
        open_now.add(task)
        return None

    def close_stream(self, grant: Grant, task: asyncio.Task[Any]) -> None:
        if grant.token is None:
            return
        open_now = self._streams.get(grant.token.id)
        if open_now is not None:
            open_now.discard(task)
            if not open_now:
                del self._streams[grant.token.id]

    def revoked(self, grant: Grant) -> Refusal | None:
        if grant.token is not None and not self._tokens.live(grant.token.id):
            return _REVOKED
        return None

    def _end_streams(self, token_id: str) -> None:
        for task in self._streams.pop(token_id, set()):
            task.cancel()


def _bearer(metadata: Metadata) -> str | None:
    for key, value in metadata:
        if key == "authorization":
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            scheme, _, secret = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                return ""
            return secret.strip()
    return None
