"""A hostile proxy tampering with attestation is caught by the party before any input leaves.

Each test routes a party through ``HostileProxy`` (in front of the real host
proxy and the real enclave code) and checks the exact check that fails.
"""

from __future__ import annotations

import hashlib

import pytest

from attestation.binding import report_data_for
from attestation.errors import BindingError, PolicyError, SignatureError, TcmeError
from tcme.client import TcmeClient
from tcme.v1 import tcme_pb2


@pytest.fixture
def session(attest_stack, contract_factory, policy_for):
    contract = contract_factory()
    with TcmeClient(attest_stack.target) as client:
        info = client.create_session(contract)
    return info.session_id, contract, policy_for(attest_stack, contract)


def test_honest_proxy_accepts(attest_stack, session):
    session_id, contract, policy = session
    with TcmeClient(attest_stack.target) as client:
        result = client.attest(policy, session_id)
    assert result.simulated is True
    assert result.contract.digest == hashlib.sha256(contract).digest()
    assert result.claims.model_root_digest == attest_stack.identity.root_digest
    expected = report_data_for(
        result.claims.digest, hashlib.sha256(contract).digest(), session_id, result.nonce
    )
    assert result.evidence.report_data == expected
    summary = result.summary()
    assert summary["simulated"] is True and summary["tee"] == "sev-snp"


def test_swapped_evidence_fail(attest_stack, session, hostile_factory):
    # The proxy answers with evidence the enclave made for someone else's nonce.
    session_id, _, policy = session
    hostile = hostile_factory(attest_stack)
    other = hostile.call("Attest", tcme_pb2.AttestRequest(session_id=session_id, nonce=b"x" * 32))

    def swap(response):
        response.evidence.CopyFrom(other.evidence)
        return response

    hostile.responses["Attest"] = swap
    with TcmeClient(hostile.target) as client, pytest.raises(BindingError) as info:
        client.attest(policy, session_id)
    assert info.value.check.startswith("report_data")


def test_replayed_nonce_fail(attest_stack, session, hostile_factory):
    # The proxy records one full answer and replays it to a later request.
    session_id, _, policy = session
    hostile = hostile_factory(attest_stack)
    recorded = []

    def record_or_replay(response):
        if not recorded:
            recorded.append(tcme_pb2.AttestResponse.FromString(response.SerializeToString()))
            return response
        return recorded[0]

    hostile.responses["Attest"] = record_or_replay
    with TcmeClient(hostile.target) as client:
        client.attest(policy, session_id)  # first answer is genuine
        with pytest.raises(BindingError) as info:
            client.attest(policy, session_id)
    assert info.value.check.startswith("report_data")


def test_evidence_from_another_session_same_contract_fail(attest_stack, session, hostile_factory):
    # Even with a byte-identical contract, another session's evidence binds another id.
    session_id, contract, policy = session
    with TcmeClient(attest_stack.target) as client:
        other_id = client.create_session(contract).session_id
    hostile = hostile_factory(attest_stack)

    def redirect(request):
        request.session_id = other_id
        return request

    def relabel(response):
        response.session_id = session_id
        return response

    hostile.requests["Attest"] = redirect
    hostile.responses["Attest"] = relabel
    with TcmeClient(hostile.target) as client, pytest.raises(BindingError) as info:
        client.attest(policy, session_id)
    assert info.value.check.startswith("report_data")


def test_response_for_another_session_id_fail(attest_stack, session, hostile_factory):
    session_id, contract, policy = session
    with TcmeClient(attest_stack.target) as client:
        other_id = client.create_session(contract).session_id
    hostile = hostile_factory(attest_stack)

    def redirect(request):
        request.session_id = other_id
        return request

    hostile.requests["Attest"] = redirect
    with TcmeClient(hostile.target) as client, pytest.raises(BindingError) as info:
        client.attest(policy, session_id)
    assert info.value.check == "attest.session_id"


def test_swapped_contract_bytes_fail(attest_stack, session, contract_factory, hostile_factory):
    # The proxy shows the party a different (valid) contract than the one bound.
    session_id, _, policy = session
    other = contract_factory(timeout_seconds=999)
    hostile = hostile_factory(attest_stack)

    def swap(response):
        response.contract = other
        return response

    hostile.responses["Attest"] = swap
    # The party compares the shown contract's digest with its pinned one before it
    # parses the contract or recomputes the binding, so the swap stops there.
    with TcmeClient(hostile.target) as client, pytest.raises(PolicyError) as info:
        client.attest(policy, session_id)
    assert info.value.check == "contract.digest"


def test_agreed_contract_shown_for_a_session_running_another_fail(
    attest_stack, contract_factory, policy_for, hostile_factory
):
    # The session runs another contract; the proxy shows the party the one it agreed to.
    agreed = contract_factory()
    served = contract_factory(timeout_seconds=999)
    with TcmeClient(attest_stack.target) as client:
        session_id = client.create_session(served).session_id
    hostile = hostile_factory(attest_stack)

    def swap(response):
        response.contract = agreed
        return response

    hostile.responses["Attest"] = swap
    # The digest matches the pin, but the evidence binds the contract actually served.
    with TcmeClient(hostile.target) as client, pytest.raises(BindingError) as info:
        client.attest(policy_for(attest_stack, agreed), session_id)
    assert info.value.check.startswith("report_data")


def test_session_with_other_contract_rejected_by_policy_fail(
    attest_stack, contract_factory, policy_for
):
    # Honest binding, but the session runs a contract this party never agreed to.
    agreed = contract_factory()
    served = contract_factory(timeout_seconds=999)
    with TcmeClient(attest_stack.target) as client:
        session_id = client.create_session(served).session_id
        with pytest.raises(PolicyError) as info:
            client.attest(policy_for(attest_stack, agreed), session_id)
    assert info.value.check == "contract.digest"
    assert info.value.expected == hashlib.sha256(agreed).hexdigest()


def test_swapped_claims_fail(attest_stack, session, hostile_factory):
    # Claims naming another HPKE key (the proxy's own) do not match the bound digest.
    session_id, _, policy = session
    hostile = hostile_factory(attest_stack)

    def swap(response):
        response.claims = response.claims.replace(b'"runtime":"tcme', b'"runtime":"evil')
        return response

    hostile.responses["Attest"] = swap
    with TcmeClient(hostile.target) as client, pytest.raises(BindingError) as info:
        client.attest(policy, session_id)
    assert info.value.check.startswith("report_data")


def test_altered_report_signature_fail(attest_stack, session, hostile_factory):
    session_id, _, policy = session
    hostile = hostile_factory(attest_stack)

    def flip(response):
        report = bytearray(response.evidence.report)
        report[0x90] ^= 0x01  # a byte inside the signed body (MEASUREMENT)
        response.evidence.report = bytes(report)
        return response

    hostile.responses["Attest"] = flip
    with TcmeClient(hostile.target) as client, pytest.raises(SignatureError):
        client.attest(policy, session_id)


def test_stripped_certificates_fail(attest_stack, session, hostile_factory):
    session_id, _, policy = session
    hostile = hostile_factory(attest_stack)

    def strip(response):
        response.evidence.certs_pem = b""
        response.ClearField("collateral")
        return response

    hostile.responses["Attest"] = strip
    with TcmeClient(hostile.target) as client, pytest.raises(TcmeError) as info:
        client.attest(policy, session_id)
    assert info.value.check == "evidence.certs"


def test_wrong_model_digest_policy_fail(attest_stack, session, policy_for):
    session_id, contract, _ = session
    policy = policy_for(attest_stack, contract, model={"root_digest": "ab" * 32, "signer": "x"})
    with TcmeClient(attest_stack.target) as client, pytest.raises(PolicyError) as info:
        client.attest(policy, session_id)
    checks = {v.check for v in info.value.violations} or {info.value.check}
    assert checks == {"model.root_digest", "model.signer"}


def test_simulated_evidence_refused_without_allow_simulated_fail(attest_stack, session, policy_for):
    session_id, contract, _ = session
    policy = policy_for(attest_stack, contract, allow_simulated=False, simulated_ark_sha256=[])
    with TcmeClient(attest_stack.target) as client, pytest.raises(TcmeError) as info:
        client.attest(policy, session_id)
    assert "simulated" in info.value.message().lower()


def test_policy_without_contract_pin_refuses_session(attest_stack, session, policy_for):
    session_id, _, _ = session
    policy = policy_for(attest_stack, None)
    with TcmeClient(attest_stack.target) as client, pytest.raises(TcmeError) as info:
        client.attest(policy, session_id)
    assert info.value.check == "policy.contract"
