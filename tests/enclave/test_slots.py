"""Session slots: who may open a session, how many, and for how long (issue 11, part 2).

Each test is the attack: a stranger without a key of the contract, a hostile
proxy replaying a captured proposal, one party filling every slot, aborted
sessions holding slots for the retention time, a thread per timer.
"""

from __future__ import annotations

import threading
import time

import pytest

from enclave.admission import Admission, ProposalError, Unauthenticated
from enclave.keys import EnclaveKeys
from enclave.session import CapacityError, SessionManager, State
from enclave.timers import THREAD_NAME, Scheduler
from tcme.wire import canonical_contract, parse_contract
from tcme.wire.requests import SessionProposal, sign_abort_request, sign_session_proposal
from tests.contracts import millionaires_contract


def _never_run(contract, values):
    raise AssertionError("the model must not run in these tests")


@pytest.fixture
def raw(parties):
    return canonical_contract(
        millionaires_contract(
            ("alice", parties["alice"]), ("bob", parties["bob"]), max_wealth=100, timeout_seconds=60
        )
    )


def _manager(**options):
    keys = EnclaveKeys.generate()
    return SessionManager(keys=keys, claims_digest=b"\x00" * 32, runner=_never_run, **options)


@pytest.fixture
def manager():
    m = _manager(max_sessions=6, max_sessions_per_proposer=2)
    yield m
    m.close()


def _propose(raw, parties, proposer="alice", key=None, **changes):
    return sign_session_proposal(parse_contract(raw), proposer, parties[key or proposer], **changes)


# -- who may open a session ----------------------------------------------------------------


def test_unsigned_create_session_refused_fail(manager, raw):
    with pytest.raises(Unauthenticated, match=r"create\.unauthenticated"):
        manager.create(raw, None)
    assert len(manager) == 0


def test_stranger_signing_as_a_party_refused_fail(manager, raw, parties):
    # carol is not in the contract; she names alice and signs with her own key.
    with pytest.raises(ProposalError, match=r"create\.signature"):
        manager.create(raw, _propose(raw, parties, "alice", key="carol"))
    assert len(manager) == 0


def test_stranger_naming_herself_refused_fail(manager, raw, parties):
    proposal = _propose(raw, parties, "alice")
    forged = SessionProposal(
        "carol", proposal.nonce, proposal.timestamp_unix_ms, 60, proposal.signature
    )
    with pytest.raises(ProposalError, match=r"create\.proposer"):
        manager.create(raw, forged)


def test_proposal_for_another_contract_refused_fail(manager, raw, parties):
    other = canonical_contract(
        millionaires_contract(("alice", parties["alice"]), ("bob", parties["bob"]), max_wealth=7)
    )
    with pytest.raises(ProposalError, match=r"create\.signature"):
        manager.create(raw, _propose(other, parties, "alice"))


def test_replayed_proposal_refused_fail(manager, raw, parties):
    proposal = _propose(raw, parties)
    first = manager.create(raw, proposal)
    with pytest.raises(ProposalError, match=r"create\.replay"):
        manager.create(raw, proposal)
    assert len(manager) == 1 and manager.get(first.session_id).state is State.OPEN


def test_stale_proposal_refused_fail(manager, raw, parties):
    stale = _propose(raw, parties, timestamp_unix_ms=int((time.time() - 3600) * 1000))
    with pytest.raises(ProposalError, match=r"create\.timestamp"):
        manager.create(raw, stale)


def test_tampered_timeout_refused_fail(manager, raw, parties):
    proposal = _propose(raw, parties, timeout_seconds=10)
    tampered = SessionProposal(
        proposal.proposer, proposal.nonce, proposal.timestamp_unix_ms, 60, proposal.signature
    )
    with pytest.raises(ProposalError, match=r"create\.signature"):
        manager.create(raw, tampered)


def test_timeout_above_contract_refused_fail(manager, raw, parties):
    with pytest.raises(Exception, match=r"create\.timeout"):
        manager.create(raw, _propose(raw, parties, timeout_seconds=61))


def test_requested_shorter_timeout_sets_the_deadline(manager, raw, parties):
    session = manager.create(raw, _propose(raw, parties, timeout_seconds=5))
    assert session.deadline - session.created == pytest.approx(5)


def test_proposer_allow_list_refuses_other_keys_fail(raw, parties):
    from tcme.base.keys import ed25519_public_bytes

    alice_key = ed25519_public_bytes(parties["alice"].signing_key)
    m = _manager(admission=Admission(allowed_proposers={alice_key}))
    try:
        assert m.create(raw, _propose(raw, parties, "alice")).state is State.OPEN
        with pytest.raises(ProposalError, match=r"create\.proposer"):
            m.create(raw, _propose(raw, parties, "bob"))
    finally:
        m.close()


# -- how many slots, and for how long -------------------------------------------------------


def test_one_proposer_cannot_fill_every_slot_fail(manager, raw, parties):
    for _ in range(2):
        manager.create(raw, _propose(raw, parties, "alice"))
    with pytest.raises(CapacityError, match=r"session\.proposer_capacity"):
        manager.create(raw, _propose(raw, parties, "alice"))
    # Bob, a different proposer key, still gets a slot.
    assert manager.create(raw, _propose(raw, parties, "bob")).state is State.OPEN
    assert manager.live_count() == 3


def test_global_limit_still_holds_fail(raw, parties):
    m = _manager(max_sessions=3, max_sessions_per_proposer=2)
    try:
        m.create(raw, _propose(raw, parties, "alice"))
        m.create(raw, _propose(raw, parties, "alice"))
        m.create(raw, _propose(raw, parties, "bob"))
        with pytest.raises(CapacityError, match=r"session\.capacity"):
            m.create(raw, _propose(raw, parties, "bob"))
    finally:
        m.close()


def test_aborted_session_frees_its_slot_at_once(manager, raw, parties):
    first = manager.create(raw, _propose(raw, parties))
    manager.create(raw, _propose(raw, parties))
    with pytest.raises(CapacityError):
        manager.create(raw, _propose(raw, parties))
    signature = sign_abort_request(first.session_id, "alice", parties["alice"])
    assert manager.abort(first.session_id, "alice", signature) is State.FAILED
    # The aborted record is still there for the parties to read, without a slot.
    assert first.session_id in {s for s in manager._sessions}
    assert manager.create(raw, _propose(raw, parties)).state is State.OPEN


def test_retained_records_are_bounded_per_proposer(raw, parties):
    m = _manager(max_sessions_per_proposer=1, max_retained_per_proposer=2)
    try:
        ids = []
        for _ in range(5):
            session = m.create(raw, _propose(raw, parties))
            ids.append(session.session_id)
            m.abort(
                session.session_id,
                "alice",
                sign_abort_request(session.session_id, "alice", parties["alice"]),
            )
        # Only the two newest aborted records are kept; the oldest went first.
        assert set(m._sessions) == set(ids[-2:])
    finally:
        m.close()


def test_timers_share_one_thread(raw, parties):
    m = _manager(max_sessions=40, max_sessions_per_proposer=40)
    # Other tests' enclaves may still be running their own scheduler: count the change.
    before = {t.ident for t in threading.enumerate()}
    try:
        for _ in range(30):
            m.create(raw, _propose(raw, parties))
        new = [t.name for t in threading.enumerate() if t.ident not in before]
        assert new == [THREAD_NAME]
        assert m.scheduler.pending() == 30
    finally:
        m.close()


# -- the scheduler itself -----------------------------------------------------------------


def test_scheduler_runs_in_due_order_and_skips_cancelled():
    scheduler = Scheduler()
    ran: list[str] = []
    done = threading.Event()
    try:
        scheduler.call_later(0.2, lambda: (ran.append("late"), done.set()))
        cancelled = scheduler.call_later(0.05, lambda: ran.append("cancelled"))
        scheduler.call_later(0.0, lambda: ran.append("early"))
        cancelled.cancel()
        assert done.wait(5)
        assert ran == ["early", "late"]
    finally:
        scheduler.close()


def test_scheduler_survives_a_failing_action():
    scheduler = Scheduler()
    done = threading.Event()
    try:
        scheduler.call_later(0.0, lambda: 1 / 0)
        scheduler.call_later(0.01, done.set)
        assert done.wait(5)
    finally:
        scheduler.close()
