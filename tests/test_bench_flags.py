"""`make bench` rewrites nothing under docs/ unless asked (BENCH_FLAGS=--write).

A benchmark that writes its section of docs/benchmarks.md must do so only with
``--write``, and the Makefile must hand it ``$(BENCH_FLAGS)``; one that takes no
such flag must not write docs at all. The benchmarks themselves run minutes, so
this checks each one's real ``--help`` and its Makefile line, not a whole run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE_LINE = re.compile(r"^\t\$\(PY\) (bench/\w+\.py)(.*)$", re.M)


def _bench_lines() -> dict[str, str]:
    """bench script -> the arguments `make bench` gives it."""
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("\nbench:") :]
    target = target[: target.index("\n\n")]
    return {script: rest.strip() for script, rest in MAKE_LINE.findall(target)}


def _writes_docs(script: str) -> bool:
    source = (ROOT / script).read_text()
    return "docs/benchmarks.md" in source and "DOC.write_text" in source


def test_make_bench_runs_the_benchmarks_that_write_docs():
    writers = [s for s in _bench_lines() if _writes_docs(s)]
    assert "bench/session.py" in writers and "bench/fleet.py" in writers


@pytest.mark.parametrize("script", sorted(_bench_lines()))
def test_docs_are_written_only_with_write(script):
    args = _bench_lines()[script]
    if not _writes_docs(script):
        assert "--write" not in args
        return
    assert args == "$(BENCH_FLAGS)", f"make bench must pass BENCH_FLAGS to {script}"
    done = subprocess.run(
        [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "--write" in done.stdout  # an opt-in flag ...
    assert "--no-write" not in done.stdout  # ... never an opt-out one
