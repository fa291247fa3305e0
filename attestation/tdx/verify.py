"""Are a TDX quote's signatures, certificate chains and collateral good? (dcap-qvl does the crypto.)

``verify_quote`` is the only entry point. Its steps:

  (0) parse the quote strictly (``attestation.tdx.abi``);
  (1) the root of the PCK chain inside the quote must be the trusted Intel SGX Root CA,
      byte for byte (dcap-qvl anchors at its own root and ignores the quote's copy);
  (2) dcap-qvl, with the trusted root, the collateral and the verification time injected:
      quote signature by the attestation key, QE report signature by the PCK key, QE report
      hash over the attestation key, PCK chain to the root, CRLs (root and PCK CA), TCB Info
      and QE Identity signatures and freshness, FMSPC match, TCB level matching, and dcap-qvl's
      own TD attribute sanity checks (debug, reserved bits, SEPT_VE_DISABLE);
  (3) the upper half of the QE report's REPORT_DATA must be zero (Intel QVL checks this;
      dcap-qvl compares only the lower 32 bytes).

The TCB status and advisory IDs are returned, not judged: a status other than
"Revoked" verifies here, and ``attestation.tdx.policy`` decides whether it is
acceptable. Time, trusted root and collateral are always inputs (``VerifyOptions``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources

import dcap_qvl
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from attestation._internal.clock import verification_time
from attestation.errors import ParseError, PolicyError, SignatureError, TcmeError, UsageError
from attestation.tdx.abi import Quote, parse_quote
from attestation.tdx.collateral import TdxCollateral

# SHA-256 of the DER of Intel's "Intel SGX Root CA" (2018-05-21 .. 2049-12-31). The bundled
# file attestation/roots/intel_sgx_root_ca.pem must hash to this or nothing verifies.
INTEL_SGX_ROOT_CA_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
_ROOT_RESOURCE = "intel_sgx_root_ca.pem"

TCB_STATUS_REVOKED = "Revoked"


@dataclass(frozen=True)
class VerifyOptions:
    """Everything ``verify_quote`` needs beside the quote.

    ``collateral``: TCB Info, QE Identity, CRLs and their issuer chains, from the cache or a file.
    ``now``: the verification time (certificate validity, CRL and collateral freshness);
    None means the current time, a naive time is UTC (``attestation._internal.clock``).
    ``trusted_root_der``: the anchor; None means the bundled,
    fingerprint-pinned Intel SGX Root CA (the only sane choice outside tests).
    """

    collateral: TdxCollateral
    now: datetime | None = None
    trusted_root_der: bytes | None = None


@dataclass(frozen=True)
class VerifiedQuote:
    """A quote whose signatures, chains and collateral verified; its TCB not yet judged."""

    quote: Quote
    tcb_status: str
    advisory_ids: tuple[str, ...]
    fmspc: str  # lower-case hex, from the collateral's TCB Info (dcap-qvl matched it to the PCK)
    tcb_evaluation_data_number: int | None
    verified_at: datetime


def intel_sgx_root_ca_der() -> bytes:
    """The bundled Intel SGX Root CA (DER), after checking its pinned SHA-256 fingerprint."""
    return _bundled_root()


@lru_cache(maxsize=1)
def _bundled_root() -> bytes:
    pem = resources.files("attestation.roots").joinpath(_ROOT_RESOURCE).read_bytes()
    return load_pinned_root(pem, source=_ROOT_RESOURCE)


def load_pinned_root(pem: bytes, *, source: str = "root") -> bytes:
    """DER of the certificate in ``pem`` (``#`` comment lines allowed before it), refused
    unless its SHA-256 is the pinned Intel SGX Root CA fingerprint."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as err:
        raise ParseError("trust_root", f"{source}: not a PEM certificate: {err}") from err
    der = cert.public_bytes(Encoding.DER)
    actual = hashlib.sha256(der).hexdigest()
    if actual != INTEL_SGX_ROOT_CA_SHA256:
        raise SignatureError(
            "trust_root.intel_sgx_root_ca",
            f"{source} is not the pinned Intel SGX Root CA",
            expected=INTEL_SGX_ROOT_CA_SHA256,
            actual=actual,
        )
    return der


def verify_quote(evidence: bytes | Quote, options: VerifyOptions) -> VerifiedQuote:
    """Verify a TDX quote with dcap-qvl; raise ``ParseError``/``SignatureError``/``PolicyError``.

    ``PolicyError`` is raised only where dcap-qvl itself refuses a genuine quote's TCB
    (no TCB level matches the platform; status Revoked).
    """
    # (0) parse
    quote = evidence if isinstance(evidence, Quote) else parse_quote(evidence)
    root = options.trusted_root_der if options.trusted_root_der is not None else _bundled_root()
    now = verification_time(options.now)  # the one time rule: naive = UTC

    # (1) the quote's own copy of the root must be the anchor we trust
    chain = quote.signature_data.certification.pck_cert_chain
    if chain[-1] != root:
        raise SignatureError(
            "pck_chain.root",
            "the PCK chain in the quote does not end in the trusted Intel SGX Root CA",
            expected=hashlib.sha256(root).hexdigest(),
            actual=hashlib.sha256(chain[-1]).hexdigest(),
        )

    # (2) dcap-qvl: every signature, chain, CRL, collateral freshness, TCB level
    now_secs = int(now.timestamp())
    if now_secs < 0:
        raise UsageError("verification_time", "before 1970", expected=">= 1970", actual=now)
    try:
        report = dcap_qvl.verify_with_root_ca(quote.raw, options.collateral.dcap, root, now_secs)
    except (ValueError, RuntimeError, OverflowError) as err:
        # dcap-qvl reports every failure as text; anything it raises is a rejection.
        raise _classify(str(err), quote, options.collateral) from err

    # (3) QE REPORT_DATA = SHA-256(attestation key || QE auth data) || 32 zero bytes
    qe_report_data = quote.signature_data.certification.qe_report.report_data
    if qe_report_data[32:].count(0) != 32:
        raise SignatureError(
            "qe_report.report_data",
            "upper 32 bytes of the QE report's REPORT_DATA must be zero",
            expected=bytes(32),
            actual=qe_report_data[32:],
        )

    status = report.status
    if status == TCB_STATUS_REVOKED:  # dcap-qvl raises for this today; never let it through
        raise PolicyError(
            "tcb_status", "platform TCB is revoked", expected="not Revoked", actual=status
        )
    return VerifiedQuote(
        quote=quote,
        tcb_status=status,
        advisory_ids=tuple(report.advisory_ids),
        fmspc=options.collateral.fmspc,
        tcb_evaluation_data_number=options.collateral.tcb_evaluation_data_number,
        verified_at=now,
    )


_CAUSE_SPLIT = re.compile(r"\s*Caused by:\s*", re.MULTILINE)
_UNIX_TIME = re.compile(r"UnixTime\((\d+)\)")


def _one_line(message: str) -> str:
    message = message.removeprefix("Verification failed: ")
    message = _UNIX_TIME.sub(
        lambda m: datetime.fromtimestamp(int(m.group(1)), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        message,
    )
    return " ".join(_CAUSE_SPLIT.sub(": ", message).split())


def _classify(message: str, quote: Quote, collateral: TdxCollateral) -> TcmeError:
    """Turn dcap-qvl's error text into a named check with our own words.

    dcap-qvl raises bare ValueErrors whose text is Rust debug output
    (``CrlExpired { time: ... }``); it names the check, and each known check gets
    a sentence in TDX terms here. Only an unknown failure quotes dcap-qvl, made
    readable.
    """
    detail = _one_line(message)
    lowered = detail.lower()
    if "no matching tcb level" in lowered:
        return PolicyError(
            "tcb_level",
            "no TCB level in the TCB Info matches this platform's TCB SVNs",
            expected=f"a matching TCB level for fmspc {collateral.fmspc}",
            actual="none",
        )
    if "revoked" in lowered and "tcb status" in lowered:
        return PolicyError(
            "tcb_status", "the platform's TCB is revoked", expected="not Revoked", actual="Revoked"
        )
    if "failed to decode quote" in lowered:
        return ParseError("quote", f"the quote does not decode: {_readable(detail)}")
    for needle, check, sentence in _TD_ATTRIBUTE_REFUSALS:
        if needle in lowered:
            # A genuine quote whose TD configuration dcap-qvl itself refuses (no policy
            # setting of ours can override these).
            return PolicyError(check, sentence, actual=quote.body.td_attributes)
    check = _check_for(lowered)
    if check == "certificate_chain":
        check, why = _diagnose_pck_chain(quote)
        return SignatureError(check, why)
    known = _SENTENCES.get(check)
    if known is None:
        return SignatureError(check, f"dcap-qvl refused the quote: {_readable(detail)}")
    times = [
        f"{_TIME_FIELDS[name]} {value}"
        for name, value in _FIELD.findall(detail)
        if name in _TIME_FIELDS
    ]
    return SignatureError(check, known + (f" ({'; '.join(times)})" if times else ""))


_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_FIELD = re.compile(r"(\w+): ([^,}\s]+)")
# The fields of dcap-qvl's time errors (CertExpired { time, not_after } ...), in words.
_TIME_FIELDS = {
    "time": "verification time",
    "not_before": "valid from",
    "not_after": "valid until",
    "next_update": "next update due",
}


def _readable(detail: str) -> str:
    """Rust debug text as words: ``CrlExpired { time: T }`` -> ``Crl Expired (time: T)``."""
    words = _CAMEL.sub(" ", detail).replace(" { ", " (").replace(" }", ")")
    return words[:300]


# Ordered: the first matching substring of dcap-qvl's text names the check.
_CHECKS = (
    ("isv enclave report signature", "quote.signature"),
    ("signature is invalid for qe_report", "qe_report.signature"),
    ("qe report hash mismatch", "qe_report.report_data"),
    ("crlexpired", "collateral.crl.freshness"),
    ("certrevoked", "certificate_chain.revocation"),
    ("certexpired", "certificate_chain.validity"),
    ("certnotvalidyet", "certificate_chain.validity"),
    ("tcbinfo", "collateral.tcb_info"),
    ("tcb info", "collateral.tcb_info"),
    ("tcb_info", "collateral.tcb_info"),
    ("qe identity", "collateral.qe_identity"),
    ("qe_identity", "collateral.qe_identity"),
    ("fmspc mismatch", "collateral.fmspc"),
    ("crl", "collateral.crl"),
    ("certificate", "certificate_chain"),
)
# What each check means, in TDX terms (dcap-qvl words the first one as SGX's
# "ISV enclave report"; in a TD quote it is the TD report).
_SENTENCES = {
    "quote.signature": (
        "the quote's signature over the TD report does not verify under the attestation "
        "key the Quoting Enclave certified"
    ),
    "qe_report.signature": (
        "the Quoting Enclave's report is not signed by the PCK certificate's key"
    ),
    "qe_report.report_data": (
        "the Quoting Enclave's report does not bind the quote's attestation key"
    ),
    "collateral.crl.freshness": (
        "a CRL in the collateral is past its next update at the verification time: "
        "fetch fresh collateral (tcme collateral fetch)"
    ),
    "certificate_chain.revocation": "a certificate in the PCK chain is revoked by the PCK CRL",
    "certificate_chain.validity": (
        "a certificate in the PCK chain is expired or not yet valid at the verification time"
    ),
    "collateral.tcb_info": (
        "the collateral's TCB Info does not verify (signature, issuer chain or validity window)"
    ),
    "collateral.qe_identity": (
        "the collateral's QE Identity does not verify (signature, issuer chain or validity "
        "window), or the Quoting Enclave does not match it"
    ),
    "collateral.fmspc": "the collateral is for another platform (FMSPC mismatch)",
    "collateral.crl": "a CRL in the collateral does not verify under its issuer",
}
# dcap-qvl's own checks of the TD's configuration (TDATTRIBUTES, MRSERVICETD).
_TD_ATTRIBUTE_REFUSALS = (
    ("debug mode is enabled", "td_attributes.debug", "the TD runs in debug mode"),
    (
        "sept_ve_disable",
        "td_attributes.sept_ve_disable",
        "the TD does not disable EPT-violation #VE (SEPT_VE_DISABLE is clear)",
    ),
    ("reserved bits", "td_attributes.reserved", "reserved TD attribute bits are set"),
    ("td profiling", "td_attributes.perfmon", "the TD allows performance profiling"),
    ("td migration", "td_attributes.migratable", "the TD is migratable"),
    ("servtd_ext", "td_attributes.servtd_ext", "the TD has a service-TD extension bound"),
    ("mr service td", "mr_service_td", "MRSERVICETD is not zero (a service TD is bound)"),
)


def _check_for(lowered: str) -> str:
    for needle, check in _CHECKS:
        if needle in lowered:
            return check
    return "dcap_qvl"


def _diagnose_pck_chain(quote: Quote) -> tuple[str, str]:
    """Name the link that broke when dcap-qvl reports only "certificate chain" (failure path only).

    The quote's root was already pinned in step (1), so only the two lower links can fail here.
    """
    generic = "the PCK certificate chain in the quote does not verify"
    try:
        leaf, intermediate, root = (
            x509.load_der_x509_certificate(der)
            for der in quote.signature_data.certification.pck_cert_chain
        )
    except ValueError:
        return "pck_chain", f"{generic}: a certificate in it does not parse"
    for name, cert, issuer in (
        ("pck_chain.intermediate", intermediate, root),
        ("pck_chain.leaf", leaf, intermediate),
    ):
        key = issuer.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or cert.signature_hash_algorithm is None:
            continue
        try:
            key.verify(
                cert.signature,
                cert.tbs_certificate_bytes,
                ec.ECDSA(cert.signature_hash_algorithm),
            )
        except InvalidSignature:
            subject = cert.subject.rfc4514_string()
            return name, f"the signature on {subject!r} does not verify under its issuer's key"
    return "certificate_chain", generic
