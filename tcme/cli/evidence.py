"""``tcme evidence verify|show``: check attestation evidence against a policy, or print it.

Exit codes: 0 accepted, 1 rejected (every reason on stderr, one per line, or in
the JSON), 2 malformed input or usage error. Never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attestation.errors import ParseError, PolicyError, TcmeError, UsageError
from attestation.policy import Policy
from attestation.snp import _x509
from attestation.snp.abi import decode_report_input, parse_report
from attestation.tdx.abi import parse_quote, quote_to_dict
from attestation.tee import Tee
from attestation.verifier import (
    NO_REFERENCE_VALUES,
    SnpInputs,
    TdxInputs,
    VerifiedEvidence,
    decode_tdx_input,
    detect_evidence_type,
    verify_evidence,
)
from tcme.client.policy import load_evidence_policy

EXIT_OK, EXIT_REJECT, EXIT_USAGE = 0, 1, 2
CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")
MAX_INPUT_BYTES = 16 * 1024 * 1024  # evidence, certificates and CRLs are all far smaller


def register(subparsers: Any) -> None:
    """Add ``evidence verify`` and ``evidence show``."""
    group = subparsers.add_parser("evidence", help="verify or show SEV-SNP/TDX evidence")
    sub = group.add_subparsers(dest="evidence_command", metavar="COMMAND", parser_class=type(group))

    verify = sub.add_parser(
        "verify",
        help="verify evidence: signatures, chain to a pinned root, policy, binding",
        description=(
            "Verify an SEV-SNP report (raw, hex, base64 or Azure HCL) or an Intel TDX quote "
            "(v4/v5; raw, hex or base64); the type is detected from the bytes. "
            "Exit 0 accept, 1 reject, 2 malformed input or usage error."
        ),
    )
    verify.add_argument("file", type=Path, help="the evidence file")
    verify.add_argument(
        "--certs",
        type=Path,
        help="SEV-SNP (required): VCEK/VLEK (PEM or DER), optionally with ASK/ASVK and ARK; "
        "a file or a directory",
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

    group.set_defaults(handler=lambda _args: _usage(group))


def run_verify(args: argparse.Namespace) -> int:
    """Handler of ``tcme evidence verify``."""
    try:
        evidence = read_input(args.file, "evidence")
        certs = read_certs(args.certs) if args.certs else None
        policy = (
            load_evidence_policy(args.policy) if args.policy else Policy.unsafe_authenticity_only()
        )
        crl = read_input(args.crl, "crl") if args.crl else None
        expected = _hex_arg(args.report_data, "--report-data", 64) if args.report_data else None
        result = verify_evidence(
            evidence,
            policy=policy,
            inputs=(
                SnpInputs(certs=certs, crl=crl, product=args.product),
                TdxInputs(collateral=args.collateral),
            ),
            at=parse_time(args.at) if args.at else None,
            expected_report_data=expected,
        )
    except TcmeError as err:
        return _fail(err, as_json=args.json)
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print(_describe(result))
        print(_reference_values_line(result))
    return EXIT_OK


def _reference_values_line(result: VerifiedEvidence) -> str:
    """One line: were reference values checked, and which did the policy skip?"""
    if not result.reference_values_checked:
        return NO_REFERENCE_VALUES
    if result.skipped:
        return "  SKIPPED by the policy ({ skip = true }): " + ", ".join(result.skipped)
    return "  reference values: every launch-identity value pinned by the policy matched"


def run_show(args: argparse.Namespace) -> int:
    """Handler of ``tcme evidence show``."""
    try:
        data = read_input(args.file, "evidence")
        tee = detect_evidence_type(data)
        if tee is Tee.TDX:
            fields = {"tee": tee.value, **quote_to_dict(parse_quote(decode_tdx_input(data)))}
        elif tee is not Tee.SEV_SNP:
            raise UsageError(
                "show.tee",
                f"showing {tee} evidence is not supported",
                expected=Tee.SEV_SNP.value,
                actual=tee.value,
            )
        else:
            fields = {"tee": tee.value, **parse_report(decode_report_input(data)).to_dict()}
    except TcmeError as err:
        return _fail(err, as_json=args.json)
    if args.json:
        print(json.dumps(fields, indent=2))
    else:
        print("UNVERIFIED: parsed fields only; use `tcme evidence verify` to check signatures.")
        for line in _flatten(fields):
            print(line)
    return EXIT_OK


def read_input(path: Path, what: str) -> bytes:
    """A file's bytes; ``UsageError`` (exit 2) when unreadable or absurdly large."""
    try:
        if path.is_dir():
            raise UsageError(f"{what}.file", f"{path} is a directory, expected a file")
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise UsageError(
                f"{what}.file",
                f"{path} is too large",
                expected=f"<= {MAX_INPUT_BYTES} bytes",
                actual=size,
            )
        return path.read_bytes()
    except OSError as err:
        raise UsageError(f"{what}.file", f"cannot read {path}: {err.strerror}") from err


def read_certs(path: Path) -> bytes:
    """Certificates as PEM from a file (PEM or DER) or every certificate file in a directory.

    In a directory, files ending .pem/.crt/.cer/.der are read; PEM CERTIFICATE
    blocks are taken, other PEM blocks (private keys, CRLs) and non-certificate
    DER files are skipped. Subdirectories are not searched.
    """
    if not path.is_dir():
        return read_input(path, "certs")
    pem: list[bytes] = []
    for entry in sorted(path.iterdir()):
        if not entry.is_file() or entry.suffix.lower() not in CERT_SUFFIXES:
            continue
        data = read_input(entry, "certs")
        try:
            for der in _x509.split_certificates(data):
                cert = _x509.load_certificate_der(der)
                pem.append(_x509_pem(cert))
        except ParseError:
            continue  # not a certificate (a CRL, a key): not ours to use
    if not pem:
        raise UsageError(
            "certs.dir",
            f"no certificates found in {path}",
            expected="*.pem/*.der with the VCEK/VLEK",
        )
    return b"".join(pem)


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (``2025-06-01T00:00:00Z``); naive times are taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as err:
        raise UsageError(
            "--at", "not an RFC 3339 time", expected="e.g. 2025-06-01T00:00:00Z", actual=text
        ) from err
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _x509_pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)


def _hex_arg(text: str, name: str, size: int) -> bytes:
    try:
        value = bytes.fromhex(text.strip())
    except ValueError as err:
        raise UsageError(name, "not hex", expected=f"{2 * size} hex digits", actual=text) from err
    if len(value) != size:
        raise UsageError(
            name, "wrong length", expected=f"{size} bytes", actual=f"{len(value)} bytes"
        )
    return value


def _fail(err: TcmeError, *, as_json: bool) -> int:
    code = EXIT_USAGE if isinstance(err, ParseError | UsageError) else EXIT_REJECT
    reasons = _reasons(err)
    if as_json:
        out = {"accepted": False, "exit_code": code, **err.to_dict(), "reasons": reasons}
        print(json.dumps(out, indent=2))
        return code
    prefix = "tcme: error" if code == EXIT_USAGE else "tcme: rejected"
    for reason in reasons:
        print(f"{prefix}: {reason}", file=sys.stderr)
    return code


def _reasons(err: TcmeError) -> list[str]:
    if isinstance(err, PolicyError) and err.violations:
        return [v.message() for v in err.violations]
    return [err.message()]


def _describe(result: VerifiedEvidence) -> str:
    if result.tee is Tee.TDX:
        return _describe_tdx(result)
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


def _flatten(fields: dict[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    for key, value in fields.items():
        if isinstance(value, dict):
            lines.extend(_flatten(value, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key}: {value}")
    return lines


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE
