"""Access control on a real port: tokens per space and role, over every RPC.

The expectations here are written from the security model, not read from the
server's rule table, and the RPCs come from the service descriptors: an RPC
added later is checked for every role and space without touching this file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from journeys.v1 import definition_pb2, token_pb2
from journeys_client import (
    JourneysClient,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from journeys_server import SERVICE_NAMES, JourneysServer, ServerSettings, StartError

from journeys_engine import SystemClock
from journeys_engine.access import Tokens
from journeys_engine.store.database import Database
from journeys_engine.testing import FakeClock
from tests.helpers.tokens import bootstrap

EMAIL = definition_pb2.Destination(
    id="email",
    name="Email",
    kind=definition_pb2.DESTINATION_KIND_EVENT,
    event_mode=definition_pb2.EVENT_MODE_TRACK,
)
SMS = definition_pb2.Destination(
    id="sms", name="SMS", kind=definition_pb2.DESTINATION_KIND_EVENT, event_mode=EMAIL.event_mode
)


@dataclass
class Secured:
    server: JourneysServer
    root: str  # admin of every space
    secrets: dict[str, str]  # "ingest" / "subscribe" / "admin" of space alpha

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def client(self, token: str | None, space: str = "alpha") -> JourneysClient:
        return JourneysClient(self.target, space=space, token=token, timeout=10)


async def start_secured(db_path: Path, clock: FakeClock, **settings: Any) -> Secured:
    root = await bootstrap(db_path)
    server = await JourneysServer.start(
        ServerSettings(db_path=str(db_path), host="127.0.0.1", port=0, **settings), clock=clock
    )
    secured = Secured(server, root, {})
    async with secured.client(root, space="*") as admin:
        for space in ("alpha", "beta"):
            await admin.create_space(space)
            await admin.create_destination(EMAIL, space=space)
            await admin.create_destination(SMS, space=space)
        for role in ("ingest", "subscribe", "admin"):
            made = await admin.create_token(
                getattr(token_pb2, f"TOKEN_ROLE_{role.upper()}"), name=role, space="alpha"
            )
            secured.secrets[role] = made.secret
    return secured


@pytest.fixture
async def secured(db_path: Path, clock: FakeClock) -> AsyncIterator[Secured]:
    running = await start_secured(db_path, clock, max_streams_per_token=3)
    async with running.server:
        yield running


# Every RPC, and what the model says about it.


def _methods() -> list[tuple[str, MethodDescriptor]]:
    pool = descriptor_pool.Default()
    return [
        (f"/{name}/{method.name}", method)
        for name in SERVICE_NAMES
        for method in pool.FindServiceByName(name).methods
    ]


METHODS = _methods()
SERVER_WIDE = {"CreateSpace", "AdvanceTime", "SetTime", "Backup"}  # whole-server effects
NAMELESS = {"ListSpaces", "GetTime"}  # name no space; any valid token
ANY_ROLE = {"GetSpace", *NAMELESS}
ROLE_ONLY = {"ingest": {"Ingest", "IngestStream"}, "subscribe": {"Subscribe", "Ack"}}


def allowed(role: str, token_space: str, method: MethodDescriptor, space: str) -> bool:
    """Whether the model admits a call of ``method`` about ``space``."""
    if token_space == "*" and role == "admin":
        return True
    if method.name in NAMELESS:
        return True
    if method.name in SERVER_WIDE or "space_id" not in method.input_type.fields_by_name:
        return False  # nothing but an admin of every space reaches the whole server
    if space != token_space:
        return False
    return role == "admin" or method.name in ANY_ROLE or method.name in ROLE_ONLY.get(role, ())


async def call(
    channel: grpc.aio.Channel, path: str, method: MethodDescriptor, request: Any
) -> tuple[grpc.StatusCode, str]:
    """The status a call ends with (a stream still open after a moment counts as OK)."""
    kwargs: dict[str, Any] = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": lambda b: b,
    }
    try:
        if method.client_streaming:
            stream = channel.stream_stream(path, **kwargs)(iter([request]), timeout=2)
            async for _ in stream:
                pass
        elif method.server_streaming:
            async for _ in channel.unary_stream(path, **kwargs)(request, timeout=2):
                pass
        else:
            await channel.unary_unary(path, **kwargs)(request, timeout=5)
    except grpc.aio.AioRpcError as err:
        if err.code() is grpc.StatusCode.DEADLINE_EXCEEDED and method.server_streaming:
            return grpc.StatusCode.OK, ""
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def request_for(method: MethodDescriptor, space: str) -> Any:
    fields = method.input_type.fields_by_name
    values = {"space_id": space, "destination_id": "email"}
    return GetMessageClass(method.input_type)(**{k: v for k, v in values.items() if k in fields})


async def outcomes(
    target: str, secret: str | None, space: str
) -> dict[str, tuple[grpc.StatusCode, str]]:
    """Each RPC's status when called with ``secret`` about ``space``."""
    async with JourneysClient(target, token=secret) as client:
        channel = client._channel
        found = {}
        for path, method in METHODS:
            found[path] = await call(channel, path, method, request_for(method, space))
        return found


ACCESS_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


@pytest.mark.parametrize("role", ["ingest", "subscribe", "admin"])
async def test_every_rpc_admits_exactly_what_the_role_and_space_allow(
    secured: Secured, role: str
) -> None:
    wrong = []
    for space in ("alpha", "beta", "nowhere"):
        for path, (code, detail) in (
            await outcomes(secured.target, secured.secrets[role], space)
        ).items():
            method = dict(METHODS)[path]
            if allowed(role, "alpha", method, space):
                if code in ACCESS_CODES:
                    wrong.append(f"{role} {space} {path}: refused {code.name} {detail}")
            elif code is not grpc.StatusCode.PERMISSION_DENIED:
                wrong.append(f"{role} {space} {path}: {code.name} {detail}, not PERMISSION_DENIED")
    assert wrong == [], "\n".join(wrong)


async def test_an_admin_of_every_space_reaches_every_rpc(secured: Secured) -> None:
    found = await outcomes(secured.target, secured.root, "beta")
    assert {p: c for p, (c, _) in found.items() if c in ACCESS_CODES} == {}


async def test_another_space_is_refused_in_the_same_words_whether_it_exists_or_not(
    secured: Secured,
) -> None:
    existing = await outcomes(secured.target, secured.secrets["admin"], "beta")
    missing = await outcomes(secured.target, secured.secrets["admin"], "gamma")
    for path, (code, detail) in existing.items():
        other_code, other_detail = missing[path]
        assert code is other_code, path
        assert detail.replace("beta", "gamma") == other_detail, path


@pytest.mark.parametrize("secret", [None, "", "jt_not-a-token", "Basic abc", "x" * 5000])
async def test_every_rpc_needs_a_valid_token(secured: Secured, secret: str | None) -> None:
    found = await outcomes(secured.target, secret, "alpha")
    assert {c for c, _ in found.values()} == {grpc.StatusCode.UNAUTHENTICATED}
    assert all("token" in detail for _, detail in found.values())


async def test_a_space_token_lists_only_its_space(secured: Secured) -> None:
    async with secured.client(secured.secrets["ingest"]) as ingest:
        assert [s.id for s in await ingest.list_spaces()] == ["alpha"]
    async with secured.client(secured.root) as root:
        assert [s.id for s in await root.list_spaces()] == ["default", "alpha", "beta"]


async def test_tokens_are_managed_within_their_space(secured: Secured) -> None:
    async with secured.client(secured.secrets["admin"]) as admin:
        names = [t.name for t in await admin.list_tokens()]
        assert names == ["ingest", "subscribe", "admin"]
        with pytest.raises(PermissionDeniedError):
            await admin.list_tokens(space="*")
        with pytest.raises(PermissionDeniedError):
            await admin.create_token(token_pb2.TOKEN_ROLE_ADMIN, space="*")
        with pytest.raises(PermissionDeniedError):
            await admin.create_token(token_pb2.TOKEN_ROLE_ADMIN, space="beta")
        made = await admin.create_token(token_pb2.TOKEN_ROLE_INGEST, name="web")
        assert made.token.space_id == "alpha" and made.secret.startswith("jt_")
    async with secured.client(secured.root, space="*") as root:
        everything = await root.list_tokens()
        assert [t.name for t in everything] == ["bootstrap", "ingest", "subscribe", "admin", "web"]
        assert [t.space_id for t in everything] == ["*", "alpha", "alpha", "alpha", "alpha"]


async def test_a_token_reads_only_the_destinations_it_names(secured: Secured) -> None:
    async with secured.client(secured.secrets["admin"]) as admin:
        made = await admin.create_token(
            token_pb2.TOKEN_ROLE_SUBSCRIBE, name="mailer", destination_ids=["email"]
        )
        assert list(made.token.destination_ids) == ["email"]
        await admin.ingest([{"type": "identify", "userId": "u1", "messageId": "m1"}])
    async with secured.client(made.secret) as mailer:
        with pytest.raises(PermissionDeniedError, match="destination 'sms'"):
            async for _ in mailer.subscribe("sms", "c"):
                pass
        with pytest.raises(PermissionDeniedError, match="destination 'sms'"):
            await mailer.ack("sms", "c", 0)
        with pytest.raises(PermissionDeniedError):
            await mailer.ingest([{"type": "identify", "userId": "u1"}])
        assert await mailer.ack("email", "c", 0) == 0


async def test_bad_token_requests_are_refused_and_change_nothing(secured: Secured) -> None:
    async with secured.client(secured.secrets["admin"]) as admin:
        before = [t.id for t in await admin.list_tokens()]
        cases: list[tuple[dict[str, Any], str]] = [
            ({"role": token_pb2.TOKEN_ROLE_UNSPECIFIED}, "role"),
            ({"role": 99}, "role"),
            ({"role": token_pb2.TOKEN_ROLE_ADMIN, "destination_ids": ["email"]}, "destination"),
            ({"role": token_pb2.TOKEN_ROLE_SUBSCRIBE, "destination_ids": ["nope"]}, "nope"),
            ({"role": token_pb2.TOKEN_ROLE_SUBSCRIBE, "destination_ids": ["a/b"]}, "letters"),
            ({"role": token_pb2.TOKEN_ROLE_INGEST, "name": "x" * 201}, "200"),
            ({"role": token_pb2.TOKEN_ROLE_INGEST, "name": "a\nb"}, "control"),
        ]
        for kwargs, words in cases:
            with pytest.raises(Exception, match=words):
                await admin.create_token(**kwargs)
        with pytest.raises(Exception, match="not found"):
            await admin.revoke_token("tok_nope")
        assert [t.id for t in await admin.list_tokens()] == before


async def test_a_revoked_token_is_refused_at_once_and_its_streams_end(secured: Secured) -> None:
    async with secured.client(secured.secrets["admin"]) as admin:
        made = await admin.create_token(token_pb2.TOKEN_ROLE_SUBSCRIBE, name="soon gone")
    async with secured.client(made.secret) as doomed:
        assert await doomed.ack("email", "c", 0) == 0
        stream = doomed.subscribe("email", "c")
        reading = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.2)  # the stream is open on the server
        assert not reading.done()
        async with secured.client(secured.secrets["admin"]) as admin:
            revoked = await admin.revoke_token(made.token.id)
        assert revoked.name == "soon gone"
        with pytest.raises(UnauthenticatedError, match="revoked"):
            await asyncio.wait_for(reading, 5)
        with pytest.raises(UnauthenticatedError):
            await doomed.ack("email", "c", 0)


async def test_an_ingest_stream_stops_at_the_first_message_after_revocation(
    secured: Secured,
) -> None:
    from journeys.v1 import ingest_pb2, ingest_pb2_grpc

    async with secured.client(secured.secrets["admin"]) as admin:
        made = await admin.create_token(token_pb2.TOKEN_ROLE_INGEST, name="collector")
    queue: asyncio.Queue[ingest_pb2.IngestRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[ingest_pb2.IngestRequest]:
        while (item := await queue.get()) is not None:
            yield item

    async with secured.client(made.secret) as collector:
        stream = ingest_pb2_grpc.IngestServiceStub(collector._channel).IngestStream(requests())
        await queue.put(ingest_pb2.IngestRequest(space_id="alpha", batch_id="b1"))
        first = await stream.read()
        assert isinstance(first, ingest_pb2.IngestResponse) and first.batch_id == "b1"
        async with secured.client(secured.secrets["admin"]) as admin:
            await admin.revoke_token(made.token.id)
        await queue.put(ingest_pb2.IngestRequest(space_id="alpha", batch_id="b2"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stream.read()
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        await queue.put(None)


async def test_streams_per_token_are_limited(secured: Secured) -> None:
    async with secured.client(secured.secrets["subscribe"]) as subscriber:
        streams = [subscriber.subscribe("email", f"c{i}") for i in range(4)]
        reads = [asyncio.ensure_future(anext(s)) for s in streams[:3]]
        await asyncio.sleep(0.3)
        assert not any(r.done() for r in reads)
        with pytest.raises(ResourceExhaustedError, match="3 streams open"):
            await anext(streams[3])
        # Another token is not affected; a closed stream frees its place.
        async with secured.client(secured.secrets["admin"]) as admin:
            assert await admin.ack("email", "other", 0) == 0
            other = asyncio.ensure_future(anext(admin.subscribe("email", "admin")))
            await asyncio.sleep(0.2)
            assert not other.done()
            other.cancel()
        reads[0].cancel()
        await asyncio.sleep(0.2)
        again = asyncio.ensure_future(anext(subscriber.subscribe("email", "again")))
        await asyncio.sleep(0.3)
        assert not again.done()
        for pending in (again, *reads):
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending


async def test_only_a_hash_of_each_secret_is_stored(secured: Secured, db_path: Path) -> None:
    await secured.server.stop()
    stored = b"".join(
        p.read_bytes() for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)
    )
    assert b"jt_" not in stored
    for secret in (secured.root, *secured.secrets.values()):
        assert secret.encode() not in stored


async def test_a_server_without_tokens_refuses_to_start(db_path: Path, clock: FakeClock) -> None:
    settings = ServerSettings(db_path=str(db_path), host="127.0.0.1", port=0)
    with pytest.raises(StartError, match="journeys token create --db"):
        await JourneysServer.start(settings, clock=clock)
    insecure = ServerSettings(db_path=str(db_path), host="127.0.0.1", port=0, insecure_no_auth=True)
    async with await JourneysServer.start(insecure, clock=clock) as server:
        async with JourneysClient(f"127.0.0.1:{server.port}") as anyone:
            assert [s.id for s in await anyone.list_spaces()] == ["default"]


async def test_tokens_made_by_another_process_are_seen(secured: Secured, db_path: Path) -> None:
    async with await Database.open(db_path) as db:
        other = Tokens(db, SystemClock())
        await other.refresh()
        made, secret = await other.create("alpha", "ingest", name="offline")
    async with secured.client(secret) as fresh:
        for _ in range(50):  # an unknown secret makes the server read the tokens again
            try:
                await fresh.ingest([])
                break
            except UnauthenticatedError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("a token made offline was never admitted")
    async with await Database.open(db_path) as db:
        other = Tokens(db, SystemClock())
        await other.refresh()
        await other.revoke("alpha", made.id)
    await secured.server.engine.tokens.refresh()  # what the server does every few seconds
    async with secured.client(secret) as fresh:
        with pytest.raises(UnauthenticatedError):
            await fresh.ingest([])
