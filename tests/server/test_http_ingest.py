"""Segment-compatible HTTP ingestion (``--http-port``): endpoints, write keys, limits."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from journeys_client import JourneysClient
from journeys_server import JourneysServer, ServerSettings

from journeys_engine.testing import FakeClock
from tests.helpers.tokens import bootstrap
from tests.server.test_api import EMAIL, proto_journey


@dataclass
class Http:
    server: JourneysServer
    url: str
    keys: dict[str, str]  # by name: write (ingest, default), root (admin, *), ...

    def client(self, key: str | None = "write", **kwargs: Any) -> httpx.AsyncClient:
        auth = None if key is None else (self.keys.get(key, key), "")
        return httpx.AsyncClient(base_url=self.url, auth=auth, timeout=10, **kwargs)

    def grpc(self) -> JourneysClient:
        return JourneysClient(
            f"127.0.0.1:{self.server.port}", token=self.keys["root"], space="default", timeout=10
        )


@pytest.fixture
async def http(db_path: Path, clock: FakeClock) -> AsyncIterator[Http]:
    keys = {
        "root": await bootstrap(db_path),
        "write": await bootstrap(db_path, "default", "ingest"),
        "admin": await bootstrap(db_path, "default", "admin"),
        "reader": await bootstrap(db_path, "default", "subscribe"),
    }
    settings = ServerSettings(db_path=str(db_path), host="127.0.0.1", port=0, http_port=0)
    async with await JourneysServer.start(settings, clock=clock) as server:
        await server.ready()
        assert server.http_port is not None
        yield Http(server, f"http://127.0.0.1:{server.http_port}", keys)


async def _published(client: JourneysClient) -> None:
    await client.create_destination(EMAIL)
    await client.create_journey(proto_journey())
    await client.publish_journey("j")


async def test_segment_calls_arrive_as_profile_events_and_move_a_journey(http: Http) -> None:
    async with http.grpc() as client:
        await _published(client)
        async with http.client() as web:
            identify = await web.post(
                "/v1/identify", json={"userId": "u1", "traits": {"email": "a@example.com"}}
            )
            assert (identify.status_code, identify.json()) == (200, {"success": True})
            track = await web.post(
                "/v1/track",
                json={"userId": "u1", "event": "Signed Up", "properties": {"plan": "pro"}},
            )
            assert (track.status_code, track.json()) == (200, {"success": True})
            for kind, body in (
                ("page", {"userId": "u1", "name": "Home"}),
                ("screen", {"userId": "u1", "name": "Main"}),
                ("group", {"userId": "u1", "groupId": "g1"}),
                ("alias", {"userId": "u1", "previousId": "old-1"}),
            ):
                answer = await web.post(f"/v1/{kind}", json=body)
                assert answer.status_code == 200, (kind, answer.text)
        await http.server.engine.settle()
        profile = await client.get_profile("u1")
        assert profile.traits["email"] == "a@example.com"
        calls = client.subscribe("email", "test")
        first = await asyncio.wait_for(anext(calls), 10)
        await calls.aclose()
        assert first.call.journey_id == "j"
        assert json.loads(first.call.payload)["userId"] == "u1"


async def test_a_batch_shares_dedup_with_grpc_and_may_be_gzipped(http: Http) -> None:
    batch = {
        "batch": [
            {"type": "identify", "userId": "u2", "messageId": "b1", "traits": {"n": 1}},
            {"type": "track", "userId": "u2", "event": "Signed Up", "messageId": "b2"},
        ],
        "sentAt": "2026-03-02T09:00:00Z",
        "context": {"library": {"name": "test"}},
    }
    data = gzip.compress(json.dumps(batch).encode())
    async with http.client() as web:
        for path in ("/v1/batch", "/v1/import"):  # the second time: duplicates, still 200
            answer = await web.post(
                path,
                content=data,
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
            assert (answer.status_code, answer.json()) == (200, {"success": True})
    async with http.grpc() as client:
        again = await client.ingest(
            [{"type": "track", "userId": "u2", "event": "x", "messageId": "b2"}]
        )
        assert list(again.duplicates) == [0]
        await http.server.engine.settle()
        assert (await client.get_profile("u2")).traits["n"] == 1


def _bomb() -> bytes:
    return gzip.compress(b'{"batch": [' + b" " * (20 * 1024 * 1024) + b"]}")


def _big(n: int) -> str:
    return "x" * n


REFUSED: list[tuple[str, str | None, str, bytes | dict[str, Any], dict[str, str], int, str]] = [
    # (case, key, path, body, headers, status, words of the reason)
    ("no key", None, "/v1/track", {"userId": "u", "event": "e", "messageId": "r1"}, {}, 401, "no write key"),
    ("unknown key", "jt_nope", "/v1/track", {"userId": "u", "event": "e", "messageId": "r2"}, {}, 401, "not a valid"),
    ("subscribe token", "reader", "/v1/track", {"userId": "u", "event": "e", "messageId": "r3"}, {}, 403, "subscribe token"),
    ("every space", "root", "/v1/track", {"userId": "u", "event": "e", "messageId": "r4"}, {}, 403, "every space"),
    ("not json", "write", "/v1/track", b"{nope", {}, 400, "not JSON"),
    ("not an object", "write", "/v1/batch", b"[1, 2]", {}, 400, "JSON object"),
    ("batch not a list", "write", "/v1/batch", {"batch": {"a": 1}}, {}, 400, "batch: must be"),
    ("no identity", "write", "/v1/track", {"event": "e", "messageId": "r5"}, {}, 400, "body"),
    ("track without event", "write", "/v1/track", {"userId": "u", "messageId": "r6"}, {}, 400, "body.event"),
    ("one bad message refuses the batch", "write", "/v1/batch", {"batch": [
        {"type": "track", "userId": "u", "event": "e", "messageId": "r7"},
        {"type": "nope", "userId": "u", "messageId": "r8"},
    ]}, {}, 400, "batch[1].type"),
    ("message over 32 KB", "write", "/v1/track",
     {"userId": "u", "event": "e", "messageId": "r9", "properties": {"x": _big(33_000)}}, {}, 400, "at most 32768"),
    ("batch message over 32 KB", "write", "/v1/batch", {"batch": [
        {"type": "track", "userId": "u", "event": "e", "messageId": "r10"},
        {"type": "track", "userId": "u", "event": "e", "messageId": "r11", "properties": {"x": _big(33_000)}},
    ]}, {}, 400, "batch[1]: is 33"),
    ("batch over 500 KB", "write", "/v1/batch", {"batch": [
        {"type": "track", "userId": "u", "event": "e", "messageId": f"r12-{i}", "properties": {"x": _big(30_000)}}
        for i in range(20)
    ]}, {}, 400, "at most 512000"),
    ("gzip bomb", "write", "/v1/batch", _bomb(), {"Content-Encoding": "gzip"}, 400, "decompressed"),
    ("bad gzip", "write", "/v1/batch", b"\x1f\x8b not gzip", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
    ("cut gzip", "write", "/v1/batch", gzip.compress(b'{"batch": []}')[:-12], {"Content-Encoding": "gzip"}, 400, "ends early"),
    ("unknown encoding", "write", "/v1/batch", b"{}", {"Content-Encoding": "br"}, 400, "only gzip"),
]  # fmt: skip


async def test_bad_requests_are_refused_with_their_status_and_change_nothing(http: Http) -> None:
    for case, key, path, body, headers, status, words in REFUSED:
        async with http.client(key) as web:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            answer = await web.post(path, content=content, headers=headers)
        assert answer.status_code == status, (case, answer.text)
        reply = answer.json()
        assert reply["success"] is False and words in answer.text, (case, reply)
    async with http.client() as web:
        unknown = await web.post("/v1/nothing", json={})
        assert unknown.status_code == 404
        assert (await web.get("/v1/track")).status_code == 405
    # Nothing was logged: the first message now takes the log's first position, and
    # not one of the refused messages' ids was seen.
    ids = ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12-0"]
    async with http.grpc() as client:
        ack = await client.ingest(
            [{"type": "track", "userId": "u", "event": "e", "messageId": i} for i in ids]
        )
        assert ack.accepted == len(ids) and not ack.duplicates
        assert ack.positions[0] == 1


async def test_a_write_key_sends_into_its_space_by_basic_auth_or_body(http: Http) -> None:
    async with http.client(None) as web:
        answer = await web.post(
            "/v1/batch",
            json={
                "writeKey": http.keys["admin"],
                "batch": [{"type": "identify", "userId": "u3", "traits": {"k": "v"}}],
            },
        )
        assert answer.status_code == 200, answer.text
    async with http.grpc() as client:
        await http.server.engine.settle()
        assert (await client.get_profile("u3")).traits["k"] == "v"


async def test_a_revoked_write_key_is_refused(http: Http) -> None:
    async with http.grpc() as client:
        (token,) = [
            t for t in await client.list_tokens() if t.role == 1 and t.space_id == "default"
        ]
        await client.revoke_token(token.id)
    async with http.client() as web:
        answer = await web.post("/v1/track", json={"userId": "u", "event": "e"})
        assert answer.status_code == 401


async def test_saturated_ingestion_answers_429_with_retry_after(
    db_path: Path, clock: FakeClock
) -> None:
    settings = ServerSettings(
        db_path=str(db_path),
        host="127.0.0.1",
        port=0,
        http_port=0,
        insecure_no_auth=True,
        max_ingest_messages=1,
        max_ingest_waiting=0,
    )
    async with await JourneysServer.start(settings, clock=clock) as server:
        await server.ready()
        assert server._http is not None
        admission = server._http._admission
        async with (
            admission.turn(1, caller="someone else", unary=False),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as web,
        ):
            answer = await web.post(
                "/v1/track", json={"userId": "u", "event": "e", "messageId": "busy"}
            )
            assert answer.status_code == 429
            assert answer.headers["Retry-After"] == "1"
        # --insecure-no-auth: no key needed, into the default space.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as web:
            answer = await web.post(
                "/v1/track", json={"userId": "u", "event": "e", "messageId": "busy"}
            )
            assert answer.status_code == 200, answer.text


async def test_http_ingestion_is_off_by_default(server: JourneysServer) -> None:
    assert server.http_port is None
