"""SEV-SNP fixtures shared by tests/attestation (snp/, test_policy.py, test_verifier.py).

The real report vectors, each with a time inside its VEK's validity, and one
SIMULATED chain shared by the session (key generation is slow).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from attestation.inputs import read_certs
from attestation.snp import _x509
from attestation.snp.simulate import SimulatedSnp

# Every real report folder, with what its source says about it (vectors README section 1).
SNP_VECTORS = {
    "gosevguest_milan_v2": ("Milan", "VCEK", 2),
    "virtee_milan_v2": ("Milan", "VCEK", 2),
    "trustee_milan_v2_vcek": ("Milan", "VCEK", 2),
    "trustee_milan_v3_vlek": ("Milan", "VLEK", 3),
    "ms_milan_v3": ("Milan", "VCEK", 3),
    "ms_genoa_v3": ("Genoa", "VCEK", 3),
    "ms_turin_v5": ("Turin", "VCEK", 5),
    "azure_genoa_v3": ("Genoa", "VCEK", 3),
}


@dataclass(frozen=True)
class SnpVector:
    name: str
    folder: Path
    report: bytes
    certs: bytes  # every certificate in the folder, PEM
    product: str
    signing_key: str
    version: int
    at: datetime  # a day after the VEK became valid: inside every certificate's window

    @property
    def vek(self):
        return _x509.load_certificate_der(_x509.split_certificates(self.certs_vek_only)[0])

    @property
    def certs_vek_only(self) -> bytes:
        for name in ("vcek.pem", "vcek.der", "vlek.der"):
            if (self.folder / name).exists():
                return (self.folder / name).read_bytes()
        raise AssertionError(f"no VEK in {self.folder}")


def load_snp_vector(vectors: Path, name: str) -> SnpVector:
    folder = vectors / "snp" / name
    if not (folder / "report.bin").exists():
        pytest.skip(f"vector folder {folder} missing")
    product, kind, version = SNP_VECTORS[name]
    certs = read_certs(folder)
    probe = SnpVector(name, folder, b"", certs, product, kind, version, datetime.now())
    at = probe.vek.not_valid_before_utc + timedelta(days=1)
    return SnpVector(
        name=name,
        folder=folder,
        report=(folder / "report.bin").read_bytes(),
        certs=certs,
        product=product,
        signing_key=kind,
        version=version,
        at=at,
    )


@pytest.fixture(params=sorted(SNP_VECTORS))
def snp_vector(request, vectors: Path) -> SnpVector:
    """Each real SEV-SNP report vector in turn."""
    return load_snp_vector(vectors, request.param)


@pytest.fixture
def named_vector(vectors: Path):
    """``named_vector("ms_milan_v3")`` -> SnpVector."""
    return lambda name: load_snp_vector(vectors, name)


@pytest.fixture(scope="session")
def snp_sim(tmp_path_factory) -> SimulatedSnp:
    """One SIMULATED chain for the whole session."""
    return SimulatedSnp(tmp_path_factory.mktemp("simulated-snp"))
