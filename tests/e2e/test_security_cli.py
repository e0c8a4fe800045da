"""Access control and TLS as an operator meets them: real processes, the real CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.helpers.certificates import Authority
from tests.helpers.processes import ServerProcess, run_cli


def _created(result_stdout: str) -> str:
    lines = result_stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jt_"), result_stdout
    return lines[0]


def test_first_run_tokens_roles_and_offline_revocation(tmp_path: Path) -> None:
    db = tmp_path / "journeys.db"
    refused = run_cli("serve", "--db", str(db), "--port", "0")
    assert refused.returncode == 2
    assert f"journeys token create --db {db} --all-spaces --role admin" in refused.stderr
    assert "Traceback" not in refused.stderr

    made = run_cli("token", "create", "--db", str(db), "--all-spaces", "--role", "admin")
    assert made.returncode == 0, made.stderr
    root = _created(made.stdout)
    assert "created token tok_" in made.stderr and "every space" in made.stderr

    with ServerProcess(db, auth=True) as server:
        anonymous = run_cli("list", "journeys", server=server.target)
        assert anonymous.returncode == 1
        assert "needs an access token" in anonymous.stderr
        assert run_cli("list", "journeys", server=server.target, token=root).returncode == 0

        made = run_cli(
            "token", "create", "--role", "ingest", "--name", "web", server=server.target, token=root
        )
        assert made.returncode == 0, made.stderr
        ingest = _created(made.stdout)
        sent = run_cli("send", "track", "Signed Up", "-u", "u1", server=server.target, token=ingest)
        assert sent.returncode == 0, sent.stderr
        denied = run_cli("list", "journeys", server=server.target, token=ingest)
        assert denied.returncode == 1
        assert "needs a token with the role admin" in denied.stderr

        listed = run_cli("token", "list", "--db", str(db), "--all-spaces", "-o", "json")
        tokens = json.loads(listed.stdout)
        assert [(t["space_id"], t["role"], t["name"]) for t in tokens] == [
            ("*", "admin", ""),
            ("default", "ingest", "web"),
        ]
        assert "jt_" not in listed.stdout

        revoked = run_cli("token", "revoke", tokens[1]["id"], "--db", str(db))
        assert revoked.returncode == 0, revoked.stderr
        assert f"revoked token {tokens[1]['id']} (ingest, web)" in revoked.stdout
        deadline = time.monotonic() + 15  # the server reads the tokens again every 5 s
        while time.monotonic() < deadline:
            again = run_cli(
                "send", "track", "Signed Up", "-u", "u2", server=server.target, token=ingest
            )
            if again.returncode != 0:
                break
        assert "revoked" in again.stderr or "not valid" in again.stderr


def test_insecure_no_auth_warns(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "journeys.db") as server:
        assert run_cli("list", "journeys", server=server.target).returncode == 0
        server.stop()
    assert "WARNING: access control is off (--insecure-no-auth)" in "".join(server.output)


def test_the_cli_over_tls(tmp_path: Path) -> None:
    authority = Authority(tmp_path, "ca")
    issued = authority.issue("journeys", server=True)
    tls = ("--tls-cert", str(issued.cert), "--tls-key", str(issued.key))
    with ServerProcess(tmp_path / "journeys.db", *tls) as server:
        assert "(TLS, database" in "".join(server.output)
        ok = run_cli("--tls-ca", str(authority.cert), "list", "spaces", server=server.target)
        assert ok.returncode == 0, ok.stderr
        assert "default" in ok.stdout
        plain = run_cli("list", "spaces", server=server.target, timeout=30)
        assert plain.returncode == 1
        assert "cannot reach the journeys server" in plain.stderr
