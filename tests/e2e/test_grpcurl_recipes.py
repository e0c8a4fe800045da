"""The grpcurl recipes of docs/api.md, sent as grpcurl sends them: the method and
message types found through the server's reflection, the request read from the
recipe's JSON, the token in the metadata."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.helpers.processes import ROOT, ServerProcess, run_cli
from tests.helpers.tokens import bootstrap

_RECIPE = re.compile(
    r"^grpcurl -plaintext -H \"authorization: Bearer \$JOURNEYS_TOKEN\" "
    r"-d '(?P<body>.*)' localhost:50051 (?P<method>\S+)$",
    re.M,
)


def recipes() -> list[tuple[str, str]]:
    """(full method name, JSON body) of each recipe, in the page's order."""
    text = (ROOT / "docs" / "api.md").read_text()
    return [(m["method"], m["body"]) for m in _RECIPE.finditer(text)]


def test_every_recipe_works_through_reflection(tmp_path: Path) -> None:
    db = tmp_path / "journeys.db"
    secret = asyncio.run(bootstrap(db))
    found = recipes()
    assert [m.rpartition("/")[2] for m, _ in found] == [
        "Ingest", "ListJourneys", "AdvanceTime", "Subscribe", "Ack",
    ]  # fmt: skip
    with ServerProcess(db, "--manual-clock", auth=True) as server:
        for command in (["apply", "-f", "examples/onboarding.yaml"], ["publish", "onboarding"]):
            done = run_cli(*command, server=server.target, token=secret)
            assert done.returncode == 0, done.stderr
        with grpc.insecure_channel(server.target) as channel:
            pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
            answers = {}
            for method_name, body in found:
                service_name, _, name = method_name.rpartition("/")
                method = pool.FindServiceByName(service_name).FindMethodByName(name)
                request = json_format.Parse(body, GetMessageClass(method.input_type)())
                response_class = GetMessageClass(method.output_type)
                kwargs: dict[str, Any] = {
                    "request_serializer": lambda m: m.SerializeToString(),
                    "response_deserializer": response_class.FromString,
                }
                metadata = (("authorization", f"Bearer {secret}"),)
                if method.server_streaming:
                    stream = channel.unary_stream(f"/{method_name}", **kwargs)(
                        request, metadata=metadata, timeout=10
                    )
                    answers[name] = json_format.MessageToDict(next(stream))
                    stream.cancel()
                else:
                    unary = channel.unary_unary(f"/{method_name}", **kwargs)
                    answers[name] = json_format.MessageToDict(
                        unary(request, metadata=metadata, timeout=10)
                    )
    assert answers["Ingest"]["accepted"] == 1
    assert [j["id"] for j in answers["ListJourneys"]["journeys"]] == ["onboarding"]
    call = answers["Subscribe"]["call"]
    assert call["sequence"] == "1"
    assert json.loads(call["payload"])["userId"] == "alice"
    assert answers["Ack"]["ackedSequence"] == "1"
