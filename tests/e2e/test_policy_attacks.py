"""The party policy fails closed against a hostile proxy, over real gRPC (issue 11 part 1).

Each test is the attack: a machine-in-the-middle guest on the same hardware, and a proxy
that answers an SEV-SNP party with a genuine TDX quote. The policy a party wrote decides.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from attestation.errors import PolicyError, UsageError
from tcme.client import PartyPolicy, TcmeClient
from tcme.v1 import tcme_pb2

V4 = "tdx/dcapqvl_v4_uptodate"


def test_mitm_guest_is_refused_by_the_pinned_measurement(
    attest_stack, mitm_stack, contract_factory, policy_for
):
    # The MITM runs the attacker's image on genuine (here: the same simulated) hardware and
    # claims the real model; only the launch measurement tells it apart.
    contract = contract_factory()
    with TcmeClient(mitm_stack.target) as client:
        session_id = client.create_session(contract).session_id
        policy = policy_for(attest_stack, contract)  # pins the real enclave's measurement
        with pytest.raises(PolicyError) as info:
            client.attest(policy, session_id)
    (violation,) = info.value.violations
    assert violation.check == "measurement"
    assert violation.actual == mitm_stack.measurement.hex()
    assert attest_stack.measurement.hex() in violation.expected


def test_measurement_less_policy_of_the_previous_release_does_not_load(attest_stack):
    # The policy that let the MITM through before: root and model pinned, no measurement.
    old = {
        "allow_simulated": True,
        "simulated_ark_sha256": [attest_stack.ark_sha256],
        "model": {"root_digest": attest_stack.identity.root_digest, "signer": {"skip": True}},
    }
    with pytest.raises(UsageError) as info:
        PartyPolicy.from_dict(old)
    assert "tcme measure snp" in info.value.message()
    assert "{ skip = true }" in info.value.message()
    with pytest.raises(UsageError) as info:  # naming the TEE is not enough either
        PartyPolicy.from_dict({**old, "accept": ["sev-snp"], "snp": {}})
    assert info.value.check == "policy.snp.allowed_measurements"


def test_explicit_skip_accepts_the_mitm_and_says_so(attest_stack, mitm_stack, contract_factory):
    # { skip = true } is the party's own, visible choice: accepted, and every summary shows it.
    contract = contract_factory()
    policy = PartyPolicy.from_dict(
        {
            **attest_stack.policy_dict(snp={"allowed_measurements": {"skip": True}}),
            "contract": {"digest": hashlib.sha256(contract).hexdigest()},
        }
    )
    with TcmeClient(mitm_stack.target) as client:
        session_id = client.create_session(contract).session_id
        result = client.attest(policy, session_id)
    assert result.summary()["skipped"] == ["snp.allowed_measurements"]


def test_genuine_tdx_quote_from_the_proxy_vs_snp_only_policy_fail(
    attest_stack, contract_factory, policy_for, hostile_factory, vector
):
    # The kind used to come from the evidence bytes: a genuine TDX quote of an unrelated TD
    # (with its genuine collateral) passed a policy that pinned only the SEV-SNP measurement.
    contract = contract_factory()
    with TcmeClient(attest_stack.target) as client:
        session_id = client.create_session(contract).session_id
    quote = vector(f"{V4}/quote.bin").read_bytes()
    collateral = vector(f"{V4}/collateral.json").read_bytes()
    hostile = hostile_factory(attest_stack)

    def swap_in_tdx(response: tcme_pb2.AttestResponse) -> tcme_pb2.AttestResponse:
        response.evidence.report = quote
        response.collateral.tdx_collateral_json = collateral
        return response

    hostile.responses["Attest"] = swap_in_tdx
    with TcmeClient(hostile.target) as client, pytest.raises(PolicyError) as info:
        client.attest(policy_for(attest_stack, contract), session_id)
    assert info.value.check == "tee.accept"
    assert info.value.actual == "tdx" and info.value.expected == "one of sev-snp"


def test_attest_summary_shows_every_skip(attest_stack, tmp_path):
    # The text summary a person reads says what was not checked, not only the JSON.
    policy = tmp_path / "skip.toml"
    policy.write_text(
        'accept = ["sev-snp"]\nallow_simulated = true\n'
        f'simulated_ark_sha256 = ["{attest_stack.ark_sha256}"]\n'
        "[snp]\nallowed_measurements = { skip = true }\n"
        f'[model]\nroot_digest = "{attest_stack.identity.root_digest}"\n'
        "signer = { skip = true }\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "tcme", "attest", attest_stack.target, "--policy", str(policy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("skipped checks")]
    assert "snp.allowed_measurements, model.signer" in line
