"""``tcme sim snp``: write SIMULATED SEV-SNP evidence with its VCEK and chain.

So anyone can try the verifier without SEV-SNP hardware.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from attestation.errors import UsageError
from tcme.cli.exitcodes import EXIT_OK

POLICY_FILE = "simulated-policy.toml"
REPORT_FILE = "report.bin"


def register(subparsers: Any) -> None:
    """Add ``sim snp``."""
    group = subparsers.add_parser("sim", help="produce SIMULATED evidence (no hardware needed)")
    sub = group.add_subparsers(
        dest="sim_command", metavar="TEE", required=True, parser_class=type(group)
    )
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
    snp.add_argument("--json", action="store_true", help="print what was written as JSON")
    snp.set_defaults(handler=run_snp)


def run_snp(args: argparse.Namespace) -> int:
    """Handler of ``tcme sim snp``."""
    from attestation.snp.simulate import DEFAULT_MEASUREMENT, SimulatedSnp
    from attestation.text import format_sha256, parse_hex

    report_data = (
        parse_hex(args.report_data, "--report-data", size=64) if args.report_data else bytes(64)
    )
    measurement = (
        parse_hex(args.measurement, "--measurement", size=48) if args.measurement else None
    )
    policy = _int(args.policy, "--policy") if args.policy else None
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError("--out", f"{out} exists and is not a directory")
    try:
        sim = SimulatedSnp(out)
        report = sim.report(
            report_data,
            measurement=measurement,
            policy=policy,
            version=args.version,
            vmpl=args.vmpl,
        )
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
    except OSError as err:
        raise UsageError("--out", f"cannot write {args.out}: {err.strerror}") from err
    report_path, policy_path = out / REPORT_FILE, out / POLICY_FILE
    verify = f"tcme evidence verify {report_path} --certs {out} --policy {policy_path}"
    if args.json:
        body = {
            "simulated": True,
            "directory": str(out),
            "report": str(report_path),
            "report_version": args.version,
            "report_bytes": len(report),
            "certificates": [str(out / n) for n in ("vcek.pem", "ask.pem", "ark.pem")],
            "policy": str(policy_path),
            "simulated_ark_sha256": format_sha256(sim.ark_sha256),
            "measurement": (measurement or DEFAULT_MEASUREMENT).hex(),
            "verify_command": verify,
        }
        print(json.dumps(body, indent=2, sort_keys=True))
        return EXIT_OK
    print(f"SIMULATED SEV-SNP evidence (not from AMD hardware) written to {out}/")
    print(f"  {REPORT_FILE:<22} v{args.version} report, {len(report)} bytes")
    print("  vcek.pem ask.pem ark.pem  SIMULATED chain (private keys in private/)")
    print(
        f"  {POLICY_FILE:<22} allow_simulated = true, pinned to the simulated ARK and MEASUREMENT:"
    )
    print(f"  simulated_ark_sha256   {format_sha256(sim.ark_sha256)}")
    print(f"  allowed_measurements   {(measurement or DEFAULT_MEASUREMENT).hex()}")
    print(f"verify: {verify}")
    return EXIT_OK


def _int(text: str, name: str) -> int:
    try:
        return int(text, 0)
    except ValueError as err:
        raise UsageError(name, "not an integer", expected="e.g. 0x30000", actual=text) from err
