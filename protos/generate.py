"""Regenerates the Python code for the journeys.v1 protos.

Run from anywhere: ``python protos/generate.py``. The generated modules
(``*_pb2.py``, ``*_pb2_grpc.py``) and their mypy stubs (``.pyi``) land next to
the ``.proto`` files, inside the ``journeys.v1`` package, and are committed so
a clean checkout installs without a code-generation step. ``--check`` regenerates
into a temporary folder and fails if the committed files differ.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.resources
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "journeys" / "v1"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(out: Path) -> None:
    """Writes the generated files for every proto under ``journeys/v1`` to ``out``."""
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    protos = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.glob("*.proto"))
    plugins = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"-I{ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.endswith(SUFFIXES)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        fresh = out / "journeys" / "v1"
        names = generated_names(fresh)
        if args.check:
            stale = sorted(
                name
                for name in names | generated_names(PACKAGE)
                if not (PACKAGE / name).exists()
                or not (fresh / name).exists()
                or not filecmp.cmp(PACKAGE / name, fresh / name, shallow=False)
            )
            if stale:
                print("stale generated code: " + ", ".join(stale), file=sys.stderr)
                print("run: python protos/generate.py", file=sys.stderr)
                return 1
            return 0
        for name in generated_names(PACKAGE) - names:
            (PACKAGE / name).unlink()
        for name in sorted(names):
            shutil.copyfile(fresh / name, PACKAGE / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
