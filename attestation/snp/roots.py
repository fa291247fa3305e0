"""Bundled, pinned AMD trust anchors: ARK, ASK and ASVK for Milan, Genoa and Turin.

The certificates live in ``attestation/roots/amd_<product>.pem`` (public AMD KDS
certificates, bundled on purpose). This module pins the SHA-256 of each one and
refuses the bundle if any certificate differs, if an ARK is not validly
self-signed, or if an ASK/ASVK is not signed by its ARK.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from functools import cache
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.snp._x509 import (
    common_name,
    fingerprint,
    load_certificate_der,
    remember_public_key,
    split_certificates,
    tbs_names,
    verify_signed_by,
)

# ARK fingerprints: SHA-256 of the DER certificate, as published by AMD's KDS and
# cross-checked against go-sev-guest, virtee/sev and Microsoft's pinned ARKs.
PINNED_ARK_SHA256: dict[str, str] = {
    "Milan": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    "Genoa": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    "Turin": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
}
PINNED_ASK_SHA256: dict[str, str] = {
    "Milan": "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
    "Genoa": "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
    "Turin": "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185",
}
PINNED_ASVK_SHA256: dict[str, str] = {
    "Milan": "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
    "Genoa": "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
    "Turin": "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c",
}
AMD_PRODUCTS = tuple(PINNED_ARK_SHA256)


class CorruptTrustAnchors(RuntimeError):
    """The bundled AMD certificates do not match their pins: the installation is broken."""


@dataclass(frozen=True)
class AmdRoots:
    """One product line's trust anchors, verified against the pins."""

    product: str
    ark: x509.Certificate
    ask: x509.Certificate
    asvk: x509.Certificate

    @property
    def ark_sha256(self) -> str:
        """Pinned fingerprint of this product's ARK."""
        return PINNED_ARK_SHA256[self.product]

    def intermediate(self, signing_key: str) -> x509.Certificate:
        """The ASK (for "VCEK") or the ASVK (for "VLEK")."""
        return self.asvk if signing_key == "VLEK" else self.ask


def amd_ark_fingerprints() -> dict[str, str]:
    """Pinned ARK SHA-256 -> product; the default ``VerifyOptions.trusted_arks``."""
    return {fp: product for product, fp in PINNED_ARK_SHA256.items()}


@cache
def amd_roots(product: str) -> AmdRoots:
    """Load, pin-check and signature-check the bundled anchors of ``product`` (once)."""
    if product not in PINNED_ARK_SHA256:
        raise KeyError(f"no bundled AMD roots for product {product!r}")
    pem = resources.files("attestation").joinpath(f"roots/amd_{product.lower()}.pem").read_bytes()
    certs = [load_certificate_der(der) for der in split_certificates(pem)]
    by_fp = {fingerprint(c): c for c in certs}
    pins = {
        "ARK": PINNED_ARK_SHA256[product],
        "ASK": PINNED_ASK_SHA256[product],
        "ASVK": PINNED_ASVK_SHA256[product],
    }
    found: dict[str, x509.Certificate] = {}
    for role, pin in pins.items():
        if pin not in by_fp:
            raise CorruptTrustAnchors(
                f"bundled {product} {role} (SHA-256 {pin}) missing or altered"
            )
        found[role] = by_fp[pin]
    ark = found["ARK"]
    if common_name(ark.subject) != f"ARK-{product}":
        raise CorruptTrustAnchors(f"bundled {product} ARK has subject {ark.subject}")
    for cert in found.values():
        remember_public_key(cert)
    verify_signed_by(ark, ark, f"roots.{product}.ark")
    verify_signed_by(found["ASK"], ark, f"roots.{product}.ask")
    verify_signed_by(found["ASVK"], ark, f"roots.{product}.asvk")
    return AmdRoots(product=product, ark=ark, ask=found["ASK"], asvk=found["ASVK"])


@cache
def bundled_certificates() -> dict[bytes, x509.Certificate]:
    """DER -> verified certificate, for every bundled ARK, ASK and ASVK (loaded once)."""
    out: dict[bytes, x509.Certificate] = {}
    for product in AMD_PRODUCTS:
        roots = amd_roots(product)
        for cert in (roots.ark, roots.ask, roots.asvk):
            out[cert.public_bytes(Encoding.DER)] = cert
    return out


@cache
def bundled_by_subject() -> dict[bytes, tuple[str, str, x509.Certificate]]:
    """Subject DER -> (product, role "ARK"/"ASK"/"ASVK", certificate) for every bundled anchor."""
    out: dict[bytes, tuple[str, str, x509.Certificate]] = {}
    for product in AMD_PRODUCTS:
        roots = amd_roots(product)
        for role, cert in (("ARK", roots.ark), ("ASK", roots.ask), ("ASVK", roots.asvk)):
            out[tbs_names(cert)[1]] = (product, role, cert)
    return out


@cache
def bundled_pem_bodies() -> dict[bytes, bytes]:
    """Base64 body (no whitespace) -> DER, for every bundled anchor (PEM fast path)."""
    return {binascii.b2a_base64(der, newline=False): der for der in bundled_certificates()}
