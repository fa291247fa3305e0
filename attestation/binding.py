"""REPORT_DATA binding: what the 64 bytes of every tcme report must be.

::

    REPORT_DATA = SHA-512( lp("tcme/v1/report-data")
                        || lp(SHA-256(claims))
                        || lp(SHA-256(contract))
                        || lp(session_id)
                        || lp(nonce) )

``lp(x)`` is ``len(x)`` as 4 bytes big-endian followed by ``x``: every field,
constant or not, carries its length, so no two different field tuples give the
same input to SHA-512.

A session whose contract carries capability tests binds one more field, the
SHA-256 of its capability record (tcme.contract.capability)::

    ... || lp(nonce) || lp(SHA-256(capability record))

Every other session keeps the five-field form above, unchanged. The contract
(bound in both) says which form applies, and the length prefixes keep the two
forms apart. A session-less attestation uses ``session_id = b""`` and
``contract = b""`` (so the contract digest is SHA-256 of the empty string).
The same rule holds in simulated mode. See docs/protocol.md.

``report_data_for`` is the one helper that computes the value and
``check_binding`` the one place that compares it (``attestation.verifier`` calls
it for every evidence kind).
"""

from __future__ import annotations

import hashlib
import hmac

from attestation.errors import BindingError

REPORT_DATA_LABEL = b"tcme/v1/report-data"
REPORT_DATA_SIZE = 64
DIGEST_SIZE = 32
MIN_NONCE_SIZE = 16
MAX_NONCE_SIZE = 64
MAX_SESSION_ID_SIZE = 64


def _lp(field: bytes) -> bytes:
    return len(field).to_bytes(4, "big") + field


def report_data_for(
    claims_digest: bytes,
    contract_digest: bytes,
    session_id: bytes,
    nonce: bytes,
    capability_digest: bytes | None = None,
) -> bytes:
    """The 64-byte REPORT_DATA binding claims, contract, session and nonce.

    ``claims_digest``/``contract_digest`` are SHA-256 digests (32 bytes each) of
    the exact canonical bytes. ``capability_digest`` (SHA-256 of the session's
    capability record) is appended only when given. Raises ``BindingError`` on a
    wrong-size argument.
    """
    message = binding_message(
        REPORT_DATA_LABEL,
        "report_data",
        claims_digest,
        contract_digest,
        session_id,
        nonce,
        capability_digest,
    )
    return hashlib.sha512(message).digest()


def binding_message(
    label: bytes,
    check: str,
    claims_digest: bytes,
    contract_digest: bytes,
    session_id: bytes,
    nonce: bytes,
    capability_digest: bytes | None = None,
) -> bytes:
    """``lp(label) || lp(claims) || lp(contract) || lp(session) || lp(nonce) [|| lp(cap)]``.

    The one encoding (and the one set of size checks, named ``check.<field>``)
    behind every value that binds a session: REPORT_DATA here, the GPU nonce in
    ``attestation.nvidia.binding``. The caller picks the label and the hash.
    """
    digests = [("claims_digest", claims_digest), ("contract_digest", contract_digest)]
    if capability_digest is not None:
        digests.append(("capability_digest", capability_digest))
    for name, value in digests:
        if len(value) != DIGEST_SIZE:
            raise BindingError(
                f"{check}.{name}", expected=f"{DIGEST_SIZE} bytes", actual=f"{len(value)} bytes"
            )
    if len(session_id) > MAX_SESSION_ID_SIZE:
        raise BindingError(
            f"{check}.session_id",
            expected=f"<= {MAX_SESSION_ID_SIZE} bytes",
            actual=f"{len(session_id)} bytes",
        )
    if not MIN_NONCE_SIZE <= len(nonce) <= MAX_NONCE_SIZE:
        raise BindingError(
            f"{check}.nonce",
            expected=f"{MIN_NONCE_SIZE}..{MAX_NONCE_SIZE} bytes",
            actual=f"{len(nonce)} bytes",
        )
    fields = [label, claims_digest, contract_digest, session_id, nonce]
    if capability_digest is not None:
        fields.append(capability_digest)
    return b"".join(_lp(bytes(f)) for f in fields)


def check_binding(actual: bytes, expected: bytes) -> None:
    """The one place a verifier compares the bound value with the one it recomputed.

    ``actual``: the 64 bytes the verified evidence carries (SEV-SNP REPORT_DATA, TDX
    REPORTDATA, or what a kind's verifier returns as its bound value). ``expected``:
    ``report_data_for(...)`` of the party's own claims, contract, session and nonce (in
    the form the kind carries it: 64 bytes, its SHA-256 in a short TPM field, or a
    device's 32-byte SPDM nonce). Constant-time; raises
    ``BindingError(check="report_data")`` on any difference, length included.
    """
    if len(actual) != len(expected) or not hmac.compare_digest(bytes(expected), bytes(actual)):
        raise BindingError(
            "report_data",
            "REPORT_DATA does not bind these claims, contract, session and nonce",
            expected=bytes(expected),
            actual=bytes(actual),
        )
