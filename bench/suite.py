"""Every figure of the performance targets, from one command, into ``BENCHMARKS.md``.

Runs each runner in turn (each starts its own servers and child processes, so
one figure's memory does not weigh on the next), prints the table, and with
``--write`` replaces the part of ``BENCHMARKS.md`` between the suite's markers
with it: the machine, the date, the exact command and the wall time. The full
run takes about 10 minutes on the reference machine (2 cores), building its large
files included; ``--quick`` runs every figure at toy sizes in under a minute and
exits 1 when a guarded ratio fell below its floor (``Figure.guard``), which is how
CI uses it (``tests/test_benchmarks_run.py``).

Run from the repository root:  .venv/bin/python bench/suite.py --write
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.figures import Figure, table  # noqa: E402
from bench.machine import describe  # noqa: E402

__all__ = ["RUNNERS", "main", "run"]

# In the order they run; the latency runner's second rate is half the ingest figure.
RUNNERS = (
    "ingest",
    "latency",
    "output",
    "unary",
    "snapshots",
    "pending_timers",
    "memory",
    "restart",
)
BEGIN = "<!-- bench/suite.py: begin -->"
END = "<!-- bench/suite.py: end -->"


def run(quick: bool, workdir: Path, only: set[str] | None = None) -> list[Figure]:
    """Every runner's figures, in order."""
    figures: list[Figure] = []
    sustained = 0.0
    for name in RUNNERS:
        if only and name not in only:
            continue
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        print(f"{name} ...", flush=True)
        if name == "latency":
            found = module.measure(quick, workdir, sustained=sustained)
        else:
            found = module.measure(quick, workdir)
        if name == "ingest":
            sustained = median(found[0].values) / 2
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
        figures.extend(found)
    return figures


def write(path: Path, section: str) -> None:
    """Replaces the suite's section of ``path`` (or puts it after the first paragraph)."""
    text = path.read_text()
    block = f"{BEGIN}\n{section}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        first, _, rest = text.partition("\n\n")
        second, _, rest = rest.partition("\n\n")
        text = f"{first}\n\n{second}\n\n{block}\n\n{rest}"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes (CI); exit 1 on a guard")
    parser.add_argument("--write", action="store_true", help="write the table to BENCHMARKS.md")
    parser.add_argument("--only", action="append", choices=RUNNERS, help="run only these")
    parser.add_argument("--workdir", type=Path, default=None, help="for large built files")
    args = parser.parse_args()
    machine = describe()
    print(machine, flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as scratch:
        workdir = args.workdir or Path(scratch)
        figures = run(args.quick, workdir, set(args.only) if args.only else None)
    minutes = (time.perf_counter() - started) / 60
    command = ".venv/bin/python " + shlex.join(["bench/suite.py", *sys.argv[1:]])
    section = "\n".join(
        [
            f"Machine: `{machine}`",
            "",
            f"`{command}` ({minutes:.1f} minutes)",
            "",
            table(figures),
        ]
    )
    print(section)
    if args.write:
        write(ROOT / "BENCHMARKS.md", section)
    regressed = [f for f in figures if f.regressed()]
    for figure in regressed:
        print(f"REGRESSED: {figure.name}: ratio {figure.ratio:.3g} < guard {figure.guard}")
    if regressed and args.quick:
        sys.exit(1)


if __name__ == "__main__":
    main()
