"""The benchmarks (``bench/suite.py`` runs the performance figures; BENCHMARKS.md).

Each benchmark runs as a script from the repository root; importing this package
first also makes the server, client and protos folders importable from a
checkout that was not installed.
"""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
for _path in (_ROOT / "server", _ROOT / "clients" / "python", _ROOT / "protos"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
