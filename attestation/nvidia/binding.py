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

from attestation.binding import binding_message

GPU_NONCE_LABEL = b"tcme/v1/gpu-nonce"


def gpu_nonce_for(
    identity_claims_digest: bytes,
    contract_digest: bytes,
    session_id: bytes,
    nonce: bytes,
    capability_digest: bytes | None = None,
) -> bytes:
    """The 32-byte SPDM nonce every GPU of this attestation must sign."""
    message = binding_message(
        GPU_NONCE_LABEL,
        "gpu_nonce",
        identity_claims_digest,
        contract_digest,
        session_id,
        nonce,
        capability_digest,
    )
    return hashlib.sha256(message).digest()
