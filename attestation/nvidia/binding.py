"""The nonce each GPU signs: derived from tcme's REPORT_DATA binding (docs/protocol.md).

::

    gpu_nonce = SHA-256( lp("tcme/v1/gpu-nonce")
                      || lp(identity claims digest)
                      || lp(SHA-256(contract))
                      || lp(session_id)
                      || lp(nonce)
                      [ || lp(SHA-256(capability record)) ] )

The inputs are exactly those of REPORT_DATA (attestation.binding), except that
the claims digest is the digest of the *identity* claims, the claims without
their ``gpu`` member: the GPU evidence is signed over this nonce, then its
digests (and bytes) go into the claims whose full digest REPORT_DATA binds. So a
party recomputes this nonce from its own nonce, checks every GPU report carries
it, and checks the CPU report binds the claims that carry the GPU evidence: CPU
and GPU evidence of one session, in one verification. 32 bytes, the SPDM nonce
size. A different label keeps it from ever equalling any other tcme digest.
"""

from __future__ import annotations

import hashlib

from attestation.binding import DIGEST_SIZE, MAX_NONCE_SIZE, MIN_NONCE_SIZE
from attestation.errors import BindingError

GPU_NONCE_LABEL = b"tcme/v1/gpu-nonce"


def _lp(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def gpu_nonce_for(
    identity_claims_digest: bytes,
    contract_digest: bytes,
    session_id: bytes,
    nonce: bytes,
    capability_digest: bytes | None = None,
) -> bytes:
    """The 32-byte SPDM nonce every GPU of this attestation must sign."""
    for name, value in (
        ("claims_digest", identity_claims_digest),
        ("contract_digest", contract_digest),
    ):
        if len(value) != DIGEST_SIZE:
            raise BindingError(
                f"gpu_nonce.{name}", expected=f"{DIGEST_SIZE} bytes", actual=len(value)
            )
    if not MIN_NONCE_SIZE <= len(nonce) <= MAX_NONCE_SIZE:
        raise BindingError(
            "gpu_nonce.nonce",
            expected=f"{MIN_NONCE_SIZE}..{MAX_NONCE_SIZE} bytes",
            actual=len(nonce),
        )
    fields = [GPU_NONCE_LABEL, identity_claims_digest, contract_digest, session_id, nonce]
    if capability_digest is not None:
        fields.append(capability_digest)
    return hashlib.sha256(b"".join(_lp(bytes(f)) for f in fields)).digest()
