"""Azure vTPM vector fixtures (vectors README section 4): what each folder verifies to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from attestation.azure.evidence import AzureEvidence

# A time inside every Azure VCEK window of the README's table (4.1).
AT = datetime(2026, 1, 1, tzinfo=UTC)

# Folders with a whole CoCo evidence.json that verifies, with the product it names.
EVIDENCE_VECTORS = {
    "trustee_snp_milan_v3_ev0": "Milan",
    "trustee_snp_milan_v3_ev1": "Milan",
    "trustee_snp_milan_v3_ev2_userdata": "Milan",
    "trustee_snp_genoa_v3": "Genoa",
}


@dataclass(frozen=True)
class AzureVector:
    name: str
    folder: Path
    evidence: bytes
    nonce: bytes


@pytest.fixture(scope="session")
def azure(vectors: Path) -> Path:
    folder = vectors / "azure"
    if not folder.is_dir():
        pytest.skip(f"Azure vectors missing under {vectors}")
    return folder


def milan_v2_evidence(folder: Path) -> bytes:
    """trustee_snp_milan_v2 as v1 evidence JSON (it ships split files and tpm_quote.json)."""
    quote = json.loads((folder / "tpm_quote.json").read_text())
    return AzureEvidence(
        version=1,
        hcl_report=(folder / "hcl_report.bin").read_bytes(),
        quote_message=bytes.fromhex(quote["message"]),
        quote_signature=bytes.fromhex(quote["signature"]),
        pcrs=tuple(bytes.fromhex(p) for p in quote["pcrs"]),
    ).to_json()


@pytest.fixture(scope="session")
def azure_vector(azure: Path):
    def _get(name: str) -> AzureVector:
        folder = azure / name
        if name == "trustee_tdx_v4":
            evidence = (folder / "evidence_v1.json").read_bytes()
        elif name == "trustee_snp_milan_v2":
            evidence = milan_v2_evidence(folder)
        else:
            evidence = (folder / "evidence.json").read_bytes()
        nonce = bytes.fromhex((folder / "nonce.hex").read_text().strip())
        return AzureVector(name, folder, evidence, nonce)

    return _get
