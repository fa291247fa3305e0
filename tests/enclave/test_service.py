"""The enclave over real gRPC sockets: attest, sessions, inputs, results, errors.

A minimal in-test party client uses only tcme.wire and attestation (what the
real client library uses). Evidence comes from the simulated SEV-SNP provider
(the stand-in for hardware) and is verified by the real verifier under a
policy that allows exactly that simulated root.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import grpc
import pytest

from attestation.binding import report_data_for
from attestation.errors import BindingError
from attestation.policy import Policy, simulated_policy
from attestation.verifier import SnpInputs, verify_evidence
from enclave.inference import Inference
from enclave.runtime import Enclave
from enclave.server import create_server, shutdown
from tcme.client import create_session_request
from tcme.v1 import evidence_pb2, tcme_pb2, tcme_pb2_grpc
from tcme.wire import (
    canonical_contract,
    error_info,
    open_output,
    parse_claims,
    parse_contract,
    seal_input,
    sign_result_request,
    verify_receipt,
)
from tcme.wire.requests import verify_submit_ack
from tests.contracts import millionaires_contract

TIMEOUT = 30


@dataclass(frozen=True)
class _Identity:
    """Model identity for servers that never run a model (error-path tests)."""

    root_digest: str = "11" * 32
    signer: str = "no model loaded"
    issuer: str | None = None
    method: str = "key"
    hash_algorithm: str = "sha256"


def _never_run(contract, values):
    raise AssertionError("the model must not run in this test")


def _serve(enclave, address="127.0.0.1:0"):
    server, port = create_server(address, enclave)
    server.start()
    target = address if address.startswith("unix:") else f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(target)
    return server, channel, tcme_pb2_grpc.TcmeStub(channel)


@pytest.fixture(scope="module")
def bare(sim_provider):
    enclave = Enclave(
        provider=sim_provider, model=_Identity(), runner=_never_run, retention_seconds=30
    )
    server, channel, stub = _serve(enclave)
    yield enclave, stub
    channel.close()
    shutdown(server, enclave, grace=0)


@pytest.fixture(scope="module")
def model_enclave(sim_provider, loaded_model):
    enclave = Enclave(
        provider=sim_provider,
        model=loaded_model.identity,
        runner=Inference(loaded_model.llama).run,
        retention_seconds=30,
    )
    server, channel, stub = _serve(enclave)
    yield enclave, stub
    channel.close()
    shutdown(server, enclave, grace=0)


@pytest.fixture(scope="module")
def policy(sim_provider):
    return Policy.from_dict(simulated_policy(sim_provider.ark_sha256, sim_provider.measurement))


def _contract(parties, **kwargs):
    return canonical_contract(
        millionaires_contract(("alice", parties["alice"]), ("bob", parties["bob"]), **kwargs)
    )


def _attest(stub, session_id, policy, agreed_contract: bytes):
    """What every party does before releasing input; returns (claims, contract, verified)."""
    nonce = os.urandom(32)
    response = stub.Attest(
        tcme_pb2.AttestRequest(session_id=session_id, nonce=nonce), timeout=TIMEOUT
    )
    assert response.evidence.tee == evidence_pb2.TEE_TYPE_SEV_SNP
    assert response.evidence.simulated
    claims = parse_claims(response.claims)
    assert response.contract == agreed_contract
    contract = parse_contract(response.contract)
    verified = verify_evidence(
        response.evidence.report,
        policy=policy,
        expected_report_data=report_data_for(claims.digest, contract.digest, session_id, nonce),
        inputs=[SnpInputs(certs=response.evidence.certs_pem)],
    )
    return claims, contract, verified


def _submit(stub, claims, contract, session_id, parties, party, values):
    sealed = seal_input(
        claims=claims,
        contract=contract,
        session_id=session_id,
        party=party,
        values=values,
        signing_key=parties[party],
    )
    response = stub.SubmitInput(
        tcme_pb2.SubmitInputRequest(
            session_id=session_id, party=party, enc=sealed.enc, ciphertext=sealed.ciphertext
        ),
        timeout=TIMEOUT,
    )
    assert response.ciphertext_sha256 == sealed.ciphertext_sha256
    # The acknowledgement is signed by the attested enclave key over exactly this input.
    verify_submit_ack(
        claims.signing_public_key,
        session_id,
        party,
        sealed.ciphertext_sha256,
        response.ack_signature,
    )
    return sealed


def _result(stub, session_id, parties, party, timeout=TIMEOUT, *, once=False):
    """GetResult, called again while it answers "pending" (unless ``once``)."""
    request = tcme_pb2.GetResultRequest(
        session_id=session_id,
        party=party,
        signature=sign_result_request(session_id, party, parties[party]),
    )
    deadline = time.monotonic() + timeout
    while True:
        response = stub.GetResult(request, timeout=max(0.1, deadline - time.monotonic()))
        pending = response.state in (tcme_pb2.SESSION_STATE_OPEN, tcme_pb2.SESSION_STATE_RUNNING)
        if once or not pending or time.monotonic() >= deadline:
            return response
        time.sleep(response.retry_after_ms / 1000)


def _rpc_error(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# --- with the real default model -------------------------------------------------------------


@pytest.mark.model
def test_full_two_party_session(model_enclave, policy, parties, loaded_model):
    import llama_cpp

    _, stub = model_enclave
    agreed = _contract(parties)
    created = stub.CreateSession(
        create_session_request(agreed, "alice", parties["alice"]), timeout=TIMEOUT
    )
    sid = created.session_id
    assert created.contract_digest == hashlib.sha256(agreed).digest()

    views = {p: _attest(stub, sid, policy, agreed) for p in ("alice", "bob")}
    claims, contract, verified = views["alice"]
    assert verified.simulated and claims.model_root_digest == loaded_model.identity.root_digest

    sealed = {"alice": _submit(stub, claims, contract, sid, parties, "alice", {"first_wealth": 31})}
    # Barrier: with one input in, nobody gets a result and the model has not run.
    started = time.monotonic()
    pending = _result(stub, sid, parties, "bob", timeout=1.0, once=True)
    # A bounded long poll: "pending" just before the deadline, with a retry hint.
    assert time.monotonic() - started < 1.0
    assert pending.state == tcme_pb2.SESSION_STATE_OPEN
    assert pending.retry_after_ms > 0
    assert not pending.outputs and not pending.receipt
    state = stub.GetSession(tcme_pb2.GetSessionRequest(session_id=sid), timeout=TIMEOUT)
    assert state.state == tcme_pb2.SESSION_STATE_OPEN
    assert list(state.submitted_parties) == ["alice"]

    claims_b, contract_b, _ = views["bob"]
    sealed["bob"] = _submit(stub, claims_b, contract_b, sid, parties, "bob", {"second_wealth": 7})

    answers = {}
    for party in ("alice", "bob"):
        claims_p, contract_p, _ = views[party]
        response = _result(stub, sid, parties, party)
        assert response.state == tcme_pb2.SESSION_STATE_DONE
        assert [(o.name, o.recipient) for o in response.outputs] == [("richer", party)]
        opened = [
            open_output(
                name=o.name,
                recipient=o.recipient,
                enc=o.enc,
                ciphertext=o.ciphertext,
                hpke_key=parties[party],
                session_id=sid,
                contract_digest=contract_p.digest,
            )
            for o in response.outputs
        ]
        receipt = verify_receipt(
            response.receipt,
            response.receipt_signature,
            claims=claims_p,
            contract=contract_p,
            session_id=sid,
            own_input=sealed[party],
            party=party,
            outputs=opened,
        )
        assert [r.party for r in receipt.inputs] == ["alice", "bob"]
        answers[party] = opened[0].value
    # The default model is small and may be wrong; the contract only promises an enum value.
    assert answers["alice"] in ("first", "second", "equal")
    assert answers["alice"] == answers["bob"]

    # Every party collected: the session is erased, and so is the model's context.
    err = _rpc_error(
        lambda: stub.GetSession(tcme_pb2.GetSessionRequest(session_id=sid), timeout=TIMEOUT)
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(err)["reason"] == "session.not_found"
    llama = loaded_model.llama
    assert llama.n_tokens == 0
    assert not llama.input_ids.any()
    memory = llama_cpp.llama_get_memory(llama.ctx)
    assert llama_cpp.llama_memory_seq_pos_max(memory, 0) == -1


@pytest.mark.model
def test_non_recipient_gets_no_output(model_enclave, policy, parties):
    _, stub = model_enclave
    contract_dict = millionaires_contract(("alice", parties["alice"]), ("bob", parties["bob"]))
    contract_dict["outputs"][0]["recipients"] = ["alice"]
    agreed = canonical_contract(contract_dict)
    sid = stub.CreateSession(
        create_session_request(agreed, "alice", parties["alice"]), timeout=TIMEOUT
    ).session_id
    claims, contract, _ = _attest(stub, sid, policy, agreed)
    sealed = {
        "alice": _submit(stub, claims, contract, sid, parties, "alice", {"first_wealth": 3}),
        "bob": _submit(stub, claims, contract, sid, parties, "bob", {"second_wealth": 9}),
    }
    bob = _result(stub, sid, parties, "bob")
    assert list(bob.outputs) == []
    verify_receipt(
        bob.receipt,
        bob.receipt_signature,
        claims=claims,
        contract=contract,
        session_id=sid,
        own_input=sealed["bob"],
        party="bob",
        outputs=[],
    )
    alice = _result(stub, sid, parties, "alice")
    (output,) = alice.outputs
    # Bob's key cannot open the output addressed to alice.
    from tcme.wire import OutputError

    with pytest.raises(OutputError, match=r"output\.decrypt"):
        open_output(
            name=output.name,
            recipient="alice",
            enc=output.enc,
            ciphertext=output.ciphertext,
            hpke_key=parties["bob"],
            session_id=sid,
            contract_digest=contract.digest,
        )


# --- error paths (no model needed) -----------------------------------------------------------


def test_garbage_in_a_partys_name_does_not_end_the_session_fail(bare, policy, parties):
    _, stub = bare
    agreed = _contract(parties, max_wealth=100)
    sid = stub.CreateSession(
        create_session_request(agreed, "alice", parties["alice"]), timeout=TIMEOUT
    ).session_id
    claims, contract, _ = _attest(stub, sid, policy, agreed)
    _submit(stub, claims, contract, sid, parties, "bob", {"second_wealth": 7})
    # A stranger (or the host) sends garbage as alice's input: refused on its own...
    err = _rpc_error(
        lambda: stub.SubmitInput(
            tcme_pb2.SubmitInputRequest(
                session_id=sid, party="alice", enc=os.urandom(1120), ciphertext=os.urandom(64)
            ),
            timeout=TIMEOUT,
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err)["reason"] == "input.decrypt"
    # ...and the parties' session is still open: alice's real input is accepted.
    state = stub.GetSession(tcme_pb2.GetSessionRequest(session_id=sid), timeout=TIMEOUT)
    assert (state.state, list(state.submitted_parties)) == (tcme_pb2.SESSION_STATE_OPEN, ["bob"])
    # (_submit checks the enclave-signed acknowledgement of alice's input.)
    _submit(stub, claims, contract, sid, parties, "alice", {"first_wealth": 5})


def test_missing_party_times_out_cleanly_fail(bare, policy, parties):
    _, stub = bare
    agreed = _contract(parties, timeout_seconds=1)
    sid = stub.CreateSession(
        create_session_request(agreed, "alice", parties["alice"]), timeout=TIMEOUT
    ).session_id
    claims, contract, _ = _attest(stub, sid, policy, agreed)
    _submit(stub, claims, contract, sid, parties, "alice", {"first_wealth": 7})
    for party in ("alice", "bob"):
        err = _rpc_error(lambda p=party: _result(stub, sid, parties, p, timeout=10))
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        info = error_info(err)
        assert info["reason"] == "session.timeout" and "bob" in info["actual"]
    err = _rpc_error(
        lambda: stub.GetSession(tcme_pb2.GetSessionRequest(session_id=sid), timeout=TIMEOUT)
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_evidence_from_another_session_or_nonce_fail(bare, policy, parties):
    _, stub = bare
    agreed = _contract(parties)
    sid_a = stub.CreateSession(
        create_session_request(agreed, "alice", parties["alice"]), timeout=TIMEOUT
    ).session_id
    sid_b = stub.CreateSession(
        create_session_request(agreed, "alice", parties["alice"]), timeout=TIMEOUT
    ).session_id
    nonce = os.urandom(32)
    response = stub.Attest(tcme_pb2.AttestRequest(session_id=sid_a, nonce=nonce), timeout=TIMEOUT)
    claims = parse_claims(response.claims)
    contract = parse_contract(response.contract)
    for session_id, party_nonce in ((sid_b, nonce), (sid_a, os.urandom(32))):
        with pytest.raises(BindingError):
            verify_evidence(
                response.evidence.report,
                policy=policy,
                expected_report_data=report_data_for(
                    claims.digest, contract.digest, session_id, party_nonce
                ),
                inputs=[SnpInputs(certs=response.evidence.certs_pem)],
            )


def test_sessionless_attest_and_bad_nonce(bare, policy):
    _, stub = bare
    nonce = os.urandom(16)
    response = stub.Attest(tcme_pb2.AttestRequest(nonce=nonce), timeout=TIMEOUT)
    assert response.contract == b""
    claims = parse_claims(response.claims)
    verify_evidence(
        response.evidence.report,
        policy=policy,
        expected_report_data=report_data_for(
            claims.digest, hashlib.sha256(b"").digest(), b"", nonce
        ),
        inputs=[SnpInputs(certs=response.evidence.certs_pem)],
    )
    err = _rpc_error(lambda: stub.Attest(tcme_pb2.AttestRequest(nonce=b"short"), timeout=TIMEOUT))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err)["reason"] == "attest.nonce"


def test_create_session_rejects_non_canonical_contract_fail(bare, parties):
    _, stub = bare
    pretty = _contract(parties).replace(b'","', b'", "', 1)
    err = _rpc_error(
        lambda: stub.CreateSession(tcme_pb2.CreateSessionRequest(contract=pretty), timeout=TIMEOUT)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err)["reason"] == "contract.canonical"


def test_unknown_session_not_found_fail(bare):
    _, stub = bare
    err = _rpc_error(
        lambda: stub.Attest(
            tcme_pb2.AttestRequest(session_id=os.urandom(16), nonce=os.urandom(32)), timeout=TIMEOUT
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_result_request_signed_by_other_party_fail(bare, parties):
    _, stub = bare
    sid = stub.CreateSession(
        create_session_request(_contract(parties), "alice", parties["alice"]), timeout=TIMEOUT
    ).session_id
    err = _rpc_error(
        lambda: stub.GetResult(
            tcme_pb2.GetResultRequest(
                session_id=sid,
                party="alice",
                signature=sign_result_request(sid, "alice", parties["bob"]),
            ),
            timeout=TIMEOUT,
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_oversized_message_refused_fail(bare):
    _, stub = bare
    err = _rpc_error(
        lambda: stub.CreateSession(
            tcme_pb2.CreateSessionRequest(contract=b"x" * (2 * 1024 * 1024)), timeout=TIMEOUT
        )
    )
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_unix_socket_listener(sim_provider, tmp_path, policy):
    enclave = Enclave(provider=sim_provider, model=_Identity(), runner=_never_run)
    server, channel, stub = _serve(enclave, f"unix:{tmp_path / 'enclave.sock'}")
    try:
        response = stub.Attest(tcme_pb2.AttestRequest(nonce=os.urandom(32)), timeout=TIMEOUT)
        assert parse_claims(response.claims).signing_public_bytes == enclave.keys.signing_public
    finally:
        channel.close()
        shutdown(server, enclave, grace=0)


def test_create_session_without_signature_unauthenticated_fail(bare, parties):
    _, stub = bare
    err = _rpc_error(
        lambda: stub.CreateSession(
            tcme_pb2.CreateSessionRequest(contract=_contract(parties)), timeout=TIMEOUT
        )
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(err)["reason"] == "create.unauthenticated"


def test_create_session_signed_by_stranger_permission_denied_fail(bare, parties):
    _, stub = bare
    request = create_session_request(_contract(parties), "alice", parties["alice"])
    forged = create_session_request(_contract(parties), "alice", parties["alice"])
    forged.signature = parties["carol"].signing_key.sign(b"anything")
    err = _rpc_error(lambda: stub.CreateSession(forged, timeout=TIMEOUT))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(err)["reason"] == "create.signature"
    # The genuine request still works once; a replay of it is refused.
    assert len(stub.CreateSession(request, timeout=TIMEOUT).session_id) == 16
    err = _rpc_error(lambda: stub.CreateSession(request, timeout=TIMEOUT))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(err)["reason"] == "create.replay"
