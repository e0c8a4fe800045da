"""TLS and mutual TLS on a real port, with real certificates, and access tokens over them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from journeys_client import JourneysClient, UnauthenticatedError, UnavailableError
from journeys_server import JourneysServer, ServerSettings, StartError

from journeys_engine.testing import FakeClock
from tests.helpers.certificates import Authority, Issued
from tests.helpers.tokens import bootstrap


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path, "servers")


@pytest.fixture
def server_cert(authority: Authority) -> Issued:
    return authority.issue("journeys", server=True)


def _settings(db_path: Path, cert: Issued, **more: Any) -> ServerSettings:
    return ServerSettings(
        db_path=str(db_path),
        host="127.0.0.1",
        port=0,
        tls_cert=str(cert.cert),
        tls_key=str(cert.key),
        **more,
    )


@pytest.fixture
async def tls_server(
    db_path: Path, clock: FakeClock, server_cert: Issued
) -> AsyncIterator[tuple[JourneysServer, str]]:
    secret = await bootstrap(db_path)
    async with await JourneysServer.start(_settings(db_path, server_cert), clock=clock) as server:
        yield server, secret


async def test_a_tls_server_serves_clients_that_trust_its_ca(
    tls_server: tuple[JourneysServer, str], authority: Authority, tmp_path: Path
) -> None:
    server, secret = tls_server
    for host in ("127.0.0.1", "localhost"):
        target = f"{host}:{server.port}"
        async with JourneysClient(target, token=secret, tls_ca=authority.cert) as client:
            assert [s.id for s in await client.list_spaces()] == ["default"]
        async with JourneysClient(target, tls_ca=authority.cert) as anonymous:
            with pytest.raises(UnauthenticatedError):  # TLS does not stand in for a token
                await anonymous.list_spaces()
    target = f"127.0.0.1:{server.port}"
    async with JourneysClient(target, token=secret, timeout=5) as plaintext:
        with pytest.raises(UnavailableError):
            await plaintext.list_spaces()
    stranger = Authority(tmp_path, "stranger")
    async with JourneysClient(target, token=secret, tls_ca=stranger.cert, timeout=5) as wary:
        with pytest.raises(UnavailableError):  # the server's certificate is not trusted
            await wary.list_spaces()


async def test_mutual_tls_admits_only_clients_with_a_certificate_of_its_ca(
    db_path: Path, clock: FakeClock, authority: Authority, server_cert: Issued, tmp_path: Path
) -> None:
    clients = Authority(tmp_path, "clients")
    settings = _settings(db_path, server_cert, tls_client_ca=str(clients.cert))
    secret = await bootstrap(db_path)
    mine = clients.issue("collector", server=False)
    forged = Authority(tmp_path, "forger").issue("collector", server=False)
    async with await JourneysServer.start(settings, clock=clock) as server:
        target = f"localhost:{server.port}"
        common: dict[str, Any] = {"token": secret, "tls_ca": authority.cert, "timeout": 5}
        async with JourneysClient(target, tls_cert=mine.cert, tls_key=mine.key, **common) as ok:
            assert [s.id for s in await ok.list_spaces()] == ["default"]
        async with JourneysClient(target, **common) as without:
            with pytest.raises(UnavailableError):
                await without.list_spaces()
        async with JourneysClient(
            target, tls_cert=forged.cert, tls_key=forged.key, **common
        ) as impostor:
            with pytest.raises(UnavailableError):
                await impostor.list_spaces()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"tls_key": None}, "--tls-cert and --tls-key go together"),
        ({"tls_cert": None}, "--tls-cert and --tls-key go together"),
        ({"tls_cert": None, "tls_key": None, "tls_client_ca": "ca.pem"}, "needs --tls-cert"),
        ({"tls_cert": "missing.pem"}, "missing.pem: No such file"),
        ({"tls_key": "README.md"}, "not a PEM file holding a private key"),
        ({"tls_client_ca": "README.md"}, "not a PEM file holding a certificate"),
    ],
)
async def test_tls_settings_that_cannot_work_stop_the_start(
    db_path: Path, clock: FakeClock, server_cert: Issued, change: dict[str, Any], words: str
) -> None:
    import dataclasses

    await bootstrap(db_path)
    settings = dataclasses.replace(_settings(db_path, server_cert, insecure_no_auth=True), **change)
    with pytest.raises(StartError, match=words):
        await JourneysServer.start(settings, clock=clock)


def test_a_client_certificate_needs_its_key(authority: Authority) -> None:
    issued = authority.issue("half", server=False)
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        JourneysClient("localhost:1", tls_cert=issued.cert)
    with pytest.raises(ValueError, match="cannot read tls_ca"):
        JourneysClient("localhost:1", tls_ca="/nonexistent/ca.pem")
