"""GPU evidence providers: NVML on a real confidential VM, and two stand-ins without one.

* ``NvmlGpuProvider``: a CVM with NVIDIA GPUs in confidential-computing mode.
  Reads the CC state (``nvmlSystemGetConfComputeState``: CC feature on,
  devtools off) and, per GPU, the SPDM attestation report over our nonce
  (``nvmlDeviceGetConfComputeGpuAttestationReport``) and its certificate chain
  (``nvmlDeviceGetConfComputeGpuCertificate``). Needs ``nvidia-ml-py``
  (``pip install tcme[gpu]``), imported only here, only when used.
* ``SimulatedGpuProvider``: SIMULATED GPUs (``attestation.nvidia.simulate``)
  that sign over any nonce: a stand-in for hardware, accepted only under
  ``allow_simulated``.
* ``RecordedGpuStandIn``: a stand-in that returns recorded real evidence
  (the vectors) whatever nonce it is asked for, as a compromised host
  replaying a genuine GPU's old answer would; verifiers must reject it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from attestation.nvidia.simulate import SimulatedGpu
from attestation.nvidia.verify import DeviceEvidence
from attestation.providers.errors import ProviderUnavailable


class GpuEvidenceProvider(Protocol):
    """Where the enclave gets GPU evidence from."""

    name: str
    simulated: bool

    def gpu_evidence(self, nonce: bytes) -> list[DeviceEvidence]:
        """Evidence of every GPU (then every NVSwitch) over the 32-byte ``nonce``."""
        ...

    def mode(self) -> dict[str, Any]:
        """The GPUs' confidential-computing state: ``{"cc_mode": "on", "devtools": False}``."""
        ...


class NvmlGpuProvider:
    """NVIDIA GPUs through NVML on a confidential VM.

    Tested against a stand-in ``pynvml`` returning recorded real evidence
    (tests/attestation/providers/test_nvidia_gpu_provider.py); never run here on a
    CC-mode GPU.
    """

    name = "nvml"
    simulated = False

    def __init__(self) -> None:
        try:
            import pynvml  # nvidia-ml-py; optional
        except ImportError as err:
            raise ProviderUnavailable(
                "gpu.nvml", "nvidia-ml-py is not installed (pip install 'tcme[gpu]')"
            ) from err
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as err:
            raise ProviderUnavailable("gpu.nvml", f"NVML did not initialise: {err}") from err
        self._nvml = pynvml

    def mode(self) -> dict[str, Any]:
        """CC feature and devtools mode, as NVML reports them.

        "on" needs the CC feature enabled *in the production environment*: NVML's
        "SIM" environment is a pre-production mode without hardware protection.
        """
        nvml = self._nvml
        state = nvml.nvmlSystemGetConfComputeState()
        if state.ccFeature != nvml.NVML_CC_SYSTEM_FEATURE_ENABLED:
            cc_mode = "off"
        elif state.environment != nvml.NVML_CC_SYSTEM_ENVIRONMENT_PROD:
            cc_mode = "sim"
        else:
            cc_mode = "on"
        return {
            "cc_mode": cc_mode,
            "devtools": state.devToolsMode != nvml.NVML_CC_SYSTEM_DEVTOOLS_MODE_OFF,
        }

    def gpu_evidence(self, nonce: bytes) -> list[DeviceEvidence]:
        """One report + chain per GPU, in NVML index order.

        GPUs only: in protected-PCIe mode the NVSwitches' evidence comes through
        NVIDIA's NSCQ library, which tcme does not drive yet, so a party requiring
        protected PCIe rejects such a system (``nvidia.topology.switches``): fail closed.
        """
        out = []
        for index in range(self._nvml.nvmlDeviceGetCount()):
            handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
            report = self._nvml.nvmlDeviceGetConfComputeGpuAttestationReport(handle, nonce)
            certs = self._nvml.nvmlDeviceGetConfComputeGpuCertificate(handle)
            out.append(
                DeviceEvidence(
                    bytes(report.attestationReport[: report.attestationReportSize]),
                    bytes(certs.attestationCertChain[: certs.attestationCertChainSize]),
                )
            )
        return out


class SimulatedGpuProvider:
    """SIMULATED GPUs for CI and laptops: real layout, local keys, no hardware."""

    name = "simulated-gpu"
    simulated = True

    def __init__(self, count: int = 1, *, devtools: bool = False) -> None:
        self._gpus = [SimulatedGpu(index=i) for i in range(count)]
        self._devtools = devtools

    def mode(self) -> dict[str, Any]:
        """Always CC on; devtools as constructed (to test the policy)."""
        return {"cc_mode": "on", "devtools": self._devtools}

    def gpu_evidence(self, nonce: bytes) -> list[DeviceEvidence]:
        """Each simulated GPU signs ``nonce``."""
        return [gpu.evidence(nonce) for gpu in self._gpus]

    def ocsp_responses(self, *, revoked: bool = False) -> dict[str, bytes]:
        """OCSP answers for every simulated GPU's certificates (for a host's cache)."""
        out: dict[str, bytes] = {}
        for gpu in self._gpus:
            out.update(gpu.ocsp_responses(revoked=revoked))
        return out


class RecordedGpuStandIn:
    """A stand-in returning recorded real GPU evidence, ignoring the nonce (a replay)."""

    name = "recorded-gpu"
    simulated = False

    def __init__(self, evidence: Sequence[DeviceEvidence]) -> None:
        self._evidence = list(evidence)

    def mode(self) -> dict[str, Any]:
        """What the recorded GPUs ran in."""
        return {"cc_mode": "on", "devtools": False}

    def gpu_evidence(self, nonce: bytes) -> list[DeviceEvidence]:
        """The recorded evidence, whatever ``nonce`` is."""
        del nonce
        return list(self._evidence)


def nvml_status() -> tuple[bool, str]:
    """(available, reason) for ``tcme doctor``."""
    try:
        provider = NvmlGpuProvider()
        mode = provider.mode()
    except ProviderUnavailable as err:
        return False, err.message()
    except Exception as err:  # NVML raises its own error types; doctor only reports
        return False, f"NVML error: {err}"
    return True, f"NVML: CC mode {mode['cc_mode']}, devtools {'on' if mode['devtools'] else 'off'}"


GPU_MODES = ("none", "nvml", "simulated")


def select_gpu_provider(mode: str, *, count: int = 1) -> GpuEvidenceProvider | None:
    """The GPU provider ``--gpu MODE`` asks for; never a silent fallback.

    "none": no GPU evidence (CPU TEE only). "nvml": real GPUs in CC mode, or
    ``ProviderUnavailable``; an NVML that reports CC off or devtools on is refused
    here, before serving. "simulated": ``count`` SIMULATED GPUs.
    """
    if mode == "none":
        return None
    if mode == "simulated":
        return SimulatedGpuProvider(count)
    if mode == "nvml":
        provider = NvmlGpuProvider()
        state = provider.mode()
        if state["cc_mode"] != "on" or state["devtools"]:
            raise ProviderUnavailable(
                "gpu.cc_mode",
                f"the GPUs are not in confidential-computing production mode ({state})",
            )
        return provider
    raise ProviderUnavailable(
        "gpu.mode", f"unknown --gpu mode {mode!r}; one of {', '.join(GPU_MODES)}"
    )
