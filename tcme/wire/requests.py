"""Party-signed control requests (collect result, abort) and gRPC error details.

A result slot or a session abort must come from the party itself, not from the
host or another party, so these requests carry an Ed25519 signature by the
party's contract key over ``lp(label) || lp(session_id) || lp(party)``.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from attestation.errors import SignatureError
from tcme.base.encoding import lp_join
from tcme.base.keys import PartyKeys, ed25519_public
from tcme.contract.model import Contract

RESULT_LABEL = "tcme/v1/get-result"
ABORT_LABEL = "tcme/v1/abort"
ERROR_DOMAIN = "tcme.dev"


def result_request_message(session_id: bytes, party: str) -> bytes:
    """What ``sign_result_request`` signs."""
    return lp_join(RESULT_LABEL, session_id, party)


def abort_request_message(session_id: bytes, party: str) -> bytes:
    """What ``sign_abort_request`` signs."""
    return lp_join(ABORT_LABEL, session_id, party)


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
        raise SignatureError(check, f"request not signed by {party!r}'s contract key") from err


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
