"""Prints the email destination's calls as they come, acknowledging each.

    python examples/programs/read_email.py [COUNT]

Connects to JOURNEYS_SERVER (default localhost:50051) with JOURNEYS_TOKEN, as the
consumer "python-program": it resumes after its last acknowledged call, and
follows the stream through server restarts. Stops after COUNT calls (default:
runs until Ctrl-C).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from journeys_client import JourneysClient


async def main(count: int | None) -> None:
    server = os.environ.get("JOURNEYS_SERVER", "localhost:50051")
    async with JourneysClient(server, token=os.environ.get("JOURNEYS_TOKEN")) as client:
        seen = 0
        async for item in client.follow("email", "python-program"):
            if not item.HasField("call"):
                continue  # a gap: calls dropped by retention before anyone read them
            call = json.loads(item.call.payload)
            step = call["context"]["personas"]["computation_id"]
            print(f"{item.call.sequence} {call['userId']} {call['event']} ({step})", flush=True)
            await client.ack("email", "python-program", item.call.sequence)
            seen += 1
            if seen == count:
                return


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else None))
