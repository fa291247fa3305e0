"""``tcme doctor``: which evidence provider works on this machine, and why the others do not.

It runs the same checks as provider selection (``attestation.providers.select``):
configfs-tsm is probed by creating and removing one report instance (no report
is generated), the devices are only opened, and the CoCo attestation agent's
REST API (inside a Confidential Containers pod) is asked ``GET /info``.
Exit 0 when a hardware provider is usable, 1 when none is (the simulated
provider is never chosen implicitly).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tcme.cli.exitcodes import EXIT_OK, EXIT_REJECT, verdict


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcme doctor``."""
    doctor = subparsers.add_parser(
        "doctor",
        help="show which attestation provider this machine offers and why others are missing",
        description=(
            "Checks configfs-tsm (/sys/kernel/config/tsm/report), /dev/sev-guest, "
            "/dev/tdx_guest and, inside a Confidential Containers pod, the CoCo attestation "
            "agent's API ($TCME_COCO_AA_URL, default http://127.0.0.1:8006) in the order the "
            "enclave would pick them. Exit 0 when one is usable, 1 when none is."
        ),
    )
    doctor.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        metavar="DIR",
        help="look for /sys and /dev under DIR instead of / (for testing)",
    )
    doctor.add_argument("--json", action="store_true", help="print the result as JSON")
    doctor.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from attestation.providers.nvidia_gpu import nvml_status
    from attestation.providers.select import diagnose

    statuses = diagnose(args.root)
    chosen = next((s for s in statuses if s.available), None)
    gpu_ok, gpu_reason = nvml_status()
    if args.json:
        failure = (
            {}
            if chosen
            else {  # the failure fields every --json failure has (docs/usage.md)
                "verdict": verdict(EXIT_REJECT),
                "accepted": False,
                "exit_code": EXIT_REJECT,
                "check": "provider.none",
                "reasons": ["provider.none: no usable attestation provider"],
            }
        )
        print(
            json.dumps(
                {
                    **failure,
                    "root": str(args.root),
                    "selected": chosen.name if chosen else None,
                    "tee": chosen.tee if chosen else None,
                    "providers": [
                        {
                            "name": s.name,
                            "path": str(s.path),
                            "available": s.available,
                            "reason": s.reason,
                            "tee": s.tee,
                        }
                        for s in statuses
                    ],
                    "gpu": {"name": "nvml", "available": gpu_ok, "reason": gpu_reason},
                },
                indent=2,
            )
        )
        return EXIT_OK if chosen else EXIT_REJECT
    print(f"attestation interfaces under {args.root}:")
    width = max(len(s.name) for s in statuses)
    for status in statuses:
        mark = "ok" if status.available else "--"
        print(f"  [{mark}] {status.name:<{width}}  {status.path}")
        print(f"         {status.reason}")
    print("GPU evidence (optional, enclave --gpu nvml):")
    print(f"  [{'ok' if gpu_ok else '--'}] nvml")
    print(f"         {gpu_reason}")
    if chosen is not None:
        print(f"selected: {chosen.name} ({chosen.tee})")
        return EXIT_OK
    print("selected: none. The enclave needs an SEV-SNP or TDX guest; for development run it")
    print("with --simulated (evidence verifiers accept only if their policy allows simulated).")
    # The check name select_provider uses when the enclave finds no provider.
    print("tcme doctor: rejected: provider.none: no usable attestation provider", file=sys.stderr)
    return EXIT_REJECT
