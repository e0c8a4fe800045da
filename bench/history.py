"""Historical entry at scale: backfill rate, and ingest while a backfill runs.

Workload: a SQLite file (WAL, ``synchronous=NORMAL``) holding the event history
of N profiles (default 1,000,000): M Segment messages (default 10,000,000;
300-600 bytes each, with properties and context) received over the 200 days
before a fixed instant, the examples' events (``Order Completed`` with revenue,
``Product Added``, page calls recorded as ``Page Viewed``, ``Subscription
Started``, ...), noise events no condition uses and identify calls. Nothing uses
them yet: no journey is published, so each profile is its bare snapshot.

The file is synthesised, not ingested (the engine takes ~2.5k messages/s in
process): an engine creates the schema, the space, the winback destinations
and a draft journey, then raw ``sqlite3`` ``executemany`` writes exactly the
rows the engine writes when it applies those messages with no journey using
them — each message's ``ingest_log`` row (its JSON as ``Message.to_json``
makes it, checked against ``parse_message`` on a sample), the ``dedup`` rows
of the dedup window, one ``actors`` row per profile (its ``Actor.to_data``
snapshot, the last log position applied) and the applied floor. Worker
processes (``--build-workers``) make the rows, chunk by chunk, each chunk with
a generator seeded of its own. ``--verify`` also ingests the same messages
through an engine, one at a time at their received times, and compares every
row (the run test does). The log keeps the messages received 180-200 days ago
too: on a manual clock nothing compacts it before the publish, and the entry's
window must leave them out.

The draft journey is the winback example's entry,
``event('Order Completed').within(180 days).count() = 0`` with historical data,
then a send step to ``email``. Figures, each against its baseline in the same
run, on fresh copies of the built file (an engine on a manual clock at the
instant after the history, in a child process of its own):

1. backfill: publish, wait for the historical entry to end; profiles/s and
   history events/s (wall time around the wait, and the operation's own
   figures), profiles entered against a brute-force count from the synthesised
   data (profiles with no ``Order Completed`` in the 180 days before the
   publish), RSS;
2. ingest while a backfill runs: the same load (batches of 100 messages for
   new and existing users through ``Engine.ingest``, a few senders at once)
   on an engine where nothing is published (baseline), on one where the
   journey is published without historical data (second baseline: the
   journey's own cost, no walk) and right after the publish, while the walk
   goes on: messages/s to the last acknowledgement and
   to everything applied, p50/p99/max batch latency (``ingest`` returning: the
   batch is in the log), and how far and how fast the walk went meanwhile.
   With ``--finish`` the walk then goes on to the end, and its entries are
   checked against the brute force too (live messages must not change who
   enters from history).

``operations.wait`` hears of the end within 0.2 s (the watch interval): at
toy sizes the wall-time rates are bounded by it; the operation's own figures
are not.

Run from the repository root:  .venv/bin/python bench/history.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import io
import json
import math
import multiprocessing
import os
import pstats
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(ROOT),
    str(ROOT / "server"),
    str(ROOT / "clients" / "python"),
    str(ROOT / "protos"),
]

from bench.machine import describe, median_range  # noqa: E402
from bench.runtime import START, rss_bytes  # noqa: E402
from journeys_engine import Engine, EngineSettings  # noqa: E402
from journeys_engine.clock import format_ms  # noqa: E402
from journeys_engine.messages import parse_message  # noqa: E402
from journeys_engine.model import (  # noqa: E402
    Condition,
    Destination,
    DestinationKind,
    EntryStep,
    EventMode,
    Journey,
    JourneySettings,
    SendToDestinationsStep,
)
from journeys_engine.model.limits import Limits  # noqa: E402
from journeys_engine.runtime.actor import Actor  # noqa: E402
from journeys_engine.runtime.runtime import compact_json  # noqa: E402
from journeys_engine.store.schema import MIGRATIONS  # noqa: E402
from journeys_engine.testing import FakeClock  # noqa: E402

SPACE = "default"
JOURNEY = "winback-history"
ENTRY = "event('Order Completed').within(180 days).count() = 0"
MINUTE_MS = 60_000
DAY_MS = 86_400_000
NOW = START  # 2026-01-01T00:00:00Z: the engine's clock, and the publish instant
HISTORY_MS = 200 * DAY_MS  # messages received over the 200 days before NOW
WINDOW_MS = 180 * DAY_MS  # the entry's window
DEDUP_MS = Limits().dedup_window_ms
BATCH_ROWS = 10_000  # rows per executemany and transaction in the build
WORKDIR = Path("/tmp/journeys-history")
SAMPLE_EVERY = 997  # build: every such message is also made by the engine's own path

# (kind, weight): the examples' events, page calls, noise no condition uses, identify.
MIX: list[tuple[str, int]] = [
    ("Product Viewed", 18),  # noise
    ("Product Added", 12),
    ("Order Completed", 6),
    ("page", 20),  # recorded as Page Viewed
    ("Subscription Started", 2),
    ("Trial Started", 2),
    ("Account Created", 2),
    ("Tutorial Completed", 2),
    ("Button Clicked", 12),  # noise
    ("Scrolled", 12),  # noise
    ("identify", 12),
]
KIND_TABLE = [name for name, weight in MIX for _ in range(weight)]  # 100 slots
assert len(KIND_TABLE) == 100
PLANS = ("free", "basic", "pro", "enterprise")
CHANNELS = ("email", "sms", "push")
PAGES = ("Home", "Product", "Cart", "Pricing", "Blog", "Checkout")
CATEGORIES = ("Shoes", "Shirts", "Bags", "Hats", "Accessories")
REFERRERS = ("https://www.google.com/", "https://www.facebook.com/", "", "https://t.co/x")
SOURCES = ("facebook", "google", "email", "newsletter")
AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Mobile/15E148",
)
LOCALES = ("en-US", "fr-FR", "de-DE", "en-GB")
LIBRARY = {"name": "analytics.js", "version": "5.2.0"}


# Helpers


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def copy_db(source: Path, target: Path) -> None:
    """A copy of a checkpointed database (no WAL to carry)."""
    remove_db(target)
    shutil.copyfile(source, target)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def fmt_range(values: Sequence[float], unit: str, digits: int = 0) -> str:
    m, lo, hi = median_range(values)
    if len(values) == 1:
        return f"{m:,.{digits}f} {unit}"
    return f"{m:,.{digits}f} {unit} ({lo:,.{digits}f}-{hi:,.{digits}f})"


def schema_statement(prefix: str) -> str:
    """The schema's own statement that starts with ``prefix`` (an index to drop and remake)."""
    for migration in MIGRATIONS:
        for statement in migration:
            if statement.strip().startswith(prefix):
                return statement
    raise LookupError(prefix)


def peak_rss() -> int:
    """This process's peak RSS (VmHWM: ``ru_maxrss`` would carry the parent's over exec)."""
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def child(kind: str, *args: str) -> dict[str, Any]:
    """Runs ``history.py child KIND ...``; returns the JSON it prints last (its other
    output is passed through)."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "child", kind, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"child {kind} failed:\n{result.stderr}")
    lines = result.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line)
    found: dict[str, Any] = json.loads(lines[-1])
    return found


# Messages


class Draw(NamedTuple):
    """One message: enough to make both its Segment JSON (as a sender sends it) and
    its ``ingest_log`` JSON (as the engine stores it)."""

    call: str  # "track", "page" or "identify"
    message_id: str
    user_id: str
    event: str | None  # the track event, or the page's name
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]
    stored: str  # the stored JSON between userId and timestamp (event .. context)
    timestamp: int  # event time (as the engine corrects it)
    received_at: int
    skew: int  # the sender's clock error: its timestamp and sentAt carry it


def user_name(u: int, width: int) -> str:
    return f"user-{u:0{width}d}"


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_CACHE: dict[tuple[Any, ...], tuple[dict[str, Any], str]] = {}
_LIBRARY_JSON = _ENCODE(LIBRARY)
_CAMPAIGNS = [{"source": source, "medium": "cpc", "name": "winback"} for source in SOURCES]
_CAMPAIGNS_JSON = [f',"campaign":{_ENCODE(c)}' for c in _CAMPAIGNS]


def _cached(key: tuple[Any, ...], make: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """A dict that recurs (a product's properties, a page) with its JSON, made once."""
    found = _CACHE.get(key)
    if found is None:
        made = make()
        found = _CACHE[key] = (made, _ENCODE(made))
    return found


def _page(page: int, product: int, referrer: int) -> tuple[dict[str, Any], str]:
    path = f"/products/p{product}" if PAGES[page] == "Product" else f"/{PAGES[page].lower()}"
    return _cached(
        ("where", path, referrer),
        lambda: {
            "path": path,
            "referrer": REFERRERS[referrer],
            "url": f"https://example.com{path}",
        },
    )


def draw(
    rnd: Callable[[], float], kind: str, user: str, u: int, message_id: str, received_at: int
) -> Draw:
    """A realistic message of ``kind`` (``rnd`` is ``random.random`` of a seeded
    generator). Its stored JSON is put together from the JSON of its parts
    (recurring ones encoded once): the build checks it against the engine's."""
    product = int(rnd() * 5000)
    page = int(rnd() * len(PAGES))
    where, where_json = _page(page, product, int(rnd() * len(REFERRERS)))
    path = where["path"]
    call, event = "track", kind
    traits: dict[str, Any] = {}
    campaign = -1
    if kind == "page":
        call, event = "page", PAGES[page]
        properties, text = _cached(
            ("page", path), lambda: {"path": path, "title": event, "url": where["url"]}
        )
        stored = f',"name":"{event}","properties":{text[:-1]},"name":"{event}"}}'
        if rnd() < 0.3:
            campaign = int(rnd() * len(SOURCES))
    elif kind == "identify":
        call = "identify"
        plan, channel = int(rnd() * len(PLANS)), int(rnd() * len(CHANNELS))
        properties = {}
        traits = {
            "email": f"{user}@example.com",
            "plan": PLANS[plan],
            "preferred_channel": CHANNELS[channel],
            "Customer Lifetime Value": int(rnd() * 300),
        }
        stored = f',"traits":{_ENCODE(traits)}'
    else:
        if kind == "Order Completed":
            count = 1 + int(rnd() * 3)
            price = round(5 + rnd() * 95, 2)
            properties = {
                "order_id": f"o-{message_id}",
                "revenue": round(price * count, 2),
                "currency": "USD",
                "products": [{"product_id": f"p{product}", "price": price, "quantity": count}],
            }
            text = _ENCODE(properties)
        elif kind in ("Product Viewed", "Product Added"):
            properties, text = _cached(
                ("product", product),
                lambda: {
                    "product_id": f"p{product}",
                    "sku": f"SKU-{product:05d}",
                    "category": CATEGORIES[product % len(CATEGORIES)],
                    "name": f"Product {product}",
                    "price": 5 + product % 195,
                    "quantity": 1,
                },
            )
        elif kind == "Subscription Started":
            plan_type = "Free" if rnd() < 0.5 else "paid"
            properties, text = _cached(
                (kind, plan_type), lambda: {"Subscription Plan Type": plan_type, "period": "m"}
            )
        elif kind == "Trial Started":
            trial = PLANS[int(rnd() * len(PLANS))]
            properties, text = _cached((kind, trial), lambda: {"trial_days": 14, "plan": trial})
        elif kind == "Account Created":
            method = "google" if rnd() < 0.4 else "email"
            properties, text = _cached((kind, method), lambda: {"method": method})
        elif kind == "Tutorial Completed":
            seconds = int(rnd() * 600)
            properties, text = _cached(
                (kind, seconds), lambda: {"tutorial": "getting-started", "seconds": seconds}
            )
        elif kind == "Button Clicked":
            button = product % 40
            properties, text = _cached(
                (kind, button, path),
                lambda: {"button_id": f"b{button}", "label": "Learn more", "location": path},
            )
        else:  # Scrolled
            depth = 25 * (1 + int(rnd() * 4))
            properties, text = _cached((kind, depth, path), lambda: {"depth": depth, "path": path})
        stored = f',"event":"{event}","properties":{text}'
    ip, locale, agent = f"198.51.{u % 250}.{u // 250 % 250}", LOCALES[u % 4], AGENTS[u % 3]
    context = {"library": LIBRARY, "ip": ip, "locale": locale, "userAgent": agent, "page": where}
    tail = ""
    if campaign >= 0:
        context["campaign"] = _CAMPAIGNS[campaign]
        tail = _CAMPAIGNS_JSON[campaign]
    stored += (
        f',"context":{{"library":{_LIBRARY_JSON},"ip":"{ip}","locale":"{locale}",'
        f'"userAgent":"{agent}","page":{where_json}{tail}}}'
    )
    delay = int(rnd() * 30_000)  # sent up to 30 s after it happened (batched)
    skew = int(rnd() * 240_000) - 120_000  # the sender's clock is up to 2 min off
    return Draw(
        call, message_id, user, None if call == "identify" else event, properties, traits,
        context, stored, received_at - delay, received_at, skew,
    )  # fmt: skip


def raw_message(d: Draw) -> dict[str, Any]:
    """The message as a Segment library sends it (the sender's timestamp and sentAt)."""
    out: dict[str, Any] = {"type": d.call, "userId": d.user_id, "messageId": d.message_id}
    if d.call == "track":
        out["event"] = d.event
    elif d.call == "page":
        out["name"] = d.event
    if d.properties:
        out["properties"] = d.properties
    if d.traits:
        out["traits"] = d.traits
    out["context"] = d.context
    out["timestamp"] = format_ms(d.timestamp + d.skew)
    out["sentAt"] = format_ms(d.received_at + d.skew)
    return out


_MINUTES: dict[int, str] = {}


def iso(ms: int) -> str:
    """``format_ms``, cheaper (the build formats two instants per message)."""
    minute, rest = divmod(ms, MINUTE_MS)
    prefix = _MINUTES.get(minute)
    if prefix is None:
        prefix = _MINUTES[minute] = format_ms(minute * MINUTE_MS)[:17]
    seconds, milli = divmod(rest, 1000)
    return f"{prefix}{seconds:02d}.{milli:03d}Z"


def stored_json(d: Draw) -> str:
    """The message's ``ingest_log`` JSON, as ``Message.to_json`` makes it (the build
    checks it against that on a sample)."""
    return (
        f'{{"type":"{d.call}","messageId":"{d.message_id}","userId":"{d.user_id}"{d.stored},'
        f'"timestamp":"{iso(d.timestamp)}","receivedAt":"{iso(d.received_at)}"}}'
    )


def engine_json(d: Draw) -> str:
    """What the engine stores for the message (its own parser and encoder)."""
    return compact_json(parse_message(raw_message(d), received_at=d.received_at).to_json())


class Schedule(NamedTuple):
    """When each message is received and whose it is, in log order."""

    keys: list[int]  # (received offset << shift) | profile number, sorted
    shift: int
    width: int  # digits of a profile number in its user id
    seed: int


def schedule(profiles: int, events: int, seed: int) -> Schedule:
    """Every profile has one message, the rest go to profiles drawn at random (so
    1 + Poisson(M/N - 1) each), received at instants drawn uniformly over the 200
    days before NOW (the last a minute before)."""
    if events < profiles:
        raise SystemExit("--events must be at least --profiles (each profile has a message)")
    rnd = random.Random(seed).random
    shift = max(1, (profiles - 1).bit_length())
    span = HISTORY_MS - MINUTE_MS
    keys = [(int(rnd() * span) << shift) | u for u in range(profiles)]
    keys.extend(
        (int(rnd() * span) << shift) | int(rnd() * profiles) for _ in range(events - profiles)
    )
    keys.sort()
    return Schedule(keys, shift, len(str(profiles - 1)), seed)


def chunk(plan: Schedule, keys: Sequence[int], start: int) -> Iterator[tuple[int, int, Draw]]:
    """(position, profile number, message) for ``keys``, the first at position
    ``start`` + 1; each chunk has a generator of its own (chunks are made in parallel)."""
    rnd = random.Random(plan.seed * 1_000_003 + start).random
    shift, width, seed = plan.shift, plan.width, plan.seed
    mask = (1 << shift) - 1
    first = NOW - HISTORY_MS
    table = KIND_TABLE
    for position, key in enumerate(keys, start + 1):
        u = key & mask
        yield (
            position,
            u,
            draw(
                rnd, table[int(rnd() * 100)], f"user-{u:0{width}d}", u,
                f"ajs-{seed}-{position:09d}", first + (key >> shift),
            ),
        )  # fmt: skip


def history(profiles: int, events: int, seed: int) -> Iterator[tuple[int, int, Draw]]:
    """The whole history in log order, as the build writes it."""
    plan = schedule(profiles, events, seed)
    for start in range(0, events, BATCH_ROWS):
        yield from chunk(plan, plan.keys[start : start + BATCH_ROWS], start)


# The database


async def create_catalog(path: Path, clock_ms: int) -> None:
    """Schema, the default space, the winback destinations and the draft journey."""
    engine = await Engine.open(path, clock=FakeClock(clock_ms))
    try:
        for destination in (
            Destination("email", "", "Email", DestinationKind.EVENT, EventMode.TRACK),
            Destination("advertising", "", "Advertising", DestinationKind.LIST),
        ):
            await engine.definitions.create(SPACE, destination)
        steps = (
            EntryStep("low-recency", "Low recency purchasers", Condition(ENTRY), True, "send"),
            SendToDestinationsStep("send", "Winback offer", ("email",)),
        )
        await engine.journeys.create(
            SPACE,
            Journey(
                id=JOURNEY, space_id="", name="Winback", settings=JourneySettings(), steps=steps
            ),
        )
    finally:
        await engine.close()


class Built(NamedTuple):
    profiles: int
    events: int
    seed: int
    entering: int  # brute force: profiles with no Order Completed in the window
    seconds: float
    bytes: int
    message_bytes: float  # average ingest_log JSON
    snapshot_bytes: float
    sampled: int  # messages also made by the engine's own path, all identical
    phases: dict[str, float]  # seconds


_PLAN: Schedule | None = None  # (the build's schedule, inherited by its workers)


class Rows(NamedTuple):
    """A chunk of the log, made by a build worker."""

    log: list[tuple[Any, ...]]  # ingest_log rows
    dedup: list[tuple[Any, ...]]
    profiles: array[int]  # each message's profile number
    codes: bytes  # each message: 0 identify, 1 track or page, 2 an Order Completed in the window
    traits: list[tuple[int, dict[str, Any]]]  # (index in the chunk, traits) of identify calls
    text_bytes: int
    sampled: int


def _log_rows(start: int) -> Rows:
    """(worker) The log rows of positions ``start`` + 1 ... and what they tell of
    their profiles; every ``SAMPLE_EVERY``-th message is also made by the engine's
    path, and must be identical."""
    assert _PLAN is not None
    dedup_from = NOW - DEDUP_MS  # the dedup window's rows (older ones are purged)
    window_from = NOW - WINDOW_MS  # visible iff window_from < timestamp <= NOW
    log: list[tuple[Any, ...]] = []
    dedup: list[tuple[Any, ...]] = []
    profiles = array("i")
    codes = bytearray()
    traits: list[tuple[int, dict[str, Any]]] = []
    text_bytes = sampled = 0
    for position, u, d in chunk(_PLAN, _PLAN.keys[start : start + BATCH_ROWS], start):
        text = stored_json(d)
        if position % SAMPLE_EVERY == 1:
            made = engine_json(d)
            if made != text:
                raise AssertionError(f"message {position}: built {text!r}, engine {made!r}")
            sampled += 1
        text_bytes += len(text)
        log.append((position, SPACE, f"u:{d.user_id}", d.received_at, text))
        if d.received_at >= dedup_from:
            dedup.append((SPACE, d.message_id, d.received_at, position))
        profiles.append(u)
        if d.call == "identify":
            traits.append((len(codes), d.traits))
            codes.append(0)
        elif d.event == "Order Completed" and window_from < d.timestamp <= NOW:
            codes.append(2)
        else:
            codes.append(1)
    return Rows(log, dedup, profiles, bytes(codes), traits, text_bytes, sampled)


def _actor_rows(
    job: tuple[int, array[int], array[int], dict[int, dict[str, Any]]],
) -> list[tuple[Any, ...]]:
    """(worker) Snapshot rows of profiles ``first`` ...: ``Actor.to_data`` of each,
    as the engine leaves it after applying its messages with no journey."""
    assert _PLAN is not None
    first, seq, last, traits = job
    rows = []
    for i, (applied, position) in enumerate(zip(seq, last, strict=True)):
        user = user_name(first + i, _PLAN.width)
        actor = Actor(user, user, None)
        actor.conditions.seq = applied
        found = traits.get(first + i)
        if found is not None:
            actor.conditions.identify(found)
        rows.append((SPACE, actor.id, position, None, compact_json(actor.to_data())))
    return rows


def build(path: Path, profiles: int, events: int, seed: int, workers: int) -> Built:
    """Synthesises the database (see the module docstring): ``workers`` processes
    make the rows, this one writes them."""
    global _PLAN  # noqa: PLW0603 - handed to the forked workers
    started = time.perf_counter()
    remove_db(path)
    asyncio.run(create_catalog(path, NOW - HISTORY_MS - DAY_MS))
    _PLAN = schedule(profiles, events, seed)
    phases = {"schedule": time.perf_counter() - started}
    seq = array("i", bytes(4 * profiles))  # track and page calls applied
    last = array("q", bytes(8 * profiles))  # last position
    traits: dict[int, dict[str, Any]] = {}  # the last identify's traits
    recent = bytearray(profiles)  # an Order Completed visible at NOW in the window
    text_bytes = sampled = snapshot_bytes = 0
    context = multiprocessing.get_context("fork")
    with (
        context.Pool(workers) as pool,
        contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db,
    ):
        db.execute("PRAGMA journal_mode=OFF")  # a scratch build: no journal, no syncs
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        db.execute("PRAGMA threads=2")  # (sorting for the index)
        db.execute("DROP INDEX ingest_log_by_actor")  # made again at the end: faster
        for start, rows in zip(
            range(0, events, BATCH_ROWS),
            pool.imap(_log_rows, range(0, events, BATCH_ROWS)),
            strict=True,
        ):
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO ingest_log (position, space_id, actor_id, received_at, message) "
                "VALUES (?, ?, ?, ?, ?)",
                rows.log,
            )
            if rows.dedup:
                db.executemany(
                    "INSERT INTO dedup (space_id, message_id, received_at, position) "
                    "VALUES (?, ?, ?, ?)",
                    rows.dedup,
                )
            db.execute("COMMIT")
            pairs = zip(rows.profiles, rows.codes, strict=True)
            for position, (u, code) in enumerate(pairs, start + 1):
                last[u] = position
                if code:
                    seq[u] += 1
                    if code == 2:
                        recent[u] = 1
            for i, found in rows.traits:
                traits[rows.profiles[i]] = found
            text_bytes += rows.text_bytes
            sampled += rows.sampled
        phases["messages"] = time.perf_counter() - started - sum(phases.values())
        jobs = (
            (
                first,
                seq[first : first + BATCH_ROWS],
                last[first : first + BATCH_ROWS],
                {
                    u: t
                    for u in range(first, min(profiles, first + BATCH_ROWS))
                    if (t := traits.get(u))
                },
            )
            for first in range(0, profiles, BATCH_ROWS)
        )
        for actors in pool.imap(_actor_rows, jobs):  # in id order: the table's index appends
            snapshot_bytes += sum(len(row[4]) for row in actors)
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO actors (space_id, actor_id, position, wake_at, data) "
                "VALUES (?, ?, ?, ?, ?)",
                actors,
            )
            db.execute("COMMIT")
        phases["profiles"] = time.perf_counter() - started - sum(phases.values())
        db.execute(schema_statement("CREATE INDEX ingest_log_by_actor"))
        phases["index"] = time.perf_counter() - started - sum(phases.values())
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('applied_floor', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(events),),
        )
        db.execute("PRAGMA journal_mode=WAL")
    _PLAN = None
    os.sync()  # the build's writes reach the disk before anything is timed
    phases["sync"] = time.perf_counter() - started - sum(phases.values())
    return Built(
        profiles, events, seed, profiles - sum(recent), time.perf_counter() - started,
        path.stat().st_size, text_bytes / events, snapshot_bytes / profiles, sampled, phases,
    )  # fmt: skip


async def ingest_through_engine(path: Path, profiles: int, events: int, seed: int) -> None:
    """The same history, one message at a time through ``Engine.ingest`` at its
    received time (``--verify``)."""
    remove_db(path)
    await create_catalog(path, NOW - HISTORY_MS - DAY_MS)
    clock = FakeClock(NOW - HISTORY_MS)
    engine = await Engine.open(path, clock=clock)
    try:
        for _, _, d in history(profiles, events, seed):
            clock.set(d.received_at)
            result = await engine.ingest(SPACE, [raw_message(d)])
            assert result.accepted == 1, result
        await engine.settle()
    finally:
        await engine.close()


def verify(built: Path, scratch: Path, profiles: int, events: int, seed: int) -> str:
    """Compares every row the build wrote with what the engine writes."""
    asyncio.run(ingest_through_engine(scratch, profiles, events, seed))
    queries = {
        "ingest_log": "SELECT position, space_id, actor_id, received_at, message FROM ingest_log "
        "ORDER BY position",
        "actors": "SELECT space_id, actor_id, position, wake_at, data FROM actors "
        "ORDER BY space_id, actor_id",
        "dedup": "SELECT space_id, message_id, received_at, position FROM dedup "
        f"WHERE received_at >= {NOW - DEDUP_MS} ORDER BY position",
        "applied floor": "SELECT value FROM meta WHERE key = 'applied_floor'",
        "links, timeline, outbox, members": "SELECT (SELECT count(*) FROM links), "
        "(SELECT count(*) FROM timeline), (SELECT count(*) FROM outbox), "
        "(SELECT count(*) FROM members)",
    }
    counts = []
    with (
        contextlib.closing(sqlite3.connect(built)) as ours,
        contextlib.closing(sqlite3.connect(scratch)) as theirs,
    ):
        for name, sql in queries.items():
            mine, engine = ours.execute(sql).fetchall(), theirs.execute(sql).fetchall()
            if mine != engine:
                diff = next(
                    ((a, b) for a, b in zip(mine, engine, strict=False) if a != b),
                    (len(mine), len(engine)),
                )
                raise AssertionError(f"{name}: the build differs from the engine: {diff}")
            counts.append(f"{name} {len(mine):,}")
    remove_db(scratch)
    return ", ".join(counts)


# The load: new and existing users


def load(profiles: int, batches: int, size: int, seed: int) -> list[list[dict[str, Any]]]:
    """Batches of Segment messages received at NOW: half for existing profiles
    (drawn at random), half for new users (two messages each on average)."""
    rng = random.Random(seed)
    rnd = rng.random
    width = len(str(profiles - 1))
    out = []
    for b in range(batches):
        part = []
        for i in range(size):
            n = b * size + i
            if rnd() < 0.5:
                u = int(rnd() * profiles)
                user = user_name(u, width)
            else:
                u = profiles + int(rnd() * batches * size // 4)
                user = f"new-{u}"
            kind = KIND_TABLE[int(rnd() * 100)]
            part.append(raw_message(draw(rnd, kind, user, u, f"live-{seed}-{n}", NOW)))
        out.append(part)
    return out


# Children: each measurement in a fresh process of its own (its RSS is its own)


async def open_engine(path: Path) -> Engine:
    engine = await Engine.open(path, clock=FakeClock(NOW), settings=EngineSettings())
    await engine.ready()
    return engine


def outbox_count(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        (n,) = db.execute("SELECT count(*) FROM outbox WHERE journey_id = ?", (JOURNEY,)).fetchone()
    return int(n)


async def backfill_child(path: Path, profile: bool) -> dict[str, Any]:
    """Publishes, waits for the historical entry to end."""
    rss_start = rss_bytes()
    engine = await open_engine(path)
    rss_open = rss_bytes()
    profiler = cProfile.Profile() if profile else None
    began = time.perf_counter()
    if profiler:
        profiler.enable()
    _, operation = await engine.publish_journey(SPACE, JOURNEY)
    assert operation is not None
    published = time.perf_counter()
    done = await engine.operations.wait(SPACE, operation.id)
    ended = time.perf_counter()
    if profiler:
        profiler.disable()
    await engine.settle()
    rss_end = rss_bytes()
    await engine.close()
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(20)
        stats.sort_stats("cumulative").print_stats(25)
        print("where the backfill's time goes (cProfile, by own time, then cumulative):")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    return {
        "state": done.state.value,
        "detail": done.detail,
        "scanned": done.profiles_scanned,
        "total": done.profiles_total,
        "entered": done.profiles_entered,
        "events_read": done.events_read,
        "op_profiles_per_s": done.profiles_per_second,
        "op_events_per_s": done.events_per_second,
        "publish_s": published - began,
        "wait_s": ended - published,
        "outbox": outbox_count(path),
        "rss_start": rss_start,
        "rss_open": rss_open,
        "rss_end": rss_end,
        "rss_peak": peak_rss(),
    }


async def ingest_child(
    path: Path, profiles: int, batches: int, size: int, window: int, mode: str, finish: bool
) -> dict[str, Any]:
    """The load: with nothing published (``idle``), with the journey published
    without historical data (``live``), or right after the publish (``backfill``)."""
    work = load(profiles, batches, size, seed=7)
    engine = await open_engine(path)
    backfill = mode == "backfill"
    operation_id = ""
    publish_s = 0.0
    if mode == "live":
        stored = await engine.journeys.get(SPACE, JOURNEY)
        steps = tuple(
            dataclasses.replace(s, use_historical_data=False) if isinstance(s, EntryStep) else s
            for s in stored.steps
        )
        await engine.journeys.update(SPACE, dataclasses.replace(stored, steps=steps))
        _, operation = await engine.publish_journey(SPACE, JOURNEY)
        assert operation is None
    elif backfill:
        began = time.perf_counter()
        _, operation = await engine.publish_journey(SPACE, JOURNEY)
        assert operation is not None
        operation_id = operation.id
        publish_s = time.perf_counter() - began
    latencies: list[float] = []
    batches_left = iter(work)

    async def sender() -> None:
        for part in batches_left:
            sent = time.perf_counter()
            result = await engine.ingest(SPACE, part)
            latencies.append(time.perf_counter() - sent)
            assert result.accepted == len(part), result

    started = time.perf_counter()
    scanned_start = (
        (await engine.operations.get(SPACE, operation_id)).profiles_scanned if backfill else 0
    )
    async with asyncio.TaskGroup() as senders:
        for _ in range(window):
            senders.create_task(sender())
    acked = time.perf_counter()
    scanned_acked = (
        (await engine.operations.get(SPACE, operation_id)).profiles_scanned if backfill else 0
    )
    await engine.settle()
    applied = time.perf_counter()
    scanned_applied = (
        (await engine.operations.get(SPACE, operation_id)).profiles_scanned if backfill else 0
    )
    result: dict[str, Any] = {
        "messages": sum(len(p) for p in work),
        "acked_s": acked - started,
        "applied_s": applied - started,
        "latencies": latencies,
        "publish_s": publish_s,
        "scanned_start": scanned_start,
        "scanned_acked": scanned_acked,
        "scanned_applied": scanned_applied,
    }
    if backfill and finish:
        done = await engine.operations.wait(SPACE, operation_id)
        result.update(
            finished_s=time.perf_counter() - started,
            state=done.state.value,
            scanned=done.profiles_scanned,
            entered=done.profiles_entered,
        )
    result["rss_peak"] = peak_rss()
    await engine.close()
    return result


def run_child(argv: list[str]) -> None:
    kind, path = argv[0], Path(argv[1])
    if kind == "backfill":
        found = asyncio.run(backfill_child(path, profile=argv[2] == "1"))
    else:
        profiles, batches, size, window = (int(a) for a in argv[2:6])
        found = asyncio.run(
            ingest_child(path, profiles, batches, size, window, argv[6], argv[7] == "1")
        )
    print(json.dumps(found))


# The run


def built_for(path: Path, args: argparse.Namespace) -> Built:
    """The built database: reused when ``--reuse`` and its sizes match, else built."""
    info = path.with_suffix(".json")
    if args.reuse and path.exists() and info.exists():
        found = Built(*json.loads(info.read_text()))
        if (found.profiles, found.events, found.seed) == (args.profiles, args.events, args.seed):
            print(f"reusing {path} (built earlier in {found.seconds:,.1f} s)")
            return found
    info.unlink(missing_ok=True)
    built = build(path, args.profiles, args.events, args.seed, args.build_workers)
    info.write_text(json.dumps(built))
    return built


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        run_child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build-workers", type=int, default=2, help="processes making rows")
    parser.add_argument("--batches", type=int, default=2_000, help="ingest load, batches")
    parser.add_argument("--batch", type=int, default=100, help="messages per batch")
    parser.add_argument("--window", type=int, default=4, help="senders at once")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--finish",
        action="store_true",
        help="let the loaded walk finish and check it against the brute force too",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the (last) backfill")
    parser.add_argument("--verify", action="store_true", help="compare the build with the engine")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--keep", action="store_true", help="keep the built database")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database of this size")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    built_path = args.workdir / "built.db"
    work = args.workdir / "work.db"
    print(describe(), flush=True)
    print("durability: WAL, synchronous=NORMAL (survives a killed process, not power loss)")
    print("command: " + " ".join([".venv/bin/python bench/history.py", *sys.argv[1:]]), flush=True)
    try:
        built = built_for(built_path, args)
        print(
            f"\nhistory: {args.events:,} messages of {args.profiles:,} profiles over 200 days "
            f"({built.message_bytes:,.0f} B of JSON each on average; snapshots "
            f"{built.snapshot_bytes:,.0f} B), {built.bytes / 2**30:,.2f} GiB; synthesised in "
            f"{built.seconds:,.1f} s ({args.events / built.seconds:,.0f} messages/s); "
            f"{built.sampled:,} sampled messages identical to the engine's",
            flush=True,
        )
        print("  build phases: " + ", ".join(f"{k} {v:,.1f} s" for k, v in built.phases.items()))
        if args.verify:
            same = verify(built_path, work, args.profiles, args.events, args.seed)
            print(f"verify: every row identical to the engine's own ingest ({same})", flush=True)
        print(
            f"brute force: {built.entering:,} of {args.profiles:,} profiles have no "
            f"Order Completed within the 180 days before the publish",
            flush=True,
        )
        measure(args, built, built_path, work)
    finally:
        remove_db(work)
        if not args.keep:
            remove_db(built_path)
            built_path.with_suffix(".json").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                args.workdir.rmdir()  # (only when nothing else is in it)


def measure(args: argparse.Namespace, built: Built, built_path: Path, work: Path) -> None:
    n, m = args.profiles, args.events
    loads = [str(n), str(args.batches), str(args.batch), str(args.window)]
    backfills: list[dict[str, Any]] = []
    idle: list[dict[str, Any]] = []
    live: list[dict[str, Any]] = []
    loaded: list[dict[str, Any]] = []
    for run in range(args.runs):
        last = run == args.runs - 1
        copy_db(built_path, work)
        idle.append(child("ingest", str(work), *loads, "idle", "0"))
        copy_db(built_path, work)
        live.append(child("ingest", str(work), *loads, "live", "0"))
        copy_db(built_path, work)
        finish = "1" if args.finish else "0"
        loaded.append(child("ingest", str(work), *loads, "backfill", finish))
        if last and not args.keep:  # (the built file is not needed after this: no copy)
            remove_db(work)
            built_path.rename(work)
        else:
            copy_db(built_path, work)
        backfills.append(child("backfill", str(work), "1" if args.profile and last else "0"))
        remove_db(work)
    bad = [b for b in backfills if b["state"] != "succeeded" or b["scanned"] != n]
    if bad:
        raise AssertionError(f"the historical entry did not cover every profile: {bad}")
    wait = [b["wait_s"] for b in backfills]
    alone = [n / w for w in wait]
    b0 = backfills[0]
    print(f"\n1. backfill of {n:,} profiles, {m:,} history events ({len(backfills)} runs):")
    publish = [b["publish_s"] * 1e3 for b in backfills]
    print(f"  publish returned in:        {fmt_range(publish, 'ms')}")
    print(f"  walk (wall time of the wait): {fmt_range(wait, 's', 1)}")
    print(f"  profiles/s (wall):          {fmt_range(alone, 'profiles/s')}")
    read = [b["events_read"] / b["wait_s"] for b in backfills]
    print(
        f"  history events/s (wall):    {fmt_range([m / w for w in wait], 'events/s')} of the "
        f"retained log; {fmt_range(read, 'events/s')} of the {b0['events_read']:,} the entry "
        "reads (its Order Completed)"
    )
    print(
        f"  operation's own figures:    "
        f"{fmt_range([b['op_profiles_per_s'] for b in backfills], 'profiles/s')}, "
        f"{fmt_range([b['op_events_per_s'] for b in backfills], 'events/s')}"
    )
    entered = [b["entered"] for b in backfills]
    calls = [b["outbox"] for b in backfills]
    print(
        f"  entered: {entered[0]:,} (operation), {calls[0]:,} destination calls; "
        f"brute force {built.entering:,}"
    )
    if any(e != built.entering for e in entered + calls):
        raise AssertionError(
            f"BRUTE-FORCE CHECK FAILED: the historical entry entered {entered} profiles "
            f"({calls} calls), the brute force counts {built.entering:,}"
        )
    print("  brute-force check: passed")
    print(
        f"  RSS: {b0['rss_open'] / 2**20:,.0f} MB after open, {b0['rss_end'] / 2**20:,.0f} MB "
        f"after the walk, peak {fmt_range([b['rss_peak'] / 2**20 for b in backfills], 'MB')} "
        f"(the bare process with the engine imported: {b0['rss_start'] / 2**20:,.0f} MB)",
        flush=True,
    )

    def figures(name: str, runs: list[dict[str, Any]]) -> list[float]:
        """Prints a load's figures; returns the medians (ack rate, p50, p99)."""
        acked = [r["messages"] / r["acked_s"] for r in runs]
        applied = [r["messages"] / r["applied_s"] for r in runs]
        ms = [[x * 1e3 for x in r["latencies"]] for r in runs]
        p50 = [percentile(x, 0.5) for x in ms]
        p99 = [percentile(x, 0.99) for x in ms]
        print(f"  {name}:")
        print(f"    first send -> last ack:   {fmt_range(acked, 'msg/s')}")
        print(f"    first send -> applied:    {fmt_range(applied, 'msg/s')}")
        print(
            f"    batch latency (ingest returns): p50 {fmt_range(p50, 'ms', 1)}, p99 "
            f"{fmt_range(p99, 'ms', 1)}, max {fmt_range([max(x) for x in ms], 'ms', 1)}"
        )
        return [median_range(v)[0] for v in (acked, p50, p99)]

    print(
        f"\n2. ingest, {args.batches:,} batches of {args.batch} ({idle[0]['messages']:,} messages, "
        f"half for new users), {args.window} senders at once, {len(idle)} runs each:"
    )
    base = figures("nothing published (baseline)", idle)
    plain = figures("the journey published without historical data (second baseline)", live)
    busy = figures("right after the publish, while the backfill runs", loaded)
    for name, than in (("nothing published", base), ("published without history", plain)):
        print(
            f"  ratio while backfilling / {name}: throughput {busy[0] / than[0]:.2f}, "
            f"p50 {busy[1] / than[1]:.2f}, p99 {busy[2] / than[2]:.2f}"
        )
    walked = [r["scanned_acked"] - r["scanned_start"] for r in loaded]
    under = [w / r["acked_s"] for w, r in zip(walked, loaded, strict=True)]
    print(
        f"  the walk meanwhile: {fmt_range(walked, 'profiles')} of {n:,} during the load, "
        f"{fmt_range(under, 'profiles/s')} ({median_range(under)[0] / median_range(alone)[0]:.2f} "
        f"of its rate alone); {fmt_range([r['scanned_applied'] for r in loaded], 'profiles')} "
        "once the load was applied"
    )
    print(f"  publish returned in {fmt_range([r['publish_s'] * 1e3 for r in loaded], 'ms')}")
    finished = [r for r in loaded if "entered" in r]
    if finished:
        rest = [
            (n - r["scanned_applied"]) / (r["finished_s"] - r["applied_s"])
            for r in finished
            if r["scanned_applied"] < n
        ]
        print(
            f"  then the walk went on alone ({fmt_range(rest, 'profiles/s') if rest else 'done'}) "
            f"to the end, {fmt_range([r['finished_s'] for r in finished], 's', 1)} after the "
            f"publish; entered {finished[0]['entered']:,} (brute force {built.entering:,})"
        )
        if any(r["entered"] != built.entering or r["state"] != "succeeded" for r in finished):
            raise AssertionError(
                "BRUTE-FORCE CHECK FAILED under load: "
                f"{[(r['state'], r['entered']) for r in finished]} against {built.entering:,}"
            )
        print("  brute-force check under load: passed")
    print(
        f"  peak RSS: {fmt_range([r['rss_peak'] / 2**20 for r in idle], 'MB')} nothing "
        f"published, {fmt_range([r['rss_peak'] / 2**20 for r in live], 'MB')} published "
        f"without history, {fmt_range([r['rss_peak'] / 2**20 for r in loaded], 'MB')} "
        "while backfilling",
        flush=True,
    )


if __name__ == "__main__":
    main()
