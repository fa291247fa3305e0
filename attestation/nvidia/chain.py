"""Are the certificates good? ECDSA P-384 chains to a pinned NVIDIA root, and the leaf's FWID.

One function serves both NVIDIA hierarchies: device chains (GPU/NVSwitch leaf ->
BROM -> Provisioner ICA -> Identity -> "NVIDIA Device Identity CA") and RIM
signer chains (RIM signer -> Reference Value L3 -> Reference Value CA ->
"NVIDIA CoRIM signing Root CA"). Every link is issuer-name-matched and its
ECDSA-SHA384 signature verified; every issuer must be a CA; every certificate
must be valid at the one verification instant; the chain must end in the pinned
root (supplied or, when the supplied chain stops one short, the bundled copy).

The leaf's FWID (firmware id) comes from its DICE extension:

* Hopper: ``2.23.133.5.4.1`` (tcg-dice-TcbInfo, NVIDIA's early form: version,
  SubjectPublicKeyInfo, then one FWID ``{sha384, digest}``);
* Blackwell: ``2.23.133.5.4.1.1``, a DiceTcbInfo (vendor "NVIDIA", model
  "GB100 A01 GSP", ``fwids [6]`` = [SHA-384 digest, SHA-384 zero]); the first
  SHA-384 FWID is the device's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.errors import ParseError, SignatureError
from attestation.snp._x509 import _read_tlv, common_name, split_certificates

OID_TCG_DICE_TCBINFO_HOPPER = "2.23.133.5.4.1"
OID_TCG_DICE_TCBINFO_BLACKWELL = "2.23.133.5.4.1.1"
_OID_SHA384_DER = bytes.fromhex("0609608648016503040202")  # 2.16.840.1.101.3.4.2.2
_ECDSA_SHA384 = ec.ECDSA(hashes.SHA384())
MAX_CHAIN_LENGTH = 8
FWID_SIZE = 48


@dataclass(frozen=True)
class VerifiedChain:
    """A chain whose every link verified to the pinned root at ``verified_at``."""

    certificates: tuple[x509.Certificate, ...]  # leaf first, pinned root last
    root_sha256: str
    verified_at: datetime

    @property
    def leaf(self) -> x509.Certificate:
        """The first certificate (the device's attestation key, or the RIM signer)."""
        return self.certificates[0]

    @property
    def leaf_key(self) -> ec.EllipticCurvePublicKey:
        """The leaf's P-384 public key."""
        key = _public_key(self.leaf)
        assert isinstance(key, ec.EllipticCurvePublicKey)  # checked in verify_chain
        return key


def load_chain(pem_or_der: bytes, check: str = "nvidia.certs") -> list[x509.Certificate]:
    """Certificates from PEM text (or concatenated DER), leaf first; ``ParseError`` if none."""
    ders = split_certificates(bytes(pem_or_der))
    if not ders:
        raise ParseError(check, "no certificates", expected="PEM certificate chain", actual="none")
    if len(ders) > MAX_CHAIN_LENGTH:
        raise ParseError(check, expected=f"<= {MAX_CHAIN_LENGTH} certificates", actual=len(ders))
    out = []
    for der in ders:
        try:
            out.append(x509.load_der_x509_certificate(der))
        except ValueError as err:
            raise ParseError(check, f"not a valid X.509 certificate: {err}") from err
    return out


def verify_chain(
    certs: list[x509.Certificate],
    *,
    root: x509.Certificate,
    at: datetime,
    check: str,
) -> VerifiedChain:
    """Verify ``certs`` (leaf first) up to the pinned ``root`` at time ``at``.

    Raises ``SignatureError`` whose ``check`` is ``<check>.length``, ``.root``,
    ``.link``, ``.ca``, ``.algorithm`` or ``.validity``.
    """
    chain = _verify_links(tuple(certs), root, check)
    return _valid_at(chain, root, at, check)


def verify_chain_pem(
    pem: bytes, *, root: x509.Certificate, at: datetime, check: str
) -> VerifiedChain:
    """``verify_chain`` for PEM bytes, the signatures checked once per (chain, root).

    The links (names, ECDSA signatures, CA flags, key types) do not depend on the
    time, so a device's chain is verified once per process and cached by its
    bytes; validity at ``at`` is checked on every call. A failing chain is never
    cached (it raises every time).
    """
    chain = _linked_pem(bytes(pem), root.public_bytes(Encoding.DER), check)
    return _valid_at(chain, root, at, check)


@lru_cache(maxsize=256)
def _linked_pem(pem: bytes, root_der: bytes, check: str) -> tuple[x509.Certificate, ...]:
    root = x509.load_der_x509_certificate(root_der)
    return _verify_links(tuple(load_chain(pem)), root, check)


def clear_chain_cache() -> None:
    """Forget every verified chain and parsed key (benchmarks measure the cold path)."""
    for cached in (_linked_pem, _public_key, leaf_fwid, ueid, _fingerprint, _window):
        cached.cache_clear()


def _verify_links(
    certs: tuple[x509.Certificate, ...], root: x509.Certificate, check: str
) -> tuple[x509.Certificate, ...]:
    root_der = root.public_bytes(Encoding.DER)
    root_sha256 = hashlib.sha256(root_der).hexdigest()
    chain = list(certs)
    stops_below_root = (
        len(chain) > 1
        and chain[-1].public_bytes(Encoding.DER) != root_der
        and chain[-1].issuer == root.subject
        and chain[-1].issuer != chain[-1].subject
    )
    if stops_below_root:
        chain.append(root)  # the supplied chain stops just below the root
    if len(chain) < 2:
        raise SignatureError(
            f"{check}.length",
            "a chain needs at least the signing certificate and the root",
            expected=">= 2 certificates",
            actual=f"{len(chain)} certificate(s)",
        )
    last = chain[-1]
    if last.public_bytes(Encoding.DER) != root_der:
        raise SignatureError(
            f"{check}.root",
            "the chain does not end in the pinned root",
            expected=f"{common_name(root.subject)} (SHA-256 {root_sha256})",
            actual=f"{common_name(last.subject)} "
            f"(SHA-256 {hashlib.sha256(last.public_bytes(Encoding.DER)).hexdigest()})",
        )
    for position, cert in enumerate(chain):
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise SignatureError(
                f"{check}.algorithm",
                f"certificate {position} ({common_name(cert.subject)}) key",
                expected="ECDSA P-384",
                actual=getattr(getattr(key, "curve", None), "name", type(key).__name__),
            )
        issuer = chain[min(position + 1, len(chain) - 1)]
        _verify_link(cert, issuer, position, check)
        if position > 0:
            _require_ca(cert, position, check)
    return tuple(chain)


def _valid_at(
    chain: tuple[x509.Certificate, ...], root: x509.Certificate, at: datetime, check: str
) -> VerifiedChain:
    for position, cert in enumerate(chain):
        not_before, not_after = _window(cert)
        if not not_before <= at <= not_after:
            raise SignatureError(
                f"{check}.validity",
                f"certificate {position} ({common_name(cert.subject)}) is not valid at this time",
                expected=f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} .. "
                f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
                actual=f"{at:%Y-%m-%dT%H:%M:%SZ}",
            )
    return VerifiedChain(certificates=chain, root_sha256=_fingerprint(root), verified_at=at)


@lru_cache(maxsize=1024)
def _window(cert: x509.Certificate) -> tuple[datetime, datetime]:
    return cert.not_valid_before_utc, cert.not_valid_after_utc


@lru_cache(maxsize=64)
def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _verify_link(
    cert: x509.Certificate, issuer: x509.Certificate, position: int, check: str
) -> None:
    name = common_name(cert.subject)
    if cert.issuer != issuer.subject:
        raise SignatureError(
            f"{check}.link",
            f"certificate {position} ({name}) is not issued by the next certificate",
            expected=issuer.subject.rfc4514_string(),
            actual=cert.issuer.rfc4514_string(),
        )
    try:
        hash_algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm as err:
        raise SignatureError(f"{check}.algorithm", f"certificate {position}: {err}") from err
    if not isinstance(hash_algorithm, hashes.SHA384):
        raise SignatureError(
            f"{check}.algorithm",
            f"certificate {position} ({name}) signature",
            expected="ecdsa-with-SHA384",
            actual=cert.signature_algorithm_oid.dotted_string,
        )
    key = issuer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)  # checked by the caller's loop
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, _ECDSA_SHA384)
    except InvalidSignature as err:
        raise SignatureError(
            f"{check}.link",
            f"certificate {position} ({name}) signature does not verify",
            expected=f"signed by {common_name(issuer.subject)}",
            actual="invalid signature",
        ) from err


def _require_ca(cert: x509.Certificate, position: int, check: str) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise SignatureError(
            f"{check}.ca",
            f"certificate {position} ({common_name(cert.subject)}) issues others but is no CA",
            expected="basicConstraints cA = true",
            actual="absent" if constraints is None else "cA = false",
        )


@lru_cache(maxsize=256)
def _public_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    # Certificates hash and compare by their DER; a parsed key is reused by later calls.
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


@lru_cache(maxsize=256)
def leaf_fwid(leaf: x509.Certificate) -> tuple[bytes, str]:
    """(48-byte FWID, the extension OID it came from) of a device leaf certificate.

    Raises ``SignatureError(check="nvidia.fwid.certificate")`` when the leaf has
    neither DICE extension (not a device leaf: e.g. a chain missing its leaf).
    """
    values = {
        ext.oid.dotted_string: ext.value.value
        for ext in leaf.extensions
        if isinstance(ext.value, x509.UnrecognizedExtension)
    }
    try:
        if OID_TCG_DICE_TCBINFO_HOPPER in values:
            raw = values[OID_TCG_DICE_TCBINFO_HOPPER]
            return _first_sha384_fwid(_children(raw, 0x30)), OID_TCG_DICE_TCBINFO_HOPPER
        if OID_TCG_DICE_TCBINFO_BLACKWELL in values:
            raw = values[OID_TCG_DICE_TCBINFO_BLACKWELL]
            fields = {tag: content for tag, content in _children(raw, 0x30)}
            if 0xA6 not in fields:
                raise ParseError("der", "DiceTcbInfo has no fwids [6]")
            return _first_sha384_fwid(_tlvs(fields[0xA6])), OID_TCG_DICE_TCBINFO_BLACKWELL
    except ParseError as err:
        raise SignatureError(
            "nvidia.fwid.certificate", f"malformed DICE TcbInfo in the leaf: {err.message()}"
        ) from err
    raise SignatureError(
        "nvidia.fwid.certificate",
        f"the first certificate ({common_name(leaf.subject)}) carries no FWID: not a device leaf",
        expected=f"extension {OID_TCG_DICE_TCBINFO_HOPPER} (Hopper) or "
        f"{OID_TCG_DICE_TCBINFO_BLACKWELL} (Blackwell)",
        actual="neither",
    )


def _first_sha384_fwid(items: list[tuple[int, bytes]]) -> bytes:
    """The digest of the first ``FWID ::= SEQUENCE {hashAlg OID, digest OCTET STRING}``."""
    for tag, content in items:
        if tag != 0x30 or not content.startswith(_OID_SHA384_DER):
            continue
        parts = _tlvs(content)
        if len(parts) == 2 and parts[1][0] == 0x04 and len(parts[1][1]) == FWID_SIZE:
            return parts[1][1]
    raise ParseError("der", "no SHA-384 FWID")


def _children(der: bytes, outer_tag: int) -> list[tuple[int, bytes]]:
    tag, start, end = _read_tlv(der, 0)
    if tag != outer_tag or end != len(der):
        raise ParseError("der", f"expected one DER value with tag 0x{outer_tag:02x}")
    return _tlvs(der[start:end])


def _tlvs(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    pos = 0
    while pos < len(data):
        tag, start, end = _read_tlv(data, pos)
        out.append((tag, data[start:end]))
        pos = end
    return out


@lru_cache(maxsize=256)
def ueid(leaf: x509.Certificate) -> str:
    """The leaf's serial number in decimal: NVIDIA's "ueid" claim for the device."""
    return str(leaf.serial_number)
