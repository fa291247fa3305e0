"""Revocation of NVIDIA device certificates from cached OCSP responses (never fetched here).

NVIDIA revokes device certificates only through OCSP (``ocsp.ndis.nvidia.com``).
The enclave cannot reach it and a party may not want to, so the host proxy's
cache fills responses (like the AMD CRL and Intel collateral) and this module
checks them offline: for every certificate but the root, a response that

* is SUCCESSFUL and names this certificate (serial and issuer key hash),
* is signed by the issuer, or by a responder certificate the issuer signed
  for OCSP signing,
* says GOOD, and covers the verification instant (``this_update`` ..
  ``next_update``): a party that requires fresh revocation data gets
  ``nvidia.ocsp.stale`` for an old answer and ``nvidia.ocsp.missing`` for none.

Responses are keyed by the certificate's serial number in lowercase hex.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from attestation.errors import ParseError, SignatureError
from attestation.snp._x509 import common_name

if TYPE_CHECKING:
    from attestation.nvidia.chain import VerifiedChain


def serial_key(cert: x509.Certificate) -> str:
    """How the cache names a certificate's OCSP response: its serial, lowercase hex."""
    return f"{cert.serial_number:x}"


def check_ocsp(
    chain: VerifiedChain,
    responses: Mapping[str, bytes],
    *,
    at: datetime,
    require_fresh: bool = True,
) -> bool:
    """Every non-root certificate of ``chain`` is GOOD at ``at`` per its cached response.

    With ``require_fresh`` (the party's ``[gpu] require_ocsp``) a missing or stale
    answer rejects; without it those are tolerated, but an answer that is there
    must still be well signed and must not say REVOKED. Returns True when every
    certificate had a fresh GOOD answer.
    """
    certs = chain.certificates
    complete = True
    for position in range(len(certs) - 1):
        cert, issuer = certs[position], certs[position + 1]
        name = common_name(cert.subject)
        raw = responses.get(serial_key(cert))
        if raw is None and not require_fresh:
            complete = False
            continue
        if raw is None:
            raise SignatureError(
                "nvidia.ocsp.missing",
                f"no cached OCSP response for certificate {position} ({name})",
                expected=f"a response for serial {serial_key(cert)}",
                actual="none in the cache",
            )
        try:
            response = ocsp.load_der_ocsp_response(raw)
        except ValueError as err:
            raise ParseError("nvidia.ocsp.format", f"certificate {position}: {err}") from err
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise SignatureError(
                "nvidia.ocsp.status",
                f"certificate {position} ({name})",
                expected="SUCCESSFUL",
                actual=response.response_status.name,
            )
        _check_names_cert(response, cert, issuer, position)
        _check_signed_by_issuer(response, issuer, position, at)
        if response.certificate_status != ocsp.OCSPCertStatus.GOOD:
            raise SignatureError(
                "nvidia.ocsp.revoked",
                f"certificate {position} ({name}) is revoked or unknown",
                expected="GOOD",
                actual=response.certificate_status.name,
            )
        this_update = response.this_update_utc
        next_update = response.next_update_utc
        stale = this_update > at or (next_update is not None and at > next_update)
        if stale and not require_fresh:
            complete = False
            continue
        if stale:
            raise SignatureError(
                "nvidia.ocsp.stale",
                f"the cached answer for certificate {position} ({name}) does not cover this time",
                expected=f"{this_update:%Y-%m-%dT%H:%M:%SZ} .. {next_update:%Y-%m-%dT%H:%M:%SZ}"
                if next_update
                else f"after {this_update:%Y-%m-%dT%H:%M:%SZ}",
                actual=f"{at:%Y-%m-%dT%H:%M:%SZ}",
            )

    return complete


def _check_names_cert(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate, position: int
) -> None:
    digest = hashes.Hash(response.hash_algorithm)
    digest.update(_public_key_bits(issuer))
    if (
        response.serial_number != cert.serial_number
        or response.issuer_key_hash != digest.finalize()
    ):
        raise SignatureError(
            "nvidia.ocsp.certificate",
            f"the response is for another certificate than {position}",
            expected=f"serial {serial_key(cert)}",
            actual=f"serial {response.serial_number:x}",
        )


def _check_signed_by_issuer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, position: int, at: datetime
) -> None:
    signer = issuer
    if response.certificates:  # a delegated responder, which the issuer must have signed
        signer = response.certificates[0]
        try:
            _ec(issuer).verify(
                signer.signature, signer.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384())
            )
            usage = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (InvalidSignature, x509.ExtensionNotFound) as err:
            raise SignatureError(
                "nvidia.ocsp.responder",
                f"responder for certificate {position} is not authorised by its issuer",
            ) from err
        if x509.ExtendedKeyUsageOID.OCSP_SIGNING not in usage or not (
            signer.not_valid_before_utc <= at <= signer.not_valid_after_utc
        ):
            raise SignatureError(
                "nvidia.ocsp.responder",
                f"responder for certificate {position} lacks OCSP signing or is expired",
            )
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        raise SignatureError("nvidia.ocsp.signature", "unsupported signature algorithm")
    try:
        _ec(signer).verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
    except InvalidSignature as err:
        raise SignatureError(
            "nvidia.ocsp.signature",
            f"the response for certificate {position} is not signed by its issuer",
            expected=f"signed by {common_name(issuer.subject)}",
            actual="invalid signature",
        ) from err


def _ec(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError("nvidia.ocsp.signature", "responder key is not EC")
    return key


def _public_key_bits(cert: x509.Certificate) -> bytes:
    # issuerKeyHash is over the BIT STRING contents of subjectPublicKey: for EC,
    # the uncompressed point.
    return cert.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
