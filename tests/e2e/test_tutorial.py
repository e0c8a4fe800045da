"""docs/tutorial.md, run as a reader runs it: every ``console`` block's commands in
order, in a shell, against a real server, each output checked against the page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers.processes import ROOT, free_port

TUTORIAL = ROOT / "docs" / "tutorial.md"
_BLOCK = re.compile(r"```console\n(.*?)```", re.S)
_EXPORT = re.compile(r"export (\w+)=\$\((.*)\)")


def steps(text: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each ``$`` line of the console blocks."""
    found: list[tuple[str, list[str]]] = []
    for block in _BLOCK.findall(text):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            else:
                found[-1][1].append(line)
    return found


def matches(expected: list[str], actual: str) -> bool:
    """Whether each line matches (``…`` stands for anything; trailing blanks ignored)."""
    lines = [line.rstrip() for line in actual.rstrip("\n").splitlines()]
    if len(lines) != len(expected):
        return False
    for want, got in zip(expected, lines, strict=True):
        pattern = ".*".join(re.escape(part) for part in want.rstrip().split("…"))
        if re.fullmatch(pattern, got) is None:
            return False
    return True


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "clients").symlink_to(ROOT / "clients")  # the Node.js client and its example
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["JOURNEYS_SERVER"] = f"localhost:{port}"  # the page's commands go to the default port
    env["PYTHONUNBUFFERED"] = "1"
    server: subprocess.Popen[str] | None = None
    ran = []
    try:
        for command, expected in steps(TUTORIAL.read_text()):
            ran.append(command)
            if command.startswith("journeys serve"):
                server = subprocess.Popen(
                    ["bash", "-c", f"exec {command} --port {port}"],
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                assert server.stdout is not None
                first = server.stdout.readline()
                want = [line.replace(":50051", f":{port}") for line in expected]
                assert matches(want, first), (command, first)
                continue
            export = _EXPORT.fullmatch(command)
            inner = export.group(2) if export else command
            done = subprocess.run(
                ["bash", "-c", inner],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            if export:
                env[export.group(1)] = done.stdout.strip()
                shown = done.stderr
            else:
                shown = done.stdout + done.stderr
            assert matches(expected, shown), (command, shown)
    finally:
        if server is not None:
            server.terminate()
            server.communicate(timeout=30)
    assert "journeys tail email -n 2" in ran and len(ran) >= 10


def test_the_checker_refuses_output_that_differs() -> None:
    assert matches(["a … c"], "a b c\n")
    assert not matches(["a … c"], "a b d\n")
    assert not matches(["a"], "a\nb\n")
    assert steps("```console\n$ x\none\n$ y\n```\n") == [("x", ["one"]), ("y", [])]
