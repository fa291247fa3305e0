"""Verify Azure vTPM evidence (az-snp-vtpm, az-tdx-vtpm): bytes in, ``VerifiedEvidence`` out.

The chain a verifier walks (DESIGN.md "Evidence kinds"): hardware evidence →
REPORT_DATA = hash of the runtime data → the AK it names → the quote's
signature → its PCR digest and qualifying data. Steps, tagged in the code:

(1) parse: the evidence JSON, the HCL report, the runtime data (AK), the quote
    (``TPMS_ATTEST``) and the embedded hardware report, all strict;
(2) hardware evidence: SEV-SNP: the report's VCEK chain to a pinned AMD ARK and
    its signature (``attestation.snp.verify``, the code bare SNP uses); TDX:
    the TD quote with Intel collateral (dcap-qvl, as bare TDX), and the HCL's
    TDREPORT equal to the quote's TD report;
(3) runtime data: the hardware REPORT_DATA is hash(runtime data) then zeros;
(4) quote: the AK signs the quote, and the PCR digest covers the PCR values;
(5) policy: ``[azure.snp]`` / ``[azure.tdx]`` on the hardware report (the rules
    of ``[snp]`` / ``[tdx]``), VMPL 0 on SEV-SNP, ``[azure.pcrs]``, and
    ``[azure.vm_configuration]`` on the runtime data's claims; every violation
    at once;
(6) binding: the quote's qualifying data is the party's REPORT_DATA binding
    (or its SHA-256; docs/protocol.md), or the ``--nonce``; v2 evidence also
    carries it at the start of the runtime data's ``user-data``.

Each step raises its own ``TcmeError`` subclass naming the check, with
expected vs. actual. Freshness comes from the quote alone: the hardware report
is as old as the VM's last HCL refresh, and ties in only through the AK.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from attestation.azure.evidence import AzureEvidence, parse_azure_evidence
from attestation.azure.hcl import REPORT_TYPE_SNP, HclReport, parse_hcl_report
from attestation.azure.policy import AzurePolicy
from attestation.azure.quote import (
    check_nonce,
    check_qualifying_data,
    verify_pcr_digest,
    verify_quote_signature,
)
from attestation.azure.runtime_data import RuntimeData, parse_runtime_data
from attestation.azure.tpm import Attest, RsaSignature, parse_attest
from attestation.errors import (
    BindingError,
    ParseError,
    PolicyError,
    SignatureError,
    TcmeError,
    UsageError,
)
from attestation.snp.abi import AttestationReport, parse_report, snp_summary
from attestation.snp.verify import VerifyOptions, load_cert_bundle, verify_attestation
from attestation.tdx.abi import parse_quote as parse_tdx_quote
from attestation.tdx.verify import INTEL_SGX_ROOT_CA_SHA256, VerifiedQuote
from attestation.tdx.verify import VerifyOptions as TdxVerifyOptions
from attestation.tdx.verify import verify_quote as verify_tdx_quote

if TYPE_CHECKING:  # the result type lives in the pipeline, which imports this module late
    from attestation.verifier import VerifiedEvidence

log = logging.getLogger(__name__)

TEE_AZ_SNP = "az-snp-vtpm"
TEE_AZ_TDX = "az-tdx-vtpm"
HCL_VMPL = 0  # the paravisor runs at VMPL 0 and requests the report there

# TDREPORT_STRUCT (Intel TDX Module ABI): REPORTMACSTRUCT at 0 (REPORTTYPE.TYPE at 0,
# TEE_TCB_INFO_HASH at 32, TEE_INFO_HASH at 80, REPORTDATA at 128), TEE_TCB_INFO at 256
# (239 bytes), TDINFO at 512 (512 bytes).
TD_REPORT_TYPE_TDX = 0x81
_TEE_TCB_INFO = slice(256, 256 + 239)
_TDINFO = slice(512, 1024)


@dataclass(frozen=True)
class AzureReport:
    """Every verified part of one Azure evidence (``VerifiedEvidence.report``)."""

    tee: str
    evidence: AzureEvidence
    hcl: HclReport
    runtime_data: RuntimeData
    quote: Attest
    signature: RsaSignature
    hardware: Any  # AttestationReport (SEV-SNP) or the TDX Quote

    def summary(self) -> dict[str, Any]:
        """JSON-friendly parts for ``VerifiedEvidence.summary``."""
        out: dict[str, Any] = {
            "evidence_version": self.evidence.version,
            "hcl_report": self.hcl.to_dict(),
            "runtime_data_sha256": hashlib.sha256(self.hcl.variable_data).hexdigest(),
            "vm_configuration": dict(self.runtime_data.vm_configuration),
            "quote": self.quote.to_dict(),
            "quote_signature": f"{self.signature.scheme_name} {self.signature.hash_name}",
            "pcrs": {str(i): p.hex() for i, p in enumerate(self.evidence.pcrs)},
        }
        if isinstance(self.hardware, AttestationReport):
            out.update(snp_summary(self.hardware))
        return out


def parse_parts(evidence: bytes) -> tuple[AzureEvidence, HclReport, RuntimeData, Attest]:
    """Step (1) without the hardware report: the parts ``tcme evidence show`` prints."""
    parts = parse_azure_evidence(evidence)
    hcl = parse_hcl_report(parts.hcl_report)
    runtime = parse_runtime_data(hcl.variable_data)
    attest = parse_attest(parts.quote_message)
    if hcl.report_type == REPORT_TYPE_SNP:
        if parts.td_quote is not None:
            raise ParseError("azure.evidence.td_quote", "a TD quote beside an SEV-SNP HCL report")
    elif parts.vcek is not None:
        raise ParseError("azure.evidence.vcek", "a VCEK beside a TDX HCL report")
    elif parts.td_quote is None:
        raise ParseError(
            "azure.evidence.td_quote",
            "TDX evidence needs the TD quote (the TDREPORT alone is not verifiable)",
            expected="td_quote",
            actual="absent",
        )
    return parts, hcl, runtime, attest


def evidence_kind(evidence: bytes) -> str:
    """ "az-snp-vtpm" or "az-tdx-vtpm", from the HCL report's report type (parses strictly)."""
    hcl = parse_hcl_report(parse_azure_evidence(evidence).hcl_report)
    return TEE_AZ_SNP if hcl.report_type == REPORT_TYPE_SNP else TEE_AZ_TDX


def verify_azure_evidence(
    evidence: bytes,
    *,
    policy: Any,
    azure_policy: AzurePolicy | None,
    at: datetime | None = None,
    expected_report_data: bytes | None = None,
    nonce: bytes | None = None,
    certs: bytes | None = None,
    collateral: Any = None,
    crl: bytes | None = None,
    product: str | None = None,
) -> VerifiedEvidence:
    """Steps (1)-(6) on Azure evidence JSON; returns ``attestation.verifier.VerifiedEvidence``.

    ``policy``: the party's whole ``attestation.policy.Policy`` (root pins,
    ``allow_simulated``); ``azure_policy``: its ``[azure]`` table (None: the
    party accepts no Azure evidence). ``expected_report_data``: the 64-byte tcme
    binding the quote must carry; ``nonce``: the exact qualifying data instead
    (``tcme evidence verify --nonce``). ``certs``: SEV-SNP VCEK (and chain) when
    the evidence carries none; ``collateral``: TDX collateral. Raises
    ``ParseError``, ``SignatureError``, ``PolicyError``, ``BindingError`` or
    ``UsageError``.
    """
    from attestation import verifier as core  # the SNP/TDX steps live there; imported late

    # (1) parse
    parts, hcl, runtime, attest = parse_parts(evidence)
    tee = TEE_AZ_SNP if hcl.report_type == REPORT_TYPE_SNP else TEE_AZ_TDX
    if azure_policy is None:
        raise PolicyError(
            "azure.accept",
            f"the policy accepts no Azure evidence (it has no [azure] table); got {tee}",
            expected="an [azure] table",
            actual="absent",
        )
    when = VerifyOptions(now=at).time()  # one instant for every time check
    # (2) hardware evidence, (3) runtime data bound into it
    hardware: AttestationReport | VerifiedQuote
    if tee == TEE_AZ_SNP:
        hardware, chain_info = _verify_snp_hardware(
            core, hcl, parts, policy=policy, certs=certs, crl=crl, product=product, when=when
        )
        hardware_report_data = hardware.report_data
    else:
        hardware, chain_info = _verify_tdx_hardware(core, hcl, parts, collateral, when, product)
        hardware_report_data = hardware.quote.body.report_data
    check_runtime_data(hcl, hardware_report_data)
    # (4) quote: signed by the AK of the (now bound) runtime data, over these PCRs
    signature = verify_quote_signature(attest, parts.quote_signature, runtime.ak)
    verify_pcr_digest(attest, parts.pcrs, signature)
    # (5) policy, every violation at once
    validate_azure(tee, hardware, attest, parts, azure_policy, runtime)
    # (6) binding
    bound = expected_report_data if expected_report_data is not None else nonce
    if expected_report_data is not None:
        check_qualifying_data(attest, expected_report_data)
    if nonce is not None:
        check_nonce(attest, nonce)
    if parts.version == 2 and bound is not None:
        check_user_data(runtime, bound)
    report = AzureReport(
        tee=tee,
        evidence=parts,
        hcl=hcl,
        runtime_data=runtime,
        quote=attest,
        signature=signature,
        hardware=hardware if isinstance(hardware, AttestationReport) else hardware.quote,
    )
    return core.VerifiedEvidence(report=report, report_data=attest.extra_data, **chain_info)


def _verify_snp_hardware(
    core: Any,
    hcl: HclReport,
    parts: AzureEvidence,
    *,
    policy: Any,
    certs: bytes | None,
    crl: bytes | None,
    product: str | None,
    when: datetime,
) -> tuple[AttestationReport, dict[str, Any]]:
    report = parse_report(hcl.hardware_report)  # (1), the embedded SEV-SNP report
    chain_certs = certs or parts.vcek
    if not chain_certs:
        raise UsageError(
            "azure.vcek",
            "Azure SEV-SNP verification needs the VCEK: in the evidence (`vcek`) or as --certs",
            expected="VCEK PEM/DER",
            actual="none",
        )
    # Shared with attestation.verifier until its per-TEE inputs are public (issue 12).
    trusted = core._trusted_roots(load_cert_bundle(bytes(chain_certs)), policy)  # noqa: SLF001
    options = VerifyOptions(now=when, trusted_arks=trusted, crl=crl, product=product)
    chain = verify_attestation(report, bytes(chain_certs), options)  # (2)
    if chain.simulated:
        log.warning("verifying SIMULATED Azure SEV-SNP evidence (allowed by policy)")
    return report, {
        "tee": TEE_AZ_SNP,
        "simulated": chain.simulated,
        "product": chain.product,
        "measurement": report.measurement,
        "tcb": dict(report.reported_tcb.components()),
        "signing_key": chain.signing_key,
        "root_sha256": chain.ark_sha256,
        "verified_at": when,
    }


def _verify_tdx_hardware(
    core: Any,
    hcl: HclReport,
    parts: AzureEvidence,
    collateral: Any,
    when: datetime,
    product: str | None,
) -> tuple[VerifiedQuote, dict[str, Any]]:
    if parts.td_quote is None:  # parse_parts refuses this already; never verify nothing
        raise ParseError("azure.evidence.td_quote", "TDX evidence without a TD quote")
    quote = parse_tdx_quote(parts.td_quote)  # (1)
    verified = verify_tdx_quote(
        quote,
        TdxVerifyOptions(
            collateral=core._tdx_collateral(collateral, quote),  # noqa: SLF001 (as above)
            now=when,
        ),
    )  # (2)
    if product is not None and product != "TDX":
        raise PolicyError("product", "wrong product", expected=product, actual="TDX")
    check_td_report(hcl.hardware_report, quote)
    return verified, {
        "tee": TEE_AZ_TDX,
        "simulated": False,
        "product": "TDX",
        "measurement": quote.body.mr_td,
        "tcb": {
            "tcb_status": verified.tcb_status,
            "advisory_ids": list(verified.advisory_ids),
            "fmspc": verified.fmspc,
            "tcb_evaluation_data_number": verified.tcb_evaluation_data_number,
            "tee_tcb_svn": quote.body.tee_tcb_svn.hex(),
        },
        "signing_key": "PCK",
        "root_sha256": INTEL_SGX_ROOT_CA_SHA256,
        "verified_at": verified.verified_at,
    }


def check_td_report(td_report: bytes, quote: Any) -> None:
    """The HCL's TDREPORT is the report the (verified) TD quote was made from.

    Its MAC is CPU-local and cannot be checked off the machine, so every field the
    quote carries must be equal, and its own hashes over TEE_TCB_INFO and TDINFO
    must hold. ``SignatureError`` (``azure.td_report.*``) otherwise.
    """
    if td_report[0] != TD_REPORT_TYPE_TDX:
        raise ParseError(
            "azure.td_report.type",
            "not a TDX TDREPORT",
            expected=TD_REPORT_TYPE_TDX,
            actual=td_report[0],
        )
    if hashlib.sha384(td_report[_TDINFO]).digest() != td_report[80:128]:
        raise SignatureError("azure.td_report.tee_info_hash", "TEE_INFO_HASH != SHA-384(TDINFO)")
    if hashlib.sha384(td_report[_TEE_TCB_INFO]).digest() != td_report[32:80]:
        raise SignatureError(
            "azure.td_report.tee_tcb_info_hash", "TEE_TCB_INFO_HASH != SHA-384(TEE_TCB_INFO)"
        )
    body = quote.body
    tdinfo = td_report[_TDINFO]
    pairs = {
        "report_data": (td_report[128:192], body.report_data),
        "tee_tcb_svn": (td_report[264:280], body.tee_tcb_svn),
        "mr_seam": (td_report[280:328], body.mr_seam),
        "mr_signer_seam": (td_report[328:376], body.mr_signer_seam),
        "seam_attributes": (td_report[376:384], body.seam_attributes),
        "td_attributes": (tdinfo[0:8], body.td_attributes),
        "xfam": (tdinfo[8:16], body.xfam),
        "mr_td": (tdinfo[16:64], body.mr_td),
        "mr_config_id": (tdinfo[64:112], body.mr_config_id),
        "mr_owner": (tdinfo[112:160], body.mr_owner),
        "mr_owner_config": (tdinfo[160:208], body.mr_owner_config),
        **{f"rtmr{i}": (tdinfo[208 + 48 * i : 256 + 48 * i], body.rtmrs[i]) for i in range(4)},
    }
    for name, (ours, quoted) in pairs.items():
        if ours != quoted:
            raise SignatureError(
                f"azure.td_report.{name}",
                "the HCL report's TDREPORT differs from the verified TD quote",
                expected=quoted,
                actual=ours,
            )


def check_runtime_data(hcl: HclReport, hardware_report_data: bytes) -> None:
    """Step (3): REPORT_DATA == hash(runtime data) || zeros; ``BindingError`` otherwise."""
    expected = hcl.expected_report_data()
    if not hmac.compare_digest(expected, bytes(hardware_report_data)):
        raise BindingError(
            "azure.runtime_data",
            f"the hardware report's REPORT_DATA is not {hcl.hash_name}(runtime data) "
            "(the AK is not the one the hardware vouches for)",
            expected=expected,
            actual=hardware_report_data,
        )


def check_user_data(runtime: RuntimeData, bound: bytes) -> None:
    """v2 evidence: the runtime data's ``user-data`` starts with the qualifying data."""
    user = runtime.user_data or b""
    if not hmac.compare_digest(user[: len(bound)], bytes(bound)):
        raise BindingError(
            "azure.user_data",
            "v2 evidence: the runtime data's user-data does not start with the nonce",
            expected=bytes(bound),
            actual=user[: len(bound)],
        )


def validate_azure(
    tee: str,
    hardware: Any,
    attest: Attest,
    parts: AzureEvidence,
    policy: AzurePolicy,
    runtime: RuntimeData,
) -> None:
    """Step (5): ``[azure.snp]``/``[azure.tdx]``, VMPL 0, ``[azure.pcrs]`` and
    ``[azure.vm_configuration]``; every violation at once."""
    violations: list[TcmeError] = []
    table = policy.snp if tee == TEE_AZ_SNP else policy.tdx
    name = "snp" if tee == TEE_AZ_SNP else "tdx"
    if table is None:
        raise PolicyError(
            f"azure.{name}",
            f"the policy has no [azure.{name}] table: nothing pins the {tee} hardware identity",
            expected=f"[azure.{name}]",
            actual="absent",
        )
    if tee == TEE_AZ_SNP:
        from attestation.policy import validate_report

        if hardware.vmpl != HCL_VMPL:
            violations.append(
                PolicyError(
                    "azure.vmpl",
                    "the SEV-SNP report was not requested by the paravisor (VMPL 0)",
                    expected=HCL_VMPL,
                    actual=hardware.vmpl,
                )
            )
        _collect(violations, lambda: validate_report(hardware, table))
    else:
        from attestation.tdx.policy import validate_quote

        _collect(violations, lambda: validate_quote(hardware, table))
    covered = attest.pcr_selections[0].pcrs if attest.pcr_selections else ()
    violations.extend(policy.check_pcrs(parts.pcrs, covered))
    violations.extend(policy.check_vm_configuration(runtime.vm_configuration))
    if len(violations) == 1:
        raise violations[0]
    if violations:
        raise PolicyError("azure.policy", violations=violations)


def _collect(violations: list[TcmeError], check: Any) -> None:
    try:
        check()
    except PolicyError as err:
        violations.extend(err.violations or [err])
