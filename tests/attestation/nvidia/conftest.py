"""NVIDIA GPU evidence fixtures: the real vectors (vectors README section 5), read in place."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from attestation.nvidia.verify import DeviceEvidence

# A time inside every device chain (the leaves' not-before are 2021..2025; roots run to 9999).
AT = datetime(2025, 10, 1, tzinfo=UTC)
# Inside both VBIOS RIM signer windows (2023-06-23..2025-06-22 and 2023-12-13..2025-12-12).
RIM_AT = datetime(2024, 6, 1, tzinfo=UTC)

# folder -> (outcome the vectors README records, arch, ueid or None)
SINGLE_GPU_VECTORS = {
    "trustee_gh100_550": ("ok", "HOPPER", "478176379286082186618948445787393647364802107249"),
    "trustee_gh100_coco_580": ("ok", "HOPPER", None),
    "nvsdk_gb100_575": ("ok", "BLACKWELL", "474146966256510137525212816567191319424869109849"),
    "nvsdk_gh100_580_159": ("ok", "HOPPER", "509096176156678437554566035365892618958504054724"),
    "nvsdk_gh100_535_86_rims": ("ok", "HOPPER", None),
    "nvsdk_gh100_590_12": ("ok", "HOPPER", "462496802410983848477057609082198727668509984363"),
    "nvsdk_gh100_invalid_signature": ("nvidia.report.signature", "HOPPER", None),
}


@dataclass(frozen=True)
class GpuVector:
    name: str
    report: bytes
    certs: bytes
    nonce: bytes

    @property
    def evidence(self) -> DeviceEvidence:
        return DeviceEvidence(self.report, self.certs)


def load_gpu_vector(vectors: Path, name: str) -> GpuVector:
    folder = vectors / "nvidia" / name
    if not (folder / "report.bin").exists():
        pytest.skip(f"vector folder {folder} missing")
    if (folder / "nonce.hex").exists():
        nonce = bytes.fromhex((folder / "nonce.hex").read_text().strip())
    else:  # trustee regularizes the 48-byte report data to its first 32 bytes
        nonce = bytes.fromhex((folder / "report_data.hex").read_text().strip())[:32]
    return GpuVector(
        name=name,
        report=(folder / "report.bin").read_bytes(),
        certs=(folder / "cert_chain.pem").read_bytes(),
        nonce=nonce,
    )


def load_ppcie_system(vectors: Path) -> tuple[list[DeviceEvidence], bytes]:
    """The 8 x GH100 + 4 x LS10 protected-PCIe system: GPUs first, then switches."""
    folder = vectors / "nvidia" / "nvtrust_ppcie_8xgh100_4xls10"
    if not folder.is_dir():
        pytest.skip(f"vector folder {folder} missing")
    devices = [
        DeviceEvidence(base64.b64decode(e["evidence"]), base64.b64decode(e["certificate"]))
        for name in ("gpu_evidence.json", "switch_evidence.json")
        for e in json.loads((folder / name).read_text())
    ]
    return devices, bytes.fromhex((folder / "nonce.hex").read_text().strip())


@pytest.fixture(params=sorted(SINGLE_GPU_VECTORS))
def gpu_vector(request, vectors: Path) -> GpuVector:
    return load_gpu_vector(vectors, request.param)


@pytest.fixture
def named_gpu(vectors: Path):
    return lambda name: load_gpu_vector(vectors, name)


@pytest.fixture
def ppcie(vectors: Path) -> tuple[list[DeviceEvidence], bytes]:
    return load_ppcie_system(vectors)
