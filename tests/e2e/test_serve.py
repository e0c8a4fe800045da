"""``journeys serve`` as a process: its options and how it stops on signals."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers.builders import EXAMPLES
from tests.helpers.processes import ROOT, ServerProcess, run_cli

pytestmark = pytest.mark.e2e


def _cli(*args: str, server: ServerProcess) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, server=server.target)
    assert "Traceback" not in result.stderr
    return result


def test_max_live_journeys_limits_publishing(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "journeys.db", "--max-live-journeys", "1") as served:
        for name in ("onboarding.yaml", "trial-to-paid.yaml"):
            applied = _cli("apply", "-f", str(EXAMPLES / name), server=served)
            assert applied.returncode == 0, applied.stderr
        first = _cli("publish", "onboarding", server=served)
        assert first.returncode == 0, first.stderr
        second = _cli("publish", "trial-to-paid", server=served)
        assert second.returncode != 0
        assert second.stderr.startswith("error: ")
        assert "the limit is 1" in second.stderr
        listed = _cli("list", "journeys", server=served).stdout
        rows = {line.split()[0]: line for line in listed.splitlines()[1:]}
        assert "published" in rows["onboarding"]
        assert "draft" in rows["trial-to-paid"]


def _answered_a_call(served: ServerProcess) -> None:
    """Waits for one answered call: the server serves calls only after it installs
    its signal handlers (see test_a_signal_right_after_listening_stops_gracefully)."""
    with grpc.insecure_channel(served.target) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=30
        )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_sigint_stops_the_server_gracefully(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "journeys.db") as served:
        _answered_a_call(served)
        code = served.stop(signal.SIGINT)
        output = "".join(served.output)
        assert code == 0, output
        assert "journeys server stopped" in output
        assert "Traceback" not in output


def _pump(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's output lines as they come; "" once it ends."""
    lines: queue.Queue[str] = queue.Queue()
    stream = process.stdout
    assert stream is not None

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue[str], text: str, timeout: float = 30.0) -> list[str]:
    """Lines up to and including the first that contains ``text``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        if not line:
            pytest.fail(f"output ended before {text!r}:\n" + "".join(seen))
        seen.append(line)
        if text in line:
            return seen


def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    # A watch stream stays open, so the graceful stop the first signal starts
    # waits out its whole grace period; only the second signal ends it sooner.
    with (
        ServerProcess(tmp_path / "journeys.db") as served,
        grpc.insecure_channel(served.target) as channel,
    ):
        process = served.process
        assert process is not None
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        lines = _pump(process)
        process.send_signal(signal.SIGTERM)
        seen = _wait_for(lines, "signal again to exit at once")
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=4)
        seen += iter(lines.get, "")
        assert process.stdout is not None
        process.stdout.close()
        watch.cancel()
    assert code == 130
    assert not any("journeys server stopped" in line for line in seen), seen


# Runs ``journeys serve`` with the "listening on" line followed at once by a signal,
# as a supervisor that starts sending signals when it sees that line may do.
_SIGNAL_AFTER_LISTENING = """
import signal, sys
import journeys_server.app as app
from journeys_cli.main import main

def print_then_signal(*args, **kwargs):
    print(*args, **kwargs)
    if args and "listening on" in str(args[0]):
        signal.raise_signal(signal.{sig})

app.print = print_then_signal
sys.argv = [
    "journeys", "serve", "--db", sys.argv[1], "--host", "127.0.0.1", "--port", "0",
    "--insecure-no-auth",
]
main()
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_right_after_listening_stops_gracefully(tmp_path: Path, sig: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AFTER_LISTENING.format(sig=sig), str(tmp_path / "j.db")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "listening on" in output
    assert result.returncode == 0, output
    assert "journeys server stopped" in output
