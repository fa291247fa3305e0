"""tcme.wire.receipt: signed by the enclave key, binding every input and output."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from attestation.errors import BindingError, SignatureError
from tcme.wire import (
    InputRecord,
    OutputRecord,
    build_receipt,
    open_output,
    sign_receipt,
    verify_receipt,
)
from tests.tcme.wire.support import (
    ALICE,
    BOB,
    ENCLAVE_SIGNING,
    SESSION,
    enclave_claims,
    millionaires,
    seal_party_input,
    sealed_outputs,
)


def _session_outputs(value="first"):
    contract = millionaires()
    salt = os.urandom(32)
    sealed = {r: (e, c) for r, e, c in sealed_outputs(value=value, salt=salt)}
    opened = open_output(
        name="richer",
        recipient="alice",
        enc=sealed["alice"][0],
        ciphertext=sealed["alice"][1],
        hpke_key=ALICE,
        session_id=SESSION,
        contract_digest=contract.digest,
    )
    return opened, salt


def _receipt(own, bob, opened, *, claims=None, signer=ENCLAVE_SIGNING, **overrides):
    contract = millionaires()
    claims = claims or enclave_claims()
    fields = dict(
        session_id=SESSION,
        contract_digest=contract.digest,
        claims_digest=claims.digest,
        inputs=[
            InputRecord("alice", own.commitment, own.ciphertext_sha256),
            InputRecord("bob", bob.commitment, bob.ciphertext_sha256),
        ],
        outputs=[OutputRecord("richer", ("alice", "bob"), opened.commitment)],
        completed_unix_ms=1,
    )
    fields.update(overrides)
    receipt = build_receipt(**fields)
    return receipt, sign_receipt(receipt, signer)


def _verify(receipt, signature, own, opened, claims=None):
    return verify_receipt(
        receipt,
        signature,
        claims=claims or enclave_claims(),
        contract=millionaires(),
        session_id=SESSION,
        own_input=own,
        party="alice",
        outputs=[opened],
    )


def test_receipt_verifies():
    own, bob = seal_party_input(), seal_party_input("bob", BOB, {"second_wealth": 3})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(own, bob, opened)
    parsed = _verify(receipt, signature, own, opened)
    assert parsed.inputs[0].commitment == own.commitment
    assert "kv_cache" in parsed.erased


def test_receipt_signed_by_other_key_fail():
    own, bob = seal_party_input(), seal_party_input("bob", BOB, {"second_wealth": 3})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(own, bob, opened, signer=ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(SignatureError, match=r"receipt.signature"):
        _verify(receipt, signature, own, opened)


def test_receipt_altered_byte_fail():
    own, bob = seal_party_input(), seal_party_input("bob", BOB, {"second_wealth": 3})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(own, bob, opened)
    altered = receipt.replace(b'"completed_unix_ms":1', b'"completed_unix_ms":2')
    with pytest.raises(SignatureError):
        _verify(altered, signature, own, opened)


def test_receipt_wrong_own_input_fail():
    # The enclave (or a re-encrypting host) used a different input for alice.
    own, bob = seal_party_input(), seal_party_input("bob", BOB, {"second_wealth": 3})
    other = seal_party_input(values={"first_wealth": 999})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(other, bob, opened)
    with pytest.raises(BindingError, match=r"receipt.inputs.commitment"):
        _verify(receipt, signature, own, opened)


def test_receipt_forged_output_fail():
    # A forged output (any value, fresh salt) sealed to alice does not match the signed receipt.
    own, bob = seal_party_input(), seal_party_input("bob", BOB, {"second_wealth": 3})
    real, _ = _session_outputs("first")
    receipt, signature = _receipt(own, bob, real)
    forged, _ = _session_outputs("second")
    with pytest.raises(BindingError, match=r"receipt.outputs.richer.commitment"):
        _verify(receipt, signature, own, forged)


@pytest.mark.parametrize(
    ("override", "check"),
    [
        ({"session_id": bytes(16)}, "receipt.session_id"),
        ({"contract_digest": bytes(32)}, "receipt.contract_digest"),
        ({"claims_digest": bytes(32)}, "receipt.claims_digest"),
    ],
)
def test_receipt_binding_fields_fail(override, check):
    own, bob = seal_party_input(), seal_party_input("bob", BOB, {"second_wealth": 3})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(own, bob, opened, **override)
    with pytest.raises(BindingError) as info:
        _verify(receipt, signature, own, opened)
    assert info.value.check == check


def test_receipt_missing_party_input_fail():
    own = seal_party_input()
    opened, _ = _session_outputs()
    receipt, signature = _receipt(
        own, own, opened, inputs=[InputRecord("alice", own.commitment, own.ciphertext_sha256)]
    )
    with pytest.raises(BindingError, match=r"receipt.inputs.parties"):
        _verify(receipt, signature, own, opened)


def test_receipt_output_not_received_fail():
    own, bob = seal_party_input(), seal_party_input("bob", BOB, {"second_wealth": 3})
    opened, _ = _session_outputs()
    receipt, signature = _receipt(own, bob, opened)
    with pytest.raises(BindingError, match=r"receipt.outputs.received"):
        verify_receipt(
            receipt,
            signature,
            claims=enclave_claims(),
            contract=millionaires(),
            session_id=SESSION,
            own_input=own,
            party="alice",
            outputs=[],
        )
