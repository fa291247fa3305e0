"""Step (9) of a party's verification: the GPUs whose evidence the attested claims carry.

The claims (bound by the CPU report's REPORT_DATA) carry each device's SPDM
report and chain. Here: recompute the GPU nonce from the party's own nonce
(attestation.nvidia.binding), verify every device and the system's topology
(attestation.nvidia.verify), match measurements against the RIM files the
``[gpu]`` policy pins (attestation.nvidia.rim, each RIM verified digest first),
and apply the ``[gpu]`` rules (attestation.nvidia.policy).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from attestation.errors import PolicyError, UsageError
from attestation.nvidia.binding import gpu_nonce_for
from attestation.nvidia.policy import GpuPolicy, validate_system
from attestation.nvidia.rim import MeasurementMatch, VerifiedRim, match_measurements, verify_rim
from attestation.nvidia.verify import DeviceEvidence, VerifiedSystem, verify_system
from attestation.policy import Policy
from tcme.wire import Claims


def verify_gpus(
    claims: Claims,
    policy: Policy,
    *,
    contract_digest: bytes,
    session_id: bytes,
    nonce: bytes,
    capability_digest: bytes | None,
    at: datetime | None,
) -> VerifiedSystem | None:
    """The verified GPU system, or None when there are no GPUs and the policy allows that."""
    table = policy.extra.get("gpu")
    if table is None:
        if claims.has_gpu:
            raise PolicyError(
                "gpu.policy",
                "the enclave attests GPUs but the policy has no [gpu] table",
                expected="a [gpu] table",
                actual=f"{len(claims.gpu_devices)} device(s)",
            )
        return None
    gpu_policy = GpuPolicy.from_dict(table)
    if not claims.has_gpu:
        validate_system(None, gpu_policy)
        return None
    gpu_nonce = gpu_nonce_for(
        claims.identity_digest, contract_digest, session_id, nonce, capability_digest
    )
    system = verify_system(
        [DeviceEvidence(report, certs) for report, certs in claims.gpu_devices],
        nonce=gpu_nonce,
        at=at,
        require_ocsp=gpu_policy.require_ocsp,
        allow_simulated=policy.allow_simulated,
    )
    matches: list[MeasurementMatch | None] = []
    if gpu_policy.rims_required:
        rims = [_load_rim(path, system.gpus[0].verified_at) for path in gpu_policy.rim_files]
        for gpu in system.gpus:
            chip = gpu.hwmodel.split(" ", 1)[0]
            versions = {v.lower() for v in (gpu.driver_version, gpu.vbios_version) if v}
            mine = [r for r in rims if r.product == chip and r.version.lower() in versions]
            matches.append(match_measurements(gpu.report, mine, chip=chip) if mine else None)
    validate_system(system, gpu_policy, matches=matches, claimed=claims.gpu_mode)
    return system


def _load_rim(path: str, at: datetime) -> VerifiedRim:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as err:
        raise UsageError("policy.gpu.rims", f"cannot read RIM file {path}: {err.strerror}") from err
    return verify_rim(data, at=at)
