"""Session barrier, one error for everyone, timeouts, aborts and erasure (no model run)."""

from __future__ import annotations

import os
import time

import pytest

from attestation.errors import SignatureError
from enclave.keys import EnclaveKeys
from enclave.session import (
    CapacityError,
    SessionAborted,
    SessionManager,
    SessionNotFound,
    SessionStateError,
    SessionTimeout,
    State,
)
from tcme.base.keys import hpke_seal
from tcme.wire import (
    ContractError,
    InputError,
    canonical_contract,
    canonical_json,
    lp_join,
    parse_claims,
    parse_contract,
    seal_input,
    sign_abort_request,
    sign_result_request,
)
from tcme.wire.claims import build_claims
from tcme.wire.envelope import input_info, input_signing_message
from tcme.wire.failure import verify_failure
from tcme.wire.requests import sign_session_proposal
from tests.contracts import millionaires_contract


class NeverRun:
    """A runner these tests must never reach: each ends before the model would run."""

    def __init__(self):
        self.calls = 0

    def __call__(self, contract, values):
        self.calls += 1
        raise AssertionError("the model must not run in this session")


@pytest.fixture
def keys():
    return EnclaveKeys.generate()


@pytest.fixture
def claims(keys):
    return parse_claims(
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


@pytest.fixture
def runner():
    return NeverRun()


@pytest.fixture
def manager(keys, claims, runner):
    m = SessionManager(keys=keys, claims_digest=claims.digest, runner=runner, retention_seconds=30)
    yield m
    m.close()


def _contract_bytes(parties, timeout=60):
    return canonical_contract(
        millionaires_contract(
            ("alice", parties["alice"]),
            ("bob", parties["bob"]),
            max_wealth=100,
            timeout_seconds=timeout,
        )
    )


def _create(manager, parties, raw, proposer="alice", **changes):
    proposal = sign_session_proposal(parse_contract(raw), proposer, parties[proposer], **changes)
    return manager.create(raw, proposal)


def _submit(manager, claims, session, parties, party, value):
    sealed = seal_input(
        claims=claims,
        contract=session.contract,
        session_id=session.session_id,
        party=party,
        values={f"{'first' if party == 'alice' else 'second'}_wealth": value},
        signing_key=parties[party],
    )
    return manager.submit(session.session_id, party, sealed.enc, sealed.ciphertext)


def _forged_out_of_range(session, parties, keys):
    """Alice's correctly signed and sealed input whose value breaks the contract."""
    payload = canonical_json(
        {
            "type": "tcme/v1/input",
            "session_id": session.session_id.hex(),
            "contract_digest": session.contract.digest.hex(),
            "party": "alice",
            "salt": os.urandom(32).hex(),
            "values": {"first_wealth": 5000},
        }
    )
    signature = parties["alice"].signing_key.sign(input_signing_message(payload))
    return hpke_seal(
        keys.hpke.public,
        lp_join(payload, signature),
        input_info(session.session_id, session.contract.digest, "alice"),
    )


def _collect(manager, session, parties, party, timeout=5.0):
    signature = sign_result_request(session.session_id, party, parties[party])
    return manager.collect(session.session_id, party, signature, timeout=timeout)


def test_create_returns_fresh_ids_and_validated_contract(manager, parties):
    a = _create(manager, parties, _contract_bytes(parties))
    b = _create(manager, parties, _contract_bytes(parties))
    assert a.session_id != b.session_id and len(a.session_id) == 16
    assert a.contract.digest == parse_contract(_contract_bytes(parties)).digest
    assert a.state is State.OPEN and len(manager) == 2


def test_create_rejects_bad_contract_fail(manager, parties):
    contract = millionaires_contract(("alice", parties["alice"]), ("bob", parties["bob"]))
    contract["decoding"]["max_tokens"] = 10_000
    with pytest.raises(ContractError, match=r"contract\.decoding\.max_tokens"):
        _create(manager, parties, canonical_json(contract))
    assert len(manager) == 0


def test_barrier_waits_for_every_party(manager, claims, parties, runner):
    session = _create(manager, parties, _contract_bytes(parties))
    accepted = _submit(manager, claims, session, parties, "alice", 5)
    assert (accepted.received, accepted.expected) == (1, 2)
    assert len(accepted.ciphertext_sha256) == 32
    with pytest.raises(SessionStateError, match=r"session\.pending"):
        _collect(manager, session, parties, "bob", timeout=0.2)
    assert manager.get(session.session_id).state is State.OPEN
    assert session.submitted() == ["alice"]
    assert runner.calls == 0


def test_invalid_input_ends_session_for_everyone_fail(manager, claims, parties, keys, runner):
    session = _create(manager, parties, _contract_bytes(parties))
    _submit(manager, claims, session, parties, "bob", 7)
    enc, ciphertext = _forged_out_of_range(session, parties, keys)
    with pytest.raises(InputError) as first:
        manager.submit(session.session_id, "alice", enc, ciphertext)
    # Everyone (the proxy that carried the call included) gets a fixed reason, no data.
    assert first.value.check == "input.invalid"
    assert "5000" not in first.value.message() and "first_wealth" not in first.value.message()
    # Every party, and every later call, sees that one error, and no output exists.
    with pytest.raises(InputError) as bob:
        _collect(manager, session, parties, "bob")
    with pytest.raises(InputError) as alice:
        _collect(manager, session, parties, "alice")
    assert bob.value is first.value and alice.value is first.value
    # The detail is sealed to alice alone and committed in the signed failure receipt.
    record = session.failure
    opened = {
        party: verify_failure(
            record.receipt,
            record.receipt_signature,
            claims=claims,
            contract=session.contract,
            session_id=session.session_id,
            party=party,
            detail=record.detail_for(party),
            keys=parties[party],
        )
        for party in ("alice", "bob")
    }
    assert opened["alice"].error["check"] == "input.alice.first_wealth"
    assert opened["bob"].error is None and opened["bob"].reason == "input.invalid"
    assert session.outputs == () and session.receipt == b"" and session.inputs == {}
    assert runner.calls == 0
    # Once both parties were told, the session is gone.
    with pytest.raises(SessionNotFound):
        manager.get(session.session_id)


def test_undecryptable_input_is_refused_alone_fail(manager, claims, parties):
    session = _create(manager, parties, _contract_bytes(parties))
    other = _create(manager, parties, _contract_bytes(parties))
    sealed = seal_input(
        claims=claims,
        contract=other.contract,
        session_id=other.session_id,
        party="alice",
        values={"first_wealth": 1},
        signing_key=parties["alice"],
    )
    # An input made for another session is replayed into this one.
    with pytest.raises(InputError, match=r"input\.decrypt"):
        manager.submit(session.session_id, "alice", sealed.enc, sealed.ciphertext)
    # Nobody signed these bytes for this session: the session itself goes on.
    assert manager.get(session.session_id).state is State.OPEN
    assert manager.get(other.session_id).state is State.OPEN


def test_timeout_ends_session_for_everyone_fail(manager, claims, parties, runner):
    session = _create(manager, parties, _contract_bytes(parties, timeout=1))
    _submit(manager, claims, session, parties, "alice", 5)
    started = time.monotonic()
    with pytest.raises(SessionTimeout) as bob:
        _collect(manager, session, parties, "bob", timeout=10)
    assert time.monotonic() - started < 5
    assert bob.value.check == "session.timeout"
    assert "bob" in bob.value.message()
    with pytest.raises(SessionTimeout) as alice:
        _collect(manager, session, parties, "alice", timeout=1)
    assert alice.value is bob.value
    assert session.inputs == {} and runner.calls == 0
    with pytest.raises(SessionNotFound):
        manager.get(session.session_id)


def test_late_input_after_timeout_gets_the_timeout_fail(manager, claims, parties):
    session = _create(manager, parties, _contract_bytes(parties, timeout=1))
    time.sleep(1.3)
    with pytest.raises(SessionTimeout):
        _submit(manager, claims, session, parties, "bob", 3)


def test_duplicate_input_refused_session_stays_open_fail(manager, claims, parties):
    session = _create(manager, parties, _contract_bytes(parties))
    _submit(manager, claims, session, parties, "alice", 5)
    with pytest.raises(SessionStateError, match=r"input\.duplicate"):
        _submit(manager, claims, session, parties, "alice", 6)
    assert manager.get(session.session_id).state is State.OPEN


def test_unknown_party_refused_session_stays_open_fail(manager, claims, parties):
    session = _create(manager, parties, _contract_bytes(parties))
    with pytest.raises(ContractError, match=r"contract\.party"):
        manager.submit(session.session_id, "carol", b"\x00" * 1120, b"\x00" * 32)
    assert manager.get(session.session_id).state is State.OPEN


def test_abort_by_party_ends_session(manager, claims, parties):
    session = _create(manager, parties, _contract_bytes(parties))
    _submit(manager, claims, session, parties, "alice", 5)
    # Bob's key cannot abort in alice's name.
    forged = sign_abort_request(session.session_id, "alice", parties["bob"])
    with pytest.raises(SignatureError, match=r"abort_request\.signature"):
        manager.abort(session.session_id, "alice", forged)
    signature = sign_abort_request(session.session_id, "bob", parties["bob"])
    assert manager.abort(session.session_id, "bob", signature) is State.FAILED
    with pytest.raises(SessionAborted, match="bob"):
        _collect(manager, session, parties, "alice")
    assert session.inputs == {}


def test_collect_needs_party_signature_fail(manager, parties):
    session = _create(manager, parties, _contract_bytes(parties))
    signature = sign_result_request(session.session_id, "alice", parties["carol"])
    with pytest.raises(SignatureError, match=r"result_request\.signature"):
        manager.collect(session.session_id, "alice", signature, timeout=0)


def test_unknown_session_not_found_fail(manager):
    with pytest.raises(SessionNotFound, match=r"session\.not_found"):
        manager.get(os.urandom(16))


def test_capacity_limit_fail(keys, claims, parties):
    small = SessionManager(
        keys=keys, claims_digest=claims.digest, runner=NeverRun(), max_sessions=1
    )
    try:
        _create(small, parties, _contract_bytes(parties))
        with pytest.raises(CapacityError):
            _create(small, parties, _contract_bytes(parties))
    finally:
        small.close()


def test_close_wakes_waiting_collectors_fail(keys, claims, parties):
    import threading

    manager = SessionManager(keys=keys, claims_digest=claims.digest, runner=NeverRun())
    session = _create(manager, parties, _contract_bytes(parties))
    errors = []

    def wait():
        try:
            _collect(manager, session, parties, "alice", timeout=None)
        except Exception as err:
            errors.append(err)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    manager.close()
    waiter.join(5)
    assert not waiter.is_alive()
    assert [e.check for e in errors] == ["enclave.shutdown"]
    assert len(manager) == 0
