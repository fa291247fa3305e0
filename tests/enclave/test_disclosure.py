"""Errors reveal nothing the contract's flows forbid (issue 11, part 3): inputs.

A hostile co-party (or the proxy that carries every error) must not learn,
from a failed session's error, anything about a party's signed input: not
which constraint it broke, not its size. The owner learns the detail, sealed
to its key and committed in the enclave-signed failure receipt; a proxy that
forges a detail or a receipt is caught.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace

import grpc
import pytest

from attestation.errors import BindingError, SignatureError
from attestation.policy import simulated_policy
from enclave.runtime import Enclave
from enclave.server import create_server, shutdown
from tcme.base.keys import hpke_seal
from tcme.client import PartyPolicy, RemoteError, TcmeClient
from tcme.v1 import tcme_pb2
from tcme.wire import canonical_contract, canonical_json, lp_join
from tcme.wire.envelope import MAX_INPUT_PLAINTEXT, input_info, input_signing_message
from tcme.wire.failure import DETAIL_SIZE, SealedDetail, build_failure, verify_failure
from tests.contracts import millionaires_contract

TIMEOUT = 30


@dataclass(frozen=True)
class _Identity:
    root_digest: str = "33" * 32
    signer: str = "no model loaded"
    issuer: str | None = None
    method: str = "key"
    hash_algorithm: str = "sha256"


def _never_run(contract, values):
    raise AssertionError("the model must not run on an invalid input")


@pytest.fixture(scope="module")
def stack(sim_provider):
    enclave = Enclave(
        provider=sim_provider, model=_Identity(), runner=_never_run, retention_seconds=30
    )
    server, port = create_server("127.0.0.1:0", enclave)
    server.start()
    yield enclave, f"127.0.0.1:{port}"
    shutdown(server, enclave, grace=0)


@pytest.fixture
def session(stack, sim_provider, parties):
    _enclave, target = stack
    raw = canonical_contract(
        millionaires_contract(("alice", parties["alice"]), ("bob", parties["bob"]), max_wealth=100)
    )
    policy = PartyPolicy.from_dict(
        {
            **simulated_policy(sim_provider.ark_sha256, sim_provider.measurement),
            "model": {"root_digest": _Identity.root_digest, "signer": _Identity.signer},
            "contract": {"digest": hashlib.sha256(raw).hexdigest()},
        }
    )
    with TcmeClient(target, timeout=TIMEOUT) as client:
        session_id = client.create_session(raw, proposer="alice", keys=parties["alice"]).session_id
    return target, session_id, policy


def _signed_raw(attestation, party, values, keys, *, pad: int = 0) -> tuple[bytes, bytes, int]:
    """An input ``party`` really signed, sealed without the library's own checks."""
    payload = canonical_json(
        {
            "type": "tcme/v1/input",
            "session_id": attestation.session_id.hex(),
            "contract_digest": attestation.contract.digest.hex(),
            "party": party,
            "salt": os.urandom(32).hex(),
            "values": values,
        }
    )
    payload += b" " * pad  # (not canonical: refused, but only after the size check)
    signature = keys.signing_key.sign(input_signing_message(payload))
    plaintext = lp_join(payload, signature)
    enc, ciphertext = hpke_seal(
        attestation.claims.hpke_public_key,
        plaintext,
        input_info(attestation.session_id, attestation.contract.digest, party),
    )
    return enc, ciphertext, len(plaintext)


def _submit_raw(client, attestation, party, enc, ciphertext):
    return client._call(
        "SubmitInput",
        tcme_pb2.SubmitInputRequest(
            session_id=attestation.session_id, party=party, enc=enc, ciphertext=ciphertext
        ),
    )


def _everything_bob_sees(target, session_id, policy, parties) -> list[RemoteError]:
    """Bob's GetResult, and GetSession/Attest as anyone (the proxy) would call them."""
    seen = []
    with TcmeClient(target, timeout=TIMEOUT) as client:
        with pytest.raises(RemoteError) as attest:
            client.attest(policy, session_id)
        seen.append(attest.value)
        with pytest.raises(RemoteError) as status:
            client.get_session(session_id)
        seen.append(status.value)
    return seen


def test_out_of_range_input_detail_reaches_its_owner_only_attack(session, parties):
    target, session_id, policy = session
    with TcmeClient(target, timeout=TIMEOUT) as client:
        bob_view = client.attest(policy, session_id)
        client.submit_input(bob_view, "bob", parties["bob"], {"second_wealth": 5})
        alice_view = client.attest(policy, session_id)
        enc, ciphertext, _ = _signed_raw(
            alice_view, "alice", {"first_wealth": 4321}, parties["alice"]
        )
        with pytest.raises(RemoteError) as proxy_sees:
            _submit_raw(client, alice_view, "alice", enc, ciphertext)
        with pytest.raises(RemoteError) as bob:
            client.get_result(bob_view, "bob", parties["bob"], None, timeout=TIMEOUT)
        with pytest.raises(RemoteError) as alice:
            client.get_result(alice_view, "alice", parties["alice"], None, timeout=TIMEOUT)
    # What crosses the proxy, and what bob reads: a fixed reason, nothing about the value.
    for err in (proxy_sees.value, bob.value):
        assert err.check == "input.invalid" and err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "first_wealth" not in err.message() and "4321" not in err.message()
        assert err.expected is None and err.actual is None
    assert bob.value.disclosure == "public"
    # Alice, the owner, gets the detail: sealed to her key, committed in the signed receipt.
    assert alice.value.disclosure == "sealed" and alice.value.failure_reason == "input.invalid"
    assert alice.value.check == "input.alice.first_wealth"
    assert "4321" not in alice.value.message()  # the constraint never quotes the value


def test_oversized_input_size_is_not_shown_to_others_attack(session, parties):
    target, session_id, policy = session
    with TcmeClient(target, timeout=TIMEOUT) as client:
        alice_view = client.attest(policy, session_id)
        bob_view = client.attest(policy, session_id)
        enc, ciphertext, size = _signed_raw(
            alice_view, "alice", {"first_wealth": 1}, parties["alice"], pad=MAX_INPUT_PLAINTEXT
        )
        with pytest.raises(RemoteError) as proxy_sees:
            _submit_raw(client, alice_view, "alice", enc, ciphertext)
        # Attest and GetSession, as anyone may call them (before the record is erased).
        others = _everything_bob_sees(target, session_id, policy, parties)
        with pytest.raises(RemoteError) as bob:
            client.get_result(bob_view, "bob", parties["bob"], None, timeout=TIMEOUT)
        with pytest.raises(RemoteError) as alice:
            client.get_result(alice_view, "alice", parties["alice"], None, timeout=TIMEOUT)
    shown = [proxy_sees.value, bob.value, *others]
    assert [e.check for e in shown] == ["input.invalid"] * 4
    for err in shown:
        assert str(size) not in err.message() and "input.size" not in err.message()
    assert alice.value.check == "input.size" and alice.value.actual == str(size)


def test_unsigned_garbage_error_is_public(session, parties):
    # Bytes nobody signed carry no party's secret: the error says what failed, to all.
    target, session_id, policy = session
    with TcmeClient(target, timeout=TIMEOUT) as client:
        view = client.attest(policy, session_id)
        with pytest.raises(RemoteError) as err:
            _submit_raw(client, view, "alice", b"\x00" * 1120, b"\x00" * 64)
    assert err.value.check == "input.decrypt"


# -- the failure record itself ------------------------------------------------------------------


@pytest.fixture
def record_inputs(parties):
    from enclave.keys import EnclaveKeys
    from tcme.wire import parse_claims, parse_contract
    from tcme.wire.claims import build_claims

    keys = EnclaveKeys.generate()
    claims = parse_claims(
        build_claims(
            runtime="tcme test",
            tee="sev-snp",
            model_root_digest="00" * 32,
            model_hash_algorithm="sha256",
            model_signer="test",
            model_issuer=None,
            model_method="key",
            hpke_public_key=keys.hpke_public,
            signing_public_key=keys.signing_public,
        )
    )
    contract = parse_contract(
        canonical_contract(
            millionaires_contract(("alice", parties["alice"]), ("bob", parties["bob"]))
        )
    )
    return keys, claims, contract


def _record(keys, claims, contract, private):
    return build_failure(
        session_id=b"\x01" * 16,
        contract=contract,
        claims_digest=claims.digest,
        reason="output.invalid",
        private=private,
        signing_key=keys.signing,
        completed_unix_ms=1,
    )


def test_every_party_gets_one_detail_of_one_size(record_inputs):
    from attestation.errors import TcmeError

    keys, claims, contract = record_inputs
    long_secret = TcmeError("output.constraint", "at /" + "é" * 3000 + ": maximum")
    record = _record(keys, claims, contract, {"alice": long_secret})
    sizes = {len(d.enc) + len(d.ciphertext) for d in record.details}
    assert [d.party for d in record.details] == ["alice", "bob"] and len(sizes) == 1
    assert sizes == {1120 + DETAIL_SIZE + 16}


def test_detail_forged_by_the_proxy_is_refused_attack(record_inputs, parties):
    # HPKE base mode lets anyone seal to alice's key; the commitment in the signed
    # receipt is what makes a detail the enclave's.
    from attestation.errors import TcmeError

    keys, claims, contract = record_inputs
    genuine = _record(keys, claims, contract, {})
    forged = _record(keys, claims, contract, {"alice": TcmeError("input.alice.x", "lies")})
    with pytest.raises(BindingError, match=r"failure\.detail\.commitment"):
        verify_failure(
            genuine.receipt,
            genuine.receipt_signature,
            claims=claims,
            contract=contract,
            session_id=b"\x01" * 16,
            party="alice",
            detail=forged.detail_for("alice"),
            keys=parties["alice"],
        )
    # Bob's detail handed to alice does not open for her.
    bobs = replace(genuine.detail_for("bob"), party="alice")
    with pytest.raises(BindingError, match=r"failure\.detail\.decrypt"):
        verify_failure(
            genuine.receipt,
            genuine.receipt_signature,
            claims=claims,
            contract=contract,
            session_id=b"\x01" * 16,
            party="alice",
            detail=SealedDetail(bobs.party, bobs.enc, bobs.ciphertext),
            keys=parties["alice"],
        )


def test_failure_receipt_signed_by_another_key_refused_attack(record_inputs, parties):
    from enclave.keys import EnclaveKeys

    _keys, claims, contract = record_inputs
    other = _record(EnclaveKeys.generate(), claims, contract, {})
    with pytest.raises(SignatureError, match=r"failure\.signature"):
        verify_failure(
            other.receipt,
            other.receipt_signature,
            claims=claims,
            contract=contract,
            session_id=b"\x01" * 16,
            party="alice",
            detail=None,
            keys=parties["alice"],
        )
