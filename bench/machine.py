"""What a benchmark ran on, printed with its figures."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata

__all__ = ["describe", "median_range"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> str:
    """CPU model, cores, Python, grpcio and SQLite versions, and the date."""
    return (
        f"{datetime.now(UTC):%Y-%m-%d} | {_cpu_model()} | {os.cpu_count()} cores | "
        f"Python {sys.version.split()[0]} | grpcio {_version('grpcio')} | "
        f"SQLite {sqlite3.sqlite_version}"
    )


def median_range(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)
