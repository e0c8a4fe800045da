"""The examples in the docs are real: they parse and a server accepts them."""

from __future__ import annotations

import re
from pathlib import Path

from journeys_cli.apply import Change, apply_documents
from journeys_client import JourneysClient, parse_documents

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def test_journey_file_reference_examples_apply(client: JourneysClient) -> None:
    text = (DOCS / "journey-files.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 4
    docs = [doc for block in blocks for doc in parse_documents(block)]
    docs += parse_documents("kind: Destination\nid: sms\nname: SMS\ntype: track\n")
    changes = await apply_documents(client, docs)
    assert [str(c) for c in changes] == [
        "destination/email created",
        "destination/sms created",
        "computed-trait/clv created",
        "audience/vips created",
        "journey/cart-abandonment created",
    ]
    again = await apply_documents(client, docs)
    assert {c.action for c in again} == {"unchanged"}
    assert isinstance(again[0], Change)


async def test_condition_tree_example_is_the_text_it_claims(client: JourneysClient) -> None:
    import yaml
    from google.protobuf import json_format
    from journeys.v1 import common_pb2

    text = (DOCS / "conditions.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", text, re.S)
    tree = json_format.ParseDict(yaml.safe_load(block)["condition"], common_pb2.ConditionNode())
    checked = await client.check_condition(common_pb2.Condition(tree=tree))
    assert checked.text == "event('Signed Up').count() >= 1"
