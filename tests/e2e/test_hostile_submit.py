"""A hostile proxy cannot fake the enclave's acknowledgement of an input (issue 11, part 3).

The enclave signs every accepted input (session, party, ciphertext digest) with
its attested receipt key; the party verifies it. A proxy that drops the input
and answers "accepted" itself is caught at once, instead of the party waiting
for the session to time out.
"""

from __future__ import annotations

import pytest

from attestation.errors import SignatureError
from tcme.client import TcmeClient
from tcme.v1 import tcme_pb2
from tcme.wire import PartyKeys
from tcme.wire.envelope import ciphertext_digest
from tcme.wire.requests import sign_submit_ack


@pytest.fixture
def session(attest_stack, contract_factory, policy_for, party_keys):
    contract = contract_factory()
    with TcmeClient(attest_stack.target) as client:
        info = client.create_session(contract, proposer="alice", keys=party_keys["alice"])
    return info.session_id, policy_for(attest_stack, contract)


def test_honest_ack_verifies(attest_stack, session, party_keys):
    session_id, policy = session
    with TcmeClient(attest_stack.target) as client:
        attestation = client.attest(policy, session_id)
        submitted = client.submit_input(
            attestation, "alice", party_keys["alice"], {"alice_wealth": 12}
        )
        assert submitted.inputs_received == 1
        assert client.get_session(session_id).submitted_parties == ("alice",)


@pytest.mark.parametrize("forger", ["unsigned", "proxy_key", "replayed_bob_ack"])
def test_dropped_input_with_forged_ack_rejected_fail(
    attest_stack, session, party_keys, hostile_factory, forger
):
    session_id, policy = session
    hostile = hostile_factory(attest_stack)
    genuine: list[bytes] = []
    if forger == "replayed_bob_ack":
        # Bob's input passes the proxy honestly; it keeps the enclave's signed ack.
        with TcmeClient(hostile.target) as client:
            attestation = client.attest(policy, session_id)
            client.submit_input(attestation, "bob", party_keys["bob"], {"bob_wealth": 3})
        (response,) = hostile.messages("SubmitInput", "response")
        genuine.append(tcme_pb2.SubmitInputResponse.FromString(response).ack_signature)
    proxy_key = PartyKeys.generate().signing_key

    def drop_and_forge(request):
        # Never forwarded: the enclave never sees alice's input.
        digest = ciphertext_digest(request.enc, request.ciphertext)
        signature = {
            "unsigned": lambda: b"",
            "proxy_key": lambda: sign_submit_ack(session_id, request.party, digest, proxy_key),
            "replayed_bob_ack": lambda: genuine[0],
        }[forger]()
        return tcme_pb2.SubmitInputResponse(
            ciphertext_sha256=digest, inputs_received=2, inputs_expected=2, ack_signature=signature
        )

    hostile.replies["SubmitInput"] = drop_and_forge
    with TcmeClient(hostile.target) as client:
        attestation = client.attest(policy, session_id)
        with pytest.raises(SignatureError, match=r"submit\.ack_signature"):
            client.submit_input(attestation, "alice", party_keys["alice"], {"alice_wealth": 12})
    # The enclave really never got alice's input.
    with TcmeClient(attest_stack.target) as client:
        assert "alice" not in client.get_session(session_id).submitted_parties
