"""The gRPC servicer: decode, call the enclave, encode; map errors to status codes.

Every error leaves as a gRPC status with a ``google.rpc.Status`` detail holding
one ``google.rpc.ErrorInfo`` (domain ``tcme.dev``, reason = the failed check;
metadata ``error``, ``detail``, ``expected``, ``actual``: only those that are
set, each cut to a fixed size). Messages come from ``TcmeError.message()``,
which never quotes an input value.

The servicer decodes requests itself (``decoding_handler``), so bytes that are not
a valid message get INVALID_ARGUMENT (``request.malformed``) like any other
bad request, and it checks the size of every identifier before anything can
quote it. ``CallGate`` keeps the server answering under load: only a few
GetResult calls wait at a time (the others answer "pending" at once), calls
that can run long share what is left but ``RESERVED_WORKERS`` threads, and
Attest, GetSession and health always find a worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError

from attestation.errors import BindingError, ParseError, SignatureError, TcmeError, UsageError
from attestation.providers.base import Evidence
from attestation.tee import Tee
from enclave.admission import ReplayCacheFull, Unauthenticated
from enclave.disclosure import FailedRun, failure_of
from enclave.inference import InferenceError
from enclave.runtime import Enclave, EnclaveDraining
from enclave.session import (
    SESSION_ID_SIZE,
    CapacityError,
    EnclaveFailure,
    SessionAborted,
    SessionNotFound,
    SessionStateError,
    SessionTimeout,
    State,
)
from tcme.contract.errors import ContractError, InputError
from tcme.serving.status import error_status
from tcme.v1 import evidence_pb2, tcme_pb2
from tcme.wire.requests import SessionProposal

log = logging.getLogger(__name__)

SERVICE = tcme_pb2.DESCRIPTOR.services_by_name["Tcme"]

# Seconds before the call deadline at which GetResult stops waiting.
PENDING_MARGIN = 0.2
# Longest one GetResult call waits for the session to end before answering "pending".
MAX_RESULT_WAIT = 10.0
# A waiting GetResult looks at its caller (gone? cancelled?) this often.
WAIT_SLICE = 0.25
# How long a "pending" answer asks the caller to wait before it asks again.
RETRY_AFTER_MS = 500
# Worker threads that only cheap calls (Attest, GetSession, health) may use.
RESERVED_WORKERS = 8
# CreateSession calls that may parse and check contracts at once: contract checks are
# CPU work under the interpreter lock, and a stranger can send them without end.
CONCURRENT_CREATES = 2
# Longest party name a contract allows (tcme.contract.fields.PARTY_NAME).
MAX_PARTY_NAME = 32


class ServerBusy(TcmeError):
    """Too many long calls at once; the caller should retry."""


# Most specific first: the first matching class decides the code.
_CODES: tuple[tuple[type[TcmeError], grpc.StatusCode], ...] = (
    (SessionNotFound, grpc.StatusCode.NOT_FOUND),
    (SessionTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (SessionAborted, grpc.StatusCode.ABORTED),
    (SessionStateError, grpc.StatusCode.FAILED_PRECONDITION),
    (CapacityError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ReplayCacheFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (ServerBusy, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (EnclaveDraining, grpc.StatusCode.UNAVAILABLE),
    (EnclaveFailure, grpc.StatusCode.INTERNAL),
    (FailedRun, grpc.StatusCode.INTERNAL),
    (InferenceError, grpc.StatusCode.INTERNAL),
    (SignatureError, grpc.StatusCode.PERMISSION_DENIED),
    (ContractError, grpc.StatusCode.INVALID_ARGUMENT),
    (InputError, grpc.StatusCode.INVALID_ARGUMENT),
    (ParseError, grpc.StatusCode.INVALID_ARGUMENT),
    (BindingError, grpc.StatusCode.INVALID_ARGUMENT),
    (UsageError, grpc.StatusCode.INVALID_ARGUMENT),
)

# Keyed by str: a provider reports its TEE as a Tee value or its plain string.
_TEE: dict[str, evidence_pb2.TeeType] = {
    Tee.SEV_SNP: evidence_pb2.TEE_TYPE_SEV_SNP,
    Tee.TDX: evidence_pb2.TEE_TYPE_TDX,
    Tee.AZ_SNP_VTPM: evidence_pb2.TEE_TYPE_AZ_SNP_VTPM,
    Tee.AZ_TDX_VTPM: evidence_pb2.TEE_TYPE_AZ_TDX_VTPM,
}
# A state the enclave could not name (None) maps to nothing: the caller's default.
_STATE: dict[State | None, tcme_pb2.SessionState] = {
    State.OPEN: tcme_pb2.SESSION_STATE_OPEN,
    State.RUNNING: tcme_pb2.SESSION_STATE_RUNNING,
    State.DONE: tcme_pb2.SESSION_STATE_DONE,
    State.FAILED: tcme_pb2.SESSION_STATE_FAILED,
}

T = TypeVar("T")


def status_code_for(error: TcmeError) -> grpc.StatusCode:
    """The gRPC status code a tcme error maps to (INTERNAL for anything unlisted)."""
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def status_for(error: TcmeError, party: str = "") -> grpc.Status:
    """A ``grpc.Status`` carrying ``google.rpc.Status`` + ``ErrorInfo`` for ``error``.

    A failed session's error also carries its ``SessionFailure``: the signed
    failure receipt, and ``party``'s sealed detail when the request names one.
    """
    data = error.to_dict()
    record = failure_of(error)
    extra = []
    if record is not None:
        failure = tcme_pb2.SessionFailure(
            receipt=record.receipt, receipt_signature=record.receipt_signature
        )
        sealed = record.detail_for(party) if party else None
        if sealed is not None:
            failure.detail.CopyFrom(
                tcme_pb2.SealedErrorDetail(
                    party=sealed.party, enc=sealed.enc, ciphertext=sealed.ciphertext
                )
            )
        extra.append(failure)
    return error_status(
        status_code_for(error),
        error.check,
        error.message(),
        extra=extra,
        error=data["error"],
        detail=data["detail"],
        expected=data["expected"],
        actual=data["actual"],
    )


class CallGate:
    """Admission for calls that can run long, so cheap calls always find a worker.

    The worker threads split three ways: ``wait_slot`` grants at most
    ``workers // 4`` GetResult waits at once (a GetResult without a slot
    answers at once, "pending" or its result, like any cheap call);
    ``long_call`` admits CreateSession, SubmitInput and AbortSession up to what
    is left after the waits and ``RESERVED_WORKERS`` (and ``create_call`` at
    most ``CONCURRENT_CREATES`` CreateSession), and refuses the rest at once
    (RESOURCE_EXHAUSTED, ``server.busy``, safe to retry: nothing ran);
    the reserved threads are for cheap calls (Attest, GetSession, health,
    GetResult without a wait), which are never refused.
    """

    def __init__(self, workers: int) -> None:
        self.wait_limit = max(1, workers // 4)
        self.long_limit = workers - RESERVED_WORKERS - self.wait_limit
        if self.long_limit < 1:
            raise ValueError(f"too few workers ({workers}) for the reserved and waiting calls")
        self._long = threading.BoundedSemaphore(self.long_limit)
        self._creates = threading.BoundedSemaphore(CONCURRENT_CREATES)
        self._waits = threading.BoundedSemaphore(self.wait_limit)
        self._lock = threading.Lock()
        self._running = 0
        self._waiting = 0

    @property
    def running(self) -> int:
        """Long calls running now."""
        with self._lock:
            return self._running

    @property
    def waiting(self) -> int:
        """GetResult calls holding a wait slot now."""
        with self._lock:
            return self._waiting

    def _count(self, which: str, step: int) -> None:
        with self._lock:
            setattr(self, which, getattr(self, which) + step)

    @contextmanager
    def long_call(self) -> Iterator[None]:
        """Hold one long-call slot for the block; raises ``ServerBusy`` when none is free."""
        if not self._long.acquire(blocking=False):
            raise ServerBusy(
                "server.busy",
                "the enclave is busy; retry later",
                expected=f"at most {self.long_limit} long calls at once",
            )
        self._count("_running", 1)
        try:
            yield
        finally:
            self._count("_running", -1)
            self._long.release()

    @contextmanager
    def create_call(self) -> Iterator[None]:
        """A long-call slot that is also one of the ``CONCURRENT_CREATES`` contract checks."""
        if not self._creates.acquire(blocking=False):
            raise ServerBusy(
                "server.busy",
                "the enclave is busy opening sessions; retry later",
                expected=f"at most {CONCURRENT_CREATES} CreateSession calls at once",
            )
        try:
            with self.long_call():
                yield
        finally:
            self._creates.release()

    @contextmanager
    def wait_slot(self) -> Iterator[bool]:
        """Yields True while holding one of the wait slots, False when all are taken."""
        got = self._waits.acquire(blocking=False)
        if got:
            self._count("_waiting", 1)
        try:
            yield got
        finally:
            if got:
                self._count("_waiting", -1)
                self._waits.release()


def check_session_id(session_id: bytes, *, optional: bool = False) -> None:
    """Refuse an id of the wrong size before anything looks it up (or quotes it)."""
    if optional and not session_id:
        return
    if len(session_id) != SESSION_ID_SIZE:
        raise UsageError(
            "request.session_id",
            "malformed session id",
            expected=f"{SESSION_ID_SIZE} bytes",
            actual=f"{len(session_id)} bytes",
        )


def check_party(party: str) -> None:
    """Refuse a party name no contract can hold, by its size only."""
    if not 0 < len(party) <= MAX_PARTY_NAME:
        raise UsageError(
            "request.party",
            "malformed party name",
            expected=f"1..{MAX_PARTY_NAME} characters",
            actual=f"{len(party)} characters",
        )


def _pending(
    state: tcme_pb2.SessionState = tcme_pb2.SESSION_STATE_OPEN,
) -> tcme_pb2.GetResultResponse:
    return tcme_pb2.GetResultResponse(state=state, retry_after_ms=RETRY_AFTER_MS)


def _wait_seconds(context: CallContext) -> float:
    """How long this GetResult may wait: its deadline less a margin, at most MAX_RESULT_WAIT.

    grpc-python reports "no deadline" as None or a huge number; either means
    MAX_RESULT_WAIT (never an unbounded wait, never an overflow).
    """
    remaining = context.time_remaining()
    if remaining is None or remaining > MAX_RESULT_WAIT + PENDING_MARGIN:
        return MAX_RESULT_WAIT
    return max(0.0, remaining - PENDING_MARGIN)


class TcmeServicer:
    """``tcme.v1.Tcme`` backed by one ``Enclave``."""

    def __init__(self, enclave: Enclave, *, workers: int = 32) -> None:
        self._enclave = enclave
        self.gate = CallGate(workers)

    def CreateSession(
        self, request: tcme_pb2.CreateSessionRequest, context: CallContext
    ) -> tcme_pb2.CreateSessionResponse:
        """Validate the contract and the proposer's signed proposal; open a session."""
        self._enclave.check_accepting()
        proposal = (
            SessionProposal(
                proposer=request.proposer,
                nonce=request.nonce,
                timestamp_unix_ms=request.timestamp_unix_ms,
                timeout_seconds=request.timeout_seconds,
                signature=request.signature,
            )
            if request.signature
            else None
        )
        with self.gate.create_call():
            session = self._enclave.sessions.create(request.contract, proposal)
        return tcme_pb2.CreateSessionResponse(
            session_id=session.session_id,
            contract_digest=session.contract.digest,
            expires_unix_ms=session.expires_unix_ms,
        )

    def GetSession(
        self, request: tcme_pb2.GetSessionRequest, context: CallContext
    ) -> tcme_pb2.GetSessionResponse:
        """The session's contract bytes and progress."""
        check_session_id(request.session_id)
        session = self._enclave.sessions.get(request.session_id)
        return tcme_pb2.GetSessionResponse(
            contract=session.contract.raw,
            contract_digest=session.contract.digest,
            state=_STATE[session.state],
            submitted_parties=session.submitted(),
            expires_unix_ms=session.expires_unix_ms,
        )

    def Attest(
        self, request: tcme_pb2.AttestRequest, context: CallContext
    ) -> tcme_pb2.AttestResponse:
        """Fresh evidence binding claims, contract, session and the caller's nonce."""
        check_session_id(request.session_id, optional=True)
        attestation = self._enclave.attest(request.session_id, request.nonce)
        return tcme_pb2.AttestResponse(
            evidence=_evidence(attestation.evidence),
            claims=attestation.claims,
            contract=attestation.contract,
            session_id=attestation.session_id,
            capability=attestation.capability,
        )

    def SubmitInput(
        self, request: tcme_pb2.SubmitInputRequest, context: CallContext
    ) -> tcme_pb2.SubmitInputResponse:
        """One party's sealed, signed input."""
        check_session_id(request.session_id)
        check_party(request.party)
        with self.gate.long_call():
            accepted = self._enclave.sessions.submit(
                request.session_id, request.party, request.enc, request.ciphertext
            )
        return tcme_pb2.SubmitInputResponse(
            ciphertext_sha256=accepted.ciphertext_sha256,
            inputs_received=accepted.received,
            inputs_expected=accepted.expected,
            ack_signature=accepted.ack_signature,
        )

    def GetResult(
        self, request: tcme_pb2.GetResultRequest, context: CallContext
    ) -> tcme_pb2.GetResultResponse:
        """This party's share once the session ended; "pending" after a bounded wait.

        The wait is at most MAX_RESULT_WAIT (less with a shorter deadline), only
        while one of the gate's wait slots is free, and ends as soon as the
        caller goes away. A pending answer has state OPEN or RUNNING and
        ``retry_after_ms``; the caller asks again until its own deadline.
        """
        check_session_id(request.session_id)
        check_party(request.party)
        with self.gate.wait_slot() as may_wait:
            wait = _wait_seconds(context) if may_wait else 0.0
            until = time.monotonic() + wait
            while True:
                left = until - time.monotonic()
                try:
                    result = self._enclave.sessions.collect(
                        request.session_id,
                        request.party,
                        request.signature,
                        timeout=max(0.0, min(WAIT_SLICE, left)),
                    )
                    break
                except SessionStateError as err:
                    if err.check != "session.pending":
                        raise
                    if left <= 0 or not context.is_active():
                        return _pending(_STATE.get(_state_name(err), tcme_pb2.SESSION_STATE_OPEN))
        return tcme_pb2.GetResultResponse(
            state=tcme_pb2.SESSION_STATE_DONE,
            outputs=[
                tcme_pb2.EncryptedOutput(
                    name=o.name, recipient=o.recipient, enc=o.enc, ciphertext=o.ciphertext
                )
                for o in result.outputs
            ],
            receipt=result.receipt,
            receipt_signature=result.receipt_signature,
        )

    def AbortSession(
        self, request: tcme_pb2.AbortSessionRequest, context: CallContext
    ) -> tcme_pb2.AbortSessionResponse:
        """End the session for everyone at a party's signed request."""
        check_session_id(request.session_id)
        check_party(request.party)
        with self.gate.long_call():
            state = self._enclave.sessions.abort(
                request.session_id, request.party, request.signature
            )
        return tcme_pb2.AbortSessionResponse(state=_STATE[state])


def _state_name(err: SessionStateError) -> State | None:
    """The session state a "pending" error reports (its ``actual``)."""
    try:
        return State[str(err.actual)]
    except KeyError:
        return None


def decoding_handler(
    service: ServiceDescriptor, servicer: object, pool: Executor
) -> grpc.GenericRpcHandler:
    """Every (unary) method of ``service`` for a ``grpc.aio`` server, run on ``pool``.

    The servicer's method of each name runs on a ``pool`` thread once the
    request has arrived in full and decoded. Bytes that do not parse get
    INVALID_ARGUMENT (``request.malformed``) with an ErrorInfo, as every other
    malformed request does, instead of grpc's INTERNAL; a ``TcmeError`` becomes
    its status (``status_for``).
    """
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        body = getattr(servicer, method.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _decoding(method.name, request_cls, body, pool),
            response_serializer=response_cls.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


class CallContext:
    """What a servicer method on a pool thread may ask about its call.

    ``is_active`` turns False as soon as the caller cancels or the deadline
    passes (the serving loop cancels the call's coroutine), so a waiting
    method can give its thread back.
    """

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self._active = threading.Event()
        self._active.set()

    def time_remaining(self) -> float | None:
        """Seconds to the deadline, None without one."""
        return self._context.time_remaining()

    def is_active(self) -> bool:
        """False once the call ended on the network side."""
        return self._active.is_set()

    def end(self) -> None:
        """The call is over (cancelled, timed out or answered)."""
        self._active.clear()


def _decoding(
    name: str, request_cls: Any, body: Callable[[Any, Any], T], pool: Executor
) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[T]]:
    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> T:
        call = CallContext(context)
        request = None
        try:
            try:
                request = request_cls.FromString(raw)
            except DecodeError:
                raise UsageError(
                    "request.malformed",
                    f"the request is not a valid {request_cls.DESCRIPTOR.full_name}",
                    actual=f"{len(raw)} bytes",
                ) from None
            running = asyncio.get_running_loop()
            return await running.run_in_executor(pool, body, request, call)
        except TcmeError as err:
            code = status_code_for(err)
            log.info("%s -> %s %s", name, code.name, err.check)
            # Requests that name a party (SubmitInput, GetResult) get its sealed detail;
            # only that party's key opens it.
            party = str(getattr(request, "party", "") or "")
            await context.abort_with_status(status_for(err, party))
            raise AssertionError("abort_with_status returned") from None  # pragma: no cover
        finally:
            call.end()

    return handle


def _evidence(evidence: Evidence) -> evidence_pb2.Evidence:
    return evidence_pb2.Evidence(
        tee=_TEE.get(evidence.tee, evidence_pb2.TEE_TYPE_UNSPECIFIED),
        report=evidence.raw,
        certs_pem=evidence.certs,
        simulated=evidence.simulated,
        provider=evidence.provider,
    )
