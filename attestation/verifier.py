"""The one entry point every party calls: evidence bytes in, ``VerifiedEvidence`` out.

Pipeline (DESIGN.md "Verification pipeline"), tagged in the code:

(1) parse: pure, bounds-checked (``attestation.snp.abi``)
(2) verify signatures and chain to a trusted root (``attestation.snp.verify``)
(3) validate against the party's policy (``attestation.policy``)
(4) check the binding: REPORT_DATA equals what the caller recomputed

Each step raises its own ``TcmeError`` subclass (``ParseError``,
``SignatureError``, ``PolicyError``, ``BindingError``), naming the failed check
with expected vs. actual. Simulated evidence runs the very same steps with the
simulated root as the only trusted ARK, and only when the policy says
``allow_simulated = true``; genuine AMD evidence is never reported as
simulated, and simulated evidence never passes as genuine.

Adding a TEE: write ``_verify_<tee>`` with the signature of ``_verify_snp`` and
register it in ``_VERIFIERS``; extend ``detect_evidence_type``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from attestation.azure.evidence import looks_like_azure_evidence
from attestation.azure.verify import AzureReport, evidence_kind
from attestation.errors import BindingError, ParseError, PolicyError, UsageError
from attestation.nvidia.evidence import TEE_NVIDIA_GPU, is_nvidia_report, verify_nvidia_gpu
from attestation.nvidia.verify import VerifiedDevice
from attestation.policy import Policy, validate_report
from attestation.snp.abi import AttestationReport, decode_report_input, parse_report
from attestation.snp.roots import amd_ark_fingerprints
from attestation.snp.verify import (
    SIMULATED_PRODUCT,
    CertBundle,
    VerifyOptions,
    load_cert_bundle,
    verify_attestation,
)
from attestation.tdx.abi import Quote as TdxQuote
from attestation.tdx.abi import parse_quote as parse_tdx_quote
from attestation.tdx.abi import tdx_summary
from attestation.tdx.collateral import TdxCollateral, collateral_for_quote
from attestation.tdx.policy import TdxPolicy, validate_quote
from attestation.tdx.verify import INTEL_SGX_ROOT_CA_SHA256
from attestation.tdx.verify import VerifyOptions as TdxVerifyOptions
from attestation.tdx.verify import verify_quote as verify_tdx_quote

log = logging.getLogger(__name__)

TEE_SNP = "sev-snp"
TEE_TDX = "tdx"
TEE_AZ_SNP = "az-snp-vtpm"
TEE_AZ_TDX = "az-tdx-vtpm"


@dataclass(frozen=True)
class VerifiedEvidence:
    """Evidence that passed every step; the only source of keys bound into it.

    ``product``: "Milan" | "Genoa" | "Turin" | "SIMULATED" (TDX: "TDX").
    ``tcb``: the REPORTED_TCB components the VEK endorses. ``report``: the
    parsed report (``AttestationReport`` for SEV-SNP).
    """

    tee: str
    simulated: bool
    product: str
    report_data: bytes
    measurement: bytes
    tcb: Mapping[str, Any]  # SEV-SNP: component -> SVN; TDX: tcb_status, advisory_ids, ...
    signing_key: str
    report: Any
    root_sha256: str = ""
    verified_at: datetime | None = None

    @property
    def verdict(self) -> str:
        """One human line; says SIMULATED whenever the evidence is."""
        if self.simulated:
            return (
                f"ACCEPTED: SIMULATED {self.tee.upper()} evidence "
                "(simulated root, no hardware root of trust)"
            )
        vendor = {TEE_SNP: "AMD", TEE_AZ_SNP: "AMD", TEE_NVIDIA_GPU: "NVIDIA"}.get(
            self.tee, "Intel"
        )
        kind = "NVIDIA GPU" if self.tee == TEE_NVIDIA_GPU else f"{vendor} {self.tee.upper()}"
        return f"ACCEPTED: genuine {kind} evidence ({self.product}, {self.signing_key})"

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary; ``simulated`` is always present."""
        out: dict[str, Any] = {
            "accepted": True,
            "verdict": self.verdict,
            "tee": self.tee,
            "simulated": self.simulated,
            "product": self.product,
            "signing_key": self.signing_key,
            "root_sha256": self.root_sha256,
            "measurement": self.measurement.hex(),
            "report_data": self.report_data.hex(),
            "tcb": dict(self.tcb),
        }
        if isinstance(self.report, AttestationReport):
            out.update(
                report_version=self.report.version,
                vmpl=self.report.vmpl,
                guest_svn=self.report.guest_svn,
                policy=f"0x{self.report.policy:x}",
                host_data=self.report.host_data.hex(),
                chip_id=self.report.chip_id.hex(),
            )
        if isinstance(self.report, VerifiedDevice):
            out["device"] = self.report.summary()
        if isinstance(self.report, TdxQuote):
            out.update(tdx_summary(self.report))
        if isinstance(self.report, AzureReport):
            out.update(self.report.summary())
        if self.verified_at is not None:
            out["verified_at"] = self.verified_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return out


def detect_evidence_type(data: bytes) -> str:
    """ "sev-snp" or "tdx" for raw, hex or base64 evidence; ``ParseError`` if neither."""
    if not isinstance(data, bytes | bytearray | memoryview) or not data:
        raise ParseError(
            "evidence.empty",
            "no evidence bytes",
            expected="an SEV-SNP report or TDX quote",
            actual="0 bytes",
        )
    data = bytes(data)
    if _is_tdx_quote(data):
        return TEE_TDX
    if looks_like_azure_evidence(data):
        return evidence_kind(data)  # parses strictly: malformed Azure evidence fails here
    if is_nvidia_report(data):
        return TEE_NVIDIA_GPU
    try:
        decode_report_input(data)
        return TEE_SNP
    except ParseError as snp_error:
        decoded = _decode_text(data)
        if decoded is not None and _is_tdx_quote(decoded):
            return TEE_TDX
        raise ParseError(
            "evidence.type",
            f"neither an SEV-SNP report nor a TDX quote ({snp_error.message()})",
            expected="SEV-SNP report (1184 bytes, hex, base64, Azure HCL), TDX quote v4/v5 "
            "or Azure vTPM evidence JSON",
            actual=f"{len(data)} bytes",
        ) from snp_error


def verify_evidence(
    evidence: bytes,
    *,
    certs: bytes | None = None,
    policy: Policy,
    at: datetime | None = None,
    expected_report_data: bytes | None = None,
    collateral: Any = None,
    crl: bytes | None = None,
    product: str | None = None,
    nonce: bytes | None = None,
) -> VerifiedEvidence:
    """Parse, verify, validate and bind ``evidence``; return what was verified.

    ``certs``: SEV-SNP VCEK/VLEK (PEM or DER), optionally followed by the ASK/ASVK
    and ARK (missing ones come from the bundled AMD roots). ``at``: verification
    time (default now). ``expected_report_data``: the 64 bytes the caller
    recomputed (DESIGN.md "Keys and binding"). ``collateral``: TDX collateral.
    ``crl``: AMD CRL. ``product``: require this product line. ``nonce``: Azure
    vTPM evidence only: the exact qualifying data the quote must carry (CoCo's
    nonce), instead of or beside ``expected_report_data``.
    Raises ``ParseError``, ``SignatureError``, ``PolicyError``, ``BindingError``
    or ``UsageError``.
    """
    if not isinstance(policy, Policy):
        raise UsageError("policy", "a Policy is required", actual=type(policy).__name__)
    tee = detect_evidence_type(evidence)
    verifier = _VERIFIERS.get(tee)
    if verifier is None:
        raise UsageError(f"{tee}.unsupported", f"{tee} evidence verification is not available")
    extra: dict[str, Any] = {}
    if nonce is not None:
        if tee not in (TEE_AZ_SNP, TEE_AZ_TDX):
            raise UsageError(
                "nonce",
                "a nonce applies to Azure vTPM evidence (its TPM quote); for SEV-SNP and TDX "
                "give the expected REPORT_DATA",
                expected="az-snp-vtpm or az-tdx-vtpm evidence",
                actual=tee,
            )
        extra["nonce"] = bytes(nonce)
    return verifier(
        bytes(evidence),
        certs=certs,
        policy=policy,
        at=at,
        expected_report_data=expected_report_data,
        collateral=collateral,
        crl=crl,
        product=product,
        **extra,
    )


def _verify_snp(
    evidence: bytes,
    *,
    certs: bytes | None,
    policy: Policy,
    at: datetime | None,
    expected_report_data: bytes | None,
    collateral: Any,
    crl: bytes | None,
    product: str | None,
) -> VerifiedEvidence:
    del collateral  # SEV-SNP needs only the certificates
    # (1) parse
    report = parse_report(decode_report_input(evidence))
    if not certs:
        raise UsageError(
            "certs",
            "SEV-SNP verification needs the VCEK/VLEK certificate (no network fetch)",
            expected="VEK PEM/DER, optionally with ASK/ASVK and ARK",
            actual="none",
        )
    certs = bytes(certs)
    # (2) signatures and chain, with the root chosen by the policy
    trusted = _trusted_roots(load_cert_bundle(certs), policy)
    when = VerifyOptions(now=at).time()  # one instant for every time check and the result
    options = VerifyOptions(now=when, trusted_arks=trusted, crl=crl, product=product)
    chain = verify_attestation(report, certs, options)
    if chain.simulated:
        log.warning("verifying SIMULATED SEV-SNP evidence (allowed by policy)")
    # (3) policy
    validate_report(report, policy.snp, product=chain.product)
    # (4) binding
    if expected_report_data is not None:
        expected = bytes(expected_report_data)
        if len(expected) != len(report.report_data) or expected != report.report_data:
            raise BindingError(
                "report_data",
                "REPORT_DATA does not match the value recomputed from claims, contract and nonce",
                expected=expected,
                actual=report.report_data,
            )
    return VerifiedEvidence(
        tee=TEE_SNP,
        simulated=chain.simulated,
        product=chain.product,
        report_data=report.report_data,
        measurement=report.measurement,
        tcb=dict(report.reported_tcb.components()),
        signing_key=chain.signing_key,
        report=report,
        root_sha256=chain.ark_sha256,
        verified_at=when,
    )


def _trusted_roots(bundle: CertBundle, policy: Policy) -> Mapping[str, str] | None:
    """Which ARK the chain may end in: pinned AMD ARKs, or (only if allowed) a simulated one.

    A supplied root that is a pinned AMD ARK is always genuine. Any other root is
    simulated when its subject says SIMULATED, or when the policy allows simulated
    evidence; simulated roots are refused unless ``allow_simulated``, and then
    only pinned ones if ``simulated_ark_sha256`` is set. Everything else goes to
    the AMD pins and fails there with the chain's own reason.
    """
    root_fp = bundle.root_sha256
    if root_fp is None or root_fp in amd_ark_fingerprints():
        return None
    says_simulated = SIMULATED_PRODUCT in bundle.root_subject.upper()
    if not (says_simulated or policy.allow_simulated):
        return None
    if not policy.allow_simulated:
        raise PolicyError(
            "simulated",
            f"evidence is SIMULATED (root {bundle.root_subject!r}), not from AMD hardware; "
            "the policy does not allow simulated evidence",
            expected="allow_simulated = true",
            actual="allow_simulated = false",
        )
    pins = policy.simulated_ark_sha256
    if pins and root_fp not in pins:
        raise PolicyError(
            "simulated_ark_sha256",
            "simulated root is not one the policy pins",
            expected="one of " + ", ".join(pins),
            actual=root_fp,
        )
    return {root_fp: SIMULATED_PRODUCT}


# A TDX quote header: version (u16) 4 or 5, attestation key type (u16) 2 = ECDSA P-256,
# TEE type (u32) 0x81 = TDX (Intel TDX DCAP Quote Generation Library, "Quote Header").
_TDX_HEADER = struct.Struct("<HHI")
_TDX_MIN_SIZE = 48 + 584


def _is_tdx_quote(data: bytes) -> bool:
    if len(data) < _TDX_MIN_SIZE:
        return False
    _version, key_type, tee_type = _TDX_HEADER.unpack_from(data, 0)
    # Any version: an unsupported one is then reported by the TDX parser as `quote.version`
    # (expected 4 or 5), not as unknown evidence. An SEV-SNP report cannot match: its
    # 32-bit version leaves bytes 2..4 zero.
    return key_type == 2 and tee_type == 0x81


_HEX = re.compile(rb"\A(?:[0-9a-fA-F]{2})+\Z")


def _decode_text(data: bytes) -> bytes | None:
    text = b"".join(data.split())
    try:
        if _HEX.match(text):
            return bytes.fromhex(text.decode("ascii"))
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _verify_tdx(
    evidence: bytes,
    *,
    certs: bytes | None,
    policy: Policy,
    at: datetime | None,
    expected_report_data: bytes | None,
    collateral: Any,
    crl: bytes | None,
    product: str | None,
) -> VerifiedEvidence:
    """TDX: (1) parse, (2) dcap-qvl against the pinned Intel root, (3) [tdx] policy, (4) binding.

    ``collateral``: a ``TdxCollateral``, dcap-qvl collateral JSON (bytes/str), or a path to
    such a file, a collateral cache or a PCS-response folder. Never fetched from the network.
    The PCK chain travels inside the quote and CRLs inside the collateral: ``certs`` and
    ``crl`` do not apply.
    """
    del certs, crl
    # (1) parse
    quote = parse_tdx_quote(decode_tdx_input(evidence))
    tdx_policy = TdxPolicy.from_dict(policy.tdx)  # a bad [tdx] table fails before any work
    # (2) signatures, chains, collateral (dcap-qvl), at one instant
    options = TdxVerifyOptions(collateral=_tdx_collateral(collateral, quote), now=at)
    verified = verify_tdx_quote(quote, options)
    if product is not None and product != "TDX":
        raise PolicyError("product", "wrong product", expected=product, actual="TDX")
    # (3) policy, then (4) binding
    validate_quote(verified, tdx_policy, expected_report_data=expected_report_data)
    return VerifiedEvidence(
        tee=TEE_TDX,
        simulated=False,  # there is no simulated TDX: only Intel's root is ever trusted
        product="TDX",
        report_data=quote.body.report_data,
        measurement=quote.body.mr_td,
        tcb={
            "tcb_status": verified.tcb_status,
            "advisory_ids": list(verified.advisory_ids),
            "fmspc": verified.fmspc,
            "tcb_evaluation_data_number": verified.tcb_evaluation_data_number,
            "tee_tcb_svn": quote.body.tee_tcb_svn.hex(),
        },
        signing_key="PCK",
        report=quote,
        root_sha256=INTEL_SGX_ROOT_CA_SHA256,
        verified_at=verified.verified_at,
    )


def decode_tdx_input(data: bytes) -> bytes:
    """A TDX quote's raw bytes from raw, hex or base64 input (what detect_evidence_type takes)."""
    data = bytes(data)
    if _is_tdx_quote(data):
        return data
    decoded = _decode_text(data)
    return decoded if decoded is not None else data


def _tdx_collateral(collateral: Any, quote: TdxQuote) -> TdxCollateral:
    if isinstance(collateral, TdxCollateral):
        return collateral
    if isinstance(collateral, Path):
        return collateral_for_quote(collateral, quote)
    if isinstance(collateral, str) and collateral and not collateral.lstrip().startswith("{"):
        return collateral_for_quote(Path(collateral), quote)  # a path given as text
    if isinstance(collateral, bytes | bytearray | str) and collateral:
        text = collateral if isinstance(collateral, str) else bytes(collateral)
        return TdxCollateral.from_json(text, source="collateral JSON")
    raise UsageError(
        "collateral",
        "TDX verification needs Intel collateral (it never fetches): a dcap-qvl JSON file, "
        "a cache folder (`tcme collateral fetch`), or a PCS-response folder",
        expected="--collateral FILE_OR_DIR",
        actual="none" if collateral is None else type(collateral).__name__,
    )


def _verify_azure(
    evidence: bytes,
    *,
    certs: bytes | None,
    policy: Policy,
    at: datetime | None,
    expected_report_data: bytes | None,
    collateral: Any,
    crl: bytes | None,
    product: str | None,
    nonce: bytes | None = None,
) -> VerifiedEvidence:
    """Azure vTPM evidence (``attestation.azure.verify``) under the policy's ``[azure]`` table."""
    from attestation.azure.policy import AzurePolicy
    from attestation.azure.verify import verify_azure_evidence

    table = policy.extra.get("azure")
    return verify_azure_evidence(  # type: ignore[no-any-return]
        evidence,
        policy=policy,
        azure_policy=AzurePolicy.from_dict(table) if table is not None else None,
        at=at,
        expected_report_data=expected_report_data,
        nonce=nonce,
        certs=certs,
        collateral=collateral,
        crl=crl,
        product=product,
    )


_VERIFIERS: dict[str, Callable[..., VerifiedEvidence]] = {
    TEE_SNP: _verify_snp,
    TEE_TDX: _verify_tdx,
    TEE_AZ_SNP: _verify_azure,
    TEE_AZ_TDX: _verify_azure,
    TEE_NVIDIA_GPU: verify_nvidia_gpu,
}
