"""Certificate plumbing for the SEV-SNP verifier: loading, PSS signatures, AMD extensions.

Private to ``attestation.snp``; nothing here decides trust.
"""

from __future__ import annotations

import binascii
import hashlib
import threading
import warnings
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from attestation.errors import ParseError, SignatureError

_WARNINGS_LOCK = threading.Lock()
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
PEM_CERT_BEGIN = b"-----BEGIN CERTIFICATE-----"
PEM_CERT_END = b"-----END CERTIFICATE-----"

# AMD VCEK/VLEK certificate extensions (AMD #57230 "Versioned Chip Endorsement Key
# (VCEK) Certificate and KDS Interface Specification", Table 9).
OID_STRUCT_VERSION = "1.3.6.1.4.1.3704.1.1"
OID_PRODUCT_NAME = "1.3.6.1.4.1.3704.1.2"
OID_BL_SPL = "1.3.6.1.4.1.3704.1.3.1"
OID_TEE_SPL = "1.3.6.1.4.1.3704.1.3.2"
OID_SNP_SPL = "1.3.6.1.4.1.3704.1.3.3"
OID_UCODE_SPL = "1.3.6.1.4.1.3704.1.3.8"
OID_FMC_SPL = "1.3.6.1.4.1.3704.1.3.9"  # Turin and later
OID_HWID = "1.3.6.1.4.1.3704.1.4"  # VCEK only: CHIP_ID (64 bytes; Turin: first 8)
OID_CSP_ID = "1.3.6.1.4.1.3704.1.5"  # VLEK only: the cloud provider's name

TCB_EXTENSIONS = {
    "fmc": OID_FMC_SPL,
    "bootloader": OID_BL_SPL,
    "tee": OID_TEE_SPL,
    "snp": OID_SNP_SPL,
    "microcode": OID_UCODE_SPL,
}

_ASN1_INTEGER = 0x02
_ASN1_OCTET_STRING = 0x04
_ASN1_UTF8_STRING = 0x0C
_ASN1_PRINTABLE_STRING = 0x13
_ASN1_IA5_STRING = 0x16
_ASN1_SEQUENCE = 0x30


def load_certificate_der(der: bytes) -> x509.Certificate:
    """Parse one DER certificate, tolerating AMD's serial number 0.

    Every real VCEK/VLEK that AMD's KDS issues has serial number 0. RFC 5280 forbids
    that, and cryptography >= 42 emits a CryptographyDeprecationWarning for it when
    loading (our pytest config turns that warning into an error). The certificate
    is still exactly what AMD signed, and its signature is checked separately, so
    we silence that one warning here, deliberately and only while loading.
    (Reading ``serial_number`` warns again; the verifier never reads a VEK's serial.)
    """
    # catch_warnings swaps process-global state; the lock keeps concurrent loads
    # (gRPC worker threads) from restoring each other's filters.
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r".*serial number.*",
            category=CryptographyDeprecationWarning,
        )
        try:
            return x509.load_der_x509_certificate(der)
        except ValueError as err:
            raise ParseError("certs.der", f"not a valid X.509 certificate: {err}") from err


def split_certificates(data: bytes, known: Mapping[bytes, bytes] | None = None) -> list[bytes]:
    """DER blobs from PEM text (any number of CERTIFICATE blocks) or concatenated DER.

    ``known`` maps base64 bodies (whitespace removed) to their DER, so well-known
    certificates (the bundled AMD anchors) need no decoding.
    """
    if PEM_CERT_BEGIN in data:
        out: list[bytes] = []
        pos = 0
        while (start := data.find(PEM_CERT_BEGIN, pos)) != -1:
            end = data.find(PEM_CERT_END, start)
            if end == -1:
                raise ParseError("certs.pem", "unterminated PEM CERTIFICATE block")
            body = data[start + len(PEM_CERT_BEGIN) : end].translate(None, b"\r\n\t ")
            der = known.get(body) if known else None
            if der is None:
                try:
                    der = _b64decode(body)
                except ValueError as err:
                    raise ParseError("certs.pem", "PEM CERTIFICATE block is not base64") from err
            out.append(der)
            pos = end + len(PEM_CERT_END)
        return out
    out = []
    pos = 0
    while pos < len(data):
        if data[pos] != _ASN1_SEQUENCE:
            raise ParseError(
                "certs.format",
                "neither PEM certificates nor DER",
                expected="PEM or DER X.509 certificate(s)",
                actual=f"byte 0x{data[pos]:02x} at offset {pos}",
            )
        _, _, end = _read_tlv(data, pos)
        out.append(data[pos:end])
        pos = end
    return out


def _b64decode(body: bytes) -> bytes:
    # Whitespace is already gone; anything else non-base64 is refused.
    if body.translate(None, _B64_ALPHABET):
        raise ValueError("non-base64 characters")
    try:
        return binascii.a2b_base64(body)
    except binascii.Error as err:
        raise ValueError(str(err)) from err


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lowercase hex (how AMD ARKs are pinned)."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def common_name(name: x509.Name) -> str:
    """The CN of a name, or "" when it has none."""
    attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def verify_signed_by(
    cert: x509.Certificate, issuer: x509.Certificate, check: str, *, names_checked: bool = False
) -> None:
    """``cert`` carries a valid RSASSA-PSS/SHA-384 signature by ``issuer``'s RSA key.

    AMD signs ARK, ASK/ASVK and VCEK/VLEK certificates with RSASSA-PSS, SHA-384,
    MGF1-SHA-384, salt length 48; anything else is refused.
    """
    if not names_checked and cert.issuer != issuer.subject:
        raise SignatureError(
            check,
            "issuer name does not match the issuing certificate's subject",
            expected=issuer.subject.rfc4514_string(),
            actual=cert.issuer.rfc4514_string(),
        )
    public_key = _public_key(issuer)
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SignatureError(
            check, "issuing key is not RSA", expected="RSA", actual=type(public_key).__name__
        )
    try:
        params = cert.signature_algorithm_parameters
        hash_algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm as err:
        raise SignatureError(check, f"unsupported signature algorithm: {err}") from err
    if not isinstance(params, padding.PSS) or not isinstance(hash_algorithm, hashes.SHA384):
        raise SignatureError(
            check,
            "certificate is not signed with RSASSA-PSS SHA-384",
            expected="RSASSA-PSS SHA-384",
            actual=cert.signature_algorithm_oid.dotted_string,
        )
    try:
        public_key.verify(cert.signature, cert.tbs_certificate_bytes, params, hash_algorithm)
    except InvalidSignature as err:
        raise SignatureError(
            check,
            "signature does not verify",
            expected=f"signed by {common_name(issuer.subject)}",
            actual="invalid signature",
        ) from err


# Public keys of certificates held for the life of the process (the bundled AMD
# anchors): parsing an RSA-4096 key costs about as much as a fifth of an ECDSA verify.
_PINNED_KEYS: dict[int, tuple[x509.Certificate, Any]] = {}


def remember_public_key(cert: x509.Certificate) -> None:
    """Keep ``cert``'s parsed public key (and ``cert`` itself) for the life of the process."""
    _PINNED_KEYS[id(cert)] = (cert, cert.public_key())


def _public_key(cert: x509.Certificate) -> Any:
    held = _PINNED_KEYS.get(id(cert))
    if held is not None and held[0] is cert:
        return held[1]
    return cert.public_key()


def tbs_names(cert: x509.Certificate) -> tuple[bytes, bytes]:
    """(issuer, subject) as DER, read from the TBSCertificate (RFC 5280 4.1).

    Comparing names as bytes avoids building ``x509.Name`` objects, which costs more
    than parsing the certificate; issuers and subjects in AMD's chains are
    byte-identical, and a mismatch only ever rejects.
    """
    tbs = cert.tbs_certificate_bytes
    _, pos, _ = _read_tlv(tbs, 0)  # TBSCertificate ::= SEQUENCE
    tag, _, end = _read_tlv(tbs, pos)
    if tag == 0xA0:  # [0] EXPLICIT version
        pos = end
    _, _, pos = _read_tlv(tbs, pos)  # serialNumber
    _, _, pos = _read_tlv(tbs, pos)  # signature AlgorithmIdentifier
    _, _, end = _read_tlv(tbs, pos)
    issuer, pos = tbs[pos:end], end
    _, _, pos = _read_tlv(tbs, pos)  # validity
    _, _, end = _read_tlv(tbs, pos)
    return issuer, tbs[pos:end]


def extension_values(cert: x509.Certificate) -> dict[str, bytes]:
    """Dotted OID -> raw extnValue content, for every extension (one pass)."""
    out: dict[str, bytes] = {}
    for ext in cert.extensions:
        value = ext.value
        raw = value.value if isinstance(value, x509.UnrecognizedExtension) else value.public_bytes()
        out[ext.oid.dotted_string] = raw
    return out


def extension_value(cert: x509.Certificate, oid: str) -> bytes | None:
    """The raw extnValue content of an extension, or None when absent."""
    for ext in cert.extensions:
        if ext.oid.dotted_string == oid:
            value = ext.value
            if isinstance(value, x509.UnrecognizedExtension):
                return value.value
            return value.public_bytes()
    return None


def der_integer(value: bytes, check: str) -> int:
    """Decode a DER INTEGER (non-negative) that spans all of ``value``."""
    tag, content = _single_tlv(value, check)
    if tag != _ASN1_INTEGER or not content or content[0] & 0x80:
        raise SignatureError(
            check, "extension is not a non-negative DER INTEGER", actual=value.hex()
        )
    return int.from_bytes(content, "big")


def der_string(value: bytes, check: str) -> str:
    """Decode a DER IA5/UTF8/Printable string that spans all of ``value``."""
    tag, content = _single_tlv(value, check)
    if tag not in (_ASN1_IA5_STRING, _ASN1_UTF8_STRING, _ASN1_PRINTABLE_STRING):
        raise SignatureError(check, "extension is not a DER string", actual=value.hex())
    return content.decode("utf-8", errors="replace")


def hwid_bytes(value: bytes) -> bytes:
    """The hwID extension: raw bytes as AMD's KDS issues them (64, or 8 on Turin).

    Some non-AMD issuers wrap the bytes in an OCTET STRING; that form is unwrapped.
    """
    if len(value) in (8, 64):
        return value
    if value and value[0] == _ASN1_OCTET_STRING:
        try:
            tag, content = _single_tlv(value, "vek.hwid")
        except SignatureError:
            return value
        if tag == _ASN1_OCTET_STRING:
            return content
    return value


def _single_tlv(value: bytes, check: str) -> tuple[int, bytes]:
    try:
        tag, start, end = _read_tlv(value, 0)
    except ParseError as err:
        raise SignatureError(check, "malformed DER in extension", actual=value.hex()) from err
    if end != len(value):
        raise SignatureError(check, "trailing bytes after DER value", actual=value.hex())
    return tag, value[start:end]


def _read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER TLV at ``pos``; bounds-checked."""
    if pos + 2 > len(data):
        raise ParseError("der.truncated", "DER value truncated", actual=len(data) - pos)
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ParseError("der.length", "invalid DER length", actual=f"0x{first:02x}")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ParseError("der.truncated", "DER value truncated", expected=end, actual=len(data))
    return tag, pos, end
