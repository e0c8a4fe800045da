"""Durability contract (ARCHITECTURE.md) under load: a server process that takes a
stream of tens of thousands of messages over thousands of users, with the five example
journeys published and the manual clock moving through hours, days and half a year, is
killed with SIGKILL at random moments (seeded; the seed is printed, and ``KILL_SEED``
replays it) and restarted each time, at least 20 times in a run.

The workload is a script of retryable steps (batches with fixed message ids, the clock
set to absolute instants), so the step a kill interrupts is sent again to the restarted
server; after each restart the last acknowledged batch is sent again and must come back
as duplicates only. At the end every destination's stream has dense sequences and, once
duplicate message ids are dropped, the same calls as an uninterrupted run of the same
script (each (destination, user)'s in the same order); journey and step counts are the
same and agree with the calls; a sample of profiles (traits, computed traits such as the
sum of order revenue, audiences, journeys) and their timelines are the same, so no
acknowledged message was lost or applied twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from journeys.v1 import reporting_pb2, subscription_pb2
from journeys_client import JourneysClient, JourneysClientError, NotFoundError

from tests.helpers.builders import EXAMPLES
from tests.helpers.live import DAY, START, apply_yaml, connect, identify, track
from tests.helpers.processes import ServerProcess

pytestmark = pytest.mark.e2e

T = TypeVar("T")

USERS = 2_000
USER_IDS = [f"u{i:04}" for i in range(USERS)]
EVENTS = 20_000
MIN_KILLS = 20
PLANNED_KILLS = 24
PROFILES_COMPARED = 200
JOURNEYS = ("cart-abandonment", "onboarding", "trial-to-paid", "paid-subscription", "winback")
DESTINATIONS = ("email", "sms", "support", "in-app", "advertising")
# The script spans more than half a year (winback's 180-day window): unacknowledged
# output must outlive it, or reading from sequence 0 would meet retention gaps.
SERVE_ARGS = ("--manual-clock", "--outbox-retention", "400d")
MINUTE = 60_000

# When the clock moves (after START), in minutes: the first days in small steps so that
# the one-hour waits end between batches, then days (5- and 7-day waits, exits after 7
# days, re-entries), then half a year (winback's window) and a few days more.
MOVES = (
    *(20, 30, 45, 3 * 60, 8 * 60, 14 * 60, 24 * 60, 26 * 60, 36 * 60, 24 * 60, 30 * 60),
    *(24 * 60, 2 * 24 * 60, 181 * 24 * 60, 2 * 60, 22 * 60, 24 * 60, 30 * 60, 3 * 24 * 60),
)
ARRIVING = 9  # users first show up in the first phases
BEFORE_JUMP = MOVES.index(181 * 24 * 60) + 1  # phases before the half-year jump
PHASES = len(MOVES) + 1


# The workload


@dataclass(frozen=True)
class Ingest:
    messages: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class SetTime:
    at: int


Step = Ingest | SetTime


def _order(user: str, rng: random.Random) -> dict[str, Any]:
    # Mostly under 100, so that an order applied twice would take its buyer over the
    # high-value thresholds (cart abandonment's branch, winback's split).
    revenue = rng.uniform(55, 99) if rng.random() < 0.7 else rng.uniform(100, 300)
    return track(user, "Order Completed", revenue=round(revenue, 2))


def _page(user: str, source: str) -> dict[str, Any]:
    return {
        "type": "page",
        "userId": user,
        "name": "Home",
        "context": {"campaign": {"source": source}},
    }


def _user_events(user: str, rng: random.Random) -> list[tuple[int, dict[str, Any]]]:
    """What one user sends, by phase: each example journey's events, in the shapes its
    conditions look for, and the sequels that send users down each side."""
    first = rng.randrange(ARRIVING)
    events: list[tuple[int, dict[str, Any]]] = []

    def at(phase: int, message: dict[str, Any]) -> None:
        events.append((min(phase, PHASES - 1), message))

    def soon(after: int = 0, spread: int = 3) -> int:
        return min(first + after + rng.randrange(spread), BEFORE_JUMP - 1)

    def after_jump() -> int:
        return rng.randrange(BEFORE_JUMP, PHASES)

    if rng.random() < 0.25:  # orders first: winback enters them only half a year later
        at(first, _order(user, rng))
        if rng.random() < 0.6:
            at(after_jump(), _page(user, rng.choice(("facebook", "facebook", "google"))))
    if rng.random() < 0.6:
        channel = rng.choice(("email", "sms", "push"))
        at(first, identify(user, preferred_channel=channel, plan=rng.choice(("free", "pro"))))
    if rng.random() < 0.35:  # onboarding
        created = soon()
        at(created, track(user, "Account Created"))
        if rng.random() < 0.5:
            at(created + rng.randrange(2), track(user, "Tutorial Completed"))
    if rng.random() < 0.5:  # cart abandonment
        added = soon()
        at(added, track(user, "Product Added", sku=f"sku-{rng.randrange(50)}"))
        if rng.random() < 0.35:
            at(added + rng.randrange(3), _order(user, rng))
        if rng.random() < 0.4:
            at(soon(2, 6), track(user, "Product Added", sku=f"sku-{rng.randrange(50)}"))
    if rng.random() < 0.3:  # trial to paid
        trial = soon()
        at(trial, track(user, "Trial Started"))
        if rng.random() < 0.4:
            at(trial + rng.randrange(1, 8), track(user, "Subscription Started", plan="pro"))
    if rng.random() < 0.3:  # paid subscription
        free = soon()
        at(free, track(user, "Subscription Started", **{"Subscription Plan Type": "Free"}))
        if rng.random() < 0.35:
            paid = {"Subscription Plan Type": "paid"}
            at(free + rng.randrange(1, 10), track(user, "Subscription Started", **paid))
    if rng.random() < 0.1:
        at(after_jump(), _page(user, "facebook"))
    return events


def _more(user: str, rng: random.Random, phase: int) -> tuple[int, dict[str, Any]]:
    """One more message: often one no condition uses, often one that re-enters a cart,
    ends it with an order, or changes the channel a multi-branch split waits on."""
    draw = rng.random()
    if draw < 0.4:
        return phase, track(user, rng.choice(("Product Viewed", "Button Clicked")))
    if draw < 0.6:
        return phase, _page(user, rng.choice(("google", "newsletter", "facebook")))
    if draw < 0.8:
        return phase, track(user, "Product Added", sku=f"sku-{rng.randrange(50)}")
    if draw < 0.9:
        return phase, _order(user, rng)
    return phase, identify(user, preferred_channel=rng.choice(("email", "sms", "push")))


def workload(seed: int) -> list[Step]:
    """The script: phases of batches, the clock set to each phase's instant before it.

    Every message has a fixed id; every step can be sent again."""
    rng = random.Random(seed)
    by_user = {user: _user_events(user, rng) for user in USER_IDS}
    planned = sum(len(events) for events in by_user.values())
    assert planned < EVENTS
    for _ in range(EVENTS - planned):  # the rest: more of the same, and noise
        user = rng.choice(USER_IDS)
        after = min(phase for phase, _ in by_user[user]) if by_user[user] else 0
        by_user[user].append(_more(user, rng, rng.randrange(after, PHASES)))
    phases: list[list[dict[str, Any]]] = [[] for _ in range(PHASES)]
    for user, events in by_user.items():
        events.sort(key=lambda event: event[0])  # stable: a user's events stay in order
        for number, (phase, message) in enumerate(events):
            message["messageId"] = f"{user}-{number}"
            phases[phase].append(message)
    steps: list[Step] = []
    now = START
    for phase, messages in enumerate(phases):
        if phase:
            jitter = MOVES[phase - 1] * rng.uniform(-0.1, 0.1)
            now += int((MOVES[phase - 1] + jitter) * MINUTE)
            steps.append(SetTime(now))
        rng.shuffle(messages)
        ordered = _per_user_order(messages)
        while ordered:
            size = rng.randint(200, 500)
            steps.append(Ingest(tuple(ordered[:size])))
            ordered = ordered[size:]
    steps.append(SetTime(now + 2 * DAY))  # the last waits end
    return steps


def _per_user_order(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Users interleaved as in ``messages``, each user's messages in the order sent."""
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        by_user[message["userId"]].append(message)
    for own in by_user.values():
        own.sort(key=lambda m: int(m["messageId"].rsplit("-", 1)[1]))
    taken: Counter[str] = Counter()
    ordered = []
    for message in messages:
        user = message["userId"]
        ordered.append(by_user[user][taken[user]])
        taken[user] += 1
    return ordered


def kill_plan(seed: int, steps: list[Step]) -> list[tuple[int, float]]:
    """(step index, seconds): the kill armed when that step (or the first after it)
    starts, fired that long after. Half aim at clock moves, half at batches; a short
    delay lands in the step, a longer one in a later step or between steps."""
    rng = random.Random(f"kills {seed}")
    moves = [i for i, step in enumerate(steps) if isinstance(step, SetTime)]
    batches = [i for i, step in enumerate(steps) if isinstance(step, Ingest)]
    plan = []
    for _ in range(PLANNED_KILLS):
        if rng.random() < 0.5:
            plan.append((rng.choice(moves), rng.uniform(0.0, 0.3)))
        else:
            plan.append((rng.choice(batches), rng.uniform(0.0, 0.25)))
    return sorted(plan)


# Running it


class Driver:
    """One server process on ``db`` and a client of it. :meth:`do` runs an action until
    it succeeds: when the action fails because the driver killed the server, the server
    is restarted and the action sent again. A kill is armed before an attempt at step
    ``index`` when the plan's next kill is due by then."""

    def __init__(self, db: Path, seed: int, plan: list[tuple[int, float]]) -> None:
        self.db = db
        self.seed = seed
        self.plan = list(plan)
        self.server = ServerProcess(db, *SERVE_ARGS)
        self.client: JourneysClient | None = None
        self.kills: list[str] = []  # what was in flight at each kill
        self.acknowledged: Ingest | None = None  # the last batch acked since the clock moved
        self._timer: asyncio.TimerHandle | None = None
        self._killed = False
        self._doing = "between steps"

    async def __aenter__(self) -> Driver:
        self.client = JourneysClient(self.server.start().target, timeout=60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.client is not None:
            await self.client.close()
        self.server.stop(signal.SIGKILL)

    async def do(
        self, index: int, doing: str, action: Callable[[JourneysClient, bool], Awaitable[T]]
    ) -> T:
        """``action(client, retried)``; ``retried`` says whether a kill interrupted it before."""
        retried = False
        while True:
            # Never while a kill is pending (the last call may have beaten it): the
            # next kill must hit the restarted server at a moment of its own.
            if self.plan and self.plan[0][0] <= index and self._timer is None and not self._killed:
                _, delay = self.plan.pop(0)
                self._timer = asyncio.get_running_loop().call_later(delay, self._kill)
            assert self.client is not None
            self._doing = doing
            try:
                return await action(self.client, retried)
            except JourneysClientError as err:
                if not self._killed:
                    raise AssertionError(f"kill seed {self.seed}: {doing} failed: {err}") from err
            finally:
                self._doing = "between steps"
            await self._restart()
            retried = True

    def _kill(self) -> None:
        self._timer = None
        assert self.server.process is not None
        if self.server.process.poll() is None:
            self.server.process.send_signal(signal.SIGKILL)
            self.kills.append(self._doing)
            self._killed = True

    async def _restart(self) -> None:
        assert self.client is not None
        await self.client.close()
        code = self.server.wait()
        assert code == -signal.SIGKILL, f"kill seed {self.seed}: exit {code}:\n" + "".join(
            self.server.output[-40:]
        )
        self._killed = False
        self.server = ServerProcess(self.db, *SERVE_ARGS).start()
        self.client = JourneysClient(self.server.target, timeout=60)
        if self.acknowledged is not None:
            # The clock has not moved since it was acked: still in the dedup window.
            batch = self.acknowledged.messages
            ack = await self.client.ingest(list(batch))
            assert (ack.accepted, len(ack.duplicates)) == (0, len(batch)), (
                f"kill seed {self.seed}: an acknowledged batch was forgotten by the kill"
            )


async def _step(driver: Driver, index: int, step: Step) -> None:
    if isinstance(step, SetTime):

        async def move(client: JourneysClient, retried: bool) -> None:
            assert await client.set_time(step.at) == step.at

        # From here the clock may have moved, even if the move is not acknowledged:
        # batches from before it may have left the dedup window.
        driver.acknowledged = None
        await driver.do(index, "clock move", move)
        return

    async def send(client: JourneysClient, retried: bool) -> None:
        ack = await client.ingest(list(step.messages))
        assert not ack.errors
        assert ack.accepted + len(ack.duplicates) == len(step.messages)
        # Only a batch sent again after a kill may meet its own messages, logged
        # before the ack was lost.
        assert retried or not ack.duplicates, f"kill seed {driver.seed}: duplicates at step {index}"

    await driver.do(index, "ingest", send)
    driver.acknowledged = step


# What a run leaves


@dataclass(frozen=True)
class Call:
    sequence: int
    message_id: str
    payload: str
    journey: str
    step: str
    user: str
    change: str


@dataclass
class Observed:
    calls: dict[str, list[Call]] = field(default_factory=dict)
    stats: dict[str, reporting_pb2.JourneyStats] = field(default_factory=dict)
    sends: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # journey: step: dests
    profiles: dict[str, reporting_pb2.Profile | None] = field(default_factory=dict)
    timelines: dict[str, list[reporting_pb2.TimelineEntry]] = field(default_factory=dict)


async def _read_all(client: JourneysClient, destination: str, idle: float = 1.0) -> list[Call]:
    """Every call of a destination from sequence 0, until none comes for ``idle`` seconds
    (every step was acknowledged after its work was committed: nothing more is coming)."""
    items: list[subscription_pb2.SubscribeResponse] = []
    stream = client.subscribe(destination, "kill-test", after=0)
    try:
        while True:
            try:
                items.append(await asyncio.wait_for(anext(stream), idle))
            except TimeoutError:
                break
    finally:
        await stream.aclose()
    assert all(item.HasField("call") for item in items), f"a retention gap in {destination}"
    return [
        Call(
            i.call.sequence,
            i.call.message_id,
            i.call.payload,
            i.call.journey_id,
            i.call.step_id,
            i.call.profile_key,
            i.call.change,
        )
        for i in items
    ]


def sampled_users(seed: int) -> list[str]:
    """The users whose profiles and timelines are compared (reading all takes too long)."""
    return sorted(random.Random(f"profiles {seed}").sample(USER_IDS, PROFILES_COMPARED))


async def observe(client: JourneysClient, users: list[str]) -> Observed:
    found = Observed()
    streams = await asyncio.gather(*(_read_all(client, d) for d in DESTINATIONS))
    found.calls = dict(zip(DESTINATIONS, streams, strict=True))
    for journey_id in JOURNEYS:
        found.stats[journey_id] = await client.get_journey_stats(journey_id)
        journey = await client.get_journey(journey_id)
        found.sends[journey_id] = {
            s.id: list(s.send_to_destinations.destination_ids)
            for s in journey.steps
            if s.HasField("send_to_destinations")
        }
    for start in range(0, len(users), 10):  # a few at a time: round trips overlap

        async def profile(user: str) -> None:
            try:
                found.profiles[user] = await client.get_profile(user)
            except NotFoundError:  # (a user the workload happened to give no event)
                found.profiles[user] = None
                found.timelines[user] = []
                return
            entries = await client.list_timeline(user)
            for entry in entries:
                entry.ClearField("sequence")  # numbers need not be dense across a kill
            found.timelines[user] = entries

        await asyncio.gather(*(profile(user) for user in users[start : start + 10]))
    return found


def _example(journey_id: str) -> str:
    return (Path(EXAMPLES) / f"{journey_id}.yaml").read_text()


async def _template(tmp_path: Path) -> Path:
    """A database with the five examples applied and published. Every run starts from a
    copy, so that step keys, and so payloads, are the same in each."""
    template = tmp_path / "template.db"
    with ServerProcess(template, *SERVE_ARGS) as served:
        async with connect(served, at=START) as client:
            for journey_id in JOURNEYS:
                await apply_yaml(client, _example(journey_id))
        assert served.stop() == 0
    return template


def _copy(template: Path, db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(template) + suffix)
        if source.exists():
            shutil.copyfile(source, str(db) + suffix)


async def _read_counts(client: JourneysClient, retried: bool) -> None:
    for journey_id in JOURNEYS:
        await client.get_journey_stats(journey_id)


@dataclass(frozen=True)
class Run:
    observed: Observed
    kills: list[str]  # what was in flight at each kill
    seconds: float  # the script, kills and restarts included
    reading: float  # reading everything back at the end

    def __str__(self) -> str:
        kills = dict(Counter(self.kills))
        return f"{self.seconds:.1f} s, read back in {self.reading:.1f} s, kills during {kills}"


async def run(db: Path, seed: int, steps: list[Step], plan: list[tuple[int, float]]) -> Run:
    """Runs the script on ``db`` (a copy of the template), killing the server as ``plan``
    says, and reads back what the run left."""
    users = sampled_users(seed)
    started = time.monotonic()
    async with Driver(db, seed, plan) as driver:
        for index, step in enumerate(steps):
            await _step(driver, index, step)
        # Kills the script ended before land on reads (each read again after the restart).
        while driver.plan:
            await driver.do(len(steps), "reads", _read_counts)
        script = time.monotonic() - started

        async def look(client: JourneysClient, retried: bool) -> Observed:
            return await observe(client, users)

        observed = await driver.do(len(steps), "observe", look)
        return Run(observed, driver.kills, script, time.monotonic() - started - script)


# Comparing


def _distinct(calls: list[Call]) -> list[Call]:
    """The calls with each message id's later copies dropped."""
    seen: set[str] = set()
    kept = []
    for call in calls:
        if call.message_id not in seen:
            seen.add(call.message_id)
            kept.append(call)
    return kept


def _by_user(calls: list[Call]) -> dict[str, list[str]]:
    order: dict[str, list[str]] = defaultdict(list)
    for call in calls:
        order[call.user].append(call.message_id)
    return dict(order)


def _described(calls: set[tuple[str, str]], most: int = 5) -> str:
    """The first calls as user, step, change, instant and message id."""
    shown = []
    for message_id, payload in sorted(calls)[:most]:
        call = json.loads(payload)
        props = (
            call.get("properties") or call.get("traits") or {call.get("key"): call.get("change")}
        )
        shown.append(f"{call['userId']} {props} at {call['timestamp']} ({message_id})")
    return "; ".join(shown)


def check_streams(got: Observed, reference: Observed, seed: int) -> None:
    for destination, expected in reference.calls.items():
        calls = got.calls[destination]
        where = f"kill seed {seed}, destination {destination}"
        assert [c.sequence for c in calls] == list(range(1, len(calls) + 1)), where + ": dense"
        assert len(_distinct(expected)) == len(expected), where + ": reference has duplicates"
        payloads: dict[str, set[str]] = defaultdict(set)
        for call in calls:
            payloads[call.message_id].add(call.payload)
        differing = {m: p for m, p in payloads.items() if len(p) > 1}
        assert not differing, f"{where}: one message id, several payloads: {differing}"
        distinct = _distinct(calls)
        got_set = {(c.message_id, c.payload) for c in distinct}
        want_set = {(c.message_id, c.payload) for c in expected}
        lost, extra = want_set - got_set, got_set - want_set
        assert not (lost or extra), (
            f"{where}: {len(lost)} calls lost: {_described(lost)}; "
            f"{len(extra)} calls not in the uninterrupted run: {_described(extra)}"
        )
        got_order, want_order = _by_user(distinct), _by_user(expected)
        wrong = [u for u in want_order if got_order.get(u) != want_order[u]]
        assert not wrong, (
            f"{where}: calls in another order for {len(wrong)} users, e.g. {wrong[:3]}"
        )


def check_counts(observed: Observed, seed: int) -> None:
    """Each send step's counts agree with its calls: every run that joined it was
    "entered" once to each destination, every run that ended there "exited"."""
    for journey_id, stats in observed.stats.items():
        steps = {s.step_id: s for s in stats.steps}
        for step_id, destinations in observed.sends[journey_id].items():
            for destination in destinations:
                changes = Counter(
                    c.change
                    for c in _distinct(observed.calls[destination])
                    if (c.journey, c.step) == (journey_id, step_id)
                )
                where = f"kill seed {seed}: {journey_id}/{step_id} -> {destination}"
                assert changes["entered"] == steps[step_id].joined_runs, where
                assert changes["entered"] - changes["exited"] == steps[step_id].members, where


def _counts(stats: reporting_pb2.JourneyStats) -> dict[str, tuple[int, ...]]:
    """A journey's counts by step: members, waiting, joined users and runs, branch runs."""
    found: dict[str, tuple[int, ...]] = {
        "": (stats.entered_users, stats.entered_runs, stats.in_progress, stats.exited_runs)
    }
    for s in stats.steps:
        found[s.step_id] = (s.members, s.waiting, s.joined_users, s.joined_runs, *s.branch_runs)
    return found


def check_same_state(got: Observed, reference: Observed, seed: int) -> None:
    for journey_id, stats in reference.stats.items():
        want, have = _counts(stats), _counts(got.stats[journey_id])
        differ = {step: f"{have.get(step)} not {counts}" for step, counts in want.items()}
        differ = {step: text for step, text in differ.items() if have.get(step) != want[step]}
        assert got.stats[journey_id] == stats, f"kill seed {seed}: {journey_id} counts: {differ}"
    for user, profile in reference.profiles.items():
        assert got.profiles[user] == profile, f"kill seed {seed}: profile {user} differs"
        assert got.timelines[user] == reference.timelines[user], (
            f"kill seed {seed}: timeline of {user} differs"
        )


def _seed() -> int:
    return int(os.environ.get("KILL_SEED") or random.SystemRandom().randrange(1 << 32))


@pytest.mark.timeout(300)
async def test_kills_under_load_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    seed = _seed()
    print(f"kill seed {seed}")
    steps = workload(seed)
    template = await _template(tmp_path)
    _copy(template, tmp_path / "uninterrupted.db")
    uninterrupted = await run(tmp_path / "uninterrupted.db", seed, steps, [])
    print(f"uninterrupted run: {uninterrupted}")
    _copy(template, tmp_path / "killed.db")
    killed = await run(tmp_path / "killed.db", seed, steps, kill_plan(seed, steps))
    print(f"killed run: {killed}")
    assert len(killed.kills) >= MIN_KILLS, f"kill seed {seed}: only {len(killed.kills)} kills"
    reference = uninterrupted.observed
    sent = {d: len(calls) for d, calls in reference.calls.items()}
    again = {d: len(calls) - len(_distinct(calls)) for d, calls in killed.observed.calls.items()}
    print(f"calls: {sent}; sent again after kills: {again}")
    assert all(sent.values()), f"kill seed {seed}: a destination got nothing: {sent}"
    check_streams(killed.observed, reference, seed)
    check_counts(reference, seed)
    check_counts(killed.observed, seed)
    check_same_state(killed.observed, reference, seed)
