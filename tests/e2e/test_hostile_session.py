"""A hostile proxy tampering with inputs, outputs and receipts is caught; plaintext never leaks.

Parties run through ``HostileProxy`` -> real host proxy -> real enclave with the
real default model. Every rewrite is detected by the enclave (inputs) or by
the party (outputs, receipts), and no output is released on a bad input.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from attestation.errors import BindingError, SignatureError, TcmeError
from tcme.base.keys import hpke_seal
from tcme.client import Party, RemoteError, TcmeClient
from tcme.v1 import tcme_pb2
from tcme.wire import PartyKeys, canonical_json, seal_input
from tcme.wire.envelope import OutputError, output_info

pytestmark = pytest.mark.model

ALICE_CANARY = 987_654_321
BOB_CANARY = "zq canary only bob knows"


def _two_parties(stack, target, policy, party_keys, values, timeout=120):
    def one(name):
        with TcmeClient(target) as client:
            return Party(name, party_keys[name], policy, client).run(
                values["session_id"], values[name], timeout=timeout
            )

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(one, name) for name in ("alice", "bob")}
        outcome = {}
        for name, future in futures.items():
            try:
                outcome[name] = future.result(timeout=timeout + 30)
            except TcmeError as err:
                outcome[name] = err
        return outcome


def _session(stack, contract_factory, policy_for, party_keys, **changes):
    contract = contract_factory(**changes)
    with TcmeClient(stack.target) as client:
        session_id = client.create_session(
            contract, proposer="alice", keys=party_keys["alice"]
        ).session_id
    return session_id, policy_for(stack, contract)


# -- plaintext never crosses the host ------------------------------------------------------


def test_canary_inputs_never_cross_the_proxy_in_plaintext(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    template_changes = {
        "inputs": [
            {"party": "alice", "name": "alice_wealth", "type": "integer", "min": 0,
             "max": 1_000_000_000},
            {"party": "bob", "name": "bob_wealth", "type": "integer", "min": 0,
             "max": 1_000_000_000},
            {"party": "bob", "name": "bob_note", "type": "string", "max_len": 64,
             "pattern": "[a-z ]*"},
        ],
        "prompt": "First has {alice_wealth}. Second has {bob_wealth} ({bob_note}). "
        "Who is richer? Answer first, second or equal.",
    }  # fmt: skip
    session_id, policy = _session(
        model_stack, contract_factory, policy_for, party_keys, **template_changes
    )
    hostile = hostile_factory(model_stack)
    outcome = _two_parties(
        model_stack,
        hostile.target,
        policy,
        party_keys,
        {
            "session_id": session_id,
            "alice": {"alice_wealth": ALICE_CANARY},
            "bob": {"bob_wealth": 5, "bob_note": BOB_CANARY},
        },
    )
    assert outcome["alice"][1].outputs == outcome["bob"][1].outputs  # the session worked
    wire = b"".join(hostile.seen)
    assert len(hostile.seen) >= 8
    for secret in (str(ALICE_CANARY).encode(), BOB_CANARY.encode(), b"canary"):
        assert secret not in wire
    # Nor the answer: outputs travel HPKE-sealed to each recipient.
    answer = outcome["alice"][1].outputs["richer"].encode()
    results = [
        tcme_pb2.GetResultResponse.FromString(m) for m in hostile.messages("GetResult", "response")
    ]
    sealed_outputs = [o.ciphertext for r in results for o in r.outputs if o.ciphertext]
    assert sealed_outputs and all(answer not in c for c in sealed_outputs)


# -- inputs: detected by the enclave; the session ends for everyone, no output ------------


def _expect_session_still_open(model_stack, session_id):
    """Bytes no party signed are refused alone: the parties' session goes on."""
    with TcmeClient(model_stack.target) as client:
        status = client.get_session(session_id)
    assert (status.state, status.submitted_parties) == ("OPEN", ())


def _expect_session_failed(model_stack, session_id, policy, party_keys, code):
    """Every party now gets the same terminal error and no output."""
    errors = []
    with TcmeClient(model_stack.target) as client:
        for name in ("alice", "bob"):
            with pytest.raises(RemoteError) as info:
                attestation = client.attest(policy, session_id)
                client.get_result(attestation, name, party_keys[name], None, timeout=10)
            errors.append(info.value)
    assert errors[0].code == errors[1].code == code
    assert errors[0].message() == errors[1].message()
    return errors[0]


def test_reordered_inputs_alice_ciphertext_as_bob_fail(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    session_id, policy = _session(model_stack, contract_factory, policy_for, party_keys)
    hostile = hostile_factory(model_stack)
    with TcmeClient(model_stack.target) as client:
        attestation = client.attest(policy, session_id)
    sealed = seal_input(
        claims=attestation.claims,
        contract=attestation.contract,
        session_id=session_id,
        party="alice",
        values={"alice_wealth": 7},
        signing_key=party_keys["alice"],
    )
    with pytest.raises(grpc.RpcError) as info:
        hostile.call(
            "SubmitInput",
            tcme_pb2.SubmitInputRequest(
                session_id=session_id, party="bob", enc=sealed.enc, ciphertext=sealed.ciphertext
            ),
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _expect_session_still_open(model_stack, session_id)


def test_forged_party_input_wrong_signing_key_fail(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    # The proxy knows the enclave's public HPKE key (it is in the claims) and seals its
    # own input "from bob", signed with a key the contract does not name.
    session_id, policy = _session(model_stack, contract_factory, policy_for, party_keys)
    hostile = hostile_factory(model_stack)
    with TcmeClient(model_stack.target) as client:
        attestation = client.attest(policy, session_id)
    impostor = PartyKeys.generate()
    import dataclasses

    contract = attestation.contract
    fake_parties = tuple(
        dataclasses.replace(p, signing_key=impostor.signing_key.public_key().public_bytes_raw())
        if p.name == "bob"
        else p
        for p in contract.parties
    )
    forged = seal_input(
        claims=attestation.claims,
        contract=dataclasses.replace(contract, parties=fake_parties),
        session_id=session_id,
        party="bob",
        values={"bob_wealth": 1},
        signing_key=impostor,
    )
    with pytest.raises(grpc.RpcError) as info:
        hostile.call(
            "SubmitInput",
            tcme_pb2.SubmitInputRequest(
                session_id=session_id, party="bob", enc=forged.enc, ciphertext=forged.ciphertext
            ),
        )
    assert info.value.code() in {
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
    assert "signature" in info.value.details().lower()
    _expect_session_still_open(model_stack, session_id)


def test_reencrypted_input_altered_ciphertext_fail(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    session_id, policy = _session(model_stack, contract_factory, policy_for, party_keys)
    hostile = hostile_factory(model_stack)

    def flip(request):
        data = bytearray(request.ciphertext)
        data[len(data) // 2] ^= 0x40
        request.ciphertext = bytes(data)
        return request

    hostile.requests["SubmitInput"] = flip
    outcome = _two_parties(
        model_stack,
        hostile.target,
        policy,
        party_keys,
        {"session_id": session_id, "alice": {"alice_wealth": 1}, "bob": {"bob_wealth": 2}},
        timeout=20,
    )
    # Each altered input is refused as undecryptable; no party's input got in.
    for name in ("alice", "bob"):
        assert isinstance(outcome[name], RemoteError), name
        assert (outcome[name].code, outcome[name].check) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "input.decrypt",
        )
    _expect_session_still_open(model_stack, session_id)


def test_replaced_input_resealed_to_enclave_with_party_signature_replayed_fail(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    # The proxy cannot open alice's input, so it replays her sealed bytes from an
    # earlier session into this one: HPKE info binds the session id.
    old_session, policy = _session(model_stack, contract_factory, policy_for, party_keys)
    new_session, _ = _session(model_stack, contract_factory, policy_for, party_keys)
    with TcmeClient(model_stack.target) as client:
        attestation = client.attest(policy, old_session)
    sealed = seal_input(
        claims=attestation.claims,
        contract=attestation.contract,
        session_id=old_session,
        party="alice",
        values={"alice_wealth": 3},
        signing_key=party_keys["alice"],
    )
    hostile = hostile_factory(model_stack)
    with pytest.raises(grpc.RpcError) as info:
        hostile.call(
            "SubmitInput",
            tcme_pb2.SubmitInputRequest(
                session_id=new_session, party="alice", enc=sealed.enc, ciphertext=sealed.ciphertext
            ),
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with TcmeClient(model_stack.target) as client:
        client.abort(old_session, "alice", party_keys["alice"])


def test_altered_submit_acknowledgement_fail(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    session_id, policy = _session(model_stack, contract_factory, policy_for, party_keys)
    hostile = hostile_factory(model_stack)

    def lie(response):
        response.ciphertext_sha256 = os.urandom(32)
        return response

    hostile.responses["SubmitInput"] = lie
    with TcmeClient(hostile.target) as client:
        party = Party("alice", party_keys["alice"], policy, client)
        with pytest.raises(BindingError) as info:
            party.submit(party.attest(session_id), {"alice_wealth": 4})
    assert info.value.check == "submit.ciphertext_sha256"
    with TcmeClient(model_stack.target) as client:
        client.abort(session_id, "alice", party_keys["alice"])


# -- outputs and receipts: detected by the party ------------------------------------------


def _tampered_result(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory, rewrite
):
    """Run a session where the proxy rewrites alice's GetResult; return both outcomes."""
    session_id, policy = _session(model_stack, contract_factory, policy_for, party_keys)
    hostile = hostile_factory(model_stack)

    def only_alice(response):
        if response.outputs and response.outputs[0].recipient == "alice":
            return rewrite(response)
        return response

    hostile.responses["GetResult"] = only_alice
    return _two_parties(
        model_stack,
        hostile.target,
        policy,
        party_keys,
        {"session_id": session_id, "alice": {"alice_wealth": 11}, "bob": {"bob_wealth": 12}},
    )


def test_altered_output_ciphertext_fail(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    def flip(response):
        output = response.outputs[0]
        output.ciphertext = bytes([output.ciphertext[0] ^ 1]) + output.ciphertext[1:]
        return response

    outcome = _tampered_result(
        model_stack, contract_factory, policy_for, party_keys, hostile_factory, flip
    )
    assert isinstance(outcome["alice"], OutputError)
    assert outcome["alice"].check == "output.decrypt"
    assert not isinstance(outcome["bob"], Exception)  # bob's result was untouched


def test_forged_output_sealed_to_alice_fail(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    # Alice's HPKE key is public (in the contract): the proxy seals its own answer to it.
    def forge(response):
        output = response.outputs[0]
        session_id = bytes.fromhex(__import__("json").loads(response.receipt)["session_id"])
        digest = bytes.fromhex(__import__("json").loads(response.receipt)["contract_digest"])
        plaintext = canonical_json(
            {
                "type": "tcme/v1/output",
                "session_id": session_id.hex(),
                "contract_digest": digest.hex(),
                "name": output.name,
                "value": "second",
                "salt": os.urandom(32).hex(),
            }
        )
        enc, ciphertext = hpke_seal(
            party_keys["alice"].hpke_key.public,
            plaintext,
            output_info(session_id, digest, output.name, "alice"),
        )
        output.enc, output.ciphertext = enc, ciphertext
        return response

    outcome = _tampered_result(
        model_stack, contract_factory, policy_for, party_keys, hostile_factory, forge
    )
    assert isinstance(outcome["alice"], BindingError)
    assert outcome["alice"].check == "receipt.outputs.richer.commitment"


def test_dropped_output_fail(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    def drop(response):
        del response.outputs[:]
        return response

    outcome = _tampered_result(
        model_stack, contract_factory, policy_for, party_keys, hostile_factory, drop
    )
    assert isinstance(outcome["alice"], TcmeError)
    assert outcome["alice"].check == "receipt.outputs.received"


def test_altered_receipt_fail(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    def alter(response):
        response.receipt = response.receipt.replace(
            b'"completed_unix_ms":', b'"completed_unix_ms":1'
        )
        return response

    outcome = _tampered_result(
        model_stack, contract_factory, policy_for, party_keys, hostile_factory, alter
    )
    assert isinstance(outcome["alice"], SignatureError)


def test_receipt_signed_by_another_key_fail(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from tcme.wire import sign_receipt

    proxy_key = ed25519.Ed25519PrivateKey.generate()

    def resign(response):
        response.receipt_signature = sign_receipt(bytes(response.receipt), proxy_key)
        return response

    outcome = _tampered_result(
        model_stack, contract_factory, policy_for, party_keys, hostile_factory, resign
    )
    assert isinstance(outcome["alice"], SignatureError)


# -- information flow: only recipients can open an output --------------------------------


def test_non_recipient_cannot_decrypt_output(
    model_stack, contract_factory, policy_for, party_keys, hostile_factory
):
    from tcme.wire import open_output

    outputs = [
        {"name": "richer", "type": "enum", "values": ["first", "second", "equal"],
         "recipients": ["alice"]}
    ]  # fmt: skip
    session_id, policy = _session(
        model_stack, contract_factory, policy_for, party_keys, outputs=outputs
    )
    hostile = hostile_factory(model_stack)
    outcome = _two_parties(
        model_stack,
        hostile.target,
        policy,
        party_keys,
        {"session_id": session_id, "alice": {"alice_wealth": 8}, "bob": {"bob_wealth": 9}},
    )
    assert set(outcome["alice"][1].outputs) == {"richer"}
    assert outcome["bob"][1].outputs == {}  # bob's result carries nothing for him
    # The proxy saw alice's sealed output; bob (or anyone with bob's key) cannot open it.
    sealed = [
        o
        for message in hostile.messages("GetResult", "response")
        for o in tcme_pb2.GetResultResponse.FromString(message).outputs
        if o.recipient == "alice"
    ]
    assert sealed
    contract_digest = outcome["alice"][0].contract.digest
    for recipient in ("alice", "bob"):  # as addressed, or relabelled for bob
        with pytest.raises(OutputError):
            open_output(
                name=sealed[0].name,
                recipient=recipient,
                enc=sealed[0].enc,
                ciphertext=sealed[0].ciphertext,
                hpke_key=party_keys["bob"],
                session_id=session_id,
                contract_digest=contract_digest,
            )
