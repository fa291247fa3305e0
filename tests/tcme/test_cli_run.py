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


@pytest.mark.parametrize(
    ("inputs", "check"),
    [
        (
            '[alice]\nalice_wealth = "abc"\n[bob]\nbob_wealth = 5\n',
            "input.alice.alice_wealth: expected an integer (expected integer, got string)",
        ),
        (
            "[alice]\nalice_wealth = -4\n[bob]\nbob_wealth = 5\n",
            "input.alice.alice_wealth: integer outside the contract range",
        ),
        (
            "[alice]\n[bob]\nbob_wealth = 5\n",
            "input.alice.names: input names differ from the contract "
            "(expected alice_wealth, got none)",
        ),
    ],
)
def test_bad_inputs_file_exits_2_before_any_model_is_loaded_fail(capsys, tmp_path, inputs, check):
    # Messages in JSON's words, not Python's (`int`, `str`, `['alice_wealth']`): they also
    # reach non-Python clients over gRPC.
    # The inputs are bad test data (malformed input, exit 2), found before the model is
    # even looked at (a model that does not exist would be "run.model"); they used to
    # reach the parties and end as a rejection (exit 1) after the model had loaded.
    path = tmp_path / "inputs.toml"
    path.write_text(inputs)
    argv = [str(MILLIONAIRES), "--inputs", str(path), "--model", "/nonexistent/model.gguf"]
    assert main(["run", *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"error: {check}" in err and "Traceback" not in err
