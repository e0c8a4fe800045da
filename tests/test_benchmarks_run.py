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


def test_the_ingest_benchmark_runs_against_real_and_no_op_servers() -> None:
    sizes = ["--users", "200", "--messages", "1000", "--batch", "100", "--window", "4"]
    latency = ["--duration", "2", "--pings-per-batch", "2"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ingest.py"), *sizes, "--repeats", "1", *latency],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert " cores | Python " in out
    assert "ratio engine / no-op" in out
    assert "0 pings missing" in out
    assert "write -> call on subscription:   p50" in out


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
