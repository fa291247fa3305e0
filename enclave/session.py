"""Sessions: the all-party release barrier, one error for everyone, erase on end.

Life of a session::

    [capability tests, if the contract has them: run on public inputs, score
     bound into the session's evidence; below the contract minimum: refused]
    OPEN --(every party's valid input)--> RUNNING --(model ran, outputs sealed,
    receipt signed, plaintext erased)--> DONE --(every party collected)--> gone
    OPEN --(invalid input | timeout | abort)--> FAILED --(every party told)--> gone

One error for everyone: a failed session answers every call with one public
error. When the failure could depend on a party's input or an output, that
error is a fixed reason with no data, and the detail is sealed to the parties
entitled to it, committed in an enclave-signed failure receipt
(``enclave.disclosure``, ``tcme.wire.failure``).

Plaintext inputs exist only between a successful ``open_input`` and the end
of the model call; on any ending they are dropped before anything else
happens. A finished or failed session record (ciphertext outputs, receipt, or
the terminal error) is kept until every party has collected it or
``retention_seconds`` pass, then removed: lookups give NOT_FOUND.
Nothing here logs a value, a prompt or an output.

Slots: only OPEN and RUNNING sessions hold one. A session is opened by a
signed proposal of one of its contract's parties (``enclave.admission``);
each proposer key holds at most ``max_sessions_per_proposer`` slots, the
enclave ``max_sessions`` in all. A finished, failed or aborted session frees
its slot at once; its record is retained without a slot (bounded per
proposer and in all, oldest dropped first). Deadlines and retention periods
run on one scheduler thread (``enclave.timers``), not a thread each.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from attestation.errors import TcmeError
from enclave.admission import Admission, Admitted
from enclave.disclosure import attach_failure, disclose
from enclave.inference import OutputInvalid
from enclave.keys import EnclaveKeys
from enclave.timers import Scheduler, Timer
from tcme.contract.capability import (
    CapabilityError,
    CapabilityRecord,
    build_record,
    parse_record,
    run_tests,
)
from tcme.contract.model import Contract
from tcme.contract.parse import parse_contract
from tcme.wire.envelope import (
    SESSION_ID_SIZE,
    OpenedInput,
    SignedInputError,
    open_input,
    output_commitment,
    seal_output,
)
from tcme.wire.failure import FailureRecord, build_failure
from tcme.wire.receipt import InputRecord, OutputRecord, build_receipt, sign_receipt
from tcme.wire.requests import (
    SessionProposal,
    abort_request_message,
    result_request_message,
    sign_submit_ack,
    verify_party_request,
)

log = logging.getLogger(__name__)

SALT_SIZE = 32

Runner = Callable[[Contract, Mapping[str, Any]], Mapping[str, str]]


class SessionNotFound(TcmeError):
    """No such session (never created, or already erased)."""


class SessionStateError(TcmeError):
    """The request is not valid in the session's current state."""


class SessionTimeout(TcmeError):
    """The session's inputs did not all arrive before its deadline."""


class SessionAborted(TcmeError):
    """A party aborted the session."""


class CapacityError(TcmeError):
    """The enclave (or this proposer) holds as many live sessions as it allows."""


class EnclaveFailure(TcmeError):
    """The enclave could not compute the result; nothing was released."""


class State(enum.Enum):
    """Where a session is in its life (mirrors tcme.v1.SessionState)."""

    OPEN = 1
    RUNNING = 2
    DONE = 3
    FAILED = 4


@dataclass(frozen=True)
class SealedOutput:
    """One output ciphertext for one recipient."""

    name: str
    recipient: str
    enc: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class Result:
    """What ``collect`` hands one party."""

    outputs: tuple[SealedOutput, ...]
    receipt: bytes
    receipt_signature: bytes


@dataclass(frozen=True)
class Accepted:
    """What ``submit`` returns: the enclave's signed acknowledgement of one input."""

    ciphertext_sha256: bytes
    received: int
    expected: int
    # Ed25519 by the enclave receipt key over tcme.wire.requests.submit_ack_message.
    ack_signature: bytes


@dataclass
class Session:
    """One session's state. ``inputs`` holds plaintext: never log or repr it."""

    session_id: bytes
    contract: Contract
    created: float
    deadline: float
    proposer: str = ""
    proposer_key: bytes = b""
    # When the session ended (monotonic), for dropping the oldest retained records.
    ended: float | None = None
    state: State = State.OPEN
    inputs: dict[str, OpenedInput] = field(default_factory=dict, repr=False)
    # The public error every caller sees once FAILED (carries ``failure``).
    error: TcmeError | None = None
    # Signed failure receipt and one sealed detail per party (tcme.wire.failure).
    failure: FailureRecord | None = None
    outputs: tuple[SealedOutput, ...] = ()
    receipt: bytes = b""
    receipt_signature: bytes = b""
    collected: set[str] = field(default_factory=set)
    finished: threading.Event = field(default_factory=threading.Event)
    timers: list[Timer] = field(default_factory=list, repr=False)
    accepted: set[str] = field(default_factory=set)
    # The capability record (canonical bytes) when the contract has tests.
    capability: CapabilityRecord | None = None

    @property
    def expires_unix_ms(self) -> int:
        """Deadline on the wall clock, for clients."""
        return int((time.time() + (self.deadline - time.monotonic())) * 1000)

    @property
    def live(self) -> bool:
        """Whether the session holds a slot (OPEN or RUNNING)."""
        return self.state in (State.OPEN, State.RUNNING)

    def submitted(self) -> list[str]:
        """Parties whose input was accepted, in contract order."""
        return [p.name for p in self.contract.parties if p.name in self.accepted]


class SessionManager:
    """All live sessions of one enclave; thread-safe."""

    def __init__(
        self,
        *,
        keys: EnclaveKeys,
        claims_digest: bytes,
        runner: Runner,
        max_sessions: int = 64,
        max_sessions_per_proposer: int = 8,
        max_retained: int | None = None,
        max_retained_per_proposer: int | None = None,
        retention_seconds: float = 300.0,
        admission: Admission | None = None,
        route: bytes = b"",
    ) -> None:
        if len(route) > SESSION_ID_SIZE // 2:
            raise ValueError("a route tag leaves at least half of the session id random")
        self._keys = keys
        # Fleet routing (enclave/fleet.py): every session id starts with this tag.
        self._route = bytes(route)
        self._claims_digest = claims_digest
        self._runner = runner
        self._max_sessions = max_sessions
        self._max_per_proposer = max_sessions_per_proposer
        # Retained records hold no slot, but memory: bounded too, oldest dropped first.
        self._max_retained = 4 * max_sessions if max_retained is None else max_retained
        self._max_retained_per_proposer = (
            2 * max_sessions_per_proposer
            if max_retained_per_proposer is None
            else max_retained_per_proposer
        )
        self._retention = retention_seconds
        self._admission = admission or Admission()
        self._sessions: dict[bytes, Session] = {}
        # Slots held by proposals whose capability tests are still running.
        self._reserved: dict[bytes, int] = {}
        self._lock = threading.RLock()
        self._scheduler = Scheduler()

    # --- lookups ------------------------------------------------------------------------

    def get(self, session_id: bytes) -> Session:
        """The session; raises ``SessionNotFound``, or the session's terminal error."""
        with self._lock:
            session = self._sessions.get(bytes(session_id))
            if session is None:
                raise SessionNotFound(
                    "session.not_found",
                    "no such session (unknown, or already erased)",
                    actual=bytes(session_id).hex() or "(empty)",
                )
            if session.state is State.FAILED:
                assert session.error is not None
                raise session.error
            return session

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def live_count(self, proposer_key: bytes | None = None) -> int:
        """Slots in use (OPEN/RUNNING sessions and reservations), in all or for one proposer."""
        with self._lock:
            if proposer_key is None:
                return sum(1 for s in self._sessions.values() if s.live) + sum(
                    self._reserved.values()
                )
            return sum(
                1 for s in self._sessions.values() if s.live and s.proposer_key == proposer_key
            ) + self._reserved.get(proposer_key, 0)

    @property
    def scheduler(self) -> Scheduler:
        """The one timer thread behind every deadline and retention period."""
        return self._scheduler

    @property
    def max_sessions(self) -> int:
        """How many live sessions this manager allows."""
        return self._max_sessions

    # --- create ---------------------------------------------------------------------------

    def create(self, contract_bytes: bytes, proposal: SessionProposal | None) -> Session:
        """Validate the contract and the signed proposal; open a session with a fresh id.

        ``proposal`` must be signed by a party of the contract (``enclave.admission``);
        the session holds one of that proposer's slots while OPEN or RUNNING.
        A contract with capability tests has them run first, on the loaded
        model, before anyone can submit; a score below the contract's
        ``min_score_percent`` refuses the session (``CapabilityError``).
        """
        contract = parse_contract(contract_bytes)
        admitted = self._admission.check(contract, proposal)
        with self._lock:
            self._check_capacity(admitted)
            self._admission.remember(admitted)
            # Hold the slot while the capability tests run (outside the lock).
            self._reserved[admitted.proposer_key] = self._reserved.get(admitted.proposer_key, 0) + 1
        try:
            session_id = self._route + os.urandom(SESSION_ID_SIZE - len(self._route))
            capability = self._measure(contract, session_id) if contract.capability_tests else None
        finally:
            with self._lock:
                self._release(admitted.proposer_key)
        with self._lock:
            self._check_capacity(admitted)
            now = time.monotonic()
            session = Session(
                session_id=session_id,
                contract=contract,
                created=now,
                deadline=now + admitted.timeout_seconds,
                proposer=admitted.proposer,
                proposer_key=admitted.proposer_key,
                capability=capability,
            )
            self._sessions[session.session_id] = session
            self._start_timer(session, admitted.timeout_seconds, self._expire)
        log.info(
            "session %s opened by %s: %d parties, timeout %ds",
            session.session_id.hex()[:8],
            admitted.proposer,
            len(contract.parties),
            admitted.timeout_seconds,
        )
        return session

    def _release(self, proposer_key: bytes) -> None:
        left = self._reserved.get(proposer_key, 0) - 1
        if left > 0:
            self._reserved[proposer_key] = left
        else:
            self._reserved.pop(proposer_key, None)

    def _check_capacity(self, admitted: Admitted) -> None:
        with self._lock:
            total = self.live_count()
            if total >= self._max_sessions:
                raise CapacityError(
                    "session.capacity",
                    "too many live sessions",
                    expected=f"< {self._max_sessions}",
                    actual=total,
                )
            mine = self.live_count(admitted.proposer_key)
            if mine >= self._max_per_proposer:
                raise CapacityError(
                    "session.proposer_capacity",
                    f"{admitted.proposer!r} already holds as many live sessions as one "
                    "proposer may (finished and aborted sessions free their slot at once)",
                    expected=f"< {self._max_per_proposer}",
                    actual=mine,
                )

    def _measure(self, contract: Contract, session_id: bytes) -> CapabilityRecord:
        """Run the contract's public tests; the record binds session, contract and claims."""
        try:
            outcomes = run_tests(contract, self._runner)
        except TcmeError:
            raise
        except Exception as err:  # the model library failed; no detail
            raise EnclaveFailure(
                "capability.run", f"capability tests could not run ({type(err).__name__})"
            ) from None
        record = parse_record(
            build_record(
                session_id=session_id,
                contract_digest=contract.digest,
                claims_digest=self._claims_digest,
                outcomes=outcomes,
            )
        )
        log.info(
            "session %s capability tests: %d/%d passed",
            session_id.hex()[:8],
            record.passed,
            record.total,
        )
        if not record.meets(contract.min_score_percent):
            raise CapabilityError(
                "capability.score",
                "the loaded model fails the contract's capability tests; session refused",
                expected=f">= {contract.min_score_percent}% of {record.total}",
                actual=f"{record.passed}/{record.total}",
            )
        return record

    # --- inputs ---------------------------------------------------------------------------

    def submit(self, session_id: bytes, party: str, enc: bytes, ciphertext: bytes) -> Accepted:
        """Accept one party's sealed input; returns the enclave-signed acknowledgement.

        An input its party signed that fails any check ends the session for every
        party with that one error (raised here too). Bytes the party did not sign
        are refused without touching the session. The last valid input starts the
        model run.
        """
        with self._lock:
            session = self.get(session_id)
            session.contract.party(party)  # unknown party: ContractError, session unaffected
            if session.state is not State.OPEN:
                raise SessionStateError(
                    "session.state",
                    "inputs are closed",
                    expected="OPEN",
                    actual=session.state.name,
                )
            if party in session.accepted:
                raise SessionStateError(
                    "input.duplicate", f"{party!r} has already submitted its input"
                )
            try:
                opened = open_input(
                    hpke_key=self._keys.hpke,
                    contract=session.contract,
                    session_id=session.session_id,
                    party=party,
                    enc=enc,
                    ciphertext=ciphertext,
                )
            except SignedInputError as err:
                self._fail(session, err)
                # The public error: its detail (maybe about the party's value) is sealed.
                assert session.error is not None
                raise session.error from None
            except TcmeError:
                # Bytes the party did not sign (undecryptable, misframed, wrong key) are
                # nobody's input: refused alone, so a stranger or the proxy cannot end
                # the parties' session by sending garbage in a party's name.
                log.info(
                    "session %s: unauthenticated input for %s refused",
                    session.session_id.hex()[:8],
                    party,
                )
                raise
            session.inputs[party] = opened
            session.accepted.add(party)
            received, expected = len(session.inputs), len(session.contract.parties)
            log.info(
                "session %s: input from %s accepted (%d/%d)",
                session.session_id.hex()[:8],
                party,
                received,
                expected,
            )
            if received == expected:
                session.state = State.RUNNING
                threading.Thread(
                    target=self._run, args=(session,), name="tcme-session", daemon=True
                ).start()
            return Accepted(
                ciphertext_sha256=opened.ciphertext_sha256,
                received=received,
                expected=expected,
                ack_signature=sign_submit_ack(
                    session.session_id, party, opened.ciphertext_sha256, self._keys.signing
                ),
            )

    # --- run ------------------------------------------------------------------------------

    def _run(self, session: Session) -> None:
        contract = session.contract
        values: dict[str, Any] = {}
        for opened in session.inputs.values():
            values.update(opened.values)
        records = [
            InputRecord(
                p.name, session.inputs[p.name].commitment, session.inputs[p.name].ciphertext_sha256
            )
            for p in contract.parties
        ]
        error: TcmeError | None
        try:
            results = dict(self._runner(contract, values))
        except TcmeError as err:
            results, error = {}, err
        except Exception as err:  # the model library failed: no detail, it may quote the prompt
            results, error = (
                {},
                EnclaveFailure("inference.failed", f"model call failed ({type(err).__name__})"),
            )
        else:
            error = None
        finally:
            # Erase plaintext inputs before anything is sealed or signed.
            values.clear()
            session.inputs.clear()
        if error is None:
            try:
                outputs, output_records = self._seal_outputs(session, results)
            except TcmeError as err:
                error = err
            finally:
                results.clear()
        with self._lock:
            if error is not None:
                self._fail(session, error, from_run=True)
                return
            receipt = build_receipt(
                session_id=session.session_id,
                contract_digest=contract.digest,
                claims_digest=self._claims_digest,
                inputs=records,
                outputs=output_records,
                completed_unix_ms=int(time.time() * 1000),
                # Kind "general": state what was erased and checked (enclave.inference).
                stateless=contract.has_turns,
                capability=session.capability.summary() if session.capability else None,
            )
            session.outputs = tuple(outputs)
            session.receipt = receipt
            session.receipt_signature = sign_receipt(receipt, self._keys.signing)
            session.state = State.DONE
            self._retain(session)
            session.finished.set()
        log.info("session %s done; its state erased", session.session_id.hex()[:8])

    def _seal_outputs(
        self, session: Session, results: Mapping[str, str]
    ) -> tuple[list[SealedOutput], list[OutputRecord]]:
        outputs: list[SealedOutput] = []
        records: list[OutputRecord] = []
        for spec in session.contract.outputs:
            value = results.get(spec.name)
            if not isinstance(value, str) or not spec.accepts(value):
                raise OutputInvalid(
                    spec.name,
                    "output.constraint",
                    f"output {spec.name!r} is missing or off-contract",
                )
            salt = os.urandom(SALT_SIZE)
            # Sealed to the contract's recipients of this output and to nobody else;
            # an internal output (no recipients) is never sealed.
            for recipient, enc, ciphertext in seal_output(
                contract=session.contract,
                session_id=session.session_id,
                name=spec.name,
                value=value,
                salt=salt,
            ):
                outputs.append(SealedOutput(spec.name, recipient, enc, ciphertext))
            records.append(
                OutputRecord(spec.name, spec.recipients, output_commitment(spec.name, value, salt))
            )
        return outputs, records

    # --- results --------------------------------------------------------------------------

    def collect(
        self, session_id: bytes, party: str, signature: bytes, *, timeout: float | None
    ) -> Result:
        """Wait up to ``timeout`` seconds for the session to end; return ``party``'s share.

        The request must be signed by ``party``'s contract key. Raises the
        session's terminal error when it failed, ``SessionStateError``
        (``session.pending``) when ``timeout`` passes first.
        """
        with self._lock:
            session = self._sessions.get(bytes(session_id))
            if session is None:
                self.get(session_id)  # raises SessionNotFound
            assert session is not None
            verify_party_request(
                session.contract,
                result_request_message(session.session_id, party),
                party,
                signature,
                check="result_request.signature",
            )
        session.finished.wait(timeout)
        with self._lock:
            if session.state is State.FAILED:
                self._mark_collected(session, party)
                assert session.error is not None
                raise session.error
            if session.state is not State.DONE:
                raise SessionStateError(
                    "session.pending",
                    "the session has not finished yet",
                    expected="DONE",
                    actual=session.state.name,
                )
            result = Result(
                outputs=tuple(o for o in session.outputs if o.recipient == party),
                receipt=session.receipt,
                receipt_signature=session.receipt_signature,
            )
            self._mark_collected(session, party)
            return result

    def abort(self, session_id: bytes, party: str, signature: bytes) -> State:
        """End the session for everyone at ``party``'s signed request."""
        with self._lock:
            session = self.get(session_id)
            verify_party_request(
                session.contract,
                abort_request_message(session.session_id, party),
                party,
                signature,
                check="abort_request.signature",
            )
            if session.state is not State.OPEN:
                raise SessionStateError(
                    "session.state",
                    "only an open session can be aborted",
                    expected="OPEN",
                    actual=session.state.name,
                )
            self._fail(session, SessionAborted("session.aborted", f"party {party!r} aborted"))
            return session.state

    # --- endings --------------------------------------------------------------------------

    def _fail(self, session: Session, error: TcmeError, *, from_run: bool = False) -> None:
        """End ``session`` with ``error``: public reason for all, detail sealed to the entitled."""
        with self._lock:
            if session.state in (State.DONE, State.FAILED):
                return
            session.inputs.clear()
            session.outputs = ()
            disclosure = disclose(error, session.contract, from_run=from_run)
            record = build_failure(
                session_id=session.session_id,
                contract=session.contract,
                claims_digest=self._claims_digest,
                reason=disclosure.public.check,
                private={party: disclosure.private for party in disclosure.entitled},
                signing_key=self._keys.signing,
                completed_unix_ms=int(time.time() * 1000),
            )
            attach_failure(disclosure.public, record)
            session.state = State.FAILED
            session.error = disclosure.public
            session.failure = record
            self._retain(session)
            session.finished.set()
        # The public reason only: the private check could say which value failed.
        log.warning("session %s failed: %s", session.session_id.hex()[:8], disclosure.public.check)

    def _expire(self, session: Session) -> None:
        with self._lock:
            if session.state is not State.OPEN:
                return
            missing = [p.name for p in session.contract.parties if p.name not in session.inputs]
            self._fail(
                session,
                SessionTimeout(
                    "session.timeout",
                    f"inputs missing after {session.contract.timeout_seconds}s",
                    expected="all parties",
                    actual="missing: " + ", ".join(missing),
                ),
            )

    def _retain(self, session: Session) -> None:
        """The session ended: its slot is free now; keep its record a while, bounded."""
        self._cancel_timers(session)
        session.ended = time.monotonic()
        self._start_timer(session, self._retention, self._remove)
        ended = sorted(
            (s for s in self._sessions.values() if not s.live), key=lambda s: s.ended or 0.0
        )
        mine = [s for s in ended if s.proposer_key == session.proposer_key]
        for old in mine[: max(0, len(mine) - self._max_retained_per_proposer)]:
            self._remove(old)
        ended = [s for s in ended if s.session_id in self._sessions]
        for old in ended[: max(0, len(ended) - self._max_retained)]:
            self._remove(old)

    def _mark_collected(self, session: Session, party: str) -> None:
        session.collected.add(party)
        if session.collected >= {p.name for p in session.contract.parties}:
            self._remove(session)

    def _remove(self, session: Session) -> None:
        with self._lock:
            self._cancel_timers(session)
            if self._sessions.get(session.session_id) is session:
                del self._sessions[session.session_id]
                session.outputs = ()
                session.receipt = session.receipt_signature = b""
                log.info("session %s erased", session.session_id.hex()[:8])

    def _start_timer(
        self, session: Session, seconds: float, action: Callable[[Session], None]
    ) -> None:
        session.timers.append(self._scheduler.call_later(seconds, lambda: action(session)))

    def _cancel_timers(self, session: Session) -> None:
        for timer in session.timers:
            timer.cancel()
        session.timers.clear()

    def close(self) -> None:
        """Drop every session (enclave shutdown)."""
        with self._lock:
            for session in list(self._sessions.values()):
                # Wakes any GetResult still waiting, with an error rather than a hang.
                self._fail(session, EnclaveFailure("enclave.shutdown", "the enclave stopped"))
                self._remove(session)
        self._scheduler.close()
