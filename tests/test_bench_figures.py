"""The benchmark table's arithmetic: ratios oriented so higher is better, guards, the
section of BENCHMARKS.md the suite rewrites."""

from __future__ import annotations

import math
from pathlib import Path

from bench.figures import Figure, table
from bench.suite import BEGIN, END, write


def test_a_ratio_reads_higher_is_better_whichever_way_the_figure_goes() -> None:
    throughput = Figure("ingest", "events/s", [10, 30, 20], baseline="no-op", baseline_values=[200])
    assert throughput.median == 20
    assert throughput.ratio == 0.1
    memory = Figure(
        "bytes per profile", "B", [400, 500, 600], baseline="dict", baseline_values=[100],
        higher_is_better=False,
    )  # fmt: skip
    assert memory.ratio == 0.2
    assert math.isnan(Figure("latency", "ms", [1.0]).ratio)


def test_a_guard_trips_only_below_its_ratio_or_without_a_baseline() -> None:
    kept = Figure("x", "/s", [50], baseline="b", baseline_values=[100], guard=0.1)
    assert not kept.regressed()
    fell = Figure("x", "/s", [5], baseline="b", baseline_values=[100], guard=0.1)
    assert fell.regressed()
    lost = Figure("x", "/s", [5], guard=0.1)  # a guarded figure whose baseline did not run
    assert lost.regressed()
    assert not Figure("x", "/s", [5]).regressed()


def test_the_table_shows_median_range_target_baseline_and_ratio() -> None:
    figure = Figure(
        "calls streamed", "calls/s", [40_000, 65_000, 60_000], target="≥ 50,000", met=True,
        baseline="no-op", baseline_values=[170_000, 160_000, 180_000], note="4 subscribers",
    )  # fmt: skip
    rendered = table([figure])
    assert (
        "| calls streamed | 60,000 calls/s | 40,000\N{EN DASH}65,000 | ≥ 50,000 (met) "
        "| no-op: 170,000 calls/s | 0.353 |"
    ) in rendered
    assert rendered.endswith("- calls streamed: 4 subscribers")


def test_the_suite_rewrites_only_its_own_section(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nIntro.\n\n## Older\n\nkept\n")
    write(path, "first table")
    assert path.read_text() == (
        f"# Benchmarks\n\nIntro.\n\n{BEGIN}\nfirst table\n{END}\n\n## Older\n\nkept\n"
    )
    write(path, "second table")
    text = path.read_text()
    assert "first table" not in text
    assert text.count(BEGIN) == 1 and "second table" in text and text.endswith("kept\n")
