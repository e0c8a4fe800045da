"""Condition evaluation cost per event and state per profile, against a brute-force rescan.

Workload: the conditions of the five example journeys (entry, splits, waits, exit
conditions), their audiences and computed traits; a seeded stream of Segment-like
events (the examples' events plus noise events no condition uses) for many
profiles. For each event the engine updates the profile's leaf states, refreshes
audiences and computed traits, and evaluates every journey condition with its
re-check time. The baseline, in the same run, evaluates the same conditions by
rescanning each profile's whole history at every event.

Run from the repository root:  .venv/bin/python bench/conditions.py
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from journeys.v1 import definition_pb2, journey_pb2  # noqa: E402
from journeys_client.files import load_file  # noqa: E402

from bench.machine import describe, median_range  # noqa: E402
from journeys_engine.conditions import (  # noqa: E402
    BoolNode,
    EventRecord,
    ProfileConditions,
    SpaceConditions,
    evaluate,
    parse_condition,
    parse_expression,
)
from tests.helpers.reference_conditions import History, Identify, Track, value_of  # noqa: E402

DAY = 86_400_000
START = 1_767_225_600_000
PUBLISH = START

EVENT_MIX: list[tuple[str, float]] = [
    ("Product Added", 0.18),
    ("Order Completed", 0.08),
    ("Page Viewed", 0.22),
    ("Subscription Started", 0.05),
    ("Trial Started", 0.03),
    ("Account Created", 0.03),
    ("Tutorial Completed", 0.04),
    ("Button Clicked", 0.17),
    ("Scrolled", 0.15),
    ("identify", 0.05),
]


@dataclass(frozen=True)
class Workload:
    journey_conditions: list[BoolNode]
    space: SpaceConditions
    audiences: dict[str, BoolNode]
    computed: dict[str, Any]


def load_workload() -> Workload:
    conditions: list[BoolNode] = []
    audiences: dict[str, BoolNode] = {}
    computed: dict[str, Any] = {}
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in load_file(path):
            if isinstance(doc, definition_pb2.Audience):
                audiences[doc.id] = parse_condition(doc.condition.text)
            elif isinstance(doc, definition_pb2.ComputedTrait):
                computed[doc.id] = parse_expression(doc.expression.text)
            elif isinstance(doc, journey_pb2.Journey):
                texts = [doc.settings.exit_condition.text]
                for step in doc.steps:
                    kind = step.WhichOneof("kind")
                    if kind == "multi_branch_split":
                        texts += [b.condition.text for b in step.multi_branch_split.branches]
                    elif kind in ("entry", "wait_condition", "true_false_split"):
                        texts.append(getattr(step, kind).condition.text)
                conditions += [parse_condition(t) for t in texts if t]
    space = SpaceConditions(audiences, computed)
    for condition in conditions:
        space.index.add_condition(condition, PUBLISH)
    return Workload(conditions, space, audiences, computed)


Event = tuple[int, str, dict[str, Any], dict[str, Any], int]


def events(profiles: int, per_profile: int, seed: int) -> list[Event]:
    """(profile, name, properties, context, timestamp) in arrival order."""
    rng = random.Random(seed)
    names = [n for n, _ in EVENT_MIX]
    weights = [w for _, w in EVENT_MIX]
    stream = []
    for _ in range(profiles * per_profile):
        profile = rng.randrange(profiles)
        name = rng.choices(names, weights)[0]
        properties: dict[str, Any] = {}
        context: dict[str, Any] = {"library": {"name": "analytics.js", "version": "5.2.0"}}
        if name == "Order Completed":
            properties = {"revenue": round(rng.uniform(5, 300), 2), "currency": "USD"}
        elif name == "Product Added":
            properties = {"product_id": f"p{rng.randrange(500)}", "price": rng.randrange(5, 200)}
        elif name == "Page Viewed":
            context["campaign"] = {"source": rng.choice(["facebook", "google", "email"])}
            properties = {"url": "https://example.com/x", "title": "X"}
        elif name == "Subscription Started":
            properties = {"Subscription Plan Type": rng.choice(["Free", "paid"])}
        elif name == "identify":
            properties = {
                "preferred_channel": rng.choice(["email", "sms"]),
                "Customer Lifetime Value": rng.randrange(0, 400),
            }
        stream.append((profile, name, properties, context, 0))
    span = 10 * DAY
    step = span // max(1, len(stream))
    return [(p, n, pr, c, START + i * step) for i, (p, n, pr, c, _) in enumerate(stream)]


def run_engine(
    workload: Workload, stream: list[Event]
) -> tuple[float, dict[int, ProfileConditions]]:
    profiles: dict[int, ProfileConditions] = {}
    space = workload.space
    started = time.perf_counter()
    for profile_id, name, properties, context, ts in stream:
        profile = profiles.get(profile_id)
        if profile is None:
            profile = profiles[profile_id] = ProfileConditions()
        if name == "identify":
            profile.identify(properties)
        else:
            profile.track(EventRecord(name, ts, properties, context), ts, space.index)
        space.refresh(profile, ts)
        for condition in workload.journey_conditions:
            evaluate(condition, profile, space.definitions, ts, PUBLISH)
    elapsed = time.perf_counter() - started
    return elapsed / len(stream) * 1e6, profiles


def run_brute(workload: Workload, stream: list[Event]) -> tuple[float, dict[int, History]]:
    histories: dict[int, History] = {}
    started = time.perf_counter()
    for profile_id, name, properties, context, ts in stream:
        history = histories.setdefault(profile_id, History([]))
        if name == "identify":
            history.messages.append(Identify(properties, ts))
        else:
            history.messages.append(Track(name, ts, ts, properties, context))
        for audience in workload.audiences.values():
            value_of(audience, history, ts, None, workload.audiences, workload.computed)
        for condition in workload.journey_conditions:
            value_of(condition, history, ts, PUBLISH, workload.audiences, workload.computed)
    elapsed = time.perf_counter() - started
    return elapsed / len(stream) * 1e6, histories


def bytes_per_profile(build: Any) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / max(1, len(kept))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--events-per-profile", type=int, default=40)
    parser.add_argument("--brute-profiles", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    workload = load_workload()
    stream = events(args.profiles, args.events_per_profile, seed=7)
    brute_stream = events(args.brute_profiles, args.events_per_profile, seed=7)
    engine_us, engine_small_us, brute_us = [], [], []
    for _ in range(args.runs):
        engine_us.append(run_engine(load_workload(), stream)[0])
        engine_small_us.append(run_engine(load_workload(), brute_stream)[0])
        brute_us.append(run_brute(workload, brute_stream)[0])
    engine_bytes = bytes_per_profile(lambda: run_engine(load_workload(), stream)[1])
    brute_bytes = bytes_per_profile(lambda: run_brute(workload, brute_stream)[1])

    print(describe())
    print(
        f"conditions: {len(workload.journey_conditions)} journey conditions, "
        f"{len(workload.audiences)} audiences, {len(workload.computed)} computed traits; "
        f"{len(stream)} events over {args.profiles} profiles; {args.runs} runs"
    )
    e, e_lo, e_hi = median_range(engine_us)
    s, s_lo, s_hi = median_range(engine_small_us)
    b, b_lo, b_hi = median_range(brute_us)
    rows = [
        (f"engine, {args.profiles} profiles", e, e_lo, e_hi),
        (f"engine, {args.brute_profiles} profiles", s, s_lo, s_hi),
        (f"brute force, {args.brute_profiles} profiles", b, b_lo, b_hi),
    ]
    for label, median, low, high in rows:
        print(f"{label:<28} {median:8.1f} us/event (min {low:.1f}, max {high:.1f})")
    print(f"speed-up on the same stream: {b / s:.1f}x")
    print(f"state per profile: engine {engine_bytes:,.0f} B, full history {brute_bytes:,.0f} B")


if __name__ == "__main__":
    main()
