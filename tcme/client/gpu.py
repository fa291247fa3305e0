"""Step (9) of a party's verification: the GPUs whose evidence the attested claims carry.

The claims (bound by the CPU report's REPORT_DATA) carry each device's SPDM
report and chain. Here: recompute the GPU nonce from the party's own nonce
(attestation.nvidia.binding), verify every device and the system's topology
(attestation.nvidia.verify), match measurements against the RIM files the
``[gpu]`` policy pins (attestation.nvidia.rim, each RIM verified digest first),
and apply the ``[gpu]`` rules (attestation.nvidia.policy).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from attestation.errors import PolicyError, TcmeError, UsageError
from attestation.nvidia.binding import gpu_nonce_for
from attestation.nvidia.policy import GpuPolicy, validate_system
from attestation.nvidia.rim import MeasurementMatch, VerifiedRim, match_measurements, verify_rim
from attestation.nvidia.verify import DeviceEvidence, VerifiedSystem, verify_system
from attestation.policy import Policy
from attestation.tee import Tee
from tcme.wire import Claims

log = logging.getLogger(__name__)


def verify_gpus(
    claims: Claims,
    policy: Policy,
    *,
    contract_digest: bytes,
    session_id: bytes,
    nonce: bytes,
    capability_digest: bytes | None,
    at: datetime | None,
    rims: Sequence[bytes] = (),
    ocsp: Mapping[str, bytes] | None = None,
    cpu_simulated: bool = False,
) -> VerifiedSystem | None:
    """The verified GPU system, or None when there are no GPUs and the policy allows that.

    ``rims`` and ``ocsp``: what the host's cache attached (``Collateral.nvidia_*``);
    untrusted, every RIM and answer is verified before it counts. ``cpu_simulated``:
    the CPU evidence was simulated. Simulated GPUs are accepted only beside a
    simulated CPU (and only with ``allow_simulated``): a genuine TEE claiming
    simulated GPUs is refused, whatever the policy allows.
    """
    gpu_policy = policy.table("gpu")  # typed when the policy loaded (attestation.policy)
    if claims.has_gpu and Tee.NVIDIA_GPU not in policy.accept:
        accepted = ", ".join(t.value for t in policy.accept)
        raise PolicyError(
            "tee.accept",
            f"the enclave attests GPUs (nvidia-gpu evidence), but the policy accepts only "
            f"{accepted}",
            expected=f"one of {accepted}",
            actual=f"nvidia-gpu: {len(claims.gpu_devices)} device(s)",
        )
    if gpu_policy is None:
        return None
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
        ocsp=ocsp,
        require_ocsp=gpu_policy.require_ocsp,
        allow_simulated=policy.allow_simulated and cpu_simulated,
    )
    matches: list[MeasurementMatch | None] = []
    if gpu_policy.rims_required:
        when = system.gpus[0].verified_at if system.gpus else at
        verified = _usable_rims(
            [*rims, *(_read_rim(path) for path in gpu_policy.rim_files)], gpu_policy, when
        )
        for gpu in system.gpus:
            chip = gpu.hwmodel.split(" ", 1)[0]
            versions = {v.lower() for v in (gpu.driver_version, gpu.vbios_version) if v}
            mine = [r for r in verified if r.product == chip and r.version.lower() in versions]
            matches.append(match_measurements(gpu.report, mine, chip=chip) if mine else None)
    validate_system(system, gpu_policy, matches=matches, claimed=claims.gpu_mode)
    return system


def _usable_rims(
    documents: Sequence[bytes], policy: GpuPolicy, at: datetime | None
) -> list[VerifiedRim]:
    """Verify every RIM; keep one per (product, version), pinned digests only if pinned.

    A RIM from the host that fails verification is dropped (the host is untrusted and
    may hold stale files); a GPU left without a RIM then fails ``gpu[i].rims``.
    A party's own file that fails is an error naming the check.
    """
    out: dict[tuple[str, str], VerifiedRim] = {}
    own = len(documents) - len(policy.rim_files)
    for position, document in enumerate(documents):
        try:
            rim = verify_rim(document, at=at or datetime.now(UTC))
        except TcmeError as err:
            if position >= own:
                raise
            log.info("dropping a cached NVIDIA RIM that does not verify: %s", err.check)
            continue
        if policy.rim_sha384 and rim.digest.hex() not in policy.rim_sha384:
            continue
        key = (rim.product, rim.version.lower())
        # Two valid RIMs for one version: the later-signed one (NVIDIA re-signs and fixes).
        held = out.get(key)
        if (
            held is None
            or rim.signer.leaf.not_valid_before_utc > held.signer.leaf.not_valid_before_utc
        ):
            out[key] = rim
    return list(out.values())


def _signed_after(rim: VerifiedRim, other: VerifiedRim) -> bool:
    return rim.signer.leaf.not_valid_before_utc > other.signer.leaf.not_valid_before_utc


def _read_rim(path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as err:
        raise UsageError("policy.gpu.rims", f"cannot read RIM file {path}: {err.strerror}") from err
