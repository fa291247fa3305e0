"""Azure vTPM evidence verification vs. the SEV-SNP verification it contains.

For each Trustee vector: the whole ``az-snp-vtpm`` pipeline (``verify_evidence``
on the CoCo JSON: parse JSON, HCL report, runtime data and quote; VCEK chain and
SNP signature; runtime-data hash; AK RSA signature; PCR digest; policy; nonce)
against ``verify_evidence`` on the embedded 1184-byte SNP report with the same
VCEK, policy and time. Both run interleaved in one process; the ratio is what
the Azure layers add on top of the SNP verification. Certificate-chain caches
are warm on both sides; the Azure evidence is parsed afresh on every call.

    python bench/attestation_azure.py [--rounds N]

Reads the real vectors from $TCME_VECTORS or ../shared/vectors; exits 1 if they are absent
(`make bench` must fail, not skip).
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _common import interleaved_medians, vectors_root  # noqa: E402

from attestation.azure.evidence import clear_parse_cache, parse_azure_evidence  # noqa: E402
from attestation.azure.hcl import parse_hcl_report  # noqa: E402
from attestation.policy import Policy  # noqa: E402
from attestation.snp.abi import parse_report  # noqa: E402
from attestation.verifier import AzureInputs, SnpInputs, verify_evidence  # noqa: E402

CASES = ("trustee_snp_milan_v3_ev0", "trustee_snp_milan_v3_ev1", "trustee_snp_genoa_v3")
AT = datetime(2026, 1, 1, tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="timed calls per side per vector")
    args = parser.parse_args(argv)
    root = vectors_root()
    if root is None:
        print(
            "Azure bench cannot run: vectors not found (set TCME_VECTORS or ../shared/vectors)",
            file=sys.stderr,
        )
        return 1
    print(
        f"Azure vTPM evidence verification, median of {args.rounds} interleaved calls "
        f"(Python {platform.python_version()}, {platform.machine()})"
    )
    print(f"{'vector':28} {'SNP report ms':>14} {'Azure evidence ms':>18} {'ratio':>6}")
    for name in CASES:
        folder = root / "azure" / name
        evidence = (folder / "evidence.json").read_bytes()
        nonce = bytes.fromhex((folder / "nonce.hex").read_text().strip())
        parts = parse_azure_evidence(evidence)
        report = parse_hcl_report(parts.hcl_report).hardware_report
        vcek = parts.vcek
        # Pinned as a real party would (a skipped check logs a warning on every call).
        measurement = [parse_report(report).measurement.hex()]
        policy = Policy.from_dict(
            {
                "accept": ["az-snp-vtpm", "sev-snp"],
                "azure": {
                    "pcrs": {str(i): value.hex() for i, value in enumerate(parts.pcrs)},
                    "snp": {"allowed_measurements": measurement},
                },
                "snp": {"allowed_measurements": measurement},
            }
        )

        def snp(report: bytes = report, vcek: bytes | None = vcek, policy=policy) -> object:
            return verify_evidence(report, policy=policy, at=AT, inputs=[SnpInputs(certs=vcek)])

        def azure(evidence: bytes = evidence, nonce: bytes = nonce, policy=policy) -> object:
            clear_parse_cache()  # every call parses its evidence afresh, as in use
            return verify_evidence(
                evidence, policy=policy, at=AT, inputs=[AzureInputs(nonce=nonce)]
            )

        snp_s, azure_s = interleaved_medians([snp, azure], args.rounds)
        print(f"{name:28} {snp_s * 1e3:14.3f} {azure_s * 1e3:18.3f} {azure_s / snp_s:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
