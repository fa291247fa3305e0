"""Signed control messages: session proposals, result/abort requests, submit acks.

A result slot or a session abort must come from the party itself, not from the
host or another party, so these requests carry an Ed25519 signature by the
party's contract key over ``lp(label) || lp(session_id) || lp(party)``.

A session proposal (CreateSession) is signed by one party of the contract, the
proposer, over::

    lp("tcme/v1/create-session") || lp(contract_digest) || lp(proposer)
      || lp(nonce) || lp(str(timestamp_unix_ms)) || lp(str(timeout_seconds))

so a stranger cannot open sessions (slots are counted per proposer key) and a
captured proposal cannot be replayed (fresh nonce, timestamp window).

The enclave acknowledges an accepted input with its receipt key over::

    lp("tcme/v1/submit-ack") || lp(session_id) || lp(party) || lp(ciphertext_sha256)

so a proxy that drops an input cannot make the party believe it arrived.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from attestation.errors import SignatureError
from tcme.base.encoding import lp_join
from tcme.base.keys import PartyKeys, ed25519_public
from tcme.contract.model import Contract

RESULT_LABEL = "tcme/v1/get-result"
ABORT_LABEL = "tcme/v1/abort"
CREATE_LABEL = "tcme/v1/create-session"
SUBMIT_ACK_LABEL = "tcme/v1/submit-ack"
PROPOSAL_NONCE_SIZE = 32
MIN_PROPOSAL_NONCE_SIZE = 16
MAX_PROPOSAL_NONCE_SIZE = 64
ERROR_DOMAIN = "tcme.dev"


def result_request_message(session_id: bytes, party: str) -> bytes:
    """What ``sign_result_request`` signs."""
    return lp_join(RESULT_LABEL, session_id, party)


def abort_request_message(session_id: bytes, party: str) -> bytes:
    """What ``sign_abort_request`` signs."""
    return lp_join(ABORT_LABEL, session_id, party)


@dataclass(frozen=True)
class SessionProposal:
    """The signed part of a CreateSession request (``tcme.v1.CreateSessionRequest``)."""

    proposer: str
    nonce: bytes
    timestamp_unix_ms: int
    timeout_seconds: int
    signature: bytes


def create_request_message(
    contract_digest: bytes, proposer: str, nonce: bytes, timestamp_unix_ms: int, timeout: int
) -> bytes:
    """What the proposer signs for CreateSession."""
    return lp_join(
        CREATE_LABEL, contract_digest, proposer, nonce, str(timestamp_unix_ms), str(timeout)
    )


def sign_session_proposal(
    contract: Contract,
    proposer: str,
    signing_key: ed25519.Ed25519PrivateKey | PartyKeys,
    *,
    timeout_seconds: int | None = None,
    nonce: bytes | None = None,
    timestamp_unix_ms: int | None = None,
) -> SessionProposal:
    """Party side: sign a proposal to open a session of ``contract`` as ``proposer``.

    ``timeout_seconds`` defaults to the contract's; a shorter one holds the
    enclave's slot for less time. Raises ``ContractError`` when ``proposer`` is
    not a party of the contract.
    """
    contract.party(proposer)
    timeout = contract.timeout_seconds if timeout_seconds is None else timeout_seconds
    nonce = os.urandom(PROPOSAL_NONCE_SIZE) if nonce is None else nonce
    stamp = int(time.time() * 1000) if timestamp_unix_ms is None else timestamp_unix_ms
    message = create_request_message(contract.digest, proposer, nonce, stamp, timeout)
    return SessionProposal(
        proposer=proposer,
        nonce=nonce,
        timestamp_unix_ms=stamp,
        timeout_seconds=timeout,
        signature=_key(signing_key).sign(message),
    )


def submit_ack_message(session_id: bytes, party: str, ciphertext_sha256: bytes) -> bytes:
    """What the enclave's receipt key signs when it accepts an input."""
    return lp_join(SUBMIT_ACK_LABEL, session_id, party, ciphertext_sha256)


def sign_submit_ack(
    session_id: bytes,
    party: str,
    ciphertext_sha256: bytes,
    signing_key: ed25519.Ed25519PrivateKey,
) -> bytes:
    """Enclave side: ``SubmitInputResponse.ack_signature``."""
    return signing_key.sign(submit_ack_message(session_id, party, ciphertext_sha256))


def verify_submit_ack(
    claims_signing_key: ed25519.Ed25519PublicKey,
    session_id: bytes,
    party: str,
    ciphertext_sha256: bytes,
    signature: bytes,
) -> None:
    """Party side: the attested enclave key acknowledged exactly this ciphertext.

    Raises ``SignatureError`` (``submit.ack_signature``).
    """
    try:
        claims_signing_key.verify(
            signature, submit_ack_message(session_id, party, ciphertext_sha256)
        )
    except InvalidSignature as err:
        raise SignatureError(
            "submit.ack_signature",
            "the submit acknowledgement is not signed by the attested enclave key "
            "(the input may never have reached the enclave)",
        ) from err


def sign_result_request(
    session_id: bytes, party: str, signing_key: ed25519.Ed25519PrivateKey | PartyKeys
) -> bytes:
    """Signature for ``GetResultRequest.signature``."""
    return _key(signing_key).sign(result_request_message(session_id, party))


def sign_abort_request(
    session_id: bytes, party: str, signing_key: ed25519.Ed25519PrivateKey | PartyKeys
) -> bytes:
    """Signature for ``AbortSessionRequest.signature``."""
    return _key(signing_key).sign(abort_request_message(session_id, party))


def verify_party_request(
    contract: Contract, message: bytes, party: str, signature: bytes, *, check: str
) -> None:
    """Enclave side: ``signature`` by ``party``'s contract key over ``message``.

    Raises ``SignatureError`` (``check``) or ``ContractError`` for an unknown party.
    """
    entry = contract.party(party)
    try:
        ed25519_public(entry.signing_key, "contract.signing_key").verify(signature, message)
    except InvalidSignature as err:
        raise SignatureError(
            check, f"request not signed by the contract key of party {party!r}"
        ) from err


def error_info(rpc_error: Any) -> dict[str, str] | None:
    """The tcme ErrorInfo a gRPC error carries (reason = failed check), or None.

    Keys: ``reason`` plus the metadata ``error``, ``detail``, ``expected``, ``actual``.
    """
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    try:
        status = rpc_status.from_call(rpc_error)
    except ValueError:
        return None
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Is(info.DESCRIPTOR) and detail.Unpack(info) and info.domain == ERROR_DOMAIN:
            return {"reason": info.reason, **dict(info.metadata)}
    return None


def _key(key: ed25519.Ed25519PrivateKey | PartyKeys) -> ed25519.Ed25519PrivateKey:
    return key.signing_key if isinstance(key, PartyKeys) else key
