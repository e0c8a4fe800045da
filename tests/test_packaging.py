"""The shape of the package: public names, generated code, import boundaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import journeys_client
import journeys_server
import pytest

import journeys_engine

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", [journeys_engine, journeys_client, journeys_server])
def test_public_names_are_sorted_and_importable(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert getattr(module, name) is not None


def test_engine_public_api_is_pinned() -> None:
    assert journeys_engine.__all__ == [
        "DEFAULT_SPACE",
        "AlreadyExistsError",
        "Change",
        "Clock",
        "ConditionError",
        "Engine",
        "EngineSettings",
        "FailedPreconditionError",
        "FieldViolation",
        "InUseError",
        "InvalidArgumentError",
        "JourneysError",
        "LifecycleError",
        "LimitExceededError",
        "ManualClock",
        "MemorySink",
        "Message",
        "MessageType",
        "Move",
        "NotFoundError",
        "Output",
        "Page",
        "PreconditionViolation",
        "QueueFullError",
        "ResourceExhaustedError",
        "Saved",
        "Sink",
        "StoppedError",
        "StorageError",
        "SystemClock",
        "Unit",
    ]


@pytest.mark.parametrize(
    "generator",
    ["protos/generate.py", "protos/reference.py", "clients/python/generate_sync.py"],
)
def test_generated_files_match_their_sources(generator: str) -> None:
    # The protos' Python code and API reference page, the blocking client.
    result = subprocess.run(
        [sys.executable, str(ROOT / generator), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_engine_imports_no_grpc_and_no_protobuf(tmp_path: Path) -> None:
    code = (
        "import sys, journeys_engine, journeys_engine.testing\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('grpc', 'google.protobuf', 'journeys.')))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr


def test_no_generic_top_level_modules_are_installed(tmp_path: Path) -> None:
    code = (
        "import importlib.util as u\n"
        "print([n for n in ('server', 'clients', 'protos', 'tests') if u.find_spec(n)])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert result.stdout.strip() == "[]"


def test_client_public_api_is_pinned() -> None:
    assert journeys_client.__all__ == [
        "DEFAULT_SERVER",
        "DEFAULT_SPACE",
        "AlreadyExistsError",
        "DeadlineExceededError",
        "FailedPreconditionError",
        "FieldViolation",
        "FileFormatError",
        "Ingester",
        "InvalidArgumentError",
        "JourneysClient",
        "JourneysClientError",
        "JourneysSyncClient",
        "MessageProblem",
        "NotFoundError",
        "PermissionDeniedError",
        "PreconditionViolation",
        "ResourceExhaustedError",
        "SendReport",
        "UnauthenticatedError",
        "UnavailableError",
        "dump_documents",
        "load_file",
        "parse_documents",
        "segment_message",
    ]
