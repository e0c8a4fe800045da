"""A measured figure: its runs, its target, its in-run baseline and the table they make.

Every runner of the suite (``bench/suite.py``) returns :class:`Figure` objects; the
suite prints them as one Markdown table and writes it into ``BENCHMARKS.md``
between two markers. A figure's ``guard`` is the ratio to its baseline below which
CI calls it a gross regression (``tests/test_benchmarks_run.py``): never an
absolute time, which this noisy machine could not hold.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["DASH", "TIMES", "Figure", "fmt", "percentile", "table"]

DASH = "\N{EN DASH}"
TIMES = "\N{MULTIPLICATION SIGN}"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt(value: float, unit: str = "") -> str:
    """A value as the table shows it: thousands separated, few digits."""
    if value != value:  # NaN
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.2f}"
    return f"{text} {unit}".strip()


@dataclass
class Figure:
    """One row of the table.

    Attributes:
        name: What is measured.
        unit: The values' unit ("events/s", "ms", "B", ...).
        values: One value per run (the median is reported, with the range).
        target: The target's wording, e.g. "≥ 100,000".
        met: Whether the median meets the target (None: no target).
        baseline: What the baseline is, e.g. "no-op gRPC server".
        baseline_values: The baseline's value per run, measured in the same run.
        higher_is_better: How the ratio reads (engine / baseline or baseline / engine).
        guard: CI fails when the ratio falls below this (None: no guard).
        note: A short remark shown under the table.
    """

    name: str
    unit: str
    values: list[float]
    target: str = ""
    met: bool | None = None
    baseline: str = ""
    baseline_values: list[float] = field(default_factory=list)
    higher_is_better: bool = True
    guard: float | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline_values) if self.baseline_values else float("nan")

    @property
    def ratio(self) -> float:
        """The engine against its baseline, oriented so that higher is better."""
        engine, base = self.median, self.baseline_median
        if not self.baseline_values or not engine or not base:
            return float("nan")
        return engine / base if self.higher_is_better else base / engine

    def regressed(self) -> bool:
        """True when a guard is set and the ratio is below it (or missing)."""
        if self.guard is None:
            return False
        ratio = self.ratio
        return ratio != ratio or ratio < self.guard

    def row(self) -> str:
        spread = (
            f"{fmt(min(self.values))}{DASH}{fmt(max(self.values))}" if len(self.values) > 1 else ""
        )
        met = {True: "met", False: "**not met**", None: ""}[self.met]
        target = f"{self.target} ({met})" if self.target else ""
        base = f"{self.baseline}: {fmt(self.baseline_median, self.unit)}" if self.baseline else ""
        ratio = "" if self.ratio != self.ratio else f"{self.ratio:,.3g}"
        return (
            f"| {self.name} | {fmt(self.median, self.unit)} | {spread} | {target} "
            f"| {base} | {ratio} |"
        )


def table(figures: Sequence[Figure]) -> str:
    """The figures as a Markdown table, then their notes."""
    lines = [
        f"| figure | median | min{DASH}max | target | baseline (same run) | ratio |",
        "|---|---|---|---|---|---|",
        *(f.row() for f in figures),
    ]
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", *notes] if notes else []))
