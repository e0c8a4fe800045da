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
