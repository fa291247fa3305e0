"""``tcme evidence verify|show``: check attestation evidence against a policy, or print it.

Exit codes: 0 accepted, 1 rejected (every reason on stderr, one per line, or in
the JSON), 2 malformed input or usage error (``tcme.cli.exitcodes``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attestation.errors import UsageError
from tcme.cli.exitcodes import EXIT_OK

if TYPE_CHECKING:
    from attestation.verifier import VerifiedEvidence


def register(subparsers: Any) -> None:
    """Add ``evidence verify`` and ``evidence show``."""
    group = subparsers.add_parser("evidence", help="verify or show SEV-SNP/TDX/NVIDIA GPU evidence")
    sub = group.add_subparsers(
        dest="evidence_command", metavar="COMMAND", required=True, parser_class=type(group)
    )

    verify = sub.add_parser(
        "verify",
        help="verify evidence: signatures, chain to a pinned root, policy, binding",
        description=(
            "Verify an SEV-SNP report (raw, hex, base64 or Azure HCL), an Intel TDX quote "
            "(v4/v5; raw, hex or base64), Azure vTPM evidence (az-snp-vtpm/az-tdx-vtpm: the "
            "JSON the CoCo attestation agent and Trustee use, HCL report + TPM quote, v0/v1/v2; "
            "policy table [azure]; takes --nonce) or an NVIDIA GPU/NVSwitch attestation report "
            "(SPDM 1.1 GET_MEASUREMENTS request + response; raw, hex or base64: needs --certs "
            "and --nonce, takes --rim); the type is detected from the bytes. "
            "Exit 0 accept, 1 reject, 2 malformed input or usage error."
        ),
    )
    verify.add_argument("file", type=Path, help="the evidence file")
    verify.add_argument(
        "--certs",
        type=Path,
        help="SEV-SNP (required): VCEK/VLEK (PEM or DER), optionally with ASK/ASVK and ARK; "
        "a file or a directory. NVIDIA (required): the device chain, leaf first (PEM)",
    )
    verify.add_argument(
        "--nonce",
        metavar="HEX",
        help="NVIDIA (required): the 32-byte nonce the GPU was asked to sign, 64 hex digits. "
        "Azure vTPM: the exact qualifying data (nonce) the TPM quote must carry, as the CoCo "
        "attester and Trustee use it (1..64 bytes)",
    )
    verify.add_argument(
        "--rim",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="NVIDIA: an NVIDIA-signed RIM (driver or VBIOS; repeatable); its XML-DSig digest, "
        "signature and chain are checked, then every covered measurement must match",
    )
    verify.add_argument(
        "--collateral",
        type=Path,
        metavar="FILE_OR_DIR",
        help="TDX (required): dcap-qvl collateral JSON, a `tcme collateral` cache, or a folder "
        "of Intel PCS responses; read offline, never fetched",
    )
    verify.add_argument(
        "--policy",
        type=Path,
        help="party policy TOML (docs/security.md); without it only authenticity is checked "
        "(signatures, chain, no debug) and the output says no reference values were checked",
    )
    verify.add_argument("--at", help="verification time, RFC 3339 (default: now)")
    verify.add_argument("--crl", type=Path, help="AMD CRL (DER or PEM) to check revocation")
    verify.add_argument(
        "--product", choices=("Milan", "Genoa", "Turin"), help="require this product"
    )
    verify.add_argument("--report-data", help="expected REPORT_DATA, 128 hex digits")
    verify.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    verify.set_defaults(handler=run_verify)

    show = sub.add_parser("show", help="print every parsed field of the evidence (no verification)")
    show.add_argument("file", type=Path, help="the evidence file")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=run_show)


def run_verify(args: argparse.Namespace) -> int:
    """Handler of ``tcme evidence verify``."""
    from attestation.azure.evidence import looks_like_azure_evidence
    from attestation.inputs import read_certs, read_input
    from attestation.policy import Policy
    from attestation.text import parse_hex, parse_time
    from attestation.verifier import (
        NO_REFERENCE_VALUES,
        AzureInputs,
        GpuInputs,
        SnpInputs,
        TdxInputs,
        verify_evidence,
    )
    from tcme.client.policy import load_evidence_policy

    evidence = read_input(args.file, "evidence")
    certs = read_certs(args.certs) if args.certs else None
    policy = load_evidence_policy(args.policy) if args.policy else Policy.unsafe_authenticity_only()
    crl = read_input(args.crl, "crl") if args.crl else None
    expected = parse_hex(args.report_data, "--report-data", size=64) if args.report_data else None
    at = parse_time(args.at, "--at") if args.at else None
    rims: list[bytes] = []
    nonce = None
    if args.nonce and not args.rim and looks_like_azure_evidence(evidence):
        nonce = parse_hex(args.nonce, "--nonce")  # the TPM quote's qualifying data
        if not 1 <= len(nonce) <= 64:
            raise UsageError("--nonce", "wrong length", expected="1..64 bytes", actual=len(nonce))
    elif args.nonce or args.rim:
        from attestation.nvidia.evidence import is_nvidia_report

        if not is_nvidia_report(evidence):
            raise UsageError(
                "--nonce",
                "--nonce applies to NVIDIA GPU and Azure vTPM evidence, --rim to NVIDIA only",
                actual="other",
            )
        expected = parse_hex(args.nonce, "--nonce", size=32) if args.nonce else None
        rims = [read_input(path, "rim") for path in args.rim]
    result = verify_evidence(
        evidence,
        policy=policy,
        inputs=(
            SnpInputs(certs=certs, crl=crl, product=args.product),
            TdxInputs(collateral=args.collateral),
            AzureInputs(nonce=nonce),
            GpuInputs(certs=certs, rims=rims),
        ),
        at=at,
        expected_report_data=expected,
    )
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print(_describe(result))
        print(_reference_values_line(result, NO_REFERENCE_VALUES))
    return EXIT_OK


def _reference_values_line(result: VerifiedEvidence, no_policy: str) -> str:
    """One line: were reference values checked, and which did the policy skip?"""
    if not result.reference_values_checked:
        return no_policy
    if result.skipped:
        return "  SKIPPED by the policy ({ skip = true }): " + ", ".join(result.skipped)
    return "  reference values: every value the policy pins matched"


def run_show(args: argparse.Namespace) -> int:
    """Handler of ``tcme evidence show``."""
    from attestation.inputs import read_input
    from attestation.snp.abi import decode_report_input, parse_report
    from attestation.tdx.abi import parse_quote, quote_to_dict
    from attestation.verifier import decode_tdx_input, detect_evidence_type

    data = read_input(args.file, "evidence")
    tee = detect_evidence_type(data)
    if tee == "nvidia-gpu":
        from attestation.nvidia.abi import decode_report_input as decode_nvidia
        from attestation.nvidia.abi import parse_report as parse_nvidia
        from attestation.nvidia.abi import report_to_dict

        fields = {"tee": tee, **report_to_dict(parse_nvidia(decode_nvidia(data)))}
    elif tee == "tdx":
        fields = {"tee": tee, **quote_to_dict(parse_quote(decode_tdx_input(data)))}
    elif tee in ("az-snp-vtpm", "az-tdx-vtpm"):
        fields = {"tee": tee, **_azure_fields(data)}
    elif tee != "sev-snp":
        raise UsageError(
            "show.tee",
            f"showing {tee} evidence is not supported",
            expected="sev-snp",
            actual=tee,
        )
    else:
        fields = {"tee": tee, **parse_report(decode_report_input(data)).to_dict()}
    if args.json:
        print(json.dumps(fields, indent=2))
    else:
        print("UNVERIFIED: parsed fields only; use `tcme evidence verify` to check signatures.")
        for line in _flatten(fields):
            print(line)
    return EXIT_OK


def _azure_fields(data: bytes) -> dict[str, Any]:
    """Every part of Azure vTPM evidence: HCL report, hardware report, runtime data, quote."""
    from attestation.azure.verify import parse_parts
    from attestation.snp.abi import parse_report
    from attestation.tdx.abi import parse_quote, quote_to_dict

    parts, hcl, runtime, attest = parse_parts(data)
    fields: dict[str, Any] = {
        "evidence_version": parts.version,
        "hcl_report": hcl.to_dict(),
    }
    if hcl.tee == "sev-snp":
        fields["snp_report"] = parse_report(hcl.hardware_report).to_dict()
    else:
        fields["td_report"] = {"sha384": hashlib.sha384(hcl.hardware_report).hexdigest()}
        fields["td_quote"] = quote_to_dict(parse_quote(parts.td_quote or b""))
    fields["runtime_data"] = runtime.to_dict()
    fields["runtime_data_sha256"] = hashlib.sha256(hcl.variable_data).hexdigest()
    fields["quote"] = attest.to_dict()
    fields["quote_signature"] = parts.quote_signature.hex()
    fields["pcrs"] = {str(i): value.hex() for i, value in enumerate(parts.pcrs)}
    fields["vcek"] = "present" if parts.vcek else "absent"
    return fields


def _describe(result: VerifiedEvidence) -> str:
    if result.tee == "tdx":
        return _describe_tdx(result)
    if result.tee in ("az-snp-vtpm", "az-tdx-vtpm"):
        return _describe_azure(result)
    if result.tee == "nvidia-gpu":
        return _describe_nvidia(result)
    s = result.summary()
    tcb = " ".join(f"{k}={v}" for k, v in result.tcb.items())
    lines = [result.verdict]
    if result.simulated:
        lines.append(
            "WARNING: SIMULATED evidence is not from AMD hardware; trust it with nothing real."
        )
    lines += [
        f"  tee           {s['tee']}",
        f"  simulated     {'yes (SIMULATED)' if result.simulated else 'no'}",
        f"  product       {s['product']}",
        f"  signing key   {s['signing_key']}",
        f"  report        v{s.get('report_version')}, VMPL {s.get('vmpl')}",
        f"  guest policy  {s.get('policy')}",
        f"  reported TCB  {tcb}",
        f"  measurement   {s['measurement']}",
        f"  report_data   {s['report_data']}",
        f"  root (ARK)    sha256 {s['root_sha256']}",
        f"  verified at   {s.get('verified_at')}",
    ]
    return "\n".join(lines)


def _describe_tdx(result: VerifiedEvidence) -> str:
    s = result.summary()
    td = s["td_report"]
    advisories = ", ".join(result.tcb["advisory_ids"]) or "none"
    return "\n".join(
        [
            result.verdict,
            f"  tee           {s['tee']} (quote v{s['quote_version']}, TD report {td['version']})",
            f"  TCB status    {result.tcb['tcb_status']} (advisories: {advisories})",
            f"  platform      fmspc {result.tcb['fmspc']}, TCB evaluation "
            f"#{result.tcb['tcb_evaluation_data_number']}, TEE_TCB_SVN {result.tcb['tee_tcb_svn']}",
            f"  MRTD          {td['mr_td']}",
            *(f"  RTMR{i}         {td[f'rtmr{i}']}" for i in range(4)),
            f"  MRSEAM        {td['mr_seam']}",
            f"  TD attributes {td['td_attributes']} (debug: {'yes' if td['debug'] else 'no'})",
            f"  XFAM          {td['xfam']}",
            f"  report_data   {s['report_data']}",
            f"  root          Intel SGX Root CA, sha256 {s['root_sha256']}",
            f"  verified at   {s.get('verified_at')}",
        ]
    )


def _describe_azure(result: VerifiedEvidence) -> str:
    s = result.summary()
    quote = s["quote"]
    lines = [result.verdict]
    if result.simulated:
        lines.append(
            "WARNING: SIMULATED evidence is not from AMD hardware; trust it with nothing real."
        )
    tcb = " ".join(f"{k}={v}" for k, v in result.tcb.items() if not isinstance(v, list))
    lines += [
        f"  tee           {s['tee']} (evidence v{s['evidence_version']}, "
        f"HCL header v{s['hcl_report']['header_version']})",
        f"  hardware      {s['product']}, {s['signing_key']}, TCB {tcb}",
        f"  measurement   {s['measurement']} (the paravisor's launch measurement)",
        f"  runtime data  sha256 {s['runtime_data_sha256']} = the hardware REPORT_DATA",
        f"  AK quote      {s['quote_signature']}, signer {quote['qualified_signer']}",
        f"  PCRs          {quote['pcr_selection']}, digest {quote['pcr_digest']}",
        f"  nonce         {quote['extra_data']}",
        f"  root          sha256 {s['root_sha256']}",
        f"  verified at   {s.get('verified_at')}",
    ]
    return "\n".join(lines)


def _describe_nvidia(result: VerifiedEvidence) -> str:
    device = result.summary()["device"]
    lines = [result.verdict]
    if result.simulated:
        lines.append("WARNING: SIMULATED GPU evidence is not from NVIDIA hardware.")
    lines += [
        f"  device        {device['kind']} {device['arch']} ({device['hwmodel']})",
        f"  ueid          {device['ueid']}",
        f"  driver        {device['driver_version']}",
        f"  VBIOS         {device['vbios_version']}",
        f"  FWID          {device['fwid'] or 'absent (driver predates the field)'}",
        f"  protected PCIe {device['protected_pcie_status']}",
        f"  nonce         {device['nonce']}",
        f"  measurements  {device['measurements']} blocks",
    ]
    if "rims" in result.tcb:
        lines.append(
            f"  RIMs          {', '.join(result.tcb['rims'])}: "
            f"{result.tcb['rim_matched_blocks']} blocks match, "
            f"not covered: {result.tcb['rim_uncovered_blocks'] or 'none'}"
        )
    else:
        lines.append("  RIMs          none given: measurements NOT compared")
    lines += [
        f"  root          NVIDIA Device Identity CA, sha256 {device['root_sha256']}",
        f"  OCSP          {'checked' if device['ocsp_checked'] else 'not checked (no cache)'}",
        f"  verified at   {result.summary().get('verified_at')}",
    ]
    return "\n".join(lines)


def _flatten(fields: dict[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    for key, value in fields.items():
        if isinstance(value, dict):
            lines.extend(_flatten(value, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key}: {value}")
    return lines
