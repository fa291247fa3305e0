"""Pick the evidence provider this machine supports, and say why.

Order (first that works wins):

1. configfs-tsm (Linux >= 6.7): one interface for SEV-SNP and TDX, and the
   only way to get TDX quotes; preferred on SNP too because the kernel
   serialises requests and hands over the host's certificate table;
2. ``/dev/sev-guest`` (SNP_GET_EXT_REPORT) for SNP guests on older kernels;
3. ``/dev/tdx_guest`` is checked and reported, but it only yields a TDREPORT,
   which no remote party can verify, so it is never selected on its own;
4. the Azure vTPM (``azure-vtpm``): on an Azure SEV-SNP or TDX confidential
   VM the paravisor hides the interfaces above; ``/dev/tpmrm0`` holds its HCL
   report (NV index 0x01400001) and quotes with its AK
   (``attestation.providers.azure_vtpm``);
5. the CoCo attestation agent (``coco-aa``), inside a Confidential Containers
   pod, where the container has none of the above: its REST API
   (``$TCME_COCO_AA_URL``, default http://127.0.0.1:8006) returns the same SNP
   report or TDX quote for our REPORT_DATA (``attestation.providers.coco_aa``).

Simulated evidence is never a fallback: it is used only when asked for
explicitly (``--simulated``), and the message says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from attestation.providers.base import EvidenceProvider
from attestation.providers.coco_aa import CocoAgentProvider, agent_url
from attestation.providers.configfs_tsm import TSM_REPORT_PATH, ConfigfsTsmProvider
from attestation.providers.errors import ProviderError, ProviderUnavailable
from attestation.providers.sev_guest import SEV_GUEST_DEVICE, SevGuestProvider
from attestation.providers.tdx_guest import TDX_GUEST_DEVICE
from attestation.tee import Tee

DEFAULT_SIM_DIR = Path("~/.local/state/tcme/simulated")


@dataclass(frozen=True)
class ProviderStatus:
    """Whether one provider can work on this machine, and the reason in words."""

    name: str
    path: Path | str  # a device or configfs path, or the agent's URL (coco-aa)
    available: bool
    reason: str
    tee: str | None = None


def diagnose(root: Path = Path("/")) -> list[ProviderStatus]:
    """The status of every hardware provider under ``root``, in preference order.

    Probing configfs-tsm creates and removes one report instance (no report
    is generated); the devices are only opened, never asked for a report.
    """
    root = Path(root)
    statuses = [_configfs_status(root), _sev_guest_status(root), _tdx_guest_status(root)]
    statuses.append(_azure_vtpm_status(root))
    statuses.append(_coco_status())
    return statuses


def _coco_status() -> ProviderStatus:
    url = agent_url()
    try:
        provider = CocoAgentProvider(url)
        tee = provider.probe()
    except ProviderError as err:
        return ProviderStatus("coco-aa", url, False, err.message())
    version = provider.info.get("version", "unknown version")
    return ProviderStatus(
        "coco-aa",
        url,
        True,
        f"the CoCo attestation agent answers ({version}, TEE {tee or 'not reported'})",
        tee=tee or None,
    )


def _azure_vtpm_status(root: Path) -> ProviderStatus:
    from attestation.providers.azure_vtpm import TPM_DEVICE, AzureVtpmProvider

    path = root / TPM_DEVICE
    try:
        provider = AzureVtpmProvider.from_device(root)
    except ProviderError as err:
        return ProviderStatus("azure-vtpm", path, False, err.message())
    return ProviderStatus(
        "azure-vtpm",
        path,
        True,
        f"{path} holds an Azure HCL report ({provider.tee}) and quotes with its AK",
        tee=provider.tee,
    )


def _configfs_status(root: Path) -> ProviderStatus:
    path = root / TSM_REPORT_PATH
    try:
        provider = ConfigfsTsmProvider(root)
    except ProviderError as err:  # unavailable, or present but misbehaving: not usable
        return ProviderStatus("configfs-tsm", path, False, err.message())
    return ProviderStatus(
        "configfs-tsm",
        path,
        True,
        f"report instances work; the kernel's TSM provider is {provider.tsm_provider}",
        tee=provider.tee,
    )


def _device_status(path: Path) -> tuple[bool, str]:
    if not path.exists():
        return False, f"{path} does not exist"
    try:
        fd = os.open(path, os.O_RDWR)
    except PermissionError:
        return False, f"{path} exists but cannot be opened: permission denied (run as root)"
    except OSError as err:
        return False, f"{path} exists but cannot be opened: {os.strerror(err.errno or 0)}"
    os.close(fd)
    return True, f"{path} opens read-write"


def _sev_guest_status(root: Path) -> ProviderStatus:
    path = root / SEV_GUEST_DEVICE
    ok, reason = _device_status(path)
    if not ok:
        reason += " (not an SEV-SNP guest, or the sev-guest module is not loaded)"
    return ProviderStatus("sev-guest", path, ok, reason, tee=Tee.SEV_SNP if ok else None)


def _tdx_guest_status(root: Path) -> ProviderStatus:
    path = root / TDX_GUEST_DEVICE
    ok, reason = _device_status(path)
    if not ok:
        return ProviderStatus(
            "tdx-guest", path, False, reason + " (not a TDX guest, or tdx_guest not loaded)"
        )
    # The device alone gives a TDREPORT only; quotes come through configfs-tsm.
    return ProviderStatus(
        "tdx-guest",
        path,
        False,
        reason + ", but it only gives a TDREPORT: quotes need configfs-tsm "
        "(Linux >= 6.7 and a quote service on the host)",
        tee=Tee.TDX,
    )


def select_provider(
    *,
    simulated: bool = False,
    sim_dir: Path | None = None,
    root: Path = Path("/"),
) -> tuple[EvidenceProvider, str]:
    """The provider to use and a human message saying why it and not the others.

    ``simulated`` selects the simulated SEV-SNP provider (keys under
    ``sim_dir``, default ``~/.local/state/tcme/simulated``) and nothing else.
    Otherwise the first available hardware provider in the module's order is
    returned; when none is, ProviderUnavailable lists the reason for each.
    """
    if simulated:
        from attestation.providers.simulated import SimulatedSnpProvider

        directory = (sim_dir or DEFAULT_SIM_DIR).expanduser()
        provider = SimulatedSnpProvider(directory)
        return provider, (
            f"evidence provider: simulated SEV-SNP (--simulated), keys in {directory}; "
            "reports are signed by a local SIMULATED chain that verifiers accept only "
            "when their policy explicitly allows simulated evidence"
        )
    statuses = diagnose(root)
    for status in statuses:
        if status.available:
            chosen = _build(status, root)
            others = "; ".join(
                f"{s.name}: {'also available, lower preference' if s.available else s.reason}"
                for s in statuses
                if s is not status
            )
            return chosen, (
                f"evidence provider: {status.name} ({status.tee}) because {status.reason}. "
                f"Not used: {others}"
            )
    reasons = "; ".join(f"{s.name}: {s.reason}" for s in statuses)
    raise ProviderUnavailable(
        "provider.none",
        f"no attestation hardware interface is usable on this machine ({reasons}). "
        "Run inside an SEV-SNP or TDX guest, or pass --simulated for a simulated enclave",
    )


def _build(status: ProviderStatus, root: Path) -> EvidenceProvider:
    if status.name == "configfs-tsm":
        return ConfigfsTsmProvider(root)
    if status.name == "sev-guest":
        return SevGuestProvider(root)
    if status.name == "azure-vtpm":
        from attestation.providers.azure_vtpm import AzureVtpmProvider

        return AzureVtpmProvider.from_device(root)
    if status.name == "coco-aa":
        provider = CocoAgentProvider(str(status.path))
        provider.tee = status.tee or ""
        return provider
    raise AssertionError(f"provider {status.name} is never selected")  # pragma: no cover
