"""The one entry point every party calls: evidence bytes in, ``VerifiedEvidence`` out.

Pipeline (DESIGN.md "Verification pipeline"), the same shape for every kind, tagged
in the code:

(0) detect the kind (``Tee``) from the bytes; refuse it unless the policy's ``accept``
    names it (check ``tee.accept``); fix one verification instant (naive = UTC,
    ``attestation._internal.clock``)
(1) parse: pure, bounds-checked (``attestation.snp.abi``, ``attestation.tdx.abi``)
(2) verify signatures and chain to a trusted root (``attestation.snp.verify``,
    ``attestation.tdx.verify``)
(3) validate against the party's policy (``attestation.policy``,
    ``attestation.tdx.policy``)
(4) check the binding: the kind's bound value (REPORT_DATA) equals what the caller
    recomputed with ``attestation.binding.report_data_for``; checked here, in one
    place, for every kind (``attestation.binding.check_binding``)

Steps (1)-(3) are the kind's own verifier; (0) and (4) are shared. Each step raises
its own ``TcmeError`` subclass (``ParseError``, ``SignatureError``, ``PolicyError``,
``BindingError``), naming the failed check with expected vs. actual. Simulated
evidence runs the very same steps with the simulated root as the only trusted ARK,
and only when the policy says ``allow_simulated = true`` with a pinned
``simulated_ark_sha256``; genuine AMD evidence is never reported as simulated, and
simulated evidence never passes as genuine.

Inputs are per kind: ``SnpInputs`` (VCEK/VLEK chain, CRL, product), ``TdxInputs``
(collateral), ``AzureInputs`` (an exact TPM qualifying-data nonce), ``GpuInputs``
(device chain, RIMs). A caller passes those it has (``inputs=[SnpInputs(...),
TdxInputs(...)]``); each kind's verifier reads its own (default-constructed when
absent) through ``Inputs.of``. An Azure vTPM kind reads ``SnpInputs`` or ``TdxInputs``
too, for its embedded hardware report.

Registration point for a new kind: write its inputs dataclass (if it needs one) and a
``verify(evidence, inputs, policy, when, expected) -> VerifiedEvidence`` that runs steps
(1)-(3) and returns the value that carries the binding in ``report_data``, a
``detect(bytes) -> bool``, and add one ``KindVerifier`` row to ``KINDS`` (detection
tries the rows in order: put a more specific format before the one it wraps, e.g. Azure
vTPM evidence before bare SEV-SNP). ``expected`` is for kinds that cannot verify without
it (an SPDM request nonce); the comparison of step (4) is the pipeline's, for every kind,
through ``binding_form`` (how the kind carries the 64-byte binding: as it is, or, for a
vTPM with a short qualifying-data field, its SHA-256). Then let the policy accept it
(``attestation.policy.POLICY_TABLES`` and ``REQUIRED_TABLES``).
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from attestation._internal.clock import verification_time
from attestation.azure.evidence import looks_like_azure_evidence
from attestation.azure.verify import AzureReport, evidence_kind
from attestation.binding import check_binding
from attestation.errors import ParseError, PolicyError, TcmeError, UsageError
from attestation.kds import KdsClient
from attestation.nvidia.evidence import is_nvidia_report, verify_nvidia_gpu
from attestation.nvidia.verify import VerifiedDevice
from attestation.policy import Policy, validate_report
from attestation.snp.abi import (
    AttestationReport,
    decode_report_input,
    parse_report,
    snp_summary,
)
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
from attestation.tdx.policy import validate_quote
from attestation.tdx.verify import INTEL_SGX_ROOT_CA_SHA256
from attestation.tdx.verify import VerifyOptions as TdxVerifyOptions
from attestation.tdx.verify import verify_quote as verify_tdx_quote
from attestation.tee import Tee
from attestation.text import decode_text_blob

log = logging.getLogger(__name__)
T = TypeVar("T")

# Kept for callers that compare strings; ``Tee`` is a StrEnum, so these equal its values.
TEE_SNP = Tee.SEV_SNP
TEE_TDX = Tee.TDX
TEE_AZ_SNP = Tee.AZ_SNP_VTPM
TEE_AZ_TDX = Tee.AZ_TDX_VTPM
NO_REFERENCE_VALUES = (
    "NOTE: no policy given: authenticity only (signatures, chain, no debug); "
    "no reference values (measurement, TCB minimums) were checked"
)


@dataclass(frozen=True)
class VerifiedEvidence:
    """Evidence that passed every step; the only source of keys bound into it.

    ``product``: "Milan" | "Genoa" | "Turin" | "SIMULATED" (TDX: "TDX").
    ``tcb``: the REPORTED_TCB components the VEK endorses. ``report``: the
    parsed report (``AttestationReport`` for SEV-SNP). ``report_data``: the
    bound value step (4) compared. ``skipped``: reference values the policy
    skipped with ``{ skip = true }`` (shown in every summary).
    ``reference_values_checked``: False only under
    ``Policy.unsafe_authenticity_only()``.
    """

    tee: Tee
    simulated: bool
    product: str
    report_data: bytes
    measurement: bytes
    tcb: Mapping[str, Any]  # SEV-SNP: component -> SVN; TDX: tcb_status, advisory_ids, ...
    signing_key: str
    report: Any
    root_sha256: str = ""
    verified_at: datetime | None = None
    skipped: tuple[str, ...] = ()
    reference_values_checked: bool = True
    crl_source: str = ""

    @property
    def verdict(self) -> str:
        """One human line; says SIMULATED whenever the evidence is."""
        name = Tee(self.tee).display_name
        if self.simulated:
            return (
                f"ACCEPTED: SIMULATED {name} evidence (simulated root, no hardware root of trust)"
            )
        kind = f"{Tee(self.tee).vendor} {name}"
        return f"ACCEPTED: genuine {kind} evidence ({self.product}, {self.signing_key})"

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary; ``simulated`` and ``skipped`` are always present."""
        out: dict[str, Any] = {
            "accepted": True,
            "verdict": self.verdict,
            "tee": str(self.tee),
            "simulated": self.simulated,
            "product": self.product,
            "signing_key": self.signing_key,
            "root_sha256": self.root_sha256,
            "measurement": self.measurement.hex(),
            "report_data": self.report_data.hex(),
            "tcb": dict(self.tcb),
            "reference_values_checked": self.reference_values_checked,
            "skipped": list(self.skipped),
        }
        if self.crl_source:
            out["crl_source"] = self.crl_source
        if isinstance(self.report, AttestationReport):
            out.update(snp_summary(self.report))
        if isinstance(self.report, VerifiedDevice):
            out["device"] = self.report.summary()
        if isinstance(self.report, TdxQuote):
            out.update(tdx_summary(self.report))
        if isinstance(self.report, AzureReport):
            out.update(self.report.summary())
        if self.verified_at is not None:
            out["verified_at"] = self.verified_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return out


@dataclass(frozen=True)
class SnpInputs:
    """What SEV-SNP verification takes beside the report.

    ``certs``: the VCEK/VLEK (PEM or DER), optionally followed by the ASK/ASVK and
    ARK (missing ones come from the bundled AMD roots). ``crl``: AMD's CRL as the
    proxy sent it (ignored when the policy sets ``require_crl``: the party reads its
    own). ``product``: require this product line.
    """

    certs: bytes | None = None
    crl: bytes | None = None
    product: str | None = None


@dataclass(frozen=True)
class TdxInputs:
    """What TDX verification takes beside the quote.

    ``collateral``: a ``TdxCollateral``, dcap-qvl collateral JSON (bytes/str), or a
    path to such a file, a collateral cache or a PCS-response folder. Never fetched
    from the network. The PCK chain travels inside the quote, CRLs in the collateral.
    """

    collateral: Any = None


@dataclass(frozen=True)
class AzureInputs:
    """Azure vTPM only: ``nonce`` is the exact qualifying data the TPM quote must carry
    (CoCo/Trustee semantics, ``tcme evidence verify --nonce``), instead of or beside the
    tcme binding."""

    nonce: bytes | None = None


@dataclass(frozen=True)
class GpuInputs:
    """NVIDIA device evidence: ``certs`` the device chain (PEM), ``rims`` NVIDIA's RIM
    documents (verified before use). The SPDM nonce is the pipeline's expected value."""

    certs: bytes | None = None
    rims: Sequence[bytes] = ()


class Inputs:
    """The per-kind inputs a caller gave, one per type; ``of(SnpInputs)`` reads one."""

    def __init__(self, items: Iterable[object]) -> None:
        self._items: dict[type, object] = {}
        for item in items:
            if type(item) in self._items:
                raise UsageError(
                    "inputs", f"{type(item).__name__} given twice", expected="at most one"
                )
            self._items[type(item)] = item

    def of(self, kind: type[T]) -> T:
        """The caller's ``kind`` inputs, or ``kind()`` (its defaults) when none were given."""
        item = self._items.get(kind)
        return item if isinstance(item, kind) else kind()


def _as_is(actual: bytes, expected: bytes) -> bytes:
    del actual
    return expected


@dataclass(frozen=True)
class KindVerifier:
    """One evidence kind's entry in the pipeline (see "Registration point" above)."""

    tee: Tee
    detect: Callable[[bytes], bool]
    verify: Callable[[bytes, Inputs, Policy, datetime, bytes | None], VerifiedEvidence]
    binding_form: Callable[[bytes, bytes], bytes] = field(default=_as_is)


def detect_evidence_type(data: bytes) -> Tee:
    """The ``Tee`` of raw, hex or base64 evidence; ``ParseError`` if no kind matches."""
    if not isinstance(data, bytes | bytearray | memoryview) or not data:
        raise ParseError(
            "evidence.empty",
            "no evidence bytes",
            expected="an SEV-SNP report or TDX quote",
            actual="0 bytes",
        )
    data = bytes(data)
    for kind in KINDS.values():
        if kind.detect(data):
            return kind.tee
    try:
        decode_report_input(data)
    except ParseError as snp_error:  # the SEV-SNP parser's reason is the most useful one
        reason = snp_error.message()
    else:  # pragma: no cover - _detect_snp accepted these bytes above
        reason = "unrecognised"
    raise ParseError(
        "evidence.type",
        f"neither an SEV-SNP report nor a TDX quote ({reason})",
        expected="SEV-SNP report (1184 bytes, hex, base64, Azure HCL), TDX quote v4/v5, "
        "Azure vTPM evidence JSON or an NVIDIA attestation report",
        actual=f"{len(data)} bytes",
    )


def verify_evidence(
    evidence: bytes,
    *,
    policy: Policy,
    inputs: Iterable[object] = (),
    at: datetime | None = None,
    expected_report_data: bytes | None = None,
) -> VerifiedEvidence:
    """Detect, parse, verify, validate and bind ``evidence``; return what was verified.

    ``inputs``: per-kind inputs (``SnpInputs``, ``TdxInputs``, ...); the detected kind
    takes its own. ``at``: verification time (default now; naive = UTC).
    ``expected_report_data``: the 64 bytes the caller recomputed
    (DESIGN.md "Keys and binding"); None checks no binding (``tcme evidence verify``
    without ``--report-data``). Raises ``ParseError``, ``SignatureError``,
    ``PolicyError``, ``BindingError`` or ``UsageError``.
    """
    if not isinstance(policy, Policy):
        raise UsageError("policy", "a Policy is required", actual=type(policy).__name__)
    # (0) the kind, the policy's consent to it, one instant for every time check
    tee = detect_evidence_type(evidence)
    if tee not in policy.accept:
        accepted = ", ".join(t.value for t in policy.accept)
        raise PolicyError(
            "tee.accept",
            f"{tee.display_name} evidence, but the policy accepts only {accepted}",
            expected=f"one of {accepted}",
            actual=tee.value,
        )
    kind = KINDS[tee]
    when = verification_time(at)
    # (1)-(3) the kind's own parse, signatures and chain, policy
    expected = bytes(expected_report_data) if expected_report_data is not None else None
    verified = kind.verify(bytes(evidence), Inputs(inputs), policy, when, expected)
    # (4) the binding, for every kind in this one place
    if expected is not None:
        check_binding(verified.report_data, kind.binding_form(verified.report_data, expected))
    if policy.authenticity_only:
        log.warning("no policy: %s evidence checked for authenticity only", tee.value)
    skipped = tuple(policy.skipped(tee))
    for name in skipped:
        log.warning("%s evidence accepted with %s skipped by the policy", tee.value, name)
    return _with(verified, skipped=skipped, checked=not policy.authenticity_only)


def _with(
    verified: VerifiedEvidence, *, skipped: tuple[str, ...], checked: bool
) -> VerifiedEvidence:
    return replace(verified, skipped=skipped, reference_values_checked=checked)


def _detect_snp(data: bytes) -> bool:
    try:
        decode_report_input(data)
    except ParseError:
        return False
    return True


def _verify_snp(
    evidence: bytes, given: Inputs, policy: Policy, when: datetime, expected: bytes | None
) -> VerifiedEvidence:
    del expected  # step (4) is the pipeline's
    inputs = given.of(SnpInputs)
    # (1) parse
    report = parse_report(decode_report_input(evidence))
    if not inputs.certs:
        raise UsageError(
            "certs",
            "SEV-SNP verification needs the VCEK/VLEK certificate (no network fetch)",
            expected="VEK PEM/DER, optionally with ASK/ASVK and ARK",
            actual="none",
        )
    certs = bytes(inputs.certs)
    # (2) signatures and chain, with the root chosen by the policy, and the CRL: the
    # party's own when the policy requires one, else what came with the evidence
    trusted = _trusted_roots(load_cert_bundle(certs), policy)
    options = VerifyOptions(now=when, trusted_arks=trusted, crl=inputs.crl, product=inputs.product)
    crl_source = "sent with the evidence" if inputs.crl else ""
    if policy.snp.require_crl:
        chain = verify_attestation(
            report, certs, VerifyOptions(now=when, trusted_arks=trusted, product=inputs.product)
        )
        crl, crl_source = _own_crl(policy, chain.product, report.signing_key)
        options = VerifyOptions(now=when, trusted_arks=trusted, crl=crl, product=inputs.product)
    chain = verify_attestation(report, certs, options)
    if chain.simulated:
        log.warning("verifying SIMULATED SEV-SNP evidence (allowed by policy)")
    # (3) policy
    validate_report(report, policy.snp, product=chain.product)
    return VerifiedEvidence(
        tee=Tee.SEV_SNP,
        simulated=chain.simulated,
        product=chain.product,
        report_data=report.report_data,
        measurement=report.measurement,
        tcb=dict(report.reported_tcb.components()),
        signing_key=chain.signing_key,
        report=report,
        root_sha256=chain.ark_sha256,
        verified_at=when,
        crl_source=crl_source,
    )


def _own_crl(policy: Policy, product: str, signing_key: str) -> tuple[bytes, str]:
    """AMD's CRL from the party's own KDS cache (offline): ``require_crl`` never trusts the
    proxy for revocation. A missing CRL fails closed, naming the file and where to get it.

    The cache has KDS's layout (``attestation.kds.KdsClient``); a simulated chain's CRL
    sits at the same place under the product name ``SIMULATED`` (no KDS serves it: the
    simulated enclave's operator hands it out with its root).
    """
    cache = policy.snp.kds_cache
    if cache is None:  # pragma: no cover - SnpPolicy refuses require_crl without kds_cache
        raise UsageError("policy.snp.kds_cache", "require_crl needs kds_cache")
    key = "vlek" if signing_key == "VLEK" else "vcek"
    if product == SIMULATED_PRODUCT:
        path = Path(cache) / key / "v1" / SIMULATED_PRODUCT / "crl.der"
        if path.is_file():
            return path.read_bytes(), f"party CRL cache {path}"
        detail = f"no simulated CRL at {path}: the simulated enclave's operator provides it"
    else:
        client = KdsClient(cache, offline=True)
        path = client.crl_path(product, key=key)
        try:
            return client.crl(product, key=key), f"party KDS cache {path}"
        except TcmeError as err:
            detail = err.detail
    raise PolicyError(
        "crl.required",
        "the policy requires AMD's CRL (require_crl = true) and the party's own KDS cache "
        f"has none; a CRL sent by the proxy is not used for this: {detail}",
        expected=str(path),
        actual="missing",
    )


def _trusted_roots(bundle: CertBundle, policy: Policy) -> Mapping[str, str] | None:
    """Which ARK the chain may end in: pinned AMD ARKs, or (only if allowed) a simulated one.

    A supplied root that is a pinned AMD ARK is always genuine. Any other root is
    simulated when its subject says SIMULATED, or when the policy allows simulated
    evidence; simulated roots are refused unless ``allow_simulated``, and then
    only the ones ``simulated_ark_sha256`` pins (``Policy`` requires the pin).
    Everything else goes to the AMD pins and fails there with the chain's own reason.
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
    if root_fp not in pins:
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


def _detect_tdx(data: bytes) -> bool:
    if _is_tdx_quote(data):
        return True
    decoded = decode_text_blob(data)
    return decoded is not None and _is_tdx_quote(decoded)


def _verify_tdx(
    evidence: bytes, given: Inputs, policy: Policy, when: datetime, expected: bytes | None
) -> VerifiedEvidence:
    """TDX: (1) parse, (2) dcap-qvl against the pinned Intel root, (3) [tdx] policy."""
    del expected  # step (4) is the pipeline's
    # (1) parse
    quote = parse_tdx_quote(decode_tdx_input(evidence))
    # (2) signatures, chains, collateral (dcap-qvl), at one instant
    collateral = _tdx_collateral(given.of(TdxInputs).collateral, quote)
    options = TdxVerifyOptions(collateral=collateral, now=when)
    verified = verify_tdx_quote(quote, options)
    # (3) policy
    validate_quote(verified, policy.tdx)
    return VerifiedEvidence(
        tee=Tee.TDX,
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
    decoded = decode_text_blob(data)
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


def _detect_azure(tee: Tee) -> Callable[[bytes], bool]:
    def detect(data: bytes) -> bool:
        # evidence_kind parses strictly: malformed Azure evidence fails here, by name
        return looks_like_azure_evidence(data) and evidence_kind(data) == tee

    return detect


def _verify_azure(
    evidence: bytes, given: Inputs, policy: Policy, when: datetime, expected: bytes | None
) -> VerifiedEvidence:
    """Azure vTPM evidence (``attestation.azure.verify``) under the ``[azure]`` table; the
    embedded hardware report takes ``SnpInputs``/``TdxInputs`` like bare evidence."""
    from attestation.azure.verify import verify_azure_evidence

    snp, tdx = given.of(SnpInputs), given.of(TdxInputs)
    return verify_azure_evidence(
        evidence,
        policy=policy,
        azure_policy=policy.table("azure") or _authenticity_only_azure(policy),
        at=when,
        expected_report_data=expected,
        nonce=given.of(AzureInputs).nonce,
        certs=snp.certs,
        collateral=tdx.collateral,
        crl=snp.crl,
        product=snp.product,
    )


def _authenticity_only_azure(policy: Policy) -> Any:
    """No policy (``Policy.unsafe_authenticity_only``): every PCR skipped, the hardware
    tables' defaults; else None (the policy does not accept Azure evidence)."""
    from attestation.azure.policy import AzurePolicy

    return AzurePolicy.unsafe_authenticity_only() if policy.authenticity_only else None


def _azure_binding_form(actual: bytes, expected: bytes) -> bytes:
    # A vTPM whose qualifying data holds fewer than 64 bytes carries SHA-256(binding)
    # (attestation.azure.quote.check_qualifying_data; docs/protocol.md).
    if len(actual) != len(expected) and len(actual) == hashlib.sha256().digest_size:
        return hashlib.sha256(expected).digest()
    return expected


def _verify_gpu(
    evidence: bytes, given: Inputs, policy: Policy, when: datetime, expected: bytes | None
) -> VerifiedEvidence:
    """One NVIDIA device report (``tcme evidence verify``); ``expected`` is the SPDM nonce
    the device had to sign. A party verifies GPUs through its claims (tcme.client.gpu)."""
    inputs = given.of(GpuInputs)
    return verify_nvidia_gpu(
        evidence,
        certs=inputs.certs,
        policy=policy,
        at=when,
        expected_report_data=expected,
        collateral=list(inputs.rims),
        crl=None,
        product=None,
    )


# Registration point: one row per kind, tried in this order by detect_evidence_type.
KINDS: dict[Tee, KindVerifier] = {
    Tee.TDX: KindVerifier(Tee.TDX, _detect_tdx, _verify_tdx),
    Tee.AZ_SNP_VTPM: KindVerifier(
        Tee.AZ_SNP_VTPM, _detect_azure(Tee.AZ_SNP_VTPM), _verify_azure, _azure_binding_form
    ),
    Tee.AZ_TDX_VTPM: KindVerifier(
        Tee.AZ_TDX_VTPM, _detect_azure(Tee.AZ_TDX_VTPM), _verify_azure, _azure_binding_form
    ),
    Tee.NVIDIA_GPU: KindVerifier(Tee.NVIDIA_GPU, is_nvidia_report, _verify_gpu),
    Tee.SEV_SNP: KindVerifier(Tee.SEV_SNP, _detect_snp, _verify_snp),
}
