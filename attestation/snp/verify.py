"""Are the signatures, chain and CRL good? Cryptographic verification of SEV-SNP evidence.

Steps, each a function named for it (numbers as tagged in the code):

(1) ``load_cert_bundle``: split the caller's certificates into VEK, ASK/ASVK, ARK.
(2) ``verify_vek_chain``: ARK -> ASK/ASVK -> VCEK/VLEK, RSASSA-PSS SHA-384, the ARK
    a trusted (pinned) root, the VEK's AMD extensions read, optional CRL. This
    part does not depend on the report or the time, so it is cached by the
    certificate bytes.
(3) ``check_chain_validity``: every certificate (and the CRL) is valid at the time.
(4) ``verify_signing_key``: KEY_INFO's SIGNING_KEY names the kind of key supplied.
(5) ``verify_report_product``: the report's CPUID names the chain's product.
(6) ``verify_tcb_extensions``: the VEK's TCB extensions equal REPORTED_TCB.
(7) ``verify_hwid``: a VCEK's hwID equals CHIP_ID (first 8 bytes on Turin).
(8) ``verify_report_signature``: ECDSA P-384 SHA-384 over bytes 0..0x2A0, every time.

``verify_attestation`` runs all of them. Time, trusted roots, CRL and product are
injected through ``VerifyOptions``; nothing here reads the clock unless asked to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from attestation._internal.clock import verification_time
from attestation.errors import ParseError, SignatureError
from attestation.snp import _x509
from attestation.snp.abi import AttestationReport
from attestation.snp.roots import (
    AMD_PRODUCTS,
    amd_ark_fingerprints,
    amd_roots,
    bundled_by_subject,
    bundled_certificates,
    bundled_pem_bodies,
)

SIMULATED_PRODUCT = "SIMULATED"

_AMD_TRUSTED = tuple(sorted(amd_ark_fingerprints().items()))
_ECDSA_P384_SHA384 = ec.ECDSA(hashes.SHA384())
_EC_PUBLIC_KEY = x509.ObjectIdentifier("1.2.840.10045.2.1")  # id-ecPublicKey


@dataclass(frozen=True)
class VerifyOptions:
    """What verification depends on besides the evidence itself.

    ``now``: the time certificates must be valid at (None: the current time).
    ``trusted_arks``: ARK SHA-256 fingerprint -> product label ("Milan", ...,
    or "SIMULATED"); None means the bundled, pinned AMD ARKs.
    ``crl``: an AMD CRL (DER or PEM) signed by the ARK; None: not checked.
    ``product``: the product line the chain must be for; None: detected.
    """

    now: datetime | None = None
    trusted_arks: Mapping[str, str] | None = None
    crl: bytes | None = None
    product: str | None = None

    def time(self) -> datetime:
        """The verification time, timezone-aware (naive values are taken as UTC)."""
        return verification_time(self.now)

    def trusted(self) -> tuple[tuple[str, str], ...]:
        """The trusted ARKs as a hashable, ordered tuple."""
        if self.trusted_arks is None:
            return _AMD_TRUSTED
        return tuple(sorted((fp.lower(), label) for fp, label in self.trusted_arks.items()))


@dataclass(frozen=True)
class CertBundle:
    """The caller's certificates, sorted into roles (nothing verified yet).

    ``root_sha256``: SHA-256 of the supplied root's DER, None when no root was supplied.
    The ``*_issuer``/``*_subject`` fields are the names as DER (see ``_x509.tbs_names``);
    ``vek_extensions`` maps each VEK extension's dotted OID to its raw value.
    """

    vek: x509.Certificate
    vek_kind: str  # "VCEK" | "VLEK"
    intermediate: x509.Certificate | None
    root: x509.Certificate | None
    root_sha256: str | None = None
    vek_issuer: bytes = b""
    vek_extensions: Mapping[str, bytes] = field(default_factory=dict)
    intermediate_names: tuple[bytes, bytes] | None = None  # (issuer, subject)
    root_subject_der: bytes | None = None

    @property
    def root_subject(self) -> str:
        """The supplied root's subject, or "" when none was supplied."""
        return "" if self.root is None else self.root.subject.rfc4514_string()


@dataclass(frozen=True)
class VerifiedChain:
    """A VCEK/VLEK whose chain to a trusted ARK verified, with its AMD extensions."""

    product: str
    signing_key: str  # "VCEK" | "VLEK"
    vek_public_key: ec.EllipticCurvePublicKey = field(repr=False)
    vek_tcb: Mapping[str, int]
    hwid: bytes | None
    product_name: str
    ark_sha256: str
    ark_subject: str
    not_before: datetime
    not_after: datetime
    crl_last_update: datetime | None = None
    crl_next_update: datetime | None = None

    @property
    def simulated(self) -> bool:
        """True when the chain ends in a simulated (non-AMD) root."""
        return self.product == SIMULATED_PRODUCT


# (1) -------------------------------------------------------------------------------


@lru_cache(maxsize=128)
def load_cert_bundle(certs: bytes) -> CertBundle:
    """Sort PEM or DER certificates into VEK, ASK/ASVK and ARK (cached by the bytes).

    Exactly one VCEK/VLEK (the only EC P-384 key) is required; at most one
    intermediate and one self-signed root may come with it. Identical duplicates
    are collapsed. Raises ``ParseError`` for unreadable or ambiguous input.
    """
    if not certs:
        raise ParseError("certs.empty", "no certificates given", expected="the VCEK or VLEK")
    bundled = bundled_certificates()
    unique: dict[bytes, x509.Certificate] = {}
    for der in _x509.split_certificates(certs, bundled_pem_bodies()):
        if der not in unique:
            # AMD's own ASK/ARK, byte-identical to a bundled one: reuse the verified object.
            unique[der] = bundled.get(der) or _x509.load_certificate_der(der)
    der_of = {id(cert): der for der, cert in unique.items()}
    veks = [c for c in unique.values() if c.public_key_algorithm_oid == _EC_PUBLIC_KEY]
    if len(veks) != 1:
        raise ParseError(
            "certs.vek",
            "expected exactly one VCEK/VLEK (EC P-384) certificate",
            expected=1,
            actual=len(veks),
        )
    vek = veks[0]
    extensions = _x509.extension_values(vek)
    # AMD marks the kind by extension: a VCEK carries its chip's hwID, a VLEK its
    # cloud provider's cspID. The chain check then requires the matching ASK/ASVK.
    has_hwid, has_csp = _x509.OID_HWID in extensions, _x509.OID_CSP_ID in extensions
    if has_hwid == has_csp:
        raise ParseError(
            "certs.vek",
            "VEK must carry exactly one of hwID (VCEK) and cspID (VLEK)",
            expected="hwID or cspID",
            actual="both" if has_hwid else "neither",
        )
    kind = "VCEK" if has_hwid else "VLEK"
    names = {id(c): _x509.tbs_names(c) for c in unique.values()}
    cas = [c for c in unique.values() if c is not vek]
    roots = [c for c in cas if names[id(c)][0] == names[id(c)][1]]
    intermediates = [c for c in cas if names[id(c)][0] != names[id(c)][1]]
    if len(roots) > 1 or len(intermediates) > 1:
        raise ParseError(
            "certs.chain",
            "more certificates than one chain (VEK, ASK/ASVK, ARK)",
            expected="at most one ASK/ASVK and one ARK",
            actual=f"{len(intermediates)} intermediate(s), {len(roots)} root(s)",
        )
    root = roots[0] if roots else None
    intermediate = intermediates[0] if intermediates else None
    return CertBundle(
        vek=vek,
        vek_kind=kind,
        intermediate=intermediate,
        root=root,
        root_sha256=None if root is None else hashlib.sha256(der_of[id(root)]).hexdigest(),
        vek_issuer=names[id(vek)][0],
        vek_extensions=extensions,
        intermediate_names=None if intermediate is None else names[id(intermediate)],
        root_subject_der=None if root is None else names[id(root)][1],
    )


# (2) -------------------------------------------------------------------------------


def verify_vek_chain(certs: bytes, options: VerifyOptions) -> VerifiedChain:
    """Verify ARK -> ASK/ASVK -> VEK and read the VEK's extensions (time-independent part).

    Missing ASK/ASVK or ARK certificates are taken from the bundled AMD anchors.
    The result is cached by (certificate bytes, trusted roots, product, CRL).
    Raises ``ParseError`` (unreadable certificates) or ``SignatureError``.
    """
    return _verified_chain(certs, options.trusted(), options.product, options.crl)


@lru_cache(maxsize=128)
def _verified_chain(
    certs: bytes,
    trusted: tuple[tuple[str, str], ...],
    product: str | None,
    crl: bytes | None,
) -> VerifiedChain:
    bundle = load_cert_bundle(certs)
    trusted_map = dict(trusted)
    vek, kind = bundle.vek, bundle.vek_kind

    # (2a) the ASK/ASVK: supplied, or the bundled one the VEK's issuer names.
    if bundle.intermediate is not None and bundle.intermediate_names is not None:
        intermediate = bundle.intermediate
        intermediate_issuer, intermediate_subject = bundle.intermediate_names
        if intermediate_subject != bundle.vek_issuer:
            raise SignatureError(
                "chain.ask",
                "the supplied ASK/ASVK did not issue the VEK",
                expected=_x509.common_name(vek.issuer),
                actual=_x509.common_name(intermediate.subject),
            )
    else:
        intermediate = _bundled_intermediate(bundle)
        intermediate_issuer = _x509.tbs_names(intermediate)[0]

    # (2b) the ARK: supplied, or the bundled one the ASK/ASVK's issuer names.
    if bundle.root is not None:
        root = bundle.root
        if bundle.root_subject_der != intermediate_issuer:
            raise SignatureError(
                "chain.ark",
                "the supplied root did not issue the ASK/ASVK",
                expected=_x509.common_name(intermediate.issuer),
                actual=_x509.common_name(root.subject),
            )
    else:
        root = _bundled_ark(intermediate, intermediate_issuer)

    # (2c) the ARK must be a trusted (pinned) root; its label is the product.
    # root_sha256 is set exactly when the caller supplied the root (load_cert_bundle).
    root_fp = bundle.root_sha256 if bundle.root_sha256 is not None else _bundled_ark_sha256(root)
    label = trusted_map.get(root_fp)
    if label is None:
        raise SignatureError(
            "chain.ark",
            f"root certificate {_x509.common_name(root.subject)!r} is not a trusted ARK",
            expected="one of " + ", ".join(f"{lbl} {fp[:16]}…" for fp, lbl in trusted),
            actual=root_fp,
        )
    if product is not None and product != label:
        raise SignatureError(
            "chain.product", "chain is for another product", expected=product, actual=label
        )

    # (2d) names and signatures: ARK self-signed, ARK -> ASK/ASVK -> VEK.
    _expect_cn(root.subject, f"ARK-{label}", "chain.ark.subject")
    ask_cn = f"SEV-VLEK-{label}" if kind == "VLEK" else f"SEV-{label}"
    _expect_cn(intermediate.subject, ask_cn, "chain.ask.subject")
    # The bundled AMD anchors were verified (pins, ARK self-signature, ARK -> ASK/ASVK)
    # once, when loaded; byte-identical supplied copies are those very objects.
    if not _is_bundled_ark(root):
        _x509.verify_signed_by(root, root, "chain.ark.signature")
    if not _is_bundled_pair(root, intermediate):
        _x509.verify_signed_by(intermediate, root, "chain.ask.signature")
    if bundle.intermediate is None and intermediate.subject != vek.issuer:
        raise SignatureError(
            "chain.ask", "the bundled ASK/ASVK's name differs from the VEK's issuer",
            expected=vek.issuer.rfc4514_string(), actual=intermediate.subject.rfc4514_string(),
        )  # fmt: skip
    _x509.verify_signed_by(vek, intermediate, "chain.vek.signature", names_checked=True)

    # (2e) the VEK key and its AMD extensions.
    public_key = vek.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP384R1
    ):
        raise SignatureError("vek.key", "VEK key is not EC P-384", expected="secp384r1")
    extensions = bundle.vek_extensions
    vek_tcb = _read_vek_tcb(extensions, turin=label == "Turin")
    product_name_raw = extensions.get(_x509.OID_PRODUCT_NAME)
    product_name = (
        _x509.der_string(product_name_raw, "vek.product_name") if product_name_raw else ""
    )
    if label in AMD_PRODUCTS and not product_name.startswith(label):
        raise SignatureError(
            "vek.product_name",
            "VEK productName does not name the chain's product",
            expected=f"{label}[-stepping]",
            actual=product_name or "(absent)",
        )
    hwid: bytes | None = None
    if kind == "VCEK":
        hwid_raw = extensions.get(_x509.OID_HWID)
        if hwid_raw is None:
            raise SignatureError("vek.hwid", "VCEK has no hwID extension", expected="hwID")
        hwid = _x509.hwid_bytes(hwid_raw)

    # (2f) optional CRL, signed by the ARK: the ASK/ASVK must not be revoked.
    crl_last = crl_next = None
    if crl is not None:
        crl_last, crl_next = _check_crl(crl, root, intermediate)

    certs_in_chain = (root, intermediate, vek)
    return VerifiedChain(
        product=label,
        signing_key=kind,
        vek_public_key=public_key,
        vek_tcb=vek_tcb,
        hwid=hwid,
        product_name=product_name,
        ark_sha256=root_fp,
        ark_subject=_x509.common_name(root.subject),
        not_before=max(c.not_valid_before_utc for c in certs_in_chain),
        not_after=min(c.not_valid_after_utc for c in certs_in_chain),
        crl_last_update=crl_last,
        crl_next_update=crl_next,
    )


def _bundled_ark_sha256(cert: x509.Certificate) -> str:
    for product in AMD_PRODUCTS:
        if cert is amd_roots(product).ark:
            return amd_roots(product).ark_sha256  # pinned, and checked when loaded
    return _x509.fingerprint(cert)


def _is_bundled_ark(cert: x509.Certificate) -> bool:
    return any(cert is amd_roots(p).ark for p in AMD_PRODUCTS)


def _is_bundled_pair(root: x509.Certificate, intermediate: x509.Certificate) -> bool:
    """True for a bundled ARK with its own bundled ASK/ASVK (verified when loaded)."""
    for product in AMD_PRODUCTS:
        anchors = amd_roots(product)
        if root is anchors.ark:
            return intermediate is anchors.ask or intermediate is anchors.asvk
    return False


def _bundled_intermediate(bundle: CertBundle) -> x509.Certificate:
    found = bundled_by_subject().get(bundle.vek_issuer)
    if found is None or found[1] == "ARK":
        raise SignatureError(
            "chain.ask",
            "no ASK/ASVK supplied, and the VEK's issuer is not a bundled AMD ASK/ASVK",
            expected="SEV-<product> or SEV-VLEK-<product>",
            actual=_x509.common_name(bundle.vek.issuer),
        )
    _, role, cert = found
    if (role == "ASVK") != (bundle.vek_kind == "VLEK"):
        raise SignatureError(
            "chain.ask",
            f"a {bundle.vek_kind} must be issued by the {bundle.vek_kind} intermediate",
            expected=f"{bundle.vek_kind} issuer",
            actual=_x509.common_name(cert.subject),
        )
    return cert


def _bundled_ark(intermediate: x509.Certificate, issuer: bytes) -> x509.Certificate:
    found = bundled_by_subject().get(issuer)
    if found is None or found[1] != "ARK":
        raise SignatureError(
            "chain.ark",
            "no ARK supplied, and the ASK/ASVK's issuer is not a bundled AMD ARK",
            expected="ARK-Milan, ARK-Genoa or ARK-Turin",
            actual=_x509.common_name(intermediate.issuer),
        )
    return found[2]


def _expect_cn(name: x509.Name, expected: str, check: str) -> None:
    actual = _x509.common_name(name)
    if actual != expected:
        raise SignatureError(
            check, "unexpected certificate subject", expected=expected, actual=actual
        )


def _read_vek_tcb(extensions: Mapping[str, bytes], *, turin: bool) -> dict[str, int]:
    tcb: dict[str, int] = {}
    for component, oid in _x509.TCB_EXTENSIONS.items():
        raw = extensions.get(oid)
        if raw is None:
            if component == "fmc" and not turin:
                continue
            raise SignatureError(
                f"vek.tcb.{component}", "VEK lacks a TCB extension", expected=oid, actual="absent"
            )
        tcb[component] = _x509.der_integer(raw, f"vek.tcb.{component}")
    return tcb


def _check_crl(
    crl_bytes: bytes, root: x509.Certificate, intermediate: x509.Certificate
) -> tuple[datetime, datetime | None]:
    try:
        if b"-----BEGIN" in crl_bytes:
            crl = x509.load_pem_x509_crl(crl_bytes)
        else:
            crl = x509.load_der_x509_crl(crl_bytes)
    except ValueError as err:
        raise ParseError("crl.format", f"not a DER or PEM CRL: {err}") from err
    if crl.issuer != root.subject:
        raise SignatureError(
            "crl.issuer",
            "CRL is not issued by the chain's ARK",
            expected=_x509.common_name(root.subject),
            actual=_x509.common_name(crl.issuer),
        )
    key = root.public_key()
    params = crl.signature_algorithm_parameters
    hash_algorithm = crl.signature_hash_algorithm
    if (
        not isinstance(key, rsa.RSAPublicKey)
        or not isinstance(params, padding.PSS)
        or not isinstance(hash_algorithm, hashes.SHA384)
    ):
        raise SignatureError("crl.signature", "CRL is not signed with RSASSA-PSS SHA-384")
    try:
        key.verify(crl.signature, crl.tbs_certlist_bytes, params, hash_algorithm)
    except InvalidSignature as err:
        raise SignatureError(
            "crl.signature",
            "CRL signature does not verify under the ARK",
            expected="valid",
            actual="invalid",
        ) from err
    revoked = crl.get_revoked_certificate_by_serial_number(intermediate.serial_number)
    if revoked is not None:
        raise SignatureError(
            "crl.revoked",
            f"{_x509.common_name(intermediate.subject)} is revoked",
            expected="not revoked",
            actual=f"revoked {revoked.revocation_date_utc:%Y-%m-%dT%H:%M:%SZ}",
        )
    return crl.last_update_utc, crl.next_update_utc


# (3) -------------------------------------------------------------------------------


def check_chain_validity(chain: VerifiedChain, now: datetime) -> None:
    """Every certificate of the chain (and the CRL, if any) is valid at ``now``."""
    if now < chain.not_before or now > chain.not_after:
        raise SignatureError(
            "chain.validity",
            "a certificate in the chain is not valid at the verification time",
            expected=f"{_iso(chain.not_before)} .. {_iso(chain.not_after)}",
            actual=_iso(now),
        )
    if chain.crl_last_update is not None and now < chain.crl_last_update:
        raise SignatureError(
            "crl.validity",
            "CRL is not yet valid",
            expected=f">= {_iso(chain.crl_last_update)}",
            actual=_iso(now),
        )
    if chain.crl_next_update is not None and now > chain.crl_next_update:
        raise SignatureError(
            "crl.validity",
            "CRL is stale (past its nextUpdate)",
            expected=f"<= {_iso(chain.crl_next_update)}",
            actual=_iso(now),
        )


# (4) - (7) ---------------------------------------------------------------------------


def verify_signing_key(report: AttestationReport, chain: VerifiedChain) -> None:
    """KEY_INFO's SIGNING_KEY must name the kind of key supplied (VCEK or VLEK)."""
    if report.signing_key == "NONE":
        raise SignatureError(
            "report.key_info.signing_key",
            "report is not signed (SIGNING_KEY = none)",
            expected=chain.signing_key,
            actual="NONE",
        )
    if report.signing_key != chain.signing_key:
        raise SignatureError(
            "report.key_info.signing_key",
            "report names another signing key than the certificate supplied",
            expected=chain.signing_key,
            actual=report.signing_key,
        )


def verify_report_product(report: AttestationReport, chain: VerifiedChain) -> None:
    """A v3+ report's CPUID must name the chain's product; Turin never issues v2 reports."""
    if chain.simulated:
        return
    if report.version < 3:
        if chain.product == "Turin":
            raise SignatureError(
                "report.version",
                "Turin firmware issues only v3+ reports",
                expected=">= 3",
                actual=report.version,
            )
        return
    named = report.cpuid_product
    if named != chain.product:
        raise SignatureError(
            "report.cpuid",
            "report CPUID family/model does not name the chain's product",
            expected=chain.product,
            actual=named or f"unknown family/model {report.cpuid_fam_id}/{report.cpuid_mod_id}",
        )


def verify_tcb_extensions(report: AttestationReport, chain: VerifiedChain) -> None:
    """The VEK's TCB extensions (bl, tee, snp, ucode, fmc) equal REPORTED_TCB."""
    reported = report.reported_tcb.components()
    for component, cert_value in chain.vek_tcb.items():
        actual = reported.get(component)
        if actual != cert_value:
            raise SignatureError(
                f"vek.tcb.{component}",
                f"REPORTED_TCB does not match the {chain.signing_key} it claims",
                expected=cert_value,
                actual=actual,
            )


def verify_hwid(report: AttestationReport, chain: VerifiedChain) -> None:
    """A VCEK's hwID must equal CHIP_ID (Turin: its first 8 bytes).

    Skipped for VLEKs (not chip-bound) and when the host masked CHIP_ID
    (KEY_INFO.MASK_CHIP_KEY): the signature still binds the report to the key.
    """
    if chain.hwid is None or report.key_info.mask_chip_key:
        return
    chip = report.chip_id[: len(chain.hwid)]
    if chain.hwid != chip:
        raise SignatureError(
            "vek.hwid",
            "VCEK hwID does not equal the report's CHIP_ID",
            expected=chain.hwid.hex(),
            actual=chip.hex(),
        )


# (8) -------------------------------------------------------------------------------


def verify_report_signature(
    report: AttestationReport,
    vek: VerifiedChain | x509.Certificate | ec.EllipticCurvePublicKey,
) -> None:
    """ECDSA P-384/SHA-384 over bytes 0..0x2A0, r and s little-endian (never cached)."""
    key: object  # narrowed to an EC key below, whatever the caller passed
    if isinstance(vek, VerifiedChain):
        key = vek.vek_public_key
    elif isinstance(vek, x509.Certificate):
        key = vek.public_key()
    else:
        key = vek
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError("report.signature", "signing key is not an EC key")
    r = int.from_bytes(report.signature_r, "little")
    s = int.from_bytes(report.signature_s, "little")
    try:
        key.verify(encode_dss_signature(r, s), report.signed_bytes(), _ECDSA_P384_SHA384)
    except (InvalidSignature, ValueError) as err:
        raise SignatureError(
            "report.signature",
            "ECDSA P-384 SHA-384 signature over the report does not verify",
            expected="valid signature by the VCEK/VLEK",
            actual="invalid",
        ) from err


def verify_attestation(
    report: AttestationReport, certs: bytes, options: VerifyOptions
) -> VerifiedChain:
    """Steps (1)-(8): the report is signed by a VEK that chains to a trusted ARK.

    Returns the verified chain (product, signing key, VEK TCB). Raises
    ``ParseError`` for unreadable certificates, ``SignatureError`` otherwise.
    """
    chain = verify_vek_chain(certs, options)  # (1), (2)
    check_chain_validity(chain, options.time())  # (3)
    verify_signing_key(report, chain)  # (4)
    verify_report_product(report, chain)  # (5)
    verify_tcb_extensions(report, chain)  # (6)
    verify_hwid(report, chain)  # (7)
    verify_report_signature(report, chain)  # (8)
    return chain


def clear_caches() -> None:
    """Forget cached certificate bundles and chains (benchmarks measure the cold path)."""
    load_cert_bundle.cache_clear()
    _verified_chain.cache_clear()


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
