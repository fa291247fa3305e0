"""One contract loader for every command: TOML and JSON contracts work wherever a contract goes.

Follows docs/usage.md literally: ``tcme session keygen``, ``tcme session
contract --template <example>`` (a TOML example as the template, or the
same template written as JSON), then
``tcme session create --contract`` with TOML and JSON files against a real
enclave over gRPC (simulated evidence stands in for the hardware).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from enclave.runtime import Enclave
from enclave.server import create_server, shutdown
from tcme.cli import main
from tcme.contract import load_contract
from tcme.wire import PartyKeys, parse_contract

REPO = Path(__file__).resolve().parents[2]
DAMAGE = REPO / "examples" / "damage-monitoring" / "contract.toml"
MILLIONAIRES = REPO / "examples" / "millionaires" / "contract.toml"


@dataclass(frozen=True)
class _Identity:
    root_digest: str = "44" * 32
    signer: str = "no model loaded"
    issuer: str | None = None
    method: str = "key"
    hash_algorithm: str = "sha256"


def _first_value(contract: Any, values: Any) -> Any:
    """Stands in for the model in the example's capability tests: every enum's first value."""
    return {out.name: out.values[0] for out in contract.outputs}


@pytest.fixture(scope="module")
def target(sim_provider):
    enclave = Enclave(provider=sim_provider, model=_Identity(), runner=_first_value)
    server, port = create_server("127.0.0.1:0", enclave)
    server.start()
    yield f"127.0.0.1:{port}"
    shutdown(server, enclave, grace=0)


def _keygen(tmp_path: Path, capsys, *names: str) -> dict[str, Path]:
    files = {}
    for name in names:
        out = tmp_path / f"{name}.key"
        assert main(["session", "keygen", "--out", str(out), "--name", name]) == 0
        files[name] = out
    capsys.readouterr()
    return files


@pytest.mark.parametrize("form", ["toml", "json"])
@pytest.mark.parametrize(
    ("example", "names"),
    [(DAMAGE, ("reporter", "insurer")), (MILLIONAIRES, ("alice", "bob"))],
    ids=["damage-monitoring", "millionaires"],
)
def test_session_contract_fills_toml_and_json_templates(tmp_path, capsys, example, names, form):
    keys = _keygen(tmp_path, capsys, *names)
    template = example
    if form == "json":  # the same template as a JSON file: the loader takes either
        template = tmp_path / "template.json"
        template.write_text(json.dumps(tomllib.loads(example.read_text(encoding="utf-8"))))
    out = tmp_path / "contract.json"
    argv = ["session", "contract", "--template", str(template), "--out", str(out)]
    for name in names:
        argv += ["--party-key", f"{name}={keys[name]}.pub.json"]
    assert main(argv) == 0
    digest = capsys.readouterr().out.strip()
    expected = load_contract(template, keys={n: PartyKeys.load(keys[n]) for n in names})
    assert out.read_bytes() == expected.raw
    assert digest.removeprefix("sha256:") == expected.digest.hex()
    # Either form of one template, with the same keys, is the same contract.
    assert expected.raw == load_contract(example, keys=expected_keys(keys, names)).raw


def expected_keys(keys: dict[str, Path], names: tuple[str, ...]) -> dict[str, PartyKeys]:
    return {n: PartyKeys.load(keys[n]) for n in names}


def test_session_contract_refuses_a_template_with_a_party_missing_fail(tmp_path, capsys):
    keys = _keygen(tmp_path, capsys, "reporter")
    argv = ["session", "contract", "--template", str(DAMAGE), "--out", str(tmp_path / "c.json")]
    code = main([*argv, "--party-key", f"reporter={keys['reporter']}.pub.json"])
    assert code == 2
    assert "contract.keys" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_session_create_takes_toml_and_json_contracts(tmp_path, capsys, target):
    keys = _keygen(tmp_path, capsys, "reporter", "insurer")
    proposer = ["--party", "reporter", "--key", str(keys["reporter"])]
    # A TOML contract naming its key files (the docs/contracts.md layout).
    body = DAMAGE.read_text(encoding="utf-8")
    for name in ("reporter", "insurer"):
        body = body.replace(f'name = "{name}"', f'name = "{name}"\nkeys = "{name}.key.pub.json"')
    toml = tmp_path / "contract.toml"
    toml.write_text(body, encoding="utf-8")
    assert main(["session", "create", target, "--contract", str(toml), "--json", *proposer]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["contract_digest"] == load_contract(toml).digest.hex()
    # The same contract as canonical JSON, pretty-printed: same digest.
    pretty = tmp_path / "contract.json"
    pretty.write_text(json.dumps(json.loads(load_contract(toml).raw), indent=2))
    assert main(["session", "create", target, "--contract", str(pretty), "--json", *proposer]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["contract_digest"] == created["contract_digest"]
    assert parse_contract(load_contract(pretty).raw).kind == "general"
