"""``tcme sim snp``: write SIMULATED SEV-SNP evidence with its VCEK and chain.

So anyone can try the verifier without SEV-SNP hardware.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from attestation.errors import TcmeError, UsageError
from attestation.snp.simulate import DEFAULT_MEASUREMENT, SimulatedSnp

EXIT_OK, EXIT_USAGE = 0, 2
POLICY_FILE = "simulated-policy.toml"
REPORT_FILE = "report.bin"


def register(subparsers: Any) -> None:
    """Add ``sim snp``."""
    group = subparsers.add_parser("sim", help="produce SIMULATED evidence (no hardware needed)")
    sub = group.add_subparsers(dest="sim_command", metavar="TEE", parser_class=type(group))
    snp = sub.add_parser(
        "snp",
        help="write a SIMULATED SEV-SNP report, its VCEK and chain",
        description=(
            "Create (or reuse) a SIMULATED ARK -> ASK -> VCEK chain in DIR and write a "
            "signed report. Verify it with `tcme evidence verify DIR/report.bin --certs DIR "
            f"--policy DIR/{POLICY_FILE}`."
        ),
    )
    snp.add_argument("--out", required=True, type=Path, help="directory for the chain and report")
    snp.add_argument("--report-data", help="REPORT_DATA, 128 hex digits (default: all zero)")
    snp.add_argument(
        "--measurement", help="MEASUREMENT, 96 hex digits (default: fixed simulated value)"
    )
    snp.add_argument(
        "--policy", help="guest POLICY as hex, e.g. 0x30000 (default: debug and MA off)"
    )
    snp.add_argument("--version", type=int, choices=(2, 3, 5), default=3, help="report version")
    snp.add_argument("--vmpl", type=int, choices=(0, 1, 2, 3), default=0, help="VMPL")
    snp.set_defaults(handler=run_snp)
    group.set_defaults(handler=lambda _args: _usage(group))


def run_snp(args: argparse.Namespace) -> int:
    """Handler of ``tcme sim snp``."""
    try:
        report_data = _hex(args.report_data, "--report-data", 64) if args.report_data else bytes(64)
        measurement = _hex(args.measurement, "--measurement", 48) if args.measurement else None
        policy = _int(args.policy, "--policy") if args.policy else None
        out: Path = args.out
        if out.exists() and not out.is_dir():
            raise UsageError("--out", f"{out} exists and is not a directory")
        sim = SimulatedSnp(out)
        report = sim.report(
            report_data,
            measurement=measurement,
            policy=policy,
            version=args.version,
            vmpl=args.vmpl,
        )
    except TcmeError as err:
        print(f"tcme: error: {err.message()}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        print(f"tcme: error: --out: cannot write {args.out}: {err.strerror}", file=sys.stderr)
        return EXIT_USAGE
    (out / REPORT_FILE).write_bytes(report)
    (out / POLICY_FILE).write_text(
        "# Policy that accepts the SIMULATED evidence in this directory, and only it.\n"
        "# SIMULATED evidence proves nothing about hardware: never use this for real secrets.\n"
        'accept = ["sev-snp"]\n'
        "allow_simulated = true\n"
        f'simulated_ark_sha256 = ["{sim.ark_sha256}"]\n'
        "\n[snp]\n"
        f'allowed_measurements = ["{(measurement or DEFAULT_MEASUREMENT).hex()}"]\n'
    )
    print(f"SIMULATED SEV-SNP evidence (not from AMD hardware) written to {out}/")
    print(f"  {REPORT_FILE:<22} v{args.version} report, {len(report)} bytes")
    print("  vcek.pem ask.pem ark.pem  SIMULATED chain (private keys in private/)")
    print(
        f"  {POLICY_FILE:<22} allow_simulated = true, pinned to ARK sha256 {sim.ark_sha256[:16]}… "
        "and this MEASUREMENT"
    )
    report_path, policy_path = out / REPORT_FILE, out / POLICY_FILE
    print(f"verify: tcme evidence verify {report_path} --certs {out} --policy {policy_path}")
    return EXIT_OK


def _hex(text: str, name: str, size: int) -> bytes:
    try:
        value = bytes.fromhex(text.strip())
    except ValueError as err:
        raise UsageError(name, "not hex", expected=f"{2 * size} hex digits", actual=text) from err
    if len(value) != size:
        raise UsageError(
            name, "wrong length", expected=f"{size} bytes", actual=f"{len(value)} bytes"
        )
    return value


def _int(text: str, name: str) -> int:
    try:
        return int(text, 0)
    except ValueError as err:
        raise UsageError(name, "not an integer", expected="e.g. 0x30000", actual=text) from err


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE
