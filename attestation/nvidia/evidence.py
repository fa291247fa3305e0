"""Evidence kind ``nvidia-gpu`` in the one verification pipeline (attestation.verifier).

A single GPU/NVSwitch report verified on its own (``tcme evidence verify``):

(1) parse (attestation.nvidia.abi);
(2) chain to the pinned NVIDIA Device Identity CA, FWID, report signature,
    cached OCSP when given (attestation.nvidia.verify);
(3) policy: the RIMs given as collateral (each verified digest first) must
    match, and a ``[gpu]`` table, if the policy has one, must accept the device;
(4) binding: the request nonce equals the caller's (``expected_report_data``,
    32 bytes: for a tcme session, attestation.nvidia.binding derives it).

Inside a session the GPUs are verified as a system from the claims
(tcme.client.gpu); this adapter is for one report and its chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from attestation.errors import PolicyError, UsageError
from attestation.nvidia.abi import decode_report_input, looks_like_report
from attestation.nvidia.policy import validate_system
from attestation.nvidia.rim import match_measurements, verify_rim
from attestation.nvidia.verify import (
    DeviceEvidence,
    VerifiedSystem,
    verify_device_evidence,
)
from attestation.tee import Tee

if TYPE_CHECKING:  # the result type lives in the pipeline, which imports this module late
    from attestation.verifier import VerifiedEvidence


def is_nvidia_report(data: bytes) -> bool:
    """True when ``data`` (raw, hex or base64) is an NVIDIA SPDM 1.1 report."""
    return looks_like_report(data)


def verify_nvidia_gpu(
    evidence: bytes,
    *,
    certs: bytes | None,
    policy: Any,
    at: datetime | None,
    expected_report_data: bytes | None,
    collateral: Any,
    crl: bytes | None,
    product: str | None,
) -> VerifiedEvidence:
    """Steps (1)-(4) for one report; returns ``attestation.verifier.VerifiedEvidence``.

    ``collateral``: a sequence of RIM XML documents (bytes). ``crl`` and
    ``product`` do not apply to NVIDIA evidence.
    """
    from attestation.verifier import VerifiedEvidence  # the pipeline's result type

    del crl, product
    if not certs:
        raise UsageError(
            "certs",
            "NVIDIA verification needs the device certificate chain (PEM)",
            expected="--certs CHAIN",
            actual="none",
        )
    if expected_report_data is None:
        raise UsageError(
            "nonce",
            "NVIDIA verification needs the nonce the verifier asked the GPU to sign",
            expected="--nonce HEX (32 bytes)",
            actual="none",
        )
    # (1) + (2) + (4): parse, chain, signature, FWID; the nonce check is step (5) there
    device = verify_device_evidence(
        DeviceEvidence(decode_report_input(evidence), bytes(certs)),
        nonce=bytes(expected_report_data),
        at=at,
        allow_simulated=bool(getattr(policy, "allow_simulated", False)),
    )
    # (3) RIMs, then the [gpu] table
    rims = [verify_rim(bytes(r), at=device.verified_at) for r in _rims(collateral)]
    match = None
    if rims:
        chip = device.hwmodel.split(" ", 1)[0]
        match = match_measurements(device.report, rims, chip=chip)
        if match.mismatched:
            raise PolicyError(
                "nvidia.rim.measurements",
                "measurements differ from NVIDIA's signed reference values",
                expected="equal to a golden value",
                actual=f"SPDM blocks {list(match.mismatched)} differ",
            )
    gpu_policy = policy.table("gpu")  # typed when the policy loaded (attestation.policy)
    if gpu_policy is not None and device.kind == "gpu":
        system = VerifiedSystem(gpus=(device,), switches=(), protected_pcie=False)
        validate_system(
            system,
            gpu_policy,
            matches=[match],
            claimed={"cc_mode": "on", "devtools": False},  # not in SPDM; stated by the enclave
        )
    tcb: dict[str, Any] = {
        "driver_version": device.driver_version,
        "vbios_version": device.vbios_version,
        "fwid_source": device.fwid_source,
    }
    if match is not None:
        tcb["rim_matched_blocks"] = len(match.matched)
        tcb["rim_uncovered_blocks"] = list(match.uncovered)
        tcb["rims"] = list(match.rims)
    return VerifiedEvidence(
        tee=Tee.NVIDIA_GPU,
        simulated=device.simulated,
        product=device.arch,
        report_data=device.report.nonce,
        measurement=device.fwid or b"",
        tcb=tcb,
        signing_key=device.hwmodel,
        report=device,
        root_sha256=device.chain.root_sha256,
        verified_at=device.verified_at,
    )


def _rims(collateral: Any) -> Sequence[bytes]:
    if collateral is None:
        return ()
    if isinstance(collateral, bytes | bytearray):
        return (bytes(collateral),)
    return tuple(bytes(c) for c in collateral)
