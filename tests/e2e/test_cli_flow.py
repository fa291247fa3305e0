"""The README/usage.md party flow, command by command, for every example contract.

For each example (its TOML template; for millionaires the same template written
as JSON, so both contract formats go through the flow): every party makes its keys
(``tcme session keygen``), the contract is filled (``tcme session contract
--template``), each party writes the policy usage.md shows (the model digest in
the ``sha256:<hex>`` form ``tcme model verify`` prints), the session is
created (``tcme session create``) and every party runs in its own process
(``tcme session run``) with its values from the example's ``inputs.toml``.
Every step is a real ``tcme`` process; the enclave and the host proxy are the
real ones (``model_stack``, the real default model, simulated SEV-SNP).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/contract.toml"))
JSON_EXAMPLE = "millionaires"  # its template goes through the flow as a JSON file


def tcme(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcme", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def value_args(values: dict[str, object]) -> list[str]:
    """``--value NAME=V`` per input, as a party would type them (JSON inputs as JSON text)."""
    args = []
    for name, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value)
        args += ["--value", f"{name}={text}"]
    return args


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_party_flow_by_the_book(example, model_stack, tmp_path):
    template = example / "contract.toml"
    if example.name == JSON_EXAMPLE:
        template = tmp_path / "template.json"
        template.write_text(json.dumps(tomllib.loads((example / "contract.toml").read_text())))
    inputs = tomllib.loads((example / "inputs.toml").read_text())
    parties = list(inputs)
    for party in parties:
        done = tcme("session", "keygen", "--out", tmp_path / f"{party}.key", "--name", party)
        assert done.returncode == 0, done.stderr
    contract = tmp_path / "contract.json"
    keys = [f"--party-key={p}={tmp_path / f'{p}.key.pub.json'}" for p in parties]
    done = tcme("session", "contract", "--template", template, *keys, "--out", contract)
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    assert digest.startswith("sha256:")
    for party in parties:
        (tmp_path / f"{party}.toml").write_text(
            'accept = ["sev-snp"]\n'
            "allow_simulated = true\n"
            f'simulated_ark_sha256 = ["{model_stack.ark_sha256}"]\n'
            "[snp]\n"
            f'allowed_measurements = ["{model_stack.measurement.hex()}"]\n'
            "[model]\n"
            f'root_digest = "sha256:{model_stack.identity.root_digest}"\n'
            f"signer = {json.dumps(model_stack.identity.signer)}\n"
            "[contract]\n"
            f'digest = "{digest}"\n'
        )
    # The enclave runs the contract's capability tests before it answers: allow for them.
    # The first party proposes the session, signed with its key.
    done = tcme(
        "session", "create", model_stack.target, "--contract", contract, "--timeout", "600",
        "--party", parties[0], "--key", tmp_path / f"{parties[0]}.key",
        timeout=660,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    session = done.stdout.strip()
    runs = {}
    for party in parties:
        command = ["session", "run", model_stack.target, "--session", session, "--party", party]
        command += ["--key", str(tmp_path / f"{party}.key")]
        command += ["--policy", str(tmp_path / f"{party}.toml"), *value_args(inputs[party])]
        runs[party] = subprocess.Popen(
            [sys.executable, "-m", "tcme", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
    for party, proc in runs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{party}: {err[-2000:]}"
        assert "receipt verified" in out
        assert digest in out  # the attested contract is the one filled above
        # Every party is told what it got, also a party that receives no output by
        # contract (damage-monitoring's reporter used to see no line about it at all).
        assert f"[{party}] answer: " in out or f"[{party}] no outputs: " in out, out
