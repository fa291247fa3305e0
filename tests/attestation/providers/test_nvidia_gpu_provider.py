"""The NVML GPU provider against a stand-in ``pynvml`` that returns the real vectors.

The stand-in replaces only the NVML hardware interface (the one permitted fake):
it answers ``nvmlDeviceGetConfComputeGpuAttestationReport`` with a recorded real
report and ``nvmlDeviceGetConfComputeGpuCertificate`` with its chain, in NVML's
own structure layout (fixed-size arrays plus a size field).
"""

from __future__ import annotations

import ctypes
import sys
import types
from datetime import UTC, datetime

import pytest

from attestation.errors import BindingError
from attestation.nvidia.verify import verify_system
from attestation.providers.errors import ProviderUnavailable
from attestation.providers.nvidia_gpu import NvmlGpuProvider, select_gpu_provider

AT = datetime(2025, 10, 1, tzinfo=UTC)


def _stand_in_pynvml(reports, chains, *, cc=1, environment=2, devtools=0):
    """A module shaped like pynvml (names and structures from nvidia-ml-py 13)."""
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = type("NVMLError", (Exception,), {})
    nvml.NVML_CC_SYSTEM_FEATURE_ENABLED = 1
    nvml.NVML_CC_SYSTEM_ENVIRONMENT_PROD = 2
    nvml.NVML_CC_SYSTEM_DEVTOOLS_MODE_OFF = 0
    nvml.nonces = []

    class State(ctypes.Structure):
        _fields_ = [("environment", ctypes.c_uint), ("ccFeature", ctypes.c_uint),
                    ("devToolsMode", ctypes.c_uint)]  # fmt: skip

    class Report(ctypes.Structure):
        _fields_ = [("attestationReportSize", ctypes.c_uint),
                    ("attestationReport", ctypes.c_uint8 * 8192)]  # fmt: skip

    class Certs(ctypes.Structure):
        _fields_ = [("attestationCertChainSize", ctypes.c_uint),
                    ("attestationCertChain", ctypes.c_uint8 * 8192)]  # fmt: skip

    def report(handle, nonce):
        nvml.nonces.append(bytes(nonce))
        out = Report()
        data = reports[handle]
        out.attestationReportSize = len(data)
        ctypes.memmove(out.attestationReport, data, len(data))
        return out

    def certs(handle):
        out = Certs()
        data = chains[handle]
        out.attestationCertChainSize = len(data)
        ctypes.memmove(out.attestationCertChain, data, len(data))
        return out

    nvml.nvmlInit = lambda: None
    nvml.nvmlSystemGetConfComputeState = lambda: State(environment, cc, devtools)
    nvml.nvmlDeviceGetCount = lambda: len(reports)
    nvml.nvmlDeviceGetHandleByIndex = lambda index: index
    nvml.nvmlDeviceGetConfComputeGpuAttestationReport = report
    nvml.nvmlDeviceGetConfComputeGpuCertificate = certs
    return nvml


@pytest.fixture
def recorded(vectors):
    folder = vectors / "nvidia" / "nvsdk_gh100_580_159"
    if not folder.is_dir():
        pytest.skip(f"vector folder {folder} missing")
    return types.SimpleNamespace(
        report=(folder / "report.bin").read_bytes(),
        certs=(folder / "cert_chain.pem").read_bytes(),
        nonce=bytes.fromhex((folder / "nonce.hex").read_text().strip()),
    )


def test_nvml_provider_returns_what_the_gpu_signed(monkeypatch, recorded):
    monkeypatch.setitem(
        sys.modules, "pynvml", _stand_in_pynvml([recorded.report], [recorded.certs])
    )
    provider = select_gpu_provider("nvml")
    assert provider.mode() == {"cc_mode": "on", "devtools": False}
    evidence = provider.gpu_evidence(recorded.nonce)
    assert sys.modules["pynvml"].nonces == [recorded.nonce]
    system = verify_system(evidence, nonce=recorded.nonce, at=AT)
    assert system.gpus[0].driver_version == "580.159.03"
    # The stand-in replays its recording for any other nonce: a party rejects that.
    with pytest.raises(BindingError):
        verify_system(provider.gpu_evidence(bytes(32)), nonce=bytes(32), at=AT)


@pytest.mark.parametrize(
    ("state", "mode"),
    [
        ({"cc": 0}, "off"),
        ({"environment": 1}, "sim"),
        ({"devtools": 1}, "on"),
    ],
)
def test_nvml_not_in_production_cc_mode_refused(monkeypatch, recorded, state, mode):
    stand_in = _stand_in_pynvml([recorded.report], [recorded.certs], **state)
    monkeypatch.setitem(sys.modules, "pynvml", stand_in)
    assert NvmlGpuProvider().mode()["cc_mode"] == mode
    with pytest.raises(ProviderUnavailable) as err:
        select_gpu_provider("nvml")
    assert err.value.check == "gpu.cc_mode"
