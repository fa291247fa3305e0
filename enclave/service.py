"""The gRPC servicer: decode, call the enclave, encode; map errors to status codes.

Every error leaves as a gRPC status with a ``google.rpc.Status`` detail holding
one ``google.rpc.ErrorInfo`` (domain ``tcme.dev``, reason = the failed check;
metadata ``error``, ``detail``, ``expected``, ``actual``). Messages come from
``TcmeError.message()``, which never quotes an input value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from attestation.errors import BindingError, ParseError, SignatureError, TcmeError, UsageError
from attestation.providers.base import Evidence
from enclave.inference import InferenceError
from enclave.runtime import Enclave, EnclaveDraining
from enclave.session import (
    CapacityError,
    EnclaveFailure,
    SessionAborted,
    SessionNotFound,
    SessionStateError,
    SessionTimeout,
    State,
)
from tcme.contract.errors import ContractError, InputError
from tcme.v1 import evidence_pb2, tcme_pb2, tcme_pb2_grpc
from tcme.wire.requests import ERROR_DOMAIN

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides the code.
_CODES: tuple[tuple[type[TcmeError], grpc.StatusCode], ...] = (
    (SessionNotFound, grpc.StatusCode.NOT_FOUND),
    (SessionTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (SessionAborted, grpc.StatusCode.ABORTED),
    (SessionStateError, grpc.StatusCode.FAILED_PRECONDITION),
    (CapacityError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (EnclaveDraining, grpc.StatusCode.UNAVAILABLE),
    (EnclaveFailure, grpc.StatusCode.INTERNAL),
    (InferenceError, grpc.StatusCode.INTERNAL),
    (SignatureError, grpc.StatusCode.PERMISSION_DENIED),
    (ContractError, grpc.StatusCode.INVALID_ARGUMENT),
    (InputError, grpc.StatusCode.INVALID_ARGUMENT),
    (ParseError, grpc.StatusCode.INVALID_ARGUMENT),
    (BindingError, grpc.StatusCode.INVALID_ARGUMENT),
    (UsageError, grpc.StatusCode.INVALID_ARGUMENT),
)

_TEE = {"sev-snp": evidence_pb2.TEE_TYPE_SEV_SNP, "tdx": evidence_pb2.TEE_TYPE_TDX}
_STATE = {
    State.OPEN: tcme_pb2.SESSION_STATE_OPEN,
    State.RUNNING: tcme_pb2.SESSION_STATE_RUNNING,
    State.DONE: tcme_pb2.SESSION_STATE_DONE,
    State.FAILED: tcme_pb2.SESSION_STATE_FAILED,
}

T = TypeVar("T")

# Seconds before the call deadline at which GetResult gives up waiting.
PENDING_MARGIN = 0.2


def status_code_for(error: TcmeError) -> grpc.StatusCode:
    """The gRPC status code a tcme error maps to (INTERNAL for anything unlisted)."""
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def status_for(error: TcmeError) -> grpc.Status:
    """A ``grpc.Status`` carrying ``google.rpc.Status`` + ``ErrorInfo`` for ``error``."""
    code = status_code_for(error)
    info = error_details_pb2.ErrorInfo(
        domain=ERROR_DOMAIN,
        reason=error.check,
        metadata={k: v for k, v in _metadata(error).items() if v},
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.message(), details=[detail]
    )
    return rpc_status.to_status(status)


def _metadata(error: TcmeError) -> dict[str, str]:
    data = error.to_dict()
    return {
        "error": data["error"],
        "detail": data["detail"] or "",
        "expected": data["expected"] or "",
        "actual": data["actual"] or "",
    }


class TcmeServicer(tcme_pb2_grpc.TcmeServicer):
    """``tcme.v1.Tcme`` backed by one ``Enclave``."""

    def __init__(self, enclave: Enclave) -> None:
        self._enclave = enclave

    def _call(self, context: grpc.ServicerContext, method: str, body: Callable[[], T]) -> T:
        try:
            return body()
        except TcmeError as err:
            code = status_code_for(err)
            log.info("%s -> %s %s", method, code.name, err.check)
            context.abort_with_status(status_for(err))
            raise AssertionError("abort_with_status returned") from None  # pragma: no cover

    def CreateSession(
        self, request: tcme_pb2.CreateSessionRequest, context: grpc.ServicerContext
    ) -> tcme_pb2.CreateSessionResponse:
        """Validate the contract and open a session."""

        def body() -> tcme_pb2.CreateSessionResponse:
            self._enclave.check_accepting()
            session = self._enclave.sessions.create(request.contract)
            return tcme_pb2.CreateSessionResponse(
                session_id=session.session_id,
                contract_digest=session.contract.digest,
                expires_unix_ms=session.expires_unix_ms,
            )

        return self._call(context, "CreateSession", body)

    def GetSession(
        self, request: tcme_pb2.GetSessionRequest, context: grpc.ServicerContext
    ) -> tcme_pb2.GetSessionResponse:
        """The session's contract bytes and progress."""

        def body() -> tcme_pb2.GetSessionResponse:
            session = self._enclave.sessions.get(request.session_id)
            return tcme_pb2.GetSessionResponse(
                contract=session.contract.raw,
                contract_digest=session.contract.digest,
                state=_STATE[session.state],
                submitted_parties=session.submitted(),
                expires_unix_ms=session.expires_unix_ms,
            )

        return self._call(context, "GetSession", body)

    def Attest(
        self, request: tcme_pb2.AttestRequest, context: grpc.ServicerContext
    ) -> tcme_pb2.AttestResponse:
        """Fresh evidence binding claims, contract, session and the caller's nonce."""

        def body() -> tcme_pb2.AttestResponse:
            attestation = self._enclave.attest(request.session_id, request.nonce)
            return tcme_pb2.AttestResponse(
                evidence=_evidence(attestation.evidence),
                claims=attestation.claims,
                contract=attestation.contract,
                session_id=attestation.session_id,
                capability=attestation.capability,
            )

        return self._call(context, "Attest", body)

    def SubmitInput(
        self, request: tcme_pb2.SubmitInputRequest, context: grpc.ServicerContext
    ) -> tcme_pb2.SubmitInputResponse:
        """One party's sealed, signed input."""

        def body() -> tcme_pb2.SubmitInputResponse:
            digest, received, expected = self._enclave.sessions.submit(
                request.session_id, request.party, request.enc, request.ciphertext
            )
            return tcme_pb2.SubmitInputResponse(
                ciphertext_sha256=digest, inputs_received=received, inputs_expected=expected
            )

        return self._call(context, "SubmitInput", body)

    def GetResult(
        self, request: tcme_pb2.GetResultRequest, context: grpc.ServicerContext
    ) -> tcme_pb2.GetResultResponse:
        """Wait (within the call deadline) for the session to end; this party's share."""

        def body() -> tcme_pb2.GetResultResponse:
            remaining = context.time_remaining()
            result = self._enclave.sessions.collect(
                request.session_id,
                request.party,
                request.signature,
                # Answer "session.pending" a little before the caller's deadline, so the
                # caller learns the session is still open rather than a bare timeout.
                timeout=None if remaining is None else max(0.0, remaining - PENDING_MARGIN),
            )
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

        return self._call(context, "GetResult", body)

    def AbortSession(
        self, request: tcme_pb2.AbortSessionRequest, context: grpc.ServicerContext
    ) -> tcme_pb2.AbortSessionResponse:
        """End the session for everyone at a party's signed request."""

        def body() -> tcme_pb2.AbortSessionResponse:
            state = self._enclave.sessions.abort(
                request.session_id, request.party, request.signature
            )
            return tcme_pb2.AbortSessionResponse(state=_STATE[state])

        return self._call(context, "AbortSession", body)


def _evidence(evidence: Evidence) -> evidence_pb2.Evidence:
    return evidence_pb2.Evidence(
        tee=_TEE.get(evidence.tee, evidence_pb2.TEE_TYPE_UNSPECIFIED),
        report=evidence.raw,
        certs_pem=evidence.certs,
        simulated=evidence.simulated,
        provider=evidence.provider,
    )
