"""The party's gRPC client: create, attest, submit, collect — verifying at every step.

Everything the host proxy returns is untrusted. Keys for sealing inputs come
only from an ``AttestationResult`` that passed ``verify_attestation`` under the
party's own policy with its own fresh nonce; results count only once the
enclave-signed receipt verifies with the attested signing key.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from attestation.errors import BindingError, UsageError
from tcme.client.errors import BUSY_REASONS, RemoteError
from tcme.client.policy import PartyPolicy
from tcme.client.verify import AttestationResult, verify_attestation
from tcme.v1 import tcme_pb2, tcme_pb2_grpc
from tcme.wire import (
    OpenedOutput,
    PartyKeys,
    Receipt,
    SealedInput,
    open_output,
    parse_contract,
    seal_input,
    sign_abort_request,
    sign_result_request,
    verify_receipt,
)
from tcme.wire.requests import sign_session_proposal, verify_submit_ack

log = logging.getLogger(__name__)

NONCE_SIZE = 32
DEFAULT_TIMEOUT = 30.0
DEFAULT_RESULT_TIMEOUT = 600.0
# Bounds on the server's "call again in" hint (an untrusted proxy may send any value).
MIN_RETRY_SECONDS = 0.05
MAX_RETRY_SECONDS = 5.0
_PENDING_STATES = frozenset({"OPEN", "RUNNING"})
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class SessionInfo:
    """What CreateSession returned."""

    session_id: bytes
    contract_digest: bytes
    expires_unix_ms: int


@dataclass(frozen=True)
class SessionStatus:
    """What GetSession returned (untrusted progress information)."""

    contract: bytes
    contract_digest: bytes
    state: str
    submitted_parties: tuple[str, ...]
    expires_unix_ms: int


@dataclass(frozen=True)
class SubmittedInput:
    """A sealed input the enclave accepted; keep it to check the receipt."""

    sealed: SealedInput
    inputs_received: int
    inputs_expected: int


@dataclass(frozen=True)
class PartyResult:
    """This party's decrypted outputs, each found in the verified receipt."""

    outputs: dict[str, str]
    receipt: Receipt
    opened: tuple[OpenedOutput, ...]


def create_session_request(
    contract: bytes, proposer: str, keys: PartyKeys, *, timeout_seconds: int | None = None
) -> tcme_pb2.CreateSessionRequest:
    """A CreateSession request for ``contract``, signed by party ``proposer``'s key."""
    proposal = sign_session_proposal(
        parse_contract(contract), proposer, keys, timeout_seconds=timeout_seconds
    )
    return tcme_pb2.CreateSessionRequest(
        contract=contract,
        proposer=proposal.proposer,
        nonce=proposal.nonce,
        timestamp_unix_ms=proposal.timestamp_unix_ms,
        timeout_seconds=proposal.timeout_seconds,
        signature=proposal.signature,
    )


def disclosed_error(
    err: RemoteError, attestation: AttestationResult, party: str, keys: PartyKeys
) -> RemoteError:
    """A failed session's error as this party may know it, checked against the signed record.

    The enclave tells everyone a fixed public reason; when this party is entitled
    to the detail (its own input, an output it receives), the detail comes sealed
    to its key, committed in the enclave-signed failure receipt. Returns a
    ``RemoteError`` whose ``check``/``detail`` are that opened detail (``disclosure``
    ``"sealed"``) or the public reason (``"public"``), with ``failure_reason`` the
    public one. Raises ``SignatureError``/``BindingError`` when the record is forged.
    """
    failure = err.failure
    if failure is None or attestation.contract is None:
        return err
    from tcme.wire.failure import SealedDetail, verify_failure

    detail = None
    if failure.HasField("detail"):
        sealed = failure.detail
        detail = SealedDetail(str(sealed.party), bytes(sealed.enc), bytes(sealed.ciphertext))
    verified = verify_failure(
        bytes(failure.receipt),
        bytes(failure.receipt_signature),
        claims=attestation.claims,
        contract=attestation.contract,
        session_id=attestation.session_id,
        party=party,
        detail=detail,
        keys=keys,
    )
    if verified.reason != err.check:
        raise BindingError("failure.reason", expected=verified.reason, actual=err.check)
    private = verified.error
    if private is None:
        out = RemoteError(
            err.check, err.detail, code=err.code, expected=err.expected, actual=err.actual
        )
        out.disclosure = "public"
    else:
        out = RemoteError(
            private.get("check") or err.check,
            private.get("detail") or "",
            code=err.code,
            expected=private.get("expected"),
            actual=private.get("actual"),
        )
        out.disclosure = "sealed"
    out.failure = failure
    out.failure_reason = verified.reason
    return out


def _state_name(state: int) -> str:
    return tcme_pb2.SessionState.Name(state).removeprefix("SESSION_STATE_")


class TcmeClient:
    """A connection to a host proxy (or directly to an enclave, in tests)."""

    def __init__(
        self,
        target: str,
        *,
        tls_root: bytes | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if channel is not None:
            self._channel = channel
        elif tls_root is not None:
            root = tls_root if isinstance(tls_root, bytes) else Path(tls_root).read_bytes()
            creds = grpc.ssl_channel_credentials(root_certificates=root)
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = tcme_pb2_grpc.TcmeStub(self._channel)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> TcmeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, name: str, request: Any, timeout: float | None = None) -> Any:
        """One RPC; a "busy" refusal (nothing ran) is retried with backoff within ``timeout``."""
        budget = timeout or self.timeout
        deadline = time.monotonic() + budget
        pause = MIN_RETRY_SECONDS
        while True:
            left = max(deadline - time.monotonic(), MIN_RETRY_SECONDS)
            try:
                return getattr(self._stub, name)(request, timeout=left)
            except grpc.RpcError as err:
                error = RemoteError.from_rpc(err, name)
            if error.check not in BUSY_REASONS or time.monotonic() + pause >= deadline:
                raise error
            log.debug("%s refused as busy (%s); retrying in %.2f s", name, error.check, pause)
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    # -- session lifecycle -------------------------------------------------------------

    def create_session(
        self,
        contract: bytes,
        *,
        proposer: str,
        keys: PartyKeys,
        timeout_seconds: int | None = None,
    ) -> SessionInfo:
        """Propose canonical ``contract`` bytes as party ``proposer``, signed with its key.

        The enclave opens a session only for a fresh proposal signed by a party
        of the contract, and counts its slots per proposer. ``timeout_seconds``
        (default: the contract's) is how long the session waits for inputs.
        An answer for another contract (a host that swapped the session) raises
        ``BindingError`` (``session.contract_digest``): nothing is trusted from it.
        """
        response = self._call(
            "CreateSession",
            create_session_request(contract, proposer, keys, timeout_seconds=timeout_seconds),
        )
        proposed = parse_contract(contract).digest
        if bytes(response.contract_digest) != proposed:
            raise BindingError(
                "session.contract_digest",
                "the host answered with a session of another contract than the one proposed",
                expected=proposed.hex(),
                actual=bytes(response.contract_digest).hex(),
            )
        return SessionInfo(
            session_id=bytes(response.session_id),
            contract_digest=bytes(response.contract_digest),
            expires_unix_ms=response.expires_unix_ms,
        )

    def get_session(self, session_id: bytes) -> SessionStatus:
        """The session's contract and progress, as the (untrusted) host reports it."""
        response = self._call("GetSession", tcme_pb2.GetSessionRequest(session_id=session_id))
        return SessionStatus(
            contract=bytes(response.contract),
            contract_digest=bytes(response.contract_digest),
            state=_state_name(response.state),
            submitted_parties=tuple(response.submitted_parties),
            expires_unix_ms=response.expires_unix_ms,
        )

    def attest(
        self,
        policy: PartyPolicy,
        session_id: bytes = b"",
        *,
        nonce: bytes | None = None,
        at: datetime | None = None,
    ) -> AttestationResult:
        """Fetch evidence with a fresh nonce of our own and verify it under ``policy``."""
        nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
        response = self._call("Attest", tcme_pb2.AttestRequest(session_id=session_id, nonce=nonce))
        return verify_attestation(
            response, policy=policy, session_id=session_id, nonce=nonce, at=at
        )

    def submit_input(
        self,
        attestation: AttestationResult,
        party: str,
        keys: PartyKeys,
        values: Mapping[str, Any],
    ) -> SubmittedInput:
        """Sign and seal ``values`` to the attested enclave key, then submit them."""
        contract = attestation.contract
        if contract is None:
            raise UsageError("submit.session", "attest a session (not the bare enclave) first")
        sealed = seal_input(
            claims=attestation.claims,
            contract=contract,
            session_id=attestation.session_id,
            party=party,
            values=values,
            signing_key=keys,
        )
        try:
            response = self._call(
                "SubmitInput",
                tcme_pb2.SubmitInputRequest(
                    session_id=attestation.session_id,
                    party=party,
                    enc=sealed.enc,
                    ciphertext=sealed.ciphertext,
                ),
            )
        except RemoteError as err:
            raise disclosed_error(err, attestation, party, keys) from None
        # The enclave names what it received; a proxy that altered our bytes shows here
        # (and again in the signed receipt, which is what counts).
        if bytes(response.ciphertext_sha256) != sealed.ciphertext_sha256:
            raise BindingError(
                "submit.ciphertext_sha256",
                "the enclave did not receive the ciphertext this party sent",
                expected=sealed.ciphertext_sha256.hex(),
                actual=bytes(response.ciphertext_sha256).hex(),
            )
        # Signed by the attested enclave key: a proxy that dropped the input cannot
        # forge "accepted" (the party would otherwise wait out the session timeout).
        verify_submit_ack(
            attestation.claims.signing_public_key,
            attestation.session_id,
            party,
            sealed.ciphertext_sha256,
            bytes(response.ack_signature),
        )
        return SubmittedInput(
            sealed=sealed,
            inputs_received=response.inputs_received,
            inputs_expected=response.inputs_expected,
        )

    def get_result(
        self,
        attestation: AttestationResult,
        party: str,
        keys: PartyKeys,
        own_input: SealedInput | None,
        *,
        timeout: float = DEFAULT_RESULT_TIMEOUT,
    ) -> PartyResult:
        """Wait for the session to finish, open this party's outputs, verify the receipt."""
        contract = attestation.contract
        if contract is None:
            raise UsageError("result.session", "attest a session (not the bare enclave) first")
        session_id = attestation.session_id
        request = tcme_pb2.GetResultRequest(
            session_id=session_id,
            party=party,
            signature=sign_result_request(session_id, party, keys),
        )
        try:
            response = self._poll_result(request, timeout)
        except RemoteError as err:
            raise disclosed_error(err, attestation, party, keys) from None
        state = _state_name(response.state)
        if state != "DONE":
            raise BindingError("result.state", "no result released", expected="DONE", actual=state)
        opened = []
        for item in response.outputs:
            if item.recipient != party:
                raise BindingError("result.recipient", expected=party, actual=item.recipient)
            opened.append(
                open_output(
                    name=item.name,
                    recipient=item.recipient,
                    enc=bytes(item.enc),
                    ciphertext=bytes(item.ciphertext),
                    hpke_key=keys,
                    session_id=session_id,
                    contract_digest=contract.digest,
                )
            )
        receipt = verify_receipt(
            bytes(response.receipt),
            bytes(response.receipt_signature),
            claims=attestation.claims,
            contract=contract,
            session_id=session_id,
            own_input=own_input,
            party=party,
            outputs=opened,
            capability=attestation.capability,
        )
        return PartyResult(
            outputs={o.name: o.value for o in opened}, receipt=receipt, opened=tuple(opened)
        )

    def _poll_result(
        self, request: tcme_pb2.GetResultRequest, timeout: float
    ) -> tcme_pb2.GetResultResponse:
        """GetResult again while it answers "pending", until ``timeout`` seconds in all.

        Each call is a bounded long poll on the server; between calls the client
        waits the server's ``retry_after_ms`` (clamped), never past its deadline.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            response = self._call("GetResult", request, timeout=max(left, MIN_RETRY_SECONDS))
            state = _state_name(response.state)
            if state not in _PENDING_STATES:
                return response
            pause = min(max(response.retry_after_ms / 1000, MIN_RETRY_SECONDS), MAX_RETRY_SECONDS)
            if time.monotonic() + pause >= deadline:
                raise RemoteError(
                    "session.pending",
                    f"the session had not finished within {timeout:g} s",
                    code=grpc.StatusCode.DEADLINE_EXCEEDED,
                    expected="DONE",
                    actual=state,
                )
            log.debug("GetResult pending (%s); asking again in %.2f s", state, pause)
            time.sleep(pause)

    def abort(self, session_id: bytes, party: str, keys: PartyKeys) -> str:
        """End the session for every party (signed by this party); returns the new state."""
        response = self._call(
            "AbortSession",
            tcme_pb2.AbortSessionRequest(
                session_id=session_id,
                party=party,
                signature=sign_abort_request(session_id, party, keys),
            ),
        )
        return _state_name(response.state)


class Party:
    """One party's whole flow: attest, verify, submit, collect — the library's front door.

    >>> party = Party("alice", PartyKeys.load(key_file), PartyPolicy.load(policy_file),
    ...               TcmeClient("127.0.0.1:7100"))
    >>> attestation, result = party.run(session_id, {"alice_wealth": 12})
    """

    def __init__(self, name: str, keys: PartyKeys, policy: PartyPolicy, client: TcmeClient) -> None:
        self.name = name
        self.keys = keys
        self.policy = policy
        self.client = client

    def attest(self, session_id: bytes) -> AttestationResult:
        """Verify the enclave and the session under this party's policy."""
        return self.client.attest(self.policy, session_id)

    def submit(self, attestation: AttestationResult, values: Mapping[str, Any]) -> SubmittedInput:
        """Seal and submit this party's input under a verified attestation."""
        return self.client.submit_input(attestation, self.name, self.keys, values)

    def result(
        self,
        attestation: AttestationResult,
        own_input: SealedInput | None,
        *,
        timeout: float = DEFAULT_RESULT_TIMEOUT,
    ) -> PartyResult:
        """Collect and verify this party's outputs."""
        return self.client.get_result(attestation, self.name, self.keys, own_input, timeout=timeout)

    def run(
        self,
        session_id: bytes,
        values: Mapping[str, Any],
        *,
        timeout: float = DEFAULT_RESULT_TIMEOUT,
    ) -> tuple[AttestationResult, PartyResult]:
        """Attest, submit, wait, verify: the whole party side of one session."""
        attestation = self.attest(session_id)
        submitted = self.submit(attestation, values)
        return attestation, self.result(attestation, submitted.sealed, timeout=timeout)
