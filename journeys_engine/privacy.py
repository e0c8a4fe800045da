"""Profile deletion (a person's "right to be forgotten") and suppressions.

:meth:`Privacy.delete` erases a person: the profile of a user id (or of an
anonymous id), with the anonymous profiles of the anonymous ids linked to that
user — their earlier, anonymous-only activity. An anonymous id since linked to
another user belongs to that user's profile and is left alone.

It runs with every other change held back (the engine settles first and lets
no message in meanwhile), in this order:

1. The profiles are made resident from their snapshots, without looking at
   their history for a historical entry (entering them only to make them exit
   would send calls about a deleted person for nothing).
2. Each current run ends as a run ending does (SPEC §5.5): every send-step
   membership sends "exited" to its event destinations and "removed" to its
   list destinations, so no destination keeps the person; the run counts as
   exited. The profiles leave memory and the timer wheel.
3. One unit carries those calls and counts, and the erasure: the store deletes
   every row about the profiles — snapshot, step rows, timeline, logged
   messages (applied or not), identity links — and stores the suppressions,
   in the unit's transaction.

The outbox keeps the calls already made about the person (and the exits) until
every consumer acknowledges them or they pass the outbox retention: they are the
destinations' stream, and the exits come after the earlier calls. The dedup
window keeps message ids, which are opaque.

A suppression refuses the person's later messages — each carrying a suppressed
user id, anonymous id or alias previous id — for the suppression period
(:attr:`~journeys_engine.engine.EngineSettings.suppression_ms`); only hashes of
the identifiers are kept (:mod:`journeys_engine.store.suppressions`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from journeys_engine.clock import MAX_INSTANT_MS
from journeys_engine.errors import FieldViolation, InvalidArgumentError
from journeys_engine.runtime import Runtime
from journeys_engine.runtime.identity import profile_id
from journeys_engine.runtime.runtime import Erasure
from journeys_engine.store.durable import DurableStore
from journeys_engine.store.suppressions import IdKind, identifier_hash

__all__ = ["Privacy", "ProfileDeletion", "Suppression", "identifiers"]

_MAX_ID = 255  # as a message's ids (journeys_engine.messages)


@dataclass(frozen=True, slots=True)
class ProfileDeletion:
    """What deleting a profile did.

    Attributes:
        deleted: Whether a profile was found (and so deleted).
        profiles: Profiles deleted (the user's, and its anonymous ones).
        runs_ended: Runs in progress that ended (counted as exited).
        memberships_removed: Send-step memberships ended, each with "exited"
            (or "removed", for list destinations) sent to its destinations.
        suppressed: Identifiers whose messages are refused from now on.
        suppressed_until: When that ends (None without a suppression).
    """

    deleted: bool
    profiles: int = 0
    runs_ended: int = 0
    memberships_removed: int = 0
    suppressed: int = 0
    suppressed_until: int | None = None


@dataclass(frozen=True, slots=True)
class Suppression:
    """Whether an identifier's messages are refused now, and until when."""

    suppressed: bool
    until: int | None = None


def identifiers(user_id: str | None, anonymous_id: str | None) -> tuple[str | None, str | None]:
    """Exactly one of the ids, checked as a message's ids are (empty means none).

    Raises:
        InvalidArgumentError: none or both given, or one that no message could carry.
    """
    user_id, anonymous_id = user_id or None, anonymous_id or None
    if (user_id is None) == (anonymous_id is None):
        problem = "give either a user id or an anonymous id (exactly one)"
        raise InvalidArgumentError(
            [FieldViolation("user_id", problem), FieldViolation("anonymous_id", problem)]
        )
    field, value = ("user_id", user_id) if user_id is not None else ("anonymous_id", anonymous_id)
    assert value is not None
    if len(value) > _MAX_ID:
        raise InvalidArgumentError.single(field, f"must be at most {_MAX_ID} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidArgumentError.single(field, "must not contain control characters")
    return user_id, anonymous_id


def _hash_of(user_id: str | None, anonymous_id: str | None) -> str:
    if user_id is not None:
        return identifier_hash(IdKind.USER_ID, user_id)
    assert anonymous_id is not None
    return identifier_hash(IdKind.ANONYMOUS_ID, anonymous_id)


class Privacy:
    """Deletes profiles and keeps suppressions, for the engine.

    Args:
        runtime: The engine's runtime.
        store: The engine's durable store.
        activate: Makes stored profiles resident, without looking at their
            history for a historical entry.
        commit: Takes the work applied so far and commits it.
        suppression_ms: How long a suppression lasts.
    """

    def __init__(
        self,
        runtime: Runtime,
        store: DurableStore,
        *,
        activate: Callable[[str, Collection[str]], Awaitable[None]],
        commit: Callable[[], Awaitable[None]],
        suppression_ms: int,
    ) -> None:
        self._runtime = runtime
        self._store = store
        self._activate = activate
        self._commit = commit
        self.suppression_ms = suppression_ms

    async def delete(
        self,
        space_id: str,
        user_id: str | None,
        anonymous_id: str | None,
        *,
        suppress: bool,
        now: int,
    ) -> ProfileDeletion:
        """Deletes the profile (see the module docstring); the caller holds every
        other change back meanwhile."""
        store = self._store
        space = self._runtime.space(space_id)
        person = user_id if user_id is not None else store.linked_user(space_id, str(anonymous_id))
        anonymous: set[str] = set()
        if person is not None:
            main = profile_id(person, None)
            await self._activate(space_id, [main])
            resident = space.actors.get(main)
            if resident is not None and resident.anonymous_id is not None:
                anonymous.add(resident.anonymous_id)  # (its first one: maybe only kept there)
            anonymous |= await store.anonymous_ids(space_id, person)
            # One since linked to another user is that user's now.
            anonymous = {a for a in anonymous if store.linked_user(space_id, a) in (None, person)}
        elif anonymous_id is not None:
            anonymous.add(anonymous_id)
        actor_ids = [profile_id(person, None)] if person is not None else []
        actor_ids += [profile_id(None, a) for a in sorted(anonymous)]
        await self._activate(space_id, actor_ids)
        # From here to the commit nothing awaits: nothing else sees the profiles
        # half-deleted, and the unit taken is this one.
        space.erasing(actor_ids)
        profiles = runs = memberships = 0
        for actor_id in actor_ids:
            actor = space.actors.get(actor_id)
            if actor is not None:
                ended, left = space.erase(actor, now)
                profiles += 1
                runs += ended
                memberships += left
        hashes: tuple[str, ...] = ()
        expire_at = 0
        if suppress:
            ids = [identifier_hash(IdKind.USER_ID, person)] if person is not None else []
            ids += [identifier_hash(IdKind.ANONYMOUS_ID, a) for a in anonymous]
            hashes = tuple(sorted(set(ids)))
            expire_at = min(now + self.suppression_ms, MAX_INSTANT_MS)
        unlinked = tuple(
            sorted(a for a in anonymous if person and store.linked_user(space_id, a) == person)
        )
        space.unit().erasures.append(
            Erasure(space_id, tuple(actor_ids), person, unlinked, hashes, now, expire_at)
        )
        await self._commit()
        space.erased_committed(actor_ids)
        return ProfileDeletion(
            deleted=profiles > 0,
            profiles=profiles,
            runs_ended=runs,
            memberships_removed=memberships,
            suppressed=len(hashes),
            suppressed_until=expire_at if suppress else None,
        )

    def get(
        self, space_id: str, user_id: str | None, anonymous_id: str | None, now: int
    ) -> Suppression:
        """Whether messages with the identifier are refused at ``now``."""
        until = self._store.suppressions.until(space_id, _hash_of(user_id, anonymous_id), now)
        return Suppression(until is not None, until)

    async def lift(self, space_id: str, user_id: str | None, anonymous_id: str | None) -> bool:
        """Lifts the identifier's suppression; returns whether it was in force."""
        return await self._store.suppressions.lift(space_id, _hash_of(user_id, anonymous_id))
