"""Evidence on an Intel TDX guest: ``/dev/tdx_guest`` plus configfs-tsm for quotes.

``/dev/tdx_guest`` offers one ioctl, TDX_CMD_GET_REPORT0
(``include/uapi/linux/tdx-guest.h``): a 1024-byte TDREPORT, MACed with a key
only this CPU knows. A remote party cannot verify a TDREPORT; it needs a quote,
which the Quoting Enclave signs. Since Linux 6.7 the kernel gets quotes through
configfs-tsm (the old TDX_CMD_GET_QUOTE ioctl was removed before it shipped in
a release), so this provider checks the device and then asks configfs-tsm.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from attestation.providers._blobs import (
    TDREPORT_REPORT_DATA_OFFSET,
    TDREPORT_SIZE,
    check_report_data,
)
from attestation.providers._ioctl import IoctlFn, iowr, linux_ioctl
from attestation.providers.base import REPORT_DATA_SIZE, Evidence
from attestation.providers.configfs_tsm import ConfigfsIo, ConfigfsTsmProvider
from attestation.providers.errors import ProviderError, ProviderUnavailable
from attestation.tee import Tee

TDX_GUEST_DEVICE = Path("dev/tdx_guest")


class TdxReportReq(ctypes.Structure):
    """struct tdx_report_req."""

    _fields_ = [
        ("reportdata", ctypes.c_uint8 * REPORT_DATA_SIZE),
        ("tdreport", ctypes.c_uint8 * TDREPORT_SIZE),
    ]


TDX_CMD_GET_REPORT0 = iowr("T", 1, ctypes.sizeof(TdxReportReq))


class TdxGuestProvider:
    """``EvidenceProvider`` for TDX: quotes through configfs-tsm, TDREPORT via the device.

    ``root`` prefixes device and configfs paths; ``ioctl`` and ``configfs_io``
    let tests stand in for the kernel.
    """

    name = "tdx-guest"
    tee = Tee.TDX
    simulated = False

    def __init__(
        self,
        root: Path = Path("/"),
        *,
        ioctl: IoctlFn = linux_ioctl,
        configfs_io: ConfigfsIo | None = None,
    ) -> None:
        self.root = Path(root)
        self.device = self.root / TDX_GUEST_DEVICE
        self._ioctl = ioctl
        self._configfs_io = configfs_io

    def get_tdreport(self, report_data: bytes) -> bytes:
        """TDX_CMD_GET_REPORT0: the local (not remotely verifiable) TDREPORT."""
        report_data = check_report_data(report_data)
        try:
            fd = os.open(self.device, os.O_RDWR)
        except FileNotFoundError as err:
            raise ProviderUnavailable(
                "tdx_guest.device",
                f"{self.device} does not exist (not a TDX guest, or tdx_guest not loaded)",
            ) from err
        except PermissionError as err:
            raise ProviderUnavailable(
                "tdx_guest.permission",
                f"cannot open {self.device}: permission denied (run as root)",
            ) from err
        try:
            req = TdxReportReq()
            ctypes.memmove(req.reportdata, report_data, REPORT_DATA_SIZE)
            try:
                self._ioctl(fd, TDX_CMD_GET_REPORT0, req)
            except OSError as err:
                reason = (
                    "TDCALL[TDG.MR.REPORT] failed"
                    if err.errno == errno.EIO
                    else os.strerror(err.errno or 0)
                )
                raise ProviderError("tdx_guest.ioctl", f"TDX_CMD_GET_REPORT0: {reason}") from err
        finally:
            os.close(fd)
        tdreport = bytes(req.tdreport)
        start = TDREPORT_REPORT_DATA_OFFSET
        got = tdreport[start : start + REPORT_DATA_SIZE]
        if got != report_data:
            raise ProviderError(
                "tdx_guest.report_data",
                "the TDREPORT does not carry the REPORT_DATA we asked for",
                expected=report_data,
                actual=got,
            )
        return tdreport

    def quote_source(self) -> ConfigfsTsmProvider:
        """The configfs-tsm instance that makes quotes, or ProviderUnavailable saying why not."""
        try:
            tsm = ConfigfsTsmProvider(self.root, io=self._configfs_io)
        except ProviderUnavailable as err:
            raise ProviderUnavailable(
                "tdx_guest.quote",
                "quotes need configfs-tsm (Linux >= 6.7 with tdx_guest and a quote service "
                f"on the host); configfs-tsm is not usable: {err.message()}",
            ) from err
        if tsm.tsm_provider != "tdx_guest":
            raise ProviderUnavailable(
                "tdx_guest.quote",
                "configfs-tsm is served by another TSM driver",
                expected="tdx_guest",
                actual=tsm.tsm_provider,
            )
        return tsm

    def get_evidence(self, report_data: bytes) -> Evidence:
        """A fresh TD quote over ``report_data`` (through configfs-tsm)."""
        report_data = check_report_data(report_data)
        if not self.device.exists():
            raise ProviderUnavailable(
                "tdx_guest.device",
                f"{self.device} does not exist (not a TDX guest, or tdx_guest not loaded)",
            )
        evidence = self.quote_source().get_evidence(report_data)
        return Evidence(tee=self.tee, raw=evidence.raw, certs=evidence.certs, provider=self.name)
