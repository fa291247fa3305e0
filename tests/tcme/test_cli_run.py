"""``tcme run``: usage errors exit 2 before any model is loaded (exit 0/1: tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcme.cli import EXIT_USAGE, main

REPO = Path(__file__).resolve().parents[2]
MILLIONAIRES = REPO / "examples" / "millionaires"


@pytest.mark.parametrize(
    ("argv", "check"),
    [
        ([str(MILLIONAIRES), "--min-score", "1.5"], "run.min_score"),
        ([str(MILLIONAIRES), "--model", "/nonexistent/model.gguf"], "run.model"),
        ([str(MILLIONAIRES), "--inputs", "/nonexistent/inputs.toml"], "inputs.read"),
        (["/nonexistent/example"], "contract"),
    ],
)
def test_usage_errors_exit_2_fail(capsys, argv, check):
    assert main(["run", *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"error: {check}" in err and "Traceback" not in err
