"""Hypothesis strategies: valid random journeys and scripts of messages and lifecycle moves.

The vocabulary extends :mod:`tests.helpers.condition_strategies` (events ``A``
and ``B``, properties ``p``, ``q``, ``d``, traits ``t``, ``s``, ``when``) with
the event ``C`` and its property ``v`` (strings, booleans and numbers), page and
screen calls (``Page Viewed`` and ``Screen Viewed``, property ``name``), the
audiences of :data:`AUDIENCES` and the computed traits of
:data:`COMPUTED_TRAITS`.

A :class:`Script` is what happens to a space, in order: batches of messages
received at one instant (ingested in one call, several profiles, the clock
either advanced — firing timers — or only set, so that timers may be overdue
when a message arrives) and lifecycle moves (publish, pause, resume, archive,
delete, connecting or disconnecting a destination).

Two things are never generated, because SPEC leaves their timing open and a
reference could only guess it: a journey published after messages gets an
entry condition that no earlier message can make true (an event count since
publish), and a message received before a publish is never timestamped at or
after it (docs/decisions.md says what the engine does then).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import assume
from hypothesis import strategies as st

from journeys_engine.clock import format_ms
from journeys_engine.conditions.printer import print_condition
from journeys_engine.model import (
    Branch,
    Condition,
    EntryStep,
    Journey,
    JourneySettings,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    Step,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)
from journeys_engine.model.validation import step_cost
from tests.helpers.condition_strategies import (
    BASE,
    HOUR,
    MINUTE,
    conditions,
    dates,
    numbers,
    words,
)

DESTINATIONS = ("d-track", "d-identify", "d-list")

AUDIENCES = {
    "aud": "event('A').within(2 hours).count() >= 2 OR trait('s') = 'x'",
    # depends on another audience and on a computed trait: refreshed after both
    "aud2": "audience('aud') AND NOT ( computed_trait('ct2') = 'y' )",
}
"""Audiences by id, in an order where each comes after what it names."""

COMPUTED_TRAITS = {
    "ct": "event('B').within(3 hours).sum(property('p'))",
    "ct2": "event('C').last(property('v'))",  # strings, booleans, numbers
    "ct3": "event('C').within(1 hours).mode(property('v'), 1)",
}
"""Computed traits by id."""

FRESH_ENTRIES = [
    "event('A').count() >= 1",
    "event('A').within(1 hours).count() >= 1",
    "event('B').within(2 hours).count() >= 2",
    "event('B').count() >= 1",
    "event('A').count() >= 1 AND event('B').within(1 hours).count() = 0",
    "event('Page Viewed').where(property('name') = 'Home').count() >= 1",
    "event('Screen Viewed').within(90 minutes).count() >= 1",
    "event('C').where(property('v') = 'x').count() >= 1",
    "event('A').count() >= 1 AND audience('aud')",
]
"""Entries false for every profile until it sends an event after publish: a
journey published after messages starts from one of these (or of
:data:`FRESH_REF_ENTRIES`)."""

FRESH_REF_ENTRIES = [
    "event('Page Viewed').count() >= 1 AND computed_trait('ct2') = 'x'",
    "event('Screen Viewed').count() >= 1 AND NOT ( audience('aud2') )",
    "event('Page Viewed').count() >= 1 AND audience('aud2')",
    "event('Screen Viewed').count() >= 1 AND computed_trait('ct2') = true",
]
"""Fresh entries whose other leaves name only audiences and computed traits,
fed by events the journey does not name."""

REFS = [
    "audience('aud')",
    "NOT ( audience('aud') )",
    "audience('aud2')",
    "computed_trait('ct') > 5",
    "computed_trait('ct') <= 2",
    "computed_trait('ct2') = 'x'",
    "computed_trait('ct2') = true",
    "computed_trait('ct2') != false",
    "computed_trait('ct2') = 1",
    "computed_trait('ct2').is_null()",
    "computed_trait('ct2').one_of(['y', 1])",
    "computed_trait('ct2').contains('x')",
    "computed_trait('ct3') = 'x'",
    "computed_trait('ct3').is_set()",
    "audience('aud') AND computed_trait('ct2') = 'y'",
    "audience('aud2') OR computed_trait('ct') > 3",
]
"""Conditions naming no event: only audience and computed-trait changes (and
re-checks) make a journey built of these look again (relevance skipping)."""

REF_ENTRIES = [
    "audience('aud')",
    "NOT ( audience('aud') )",
    "audience('aud2')",
    "computed_trait('ct') > 5",
    "computed_trait('ct') <= 2",
    "computed_trait('ct2') = 'x'",
    "computed_trait('ct2') = true",
    "computed_trait('ct2').one_of(['y', 1])",
    "computed_trait('ct3').is_set()",
]
"""Entries of a journey built of :data:`REFS` published before any message."""

ENTRIES = [
    *FRESH_ENTRIES,
    "trait('s') = 'x'",
    "audience('aud')",
    "audience('aud2')",
    "event('A').where(property('p') > 2).count() >= 1 OR computed_trait('ct') > 5",
    "computed_trait('ct2') = true",
    "computed_trait('ct3') = 'x'",
]

OTHER_EVENTS = [
    "event('C').within(1 hours).count() >= 1",
    "event('C').where(property('v') = true).count() >= 1",
    "event('Page Viewed').where(property('name') = 'Pricing').within(2 hours).count() >= 1",
    "event('Screen Viewed').count() >= 2",
    "event('Page Viewed').count() = 0",
]

condition_texts = st.one_of(
    st.sampled_from(ENTRIES),
    st.sampled_from(REFS),
    st.sampled_from(OTHER_EVENTS),
    conditions(with_refs=True, max_leaves=2).map(print_condition),
)
ref_texts = st.sampled_from(REFS)

Vocabulary = Literal["mixed", "refs"]

# Waits and message gaps on a shared grid, so that timers and messages often
# fall due at one instant (SPEC §5.4).
_GRID_MINUTES = st.sampled_from([15, 30, 45, 60, 90, 120])


@st.composite
def journeys(
    draw: st.DrawFn, journey_id: str, vocabulary: Vocabulary = "mixed", fresh: bool = False
) -> Journey:
    """A valid journey of at most a dozen steps, every step type possible.

    With ``vocabulary="refs"`` every condition but a fresh entry's event leaf
    names only audiences and computed traits. With ``fresh`` the entry is
    false until the profile sends an event after publish.
    """
    steps: list[Step] = []
    budget = [draw(st.integers(min_value=2, max_value=8))]
    texts = ref_texts if vocabulary == "refs" else condition_texts

    def new_id() -> str:
        return f"{journey_id}-s{len(steps) + 1}"

    def build(depth: int) -> str | None:
        if budget[0] <= 0 or depth > 5:
            return None
        budget[0] -= 1
        kind = draw(
            st.sampled_from(
                ["wait_duration", "wait_condition", "split", "branches", "send", "send"]
            )
        )
        step_id = new_id()
        index = len(steps)
        steps.append(SendToDestinationsStep(step_id, "placeholder"))  # keeps the id taken
        name = f"{kind} {step_id}"
        step: Step
        if kind == "wait_duration":
            minutes = draw(_GRID_MINUTES | st.integers(min_value=1, max_value=180))
            child = build(depth + 1) or _leaf_send(steps, new_id, draw)
            step = WaitDurationStep(step_id, name, minutes * MINUTE, child)
        elif kind == "wait_condition":
            child = build(depth + 1) or _leaf_send(steps, new_id, draw)
            step = WaitConditionStep(step_id, name, Condition(draw(texts)), child)
        elif kind == "split":
            yes = build(depth + 1)
            no = build(depth + 1)
            step = TrueFalseSplitStep(step_id, name, Condition(draw(texts)), yes, no)
        elif kind == "branches":
            branches = []
            for b in range(draw(st.integers(min_value=2, max_value=3))):
                child = build(depth + 1) or _leaf_send(steps, new_id, draw)
                branches.append(Branch(f"b{b}", Condition(draw(texts)), child))
            step = MultiBranchSplitStep(step_id, name, tuple(branches))
        else:
            dests = draw(_destinations())
            step = SendToDestinationsStep(step_id, name, dests, "", build(depth + 1))
        steps[index] = step
        return step_id

    if fresh:
        pool = FRESH_REF_ENTRIES if vocabulary == "refs" else FRESH_ENTRIES + FRESH_REF_ENTRIES
    else:
        pool = REF_ENTRIES if vocabulary == "refs" else ENTRIES
    entry_id = f"{journey_id}-entry"
    entry_text = draw(st.sampled_from(pool))
    steps.append(EntryStep(entry_id, "Entry", Condition(entry_text)))
    first = build(1) or _leaf_send(steps, new_id, draw)
    steps[0] = EntryStep(entry_id, "Entry", Condition(entry_text), False, first)
    assume(sum(step_cost(step) for step in steps) <= 20)
    exit_after = draw(st.none() | st.integers(min_value=1, max_value=6).map(lambda h: h * HOUR))
    reentry = None
    if exit_after is not None:
        reentry = draw(
            st.none() | st.integers(min_value=1, max_value=24).map(lambda m: m * 10 * MINUTE)
        )
    exit_condition = draw(st.none() | texts.map(Condition))
    return Journey(
        id=journey_id,
        space_id="",
        name=f"Journey {journey_id}",
        settings=JourneySettings(exit_after, reentry, exit_condition),
        steps=tuple(steps),
    )


def _destinations() -> st.SearchStrategy[tuple[str, ...]]:
    some = st.lists(st.sampled_from(DESTINATIONS), min_size=1, max_size=2, unique=True).map(tuple)
    # A send step may have no destination yet: one can be connected while live.
    return some | some | some | st.just(())


def _leaf_send(steps: list[Step], new_id: Callable[[], str], draw: st.DrawFn) -> str:
    step_id = new_id()
    steps.append(SendToDestinationsStep(step_id, f"send {step_id}", draw(_destinations())))
    return step_id


# Messages


@dataclass(frozen=True)
class Sent:
    """A message of a script: Segment JSON, when it is received, its corrected time."""

    raw: dict[str, Any]
    received_at: int
    timestamp: int


PROFILES = [
    {"userId": "u1"},
    {"userId": "u1"},
    {"userId": "u1"},
    {"userId": "u2"},
    {"userId": "u2"},
    {"anonymousId": "a1"},
    {"anonymousId": "a1"},
    {"userId": "u1", "anonymousId": "a1"},
    {"anonymousId": "a2"},
    {"anonymousId": "a3"},
    {"userId": "u3", "anonymousId": "a3"},
    {"userId": "u2", "anonymousId": "a1"},  # links a1 again, to another user
]

V_VALUES = st.sampled_from(["x", "x", "y", "xy", True, True, False, 1, 0, "1"])
KINDS = ["track"] * 7 + ["page", "page", "screen", "screen", "identify", "identify", "group"]
KINDS += ["alias"]


def corrected(timestamp: int, sent_at: int | None, received_at: int) -> int:
    """SPEC §1: the sender's clock corrected for, then at most 5 minutes ahead."""
    if sent_at is not None:
        timestamp = received_at - (sent_at - timestamp)
    return received_at if timestamp > received_at + 5 * MINUTE else timestamp


@st.composite
def messages(draw: st.DrawFn, at: int, number: int, publish_times: Sequence[int] = ()) -> Sent:
    """One message received at ``at``; never timestamped at or after a publish
    instant later than ``at`` (see the module docstring)."""
    who = dict(draw(st.sampled_from(PROFILES)))
    kind = draw(st.sampled_from(KINDS))
    raw: dict[str, Any] = {"type": kind, "messageId": f"m{number}", **who}
    if kind in ("track", "page", "screen"):
        if kind == "track":
            raw["event"] = draw(st.sampled_from(["A", "A", "A", "B", "B", "C", "C", "Noise"]))
        else:
            names = ["Home", "Home", "Pricing"] if kind == "page" else ["Main", "Settings"]
            raw["name"] = draw(st.sampled_from(names))
        optional: dict[str, st.SearchStrategy[Any]] = {"p": numbers, "q": words, "d": dates}
        required = {"v": V_VALUES} if raw.get("event") == "C" else {}
        optional |= {} if required else {"v": V_VALUES}
        raw["properties"] = draw(st.fixed_dictionaries(required, optional=optional))
        offset = draw(
            st.sampled_from([0, 0, 0, 0, -5 * MINUTE, 5 * MINUTE])
            | st.integers(min_value=-3 * HOUR, max_value=10 * MINUTE)
        )
        skew = draw(st.sampled_from([0, 0, 0, -HOUR, 7 * MINUTE]))  # the sender's clock
        sent_at = at + skew if skew else None
        timestamp = corrected(at + offset + skew, sent_at, at)
        if any(at < p <= timestamp for p in publish_times):
            offset, skew, sent_at, timestamp = 0, 0, None, at
        raw["timestamp"] = format_ms(at + offset + skew)
        if sent_at is not None:
            raw["sentAt"] = format_ms(sent_at)
        return Sent(raw, at, timestamp)
    if kind == "identify":
        raw["traits"] = draw(
            st.fixed_dictionaries(
                {}, optional={"t": numbers, "s": words | st.none(), "when": dates}
            )
        )
    elif kind == "group":
        raw["groupId"] = draw(st.sampled_from(["g1", "g2"]))
        raw["traits"] = draw(st.fixed_dictionaries({}, optional={"s": words, "plan": words}))
    elif kind == "alias":
        user, previous = draw(st.sampled_from([("u2", "a2"), ("u3", "a3"), ("u1", "a2")]))
        raw = {"type": "alias", "messageId": f"m{number}", "userId": user, "previousId": previous}
    return Sent(raw, at, at)


@st.composite
def scripts(draw: st.DrawFn, start: int) -> tuple[list[Sent], int]:
    """Messages at increasing instants from ``start``, then an end instant."""
    at = start
    sent: list[Sent] = []
    for number in range(draw(st.integers(min_value=3, max_value=16))):
        at += draw(st.integers(min_value=0, max_value=100)) * MINUTE
        sent.append(draw(messages(at, number)))
    end = at + draw(st.integers(min_value=4, max_value=14)) * HOUR
    return sent, end


# Scripts of batches and lifecycle moves


@dataclass(frozen=True)
class Batch:
    """Messages received at ``at``, ingested in one call.

    ``advance`` moves the clock with the engine's ``advance_to`` (every timer due
    by then fires first); otherwise the clock is only set, and overdue timers
    fire as each profile's message arrives (SPEC §5.4).
    """

    at: int
    messages: tuple[Sent, ...]
    advance: bool


MoveKind = Literal["publish", "pause", "resume", "archive", "delete", "connect"]


@dataclass(frozen=True)
class Lifecycle:
    """A catalog change at ``at``: a lifecycle move of a journey, or ``connect``:
    its send step ``step_id`` now has ``destination_ids`` (added ones are
    connected, removed ones disconnected)."""

    at: int
    journey_id: str
    kind: MoveKind
    step_id: str = ""
    destination_ids: tuple[str, ...] = ()
    advance: bool = False


Action = Batch | Lifecycle


@dataclass(frozen=True)
class Script:
    """What happens to the space, in order, then the instant the run stops."""

    actions: tuple[Action, ...]
    end: int

    def batches(self) -> list[Batch]:
        return [a for a in self.actions if isinstance(a, Batch)]

    def moves(self) -> list[Lifecycle]:
        return [a for a in self.actions if isinstance(a, Lifecycle)]


_PUBLISHED: list[MoveKind] = ["pause", "pause", "pause", "pause", "connect", "connect", "connect"]
_PAUSED: list[MoveKind] = ["resume", "resume", "resume", "resume", "resume", "connect", "connect"]
_NEXT: dict[str, list[MoveKind]] = {
    "published": [*_PUBLISHED, "archive", "delete"],
    "paused": [*_PAUSED, "archive", "delete"],
}


@st.composite
def _lifecycle(draw: st.DrawFn, journey: Journey, publish_at: int) -> list[Lifecycle]:
    """Publish at ``publish_at``, then a few moves allowed by SPEC §6."""
    moves = [Lifecycle(publish_at, journey.id, "publish", advance=draw(st.booleans()))]
    status = "published"
    destinations = {s.id: s.destination_ids for s in journey.send_steps()}
    at = publish_at
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        at += draw(st.sampled_from([5, 15, 30, 60, 120]) | st.integers(1, 180)) * MINUTE
        kind = draw(st.sampled_from(_NEXT[status]))
        advance = draw(st.booleans())
        if kind == "connect" and not destinations:
            continue
        if kind == "connect":
            step_id = draw(st.sampled_from(sorted(destinations)))
            now = destinations[step_id]
            missing = [d for d in DESTINATIONS if d not in now]
            if missing and (not now or draw(st.booleans())):
                new = (*now, draw(st.sampled_from(missing)))
            else:
                gone = draw(st.sampled_from(now))
                new = tuple(d for d in now if d != gone)
            destinations[step_id] = new
            moves.append(Lifecycle(at, journey.id, "connect", step_id, new, advance))
            continue
        moves.append(Lifecycle(at, journey.id, kind, advance=advance))
        if kind in ("archive", "delete"):
            break
        status = "paused" if kind == "pause" else "published"
    return moves


@st.composite
def cases(draw: st.DrawFn) -> tuple[tuple[Journey, ...], Script]:
    """One to three journeys (created in id order, published at the start or
    later) and a script of message batches and lifecycle moves from ``BASE``."""
    ids = draw(st.sampled_from([["j1"], ["j1", "j2"], ["j1", "j2", "j3"]]))
    plans: list[Journey] = []
    moves: list[Lifecycle] = []
    for journey_id in ids:
        late = draw(st.integers(0, 3)) == 0
        publish_at = BASE + (draw(st.integers(1, 36)) * 5 * MINUTE if late else 0)
        vocabulary: Vocabulary = draw(st.sampled_from(["mixed", "mixed", "refs"]))
        plan = draw(journeys(journey_id, vocabulary, fresh=publish_at > BASE))
        plans.append(plan)
        moves += draw(_lifecycle(plan, publish_at))
    publish_times = [m.at for m in moves if m.kind == "publish"]
    batches: list[Batch] = []
    at = BASE
    number = 0
    for _ in range(draw(st.integers(min_value=5, max_value=16))):
        at += draw(st.sampled_from([0, 5, 15, 30, 60]) | st.integers(0, 60)) * MINUTE
        sent = []
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            if number and draw(st.integers(0, 15)) == 0:  # a duplicate of an earlier message
                earlier = [m for b in batches for m in b.messages]
                if earlier:
                    original = draw(st.sampled_from(earlier))
                    sent.append(Sent(original.raw, at, original.timestamp))
                    continue
            number += 1
            sent.append(draw(messages(at, number, publish_times)))
        batches.append(Batch(at, tuple(sent), draw(st.booleans())))
    # At one instant, moves and batches interleave at random, except that a
    # publish comes first (a message received at a publish instant is after it).
    keyed: list[tuple[int, int, Action]] = [
        (m.at, -1 if m.kind == "publish" else draw(st.integers(0, 3)), m) for m in moves
    ]
    keyed += [(b.at, draw(st.integers(0, 3)), b) for b in batches]
    keyed.sort(key=lambda k: (k[0], k[1]))
    actions = tuple(k[2] for k in keyed)
    last = max(k[0] for k in keyed)
    end = last + draw(st.integers(min_value=2, max_value=10)) * HOUR
    return tuple(plans), Script(actions, end)
