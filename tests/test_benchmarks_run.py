"""The benchmarks run (tiny sizes): they must not rot between measurement runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_condition_benchmark_runs_and_reports_its_figures() -> None:
    sizes = ["--profiles", "20", "--events-per-profile", "5", "--brute-profiles", "5"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "conditions.py"), *sizes, "--runs", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert " cores | Python " in out
    assert "brute force, 5 profiles" in out
    assert "speed-up on the same stream" in out
    assert "state per profile: engine" in out


def test_the_timer_and_runtime_benchmarks_run() -> None:
    timers = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "timers.py"), "--timers", "2000", "--runs", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert timers.returncode == 0, timers.stderr
    assert "heapq" in timers.stdout and "TimerWheel" in timers.stdout
    sizes = ["--profiles", "200", "--messages", "600", "--batch", "100", "--runs", "1"]
    runtime = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "runtime.py"), *sizes],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert runtime.returncode == 0, runtime.stderr
    assert "ratio engine / baseline" in runtime.stdout
    assert "RSS per resident profile" in runtime.stdout


def test_the_served_figures_run_with_auth_and_hold_their_guards() -> None:
    """The suite's gRPC figures at toy sizes against real servers with auth on: each
    row is printed, and none falls below its guard (a ratio to its in-run baseline)."""
    only = [arg for name in ("ingest", "latency", "output", "unary") for arg in ("--only", name)]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "suite.py"), "--quick", *only],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert " cores | Python " in out
    for row in (
        "| end-to-end ingest (acked, applied, outputs committed) |",
        "| latency ingest → subscription, p99, at 2,000 events/s offered |",
        "| destination calls streamed to 4 concurrent named subscribers |",
        "| unary Ingest of one event |",
    ):
        assert row in out, out
    assert "REGRESSED" not in out
    assert ", 0 missing" in out


def test_the_reporting_benchmark_runs() -> None:
    sizes = ["--profiles", "100", "--messages", "400", "--batch", "100", "--runs", "1"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "reporting.py"), *sizes, "--repeats", "5"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert " cores | Python " in out
    assert "ratio on / off" in out
    assert "recount by scanning profiles" in out
    assert "per message" in out


def test_the_durability_benchmark_runs(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    sizes = ["--quick", "--workdir", str(scratch)]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "durability.py"), *sizes],
        capture_output=True, text=True, cwd=ROOT, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert " cores | Python " in out
    assert "ratio eager reload / restart to first ack" in out
    assert "-profile segment: " in out
    assert "ratio DurableStore.commit / raw" in out
    assert "engine flushes alone: max" in out
    assert "per profile:" in out
    assert "RSS per resident profile" in out
    assert "ratio heapq / engine RSS" in out
    assert "ratio engine / heapq" in out
    assert "; 0 missing" in out
    assert not scratch.exists()  # the scratch databases are gone


def test_the_history_benchmark_runs_and_its_brute_force_check_passes(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    sizes = ["--profiles", "300", "--events", "2000", "--batches", "20", "--runs", "1"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "history.py"), *sizes, "--verify", "--finish",
         "--workdir", str(scratch)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert " cores | Python " in out
    assert "verify: every row identical to the engine's own ingest" in out
    assert "sampled messages identical to the engine's" in out
    assert "profiles/s (wall):" in out
    assert "brute-force check: passed" in out
    assert "brute-force check under load: passed" in out
    assert "batch latency (ingest returns): p50" in out
    assert "ratio while backfilling / nothing published: throughput" in out
    assert not scratch.exists()  # the scratch databases are gone


def test_the_http_ingest_benchmark_runs_against_grpc() -> None:
    sizes = ["--users", "100", "--messages", "400", "--batch", "100", "--repeats", "1"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "http_ingest.py"), *sizes],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "HTTP /v1/batch, first write -> last 200" in result.stdout
    assert "ratio HTTP / gRPC" in result.stdout


def test_the_scale_runners_print_their_figures_and_hold_their_guards(tmp_path: Path) -> None:
    """bench/restart.py, memory.py, pending_timers.py and snapshots.py at toy sizes,
    each on its own: every figure's row is printed, none falls below its guard."""
    rows = {
        "restart": ["Engine.open → first ingest acknowledged |", "Engine.open → ready()"],
        "memory": ["| RSS per resident idle profile (slope ", "| server RSS holding 5,000 "],
        "pending_timers": [
            "| 20,000 pending timers: engine RSS after open",
            "| timer fires on the system clock, 200 waits",
            "| timer lateness p99 on the system clock",
        ],
        "snapshots": [
            "| snapshot writes, DurableStore.commit, units of ",
            "| snapshot writes, engine flush ",
            "| event-loop stall p99 during engine flushes",
        ],
    }
    for name, expected in rows.items():
        result = subprocess.run(
            [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--quick",
             "--workdir", str(tmp_path / "scale")],
            capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + result.stdout
        out = result.stdout
        assert " cores | Python " in out
        for row in expected:
            assert row in out, out
        assert "REGRESSED" not in out, out
