"""Every example under examples/ runs end to end, as ``tcme run examples/NAME`` does.

Each run is the whole stack on real local sockets: the default model signed and
loaded through the verifying loader, the enclave on the SIMULATED SEV-SNP
provider (the hardware stand-in), the host proxy, and every party through the
party library with its own policy. New examples are picked up by the glob.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from attestation.errors import PolicyError
from tcme.cli.run import load_signed_model, run_local

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    {p.parent for p in (REPO / "examples").glob("*/contract*.*")}, key=lambda p: p.name
)


def _model_path() -> Path | None:
    found = sorted((REPO / "models").glob("*.gguf"))
    return found[0] if found else None


@pytest.fixture(scope="module")
def example_model():
    model = _model_path()
    if model is None:
        pytest.skip("default model not found: run `make model`")
    with tempfile.TemporaryDirectory() as work:
        loaded = load_signed_model(model, Path(work), n_ctx=2048)
        yield loaded
        loaded.close()


def test_the_examples_named_by_the_issue_exist():
    names = {p.name for p in EXAMPLES}
    assert {
        "millionaires",
        "damage-monitoring",
        "code-audit",
        "research-noncompete",
        "graph-colouring",
    } <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_end_to_end(example, example_model):
    run = run_local(example, loaded=example_model)
    contract = run.contract
    for party in contract.parties:
        received = run.parties[party.name].outputs
        # Exactly the outputs the contract gives this party, each a value it allows.
        assert set(received) == {o.name for o in contract.outputs_for(party.name)}
        for name, value in received.items():
            assert contract.output(name).accepts(value)
        receipt = run.parties[party.name].receipt
        assert receipt.contract_digest == contract.digest
    if contract.capability_tests:
        assert run.capability is not None
        assert run.capability.total == len(contract.capability_tests)
        assert all(r.receipt.capability == run.capability.summary() for r in run.parties.values())
    if contract.kind == "general":
        assert all(r.receipt.stateless for r in run.parties.values())


def test_policy_minimum_score_refuses_before_any_input_fail(example_model):
    example = REPO / "examples" / "graph-colouring"
    with pytest.raises(PolicyError) as caught:
        run_local(example, loaded=example_model, min_score=1.0)
    assert caught.value.check in ("capability.score",)


def test_tcme_run_command(tmp_path):
    if _model_path() is None:
        pytest.skip("default model not found: run `make model`")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcme",
            "run",
            str(REPO / "examples" / "damage-monitoring"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["simulated"] is True
    assert set(report["parties"]) == {"reporter", "insurer"}
    assert report["parties"]["reporter"] == {}
    assert report["parties"]["insurer"]["damaged"] in ("YES", "NO")
    assert report["capability"]["total"] == 2
    # Nothing of the reporter's private description is printed.
    description = (REPO / "examples" / "damage-monitoring" / "inputs.toml").read_text()
    assert "Flood water" in description and "Flood water" not in result.stdout + result.stderr
