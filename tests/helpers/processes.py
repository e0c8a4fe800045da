"""Real server processes and CLI invocations for end-to-end tests."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["ServerProcess", "run_cli"]

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on \S+:(\d+) ")  # the whole port: a space follows
_HTTP = re.compile(r"HTTP ingestion \(Segment API\) at (http://\S+:\d+)/v1/")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JOURNEYS_SERVER", None)
    env.pop("JOURNEYS_SPACE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServerProcess:
    """``journeys serve`` in a child process on a free port.

    With ``crash_at`` (``POINT:N``, see :mod:`tests.helpers.crashing_serve`) the
    process kills itself with SIGKILL the N-th time it reaches POINT. Access
    control is off (``--insecure-no-auth``) unless ``auth``.
    """

    def __init__(
        self, db_path: Path, *args: str, crash_at: str | None = None, auth: bool = False
    ) -> None:
        self.db_path = db_path
        self.args = args if auth else (*args, "--insecure-no-auth")
        self.crash_at = crash_at
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.output: list[str] = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """Where HTTP ingestion is served (``--http-port``), as ``http://host:port``."""
        match = _HTTP.search("".join(self.output))
        if match is None:
            raise RuntimeError("the server serves no HTTP ingestion (start it with --http-port)")
        return match.group(1)

    def start(self, timeout: float = 30.0) -> ServerProcess:
        module = "journeys_cli" if self.crash_at is None else "tests.helpers.crashing_serve"
        command = [
            sys.executable, "-m", module, "serve",
            "--db", str(self.db_path), "--host", "127.0.0.1", "--port", "0", *self.args,
        ]  # fmt: skip
        env = _env()
        if self.crash_at is not None:
            env["JOURNEYS_CRASH_AT"] = self.crash_at
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        # Read the pipe's descriptor itself: text the file object buffered would be
        # lost to ``communicate`` later, which reads the descriptor.
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=deadline - time.monotonic()):
                    continue
                chunk = os.read(fd, 65536).decode()
                if not chunk:
                    break
                self.output.append(chunk)
                match = _LISTENING.search("".join(self.output))
                if match:
                    self.port = int(match.group(1))
                    return self
        self.process.kill()
        raise RuntimeError("server did not start:\n" + "".join(self.output))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Sends ``sig`` and waits for the process to exit; returns its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        rest, _ = self.process.communicate(timeout=timeout)
        self.output.append(rest or "")
        return self.process.returncode

    def wait(self, timeout: float = 30.0) -> int:
        """Waits for the process to exit by itself; returns its exit code."""
        assert self.process is not None
        rest, _ = self.process.communicate(timeout=timeout)
        self.output.append(rest or "")
        return self.process.returncode

    def memory_kb(self) -> tuple[int, int]:
        """(resident now, peak resident) of the process, in kB."""
        assert self.process is not None
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            fields[name] = value.split()[0] if value.split() else ""
        return int(fields["VmRSS"]), int(fields["VmHWM"])

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=30)


def free_port() -> int:
    """A port nothing listens on now (for a server that must keep its port across a restart)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_cli(
    *args: str,
    server: str | None = None,
    space: str | None = None,
    timeout: float = 60.0,
    stdin: str | None = None,
    token: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs ``journeys ARGS`` as a user would and captures its output."""
    command = [sys.executable, "-m", "journeys_cli"]
    if server is not None:
        command += ["--server", server]
    if token is not None:
        command += ["--token", token]
    if space is not None:
        command += ["--space", space]
    return subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
