"""Which profile a message is about (SPEC §1), decided once, in log order.

A profile is keyed by its user id, or by its anonymous id when it has none;
the two kinds are kept apart (``u:…`` and ``a:…``). A message carrying both
ids, or an alias, links the anonymous (or previous) id to the user id: later
messages with only that anonymous id belong to the user's profile. Nothing is
merged retroactively.

The store decides each message's profile as it logs it, in log order, and
records it with the message: the shard that applies it, the profile it is
applied to and a replay after a restart all follow that one decision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from journeys_engine.messages import Message, MessageType

__all__ = ["Logged", "profile_id", "resolve"]


class Logged(NamedTuple):
    """A message as logged: its position, the profile it is about, the message."""

    position: int
    actor_id: str
    message: Message


def profile_id(user_id: str | None, anonymous_id: str | None) -> str:
    """The profile's id: ``u:USER``, or ``a:ANONYMOUS`` when there is no user id."""
    return f"u:{user_id}" if user_id is not None else f"a:{anonymous_id}"


def resolve(
    message: Message, link_of: Callable[[str], str | None]
) -> tuple[str, tuple[str, str] | None]:
    """The message's profile given the links so far (``link_of`` an anonymous id
    is its user id, if linked), and the link it makes, if new.

    Returns:
        (actor id, (anonymous id, user id) when the message links them anew).
    """
    user_id, anonymous_id = message.user_id, message.anonymous_id
    link: tuple[str, str] | None = None
    if message.type is MessageType.ALIAS:
        assert message.previous_id is not None
        assert user_id is not None
        link = (message.previous_id, user_id)
    elif user_id is not None and anonymous_id is not None:
        link = (anonymous_id, user_id)
    elif user_id is None and anonymous_id is not None:
        user_id = link_of(anonymous_id)
    if link is not None and link_of(link[0]) == link[1]:
        link = None
    return profile_id(user_id, anonymous_id), link
