"""The benchmark workload, defined once and used by every figure of ``bench/suite.py``.

- **Journeys**: the five example journeys (``examples/*.yaml``) applied and
  published, winback's entry on events since publish (a historical entry cannot
  be published without its history).
- **Users**: 100,000 (``USERS``); a stream's first messages each name a new user,
  the rest pick users at random.
- **Event mix** (``MIX``): the events the examples use (Product Added, Order
  Completed, Page Viewed, Subscription Started, Trial Started, Account Created,
  Tutorial Completed), noise events no condition uses (Button Clicked, Scrolled:
  30%), and identify calls (15%).
- **Messages**: Segment-spec JSON as a browser or server library sends it, with
  a ``context`` (library, ip, locale, user agent, page), 300 to 600 bytes each
  (``message_bytes``).
- **Transport**: batches of 100 (``BATCH``) over one ``IngestStream`` call.
- **Durability**: the server's default, WAL with ``synchronous=NORMAL``: an ack
  means the batch is committed to the ingest log, safe against the process being
  killed (not against power loss; ``--fsync`` extends it).
- **Auth on**: the server runs with access tokens; clients send an ingest,
  subscribe or admin token as a user would (``bench/servers.py``).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench  # noqa: E402, F401, I001  (first: the project's folders importable)

from journeys.v1 import ingest_pb2, journey_pb2  # noqa: E402
from journeys_cli.apply import apply_documents  # noqa: E402
from journeys_client import JourneysClient, load_file, parse_documents  # noqa: E402
from journeys_client.files import Document  # noqa: E402
from journeys_client.messages import segment_message  # noqa: E402

__all__ = [
    "BATCH",
    "EXAMPLES",
    "MIX",
    "SPACE",
    "USERS",
    "batches",
    "example_documents",
    "message_bytes",
    "segment_messages",
    "set_up",
]

SPACE = "default"
USERS = 100_000
BATCH = 100
EXAMPLES = ("cart-abandonment", "onboarding", "paid-subscription", "trial-to-paid", "winback")
MIX: list[tuple[str, float]] = [
    ("Product Added", 0.16),
    ("Order Completed", 0.06),
    ("Page Viewed", 0.20),
    ("Subscription Started", 0.04),
    ("Trial Started", 0.03),
    ("Account Created", 0.03),
    ("Tutorial Completed", 0.03),
    ("Button Clicked", 0.15),
    ("Scrolled", 0.15),
    ("identify", 0.15),
]
_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
)
_PAGES = ("/", "/pricing", "/products/shoes", "/cart", "/blog/how-we-ship")


def segment_messages(users: int, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` Segment messages over ``users`` users, reproducible from ``seed``."""
    rng = random.Random(seed)
    names = [n for n, _ in MIX]
    weights = [w for _, w in MIX]
    out = []
    for i in range(count):
        user = f"user-{rng.randrange(users) if i >= users else i}"
        name = rng.choices(names, weights)[0]
        page = rng.choice(_PAGES)
        base: dict[str, Any] = {
            "userId": user,
            "messageId": f"m-{seed}-{i}",
            "context": {
                "library": {"name": "analytics.js", "version": "5.2.0"},
                "ip": f"203.0.113.{rng.randrange(256)}",
                "locale": "en-US",
                "userAgent": rng.choice(_AGENTS),
                "page": {"path": page, "url": f"https://example.com{page}", "title": "Shop"},
            },
        }
        if name == "identify":
            out.append(
                {
                    **base,
                    "type": "identify",
                    "traits": {
                        "preferred_channel": rng.choice(["email", "sms"]),
                        "Customer Lifetime Value": rng.randrange(0, 300),
                        "email": f"{user}@example.com",
                    },
                }
            )
            continue
        properties: dict[str, Any] = {}
        if name == "Order Completed":
            properties = {"revenue": round(rng.uniform(5, 300), 2), "currency": "USD"}
        elif name == "Product Added":
            properties = {"product_id": f"p{rng.randrange(500)}", "price": rng.randrange(5, 200)}
        elif name == "Page Viewed":
            base["context"]["campaign"] = {"source": rng.choice(["facebook", "google", "email"])}
            properties = {"url": f"https://example.com{page}", "title": "Shop"}
        elif name == "Subscription Started":
            properties = {"Subscription Plan Type": rng.choice(["Free", "paid"])}
        out.append({**base, "type": "track", "event": name, "properties": properties})
    return out


def message_bytes(stream: Sequence[dict[str, Any]]) -> tuple[int, int, float]:
    """(smallest, largest, mean) size of the messages as compact JSON."""
    sizes = [len(json.dumps(m, separators=(",", ":"))) for m in stream]
    return min(sizes), max(sizes), sum(sizes) / max(1, len(sizes))


def batches(
    stream: Sequence[dict[str, Any]], size: int = BATCH, prefix: str = "b"
) -> list[ingest_pb2.IngestRequest]:
    """The stream as ``IngestRequest`` batches (what ``JourneysClient.send`` builds)."""
    return [
        ingest_pb2.IngestRequest(
            space_id=SPACE,
            batch_id=f"{prefix}{i // size}",
            messages=[segment_message(m) for m in stream[i : i + size]],
        )
        for i in range(0, len(stream), size)
    ]


def example_documents() -> list[Document]:
    """The five examples' documents; winback's entry on events since publish."""
    docs: list[Document] = []
    for name in EXAMPLES:
        for doc in load_file(ROOT / "examples" / f"{name}.yaml"):
            if isinstance(doc, journey_pb2.Journey) and doc.id == "winback":
                for step in doc.steps:
                    if step.WhichOneof("kind") == "entry":
                        step.entry.use_historical_data = False
            docs.append(doc)
    return docs


async def set_up(client: JourneysClient, extra: str = "") -> None:
    """Applies the examples (and ``extra`` YAML documents) and publishes every journey."""
    docs = example_documents() + (parse_documents(extra) if extra else [])
    await apply_documents(client, docs)
    for doc in docs:
        if isinstance(doc, journey_pb2.Journey):
            await client.publish_journey(doc.id)
