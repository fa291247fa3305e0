"""tcme.wire.envelope: inputs and outputs sealed with HPKE, bound to session, party, contract."""

from __future__ import annotations

import os

import pytest

from attestation.errors import UsageError
from tcme.base.keys import hpke_seal
from tcme.wire import (
    HpkePrivateKey,
    InputError,
    OutputError,
    canonical_contract,
    canonical_json,
    lp_join,
    open_input,
    open_output,
    output_commitment,
    parse_contract,
    sha256,
)
from tcme.wire.envelope import input_info, input_signing_message
from tests.contracts import millionaires_contract
from tests.tcme.wire.support import (
    ALICE,
    BOB,
    ENCLAVE_HPKE,
    SESSION,
    millionaires,
    millionaires_dict,
    seal_party_input,
    sealed_outputs,
)


def _open(sealed, *, party="alice", session=SESSION, key=ENCLAVE_HPKE, contract=None):
    return open_input(
        hpke_key=key,
        contract=contract or millionaires(),
        session_id=session,
        party=party,
        enc=sealed.enc,
        ciphertext=sealed.ciphertext,
    )


def test_input_seal_open_round_trip():
    sealed = seal_party_input()
    opened = _open(sealed)
    assert opened.values == {"first_wealth": 12}
    assert opened.commitment == sealed.commitment
    assert opened.ciphertext_sha256 == sha256(sealed.enc + sealed.ciphertext)
    # Nothing of the payload crosses the host in the clear.
    assert b"first_wealth" not in sealed.enc + sealed.ciphertext


def test_input_wrong_enclave_key_fail():
    with pytest.raises(InputError, match=r"input.decrypt"):
        _open(seal_party_input(), key=HpkePrivateKey.generate())


def test_input_other_session_fail():
    with pytest.raises(InputError, match=r"input.decrypt"):
        _open(seal_party_input(), session=bytes(16))


def test_input_submitted_as_other_party_fail():
    # The host re-labels alice's ciphertext as bob's: the HPKE info differs.
    with pytest.raises(InputError, match=r"input.decrypt"):
        _open(seal_party_input(), party="bob")


def test_input_other_contract_fail():
    other = millionaires_contract(("alice", ALICE), ("bob", BOB), max_wealth=2000)
    with pytest.raises(InputError, match=r"input.decrypt"):
        _open(seal_party_input(), contract=parse_contract(canonical_contract(other)))


def test_input_tampered_ciphertext_fail():
    sealed = seal_party_input()
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(InputError, match=r"input.decrypt"):
        open_input(
            hpke_key=ENCLAVE_HPKE,
            contract=millionaires(),
            session_id=SESSION,
            party="alice",
            enc=sealed.enc,
            ciphertext=bytes(flipped),
        )


def _forge(payload_obj, signer, *, party="alice"):
    """Seal a hand-made envelope to the enclave (as a malicious party or host would)."""
    contract = millionaires()
    payload = canonical_json(payload_obj)
    signature = signer.sign(input_signing_message(payload))
    enc, ciphertext = hpke_seal(
        ENCLAVE_HPKE.public,
        lp_join(payload, signature),
        input_info(SESSION, contract.digest, party),
    )
    return open_input(
        hpke_key=ENCLAVE_HPKE,
        contract=contract,
        session_id=SESSION,
        party=party,
        enc=enc,
        ciphertext=ciphertext,
    )


def _payload(**overrides):
    body = {
        "type": "tcme/v1/input",
        "session_id": SESSION.hex(),
        "contract_digest": millionaires().digest.hex(),
        "party": "alice",
        "salt": os.urandom(32).hex(),
        "values": {"first_wealth": 12},
    }
    body.update(overrides)
    return body


def test_forged_input_signed_by_other_key_fail():
    # Bob (or the host) seals an input in alice's name: the signature is not alice's.
    with pytest.raises(InputError, match=r"input.signature"):
        _forge(_payload(), BOB.signing_key)


def test_input_payload_bound_to_session_fail():
    with pytest.raises(InputError, match=r"input.binding.session_id"):
        _forge(_payload(session_id=bytes(16).hex()), ALICE.signing_key)


def test_input_payload_bound_to_party_fail():
    with pytest.raises(InputError, match=r"input.binding.party"):
        _forge(_payload(party="bob"), ALICE.signing_key)


def test_input_out_of_range_rejected_by_enclave_fail():
    with pytest.raises(InputError) as info:
        _forge(_payload(values={"first_wealth": 5000}), ALICE.signing_key)
    assert info.value.check == "input.alice.first_wealth"
    assert "5000" not in info.value.message()


def test_input_extra_value_rejected_by_enclave_fail():
    with pytest.raises(InputError, match=r"input.alice.names"):
        _forge(_payload(values={"first_wealth": 1, "second_wealth": 2}), ALICE.signing_key)


def test_seal_input_checks_values_and_key_fail():
    with pytest.raises(InputError):
        seal_party_input(values={"first_wealth": -1})
    with pytest.raises(UsageError, match=r"input.signing_key"):
        seal_party_input(keys=BOB)


def test_output_seal_open_each_recipient():
    contract = millionaires()
    sealed = dict((r, (e, c)) for r, e, c in sealed_outputs())
    assert set(sealed) == {"alice", "bob"}
    for name, keys in (("alice", ALICE), ("bob", BOB)):
        enc, ciphertext = sealed[name]
        opened = open_output(
            name="richer",
            recipient=name,
            enc=enc,
            ciphertext=ciphertext,
            hpke_key=keys,
            session_id=SESSION,
            contract_digest=contract.digest,
        )
        assert opened.value == "second"
        assert opened.commitment == output_commitment("richer", "second", b"\x07" * 32)


def test_output_non_recipient_cannot_open_fail():
    # Contract where only alice receives the output; bob's key opens nothing.
    contract_dict = millionaires_dict()
    contract_dict["outputs"][0]["recipients"] = ["alice"]
    contract = parse_contract(canonical_contract(contract_dict))
    sealed = sealed_outputs(contract=contract)
    assert [r for r, _, _ in sealed] == ["alice"]
    _, enc, ciphertext = sealed[0]
    for recipient in ("alice", "bob"):
        with pytest.raises(OutputError, match=r"output.decrypt"):
            open_output(
                name="richer",
                recipient=recipient,
                enc=enc,
                ciphertext=ciphertext,
                hpke_key=BOB,
                session_id=SESSION,
                contract_digest=contract.digest,
            )


def test_output_reordered_between_recipients_fail():
    contract = millionaires()
    sealed = {r: (e, c) for r, e, c in sealed_outputs()}
    enc, ciphertext = sealed["bob"]
    # The host hands bob's ciphertext to alice: alice's key does not open it.
    with pytest.raises(OutputError, match=r"output.decrypt"):
        open_output(
            name="richer",
            recipient="alice",
            enc=enc,
            ciphertext=ciphertext,
            hpke_key=ALICE,
            session_id=SESSION,
            contract_digest=contract.digest,
        )
