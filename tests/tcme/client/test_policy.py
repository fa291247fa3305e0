"""Party policy: [model] and [contract] expectations parse strictly and compare exactly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from attestation.errors import ParseError, PolicyError, UsageError
from tcme.client import ContractExpectation, ModelExpectation, PartyPolicy
from tcme.contract import load_contract_bytes
from tcme.wire import PartyKeys, contract_digest
from tests.contracts import example_contract_path, example_template, fill_template

DIGEST = "ab" * 32


@pytest.fixture(scope="module")
def contract_file(tmp_path_factory):
    template = example_template("millionaires")
    raw = fill_template(
        template, {n: PartyKeys.generate().public_entry(n) for n in ("alice", "bob")}
    )
    path = tmp_path_factory.mktemp("contract") / "contract.json"
    # Written pretty-printed: the party's file need not be canonical to pin the contract.
    path.write_text(json.dumps(json.loads(raw), indent=4))
    return path, raw


EVIDENCE = {"accept": ["sev-snp"], "snp": {"allowed_measurements": ["00" * 48]}}
EVIDENCE_TOML = 'accept = ["sev-snp"]\n[snp]\nallowed_measurements = ["' + "00" * 48 + '"]\n'


def _policy(**tables):
    return {**EVIDENCE, "model": {"root_digest": DIGEST, "signer": "me"}, **tables}


def test_model_table_required_fail():
    with pytest.raises(UsageError) as info:
        PartyPolicy.from_dict(EVIDENCE)
    assert info.value.check == "policy.model"


def test_model_signer_required_or_explicit_skip():
    with pytest.raises(UsageError) as info:
        ModelExpectation.from_table({"root_digest": DIGEST})
    assert info.value.check == "policy.model.signer"
    skipped = ModelExpectation.from_table({"root_digest": DIGEST, "signer": {"skip": True}})
    skipped.check(DIGEST, "anyone")  # digest still enforced...
    with pytest.raises(PolicyError):
        skipped.check("cd" * 32, "anyone")  # ...always


def test_model_root_digest_must_be_hex_fail():
    with pytest.raises(UsageError) as info:
        ModelExpectation.from_table({"root_digest": "not-hex", "signer": "me"})
    assert info.value.check == "policy.model.root_digest"


def test_model_check_reports_every_violation_fail():
    expectation = ModelExpectation.from_table({"root_digest": DIGEST.upper(), "signer": "me"})
    expectation.check(DIGEST, "me")  # hex case does not matter
    with pytest.raises(PolicyError) as info:
        expectation.check("cd" * 32, "you")
    assert {v.check for v in info.value.violations} == {"model.root_digest", "model.signer"}
    with pytest.raises(PolicyError) as one:
        expectation.check(DIGEST, "you")
    assert one.value.check == "model.signer" and one.value.expected == "me"


def test_contract_file_relative_to_policy_and_canonicalised(tmp_path, contract_file):
    path, raw = contract_file
    policy_path = path.parent / "party.toml"
    policy_path.write_text(
        f'{EVIDENCE_TOML}[model]\nroot_digest = "{DIGEST}"\nsigner = "me"\n'
        f'[contract]\nfile = "{path.name}"\n'
    )
    policy = PartyPolicy.load(policy_path)
    assert policy.contract.digest == contract_digest(raw)
    policy.contract.check(contract_digest(raw))
    with pytest.raises(PolicyError) as info:
        policy.contract.check(b"\x00" * 32)
    assert info.value.check == "contract.digest"


def test_contract_digest_pin(contract_file):
    _, raw = contract_file
    digest = hashlib.sha256(raw).hexdigest()
    policy = PartyPolicy.from_dict(_policy(contract={"digest": digest}))
    assert policy.contract.digest.hex() == digest


@pytest.mark.parametrize(
    "table",
    [{}, {"file": "a", "digest": DIGEST}, {"digest": "ab"}, {"digest": "zz" * 32}],
)
def test_contract_table_malformed_fail(table):
    with pytest.raises(UsageError):
        PartyPolicy.from_dict(_policy(contract=table))


def test_no_contract_table_means_no_pin():
    assert PartyPolicy.from_dict(_policy()).contract is None


def test_contract_file_duplicate_keys_fail(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"type": "tcme/v1/contract", "type": "other"}')
    with pytest.raises(ParseError) as info:
        load_contract_bytes(path)
    assert info.value.check == "contract.json" and "a key appears twice" in info.value.detail
    assert info.value.actual == "type"


def test_contract_file_missing_is_usage_error(tmp_path):
    with pytest.raises(UsageError):
        ContractExpectation.from_file(tmp_path / "nope.json")


def test_contract_template_without_every_key_is_refused_fail(tmp_path):
    template = example_contract_path("millionaires")
    alice = PartyKeys.generate()
    with pytest.raises(UsageError) as info:
        load_contract_bytes(template, keys={"alice": alice})
    assert info.value.check == "contract.keys" and "bob" in info.value.detail
    with pytest.raises(UsageError) as info:
        load_contract_bytes(template, keys={"alice": alice, "carol": PartyKeys.generate()})
    assert info.value.check == "contract.keys"


def test_contract_file_may_be_toml(tmp_path):
    """``[contract] file`` takes the TOML examples too (one loader for every command)."""
    example = Path(__file__).resolve().parents[3] / "examples/damage-monitoring/contract.toml"
    keys = {n: PartyKeys.generate() for n in ("reporter", "insurer")}
    for name, k in keys.items():
        k.save(tmp_path / f"{name}.key")
    body = (
        example.read_text()
        .replace('name = "reporter"', 'name = "reporter"\nkeys = "reporter.key"')
        .replace('name = "insurer"', 'name = "insurer"\nkeys = "insurer.key"')
    )
    (tmp_path / "contract.toml").write_text(body)
    policy = PartyPolicy.from_dict(_policy(contract={"file": "contract.toml"}), base=tmp_path)
    assert policy.contract is not None
    assert policy.contract.digest == contract_digest(load_contract_bytes(example, keys=keys))


def test_policy_file_bad_toml_is_usage_error(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("allow_simulated = maybe\n")
    with pytest.raises(UsageError) as info:
        PartyPolicy.load(path)
    assert info.value.check == "policy.toml"


def test_min_capability_score_typo_is_refused_with_the_suggestion():
    # The typo used to drop the capability check silently (Policy.extra kept it unread).
    with pytest.raises(UsageError) as info:
        PartyPolicy.from_dict(_policy(contract={"digest": DIGEST, "min_capabilty_score": 0.8}))
    assert info.value.check == "policy.contract.min_capabilty_score"
    assert info.value.expected == "min_capability_score"
    assert "did you mean 'min_capability_score'?" in info.value.message()


def test_min_capability_score_is_typed_when_the_policy_loads():
    policy = PartyPolicy.from_dict(_policy(contract={"digest": DIGEST, "min_capability_score": 1}))
    assert policy.min_capability_score == 1.0
    for bad in (1.5, -0.1, "0.8", True):
        with pytest.raises(UsageError) as info:
            PartyPolicy.from_dict(_policy(contract={"digest": DIGEST, "min_capability_score": bad}))
        assert info.value.check == "policy.contract.min_capability_score"


def test_mistyped_model_table_and_key_fail():
    with pytest.raises(UsageError) as info:
        PartyPolicy.from_dict({**EVIDENCE, "Model": {"root_digest": DIGEST, "signer": "me"}})
    assert (info.value.check, info.value.expected) == ("policy.Model", "model")
    with pytest.raises(UsageError) as info:
        PartyPolicy.from_dict({**EVIDENCE, "model": {"root_digest": DIGEST, "signr": "me"}})
    assert (info.value.check, info.value.expected) == ("policy.model.signr", "signer")
