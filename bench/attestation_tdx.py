"""TDX quote verification: tcme's verify (and verify + policy) vs. calling dcap-qvl directly.

Both sides get the same quote bytes, the same prebuilt dcap-qvl collateral object, the same
trusted root and the same verification time, and run interleaved in one process, so the
ratio is tcme's own overhead: strict parsing, the root pin, the QE REPORT_DATA check, result
objects (and, in the last column, the [tdx] policy checks). Target: under 10 % (ratio < 1.10).

    python bench/attestation_tdx.py [--rounds N]

Reads the real vectors from $TCME_VECTORS or ../shared/vectors; exits 0 with a note if absent.
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import dcap_qvl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _common import interleaved_medians, vectors_root  # noqa: E402

from attestation.tdx.abi import parse_quote  # noqa: E402
from attestation.tdx.collateral import collateral_for_quote  # noqa: E402
from attestation.tdx.policy import TdxPolicy, validate_quote  # noqa: E402
from attestation.tdx.verify import (  # noqa: E402
    VerifiedQuote,
    VerifyOptions,
    intel_sgx_root_ca_der,
    verify_quote,
)

# (name, quote, collateral file or folder, time) — the vectors that verify to UpToDate.
CASES = (
    ("dcapqvl_v4 (v4, TD 1.0)", "dcapqvl_v4_uptodate/quote.bin",
     "dcapqvl_v4_uptodate/collateral.json", "2025-07-19T10:00:34Z"),
    ("tinfoil_v4 (v4, TD 1.0)", "tinfoil_v4_agpl/quote.bin",
     "tinfoil_v4_agpl/collateral", "2026-02-01T00:00:00Z"),
    ("gotdxguest_v5 (v5, TD 1.5)", "gotdxguest_v5/quote.bin",
     "tinfoil_v4_agpl/collateral", "2026-02-03T01:00:00Z"),
)  # fmt: skip
OVERHEAD_TARGET = 1.10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="timed calls per side per quote")
    args = parser.parse_args(argv)
    root = vectors_root()
    if root is None:
        # A benchmark that should run and cannot is a failure, never a quiet skip.
        print(
            "TDX bench cannot run: vectors not found (set TCME_VECTORS or ../shared/vectors)",
            file=sys.stderr,
        )
        return 1
    tdx = root / "tdx"
    anchor = intel_sgx_root_ca_der()
    policy = TdxPolicy()

    print(
        f"TDX quote verification, median of {args.rounds} interleaved calls per column "
        f"(dcap-qvl {dcap_qvl.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()})"
    )
    header = (
        "quote",
        "dcap-qvl direct",
        "tcme verify",
        "ratio",
        "tcme verify+policy",
        "ratio",
    )
    rows = [header]
    worst = 0.0
    for name, quote_file, collateral_at, when in CASES:
        raw = (tdx / quote_file).read_bytes()
        collateral = collateral_for_quote(tdx / collateral_at, parse_quote(raw))
        dcap_collateral = collateral.dcap  # built once, shared by both sides
        now = datetime.fromisoformat(when)
        now_secs = int(now.timestamp())
        options = VerifyOptions(collateral=collateral, now=now)

        def direct(raw: bytes = raw, c: object = dcap_collateral, t: int = now_secs) -> Any:
            return dcap_qvl.verify_with_root_ca(raw, c, anchor, t)  # dcap-qvl is untyped

        def ours(raw: bytes = raw, options: VerifyOptions = options) -> VerifiedQuote:
            return verify_quote(raw, options)

        def ours_policy(raw: bytes = raw, options: VerifyOptions = options) -> None:
            validate_quote(verify_quote(raw, options), policy)

        assert direct().status == ours().tcb_status == "UpToDate"
        base, mine, full = interleaved_medians([direct, ours, ours_policy], args.rounds)
        worst = max(worst, mine / base)
        rows.append(
            (
                name,
                f"{base * 1e6:8.1f} us",
                f"{mine * 1e6:8.1f} us",
                f"{mine / base:5.3f}",
                f"{full * 1e6:8.1f} us",
                f"{full / base:5.3f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    verdict = "within" if worst < OVERHEAD_TARGET else "OVER"
    print(f"worst verify overhead: {100 * (worst - 1):+.1f} % ({verdict} the 10 % target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
