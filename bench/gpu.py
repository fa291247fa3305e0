"""NVIDIA GPU evidence verification: per GPU against the bare ECDSA-P384 verify it contains,
and a whole 8-GPU protected-PCIe system, on the real vectors.

In one process, interleaved (bench/_common.py):

* floor: one bare ECDSA P-384/SHA-384 verify of a GPU report's signature with
  ``cryptography`` (key loaded, signature DER-encoded in advance): the least any
  verifier must do per GPU.
* tcme warm: ``verify_device_evidence`` (parse, chain, FWID, signature, nonce)
  with the device chain's signatures already verified and cached by its bytes
  (a party verifying the same GPUs again: every later session).
* tcme cold: the same after ``clear_chain_cache()``: the chain's five ECDSA
  signatures checked again (the first time a party sees a GPU).
* system: ``verify_system`` over the 8 x GH100 + 4 x LS10 protected-PCIe vectors
  (12 reports, 12 chains, topology), warm and cold, against 12 floors.

    python bench/gpu.py [--rounds N] [--markdown]
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _common import interleaved_medians, vectors_root  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402

from attestation.nvidia.abi import parse_report  # noqa: E402
from attestation.nvidia.chain import clear_chain_cache, load_chain  # noqa: E402
from attestation.nvidia.verify import (  # noqa: E402
    DeviceEvidence,
    verify_device_evidence,
    verify_system,
)

AT = datetime(2025, 10, 1, tzinfo=UTC)
GPUS = ("trustee_gh100_550", "nvsdk_gh100_580_159", "nvsdk_gb100_575")


def _floor(evidence: DeviceEvidence):
    report = parse_report(evidence.report)
    key = load_chain(evidence.certs)[0].public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)  # NVIDIA device keys are P-384
    half = len(report.signature) // 2
    der = encode_dss_signature(
        int.from_bytes(report.signature[:half], "big"),
        int.from_bytes(report.signature[half:], "big"),
    )
    signed = report.signed_bytes
    algorithm = ec.ECDSA(hashes.SHA384())
    return lambda: key.verify(der, signed, algorithm)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    vectors = vectors_root()
    if vectors is None:
        # A benchmark that should run and cannot is a failure, never a quiet skip.
        print(
            "bench/gpu.py cannot run: no vectors ($TCME_VECTORS or ../shared/vectors)",
            file=sys.stderr,
        )
        return 1
    rows = []
    for name in GPUS:
        folder = vectors / "nvidia" / name
        evidence = DeviceEvidence(
            (folder / "report.bin").read_bytes(), (folder / "cert_chain.pem").read_bytes()
        )
        nonce = bytes.fromhex((folder / "nonce.hex").read_text().strip())
        floor = _floor(evidence)

        def warm(evidence=evidence, nonce=nonce):
            verify_device_evidence(evidence, nonce=nonce, at=AT)

        def cold(evidence=evidence, nonce=nonce):
            clear_chain_cache()
            verify_device_evidence(evidence, nonce=nonce, at=AT)

        f, w, c = interleaved_medians([floor, warm, cold], args.rounds)
        rows.append((name, f, w, c))
    folder = vectors / "nvidia" / "nvtrust_ppcie_8xgh100_4xls10"
    devices = [
        DeviceEvidence(base64.b64decode(e["evidence"]), base64.b64decode(e["certificate"]))
        for file in ("gpu_evidence.json", "switch_evidence.json")
        for e in json.loads((folder / file).read_text())
    ]
    nonce = bytes.fromhex((folder / "nonce.hex").read_text().strip())
    floors = [_floor(d) for d in devices]

    def all_floors():
        for floor in floors:
            floor()

    def system_warm():
        verify_system(devices, nonce=nonce, at=AT)

    def system_cold():
        clear_chain_cache()
        verify_system(devices, nonce=nonce, at=AT)

    sf, sw, sc = interleaved_medians(
        [all_floors, system_warm, system_cold], max(20, args.rounds // 10)
    )
    ms = 1000.0
    print(
        f"# NVIDIA GPU evidence verification ({platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, rounds {args.rounds})"
    )
    print()
    print(
        "| evidence | floor: 1 ECDSA-P384 verify | tcme warm (chain cached) | "
        "ratio | tcme cold (chain verified) | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, f, w, c in rows:
        print(
            f"| {name} | {f * ms:.3f} ms | {w * ms:.3f} ms | {w / f:.2f}x | "
            f"{c * ms:.3f} ms | {c / f:.2f}x |"
        )
    print(
        f"| PPCIe system: 8 GPUs + 4 switches | {sf * ms:.3f} ms (12 verifies) | "
        f"{sw * ms:.3f} ms | {sw / sf:.2f}x | {sc * ms:.3f} ms | {sc / sf:.2f}x |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
