"""Evidence from ``/dev/sev-guest`` through the SNP_GET_REPORT / SNP_GET_EXT_REPORT ioctls.

The structures transcribe ``include/uapi/linux/sev-guest.h``; the response
payload is the firmware's MSG_REPORT_RSP (SEV-SNP firmware ABI spec, table
"MSG_REPORT_RSP Message Structure"): status u32, report_size u32, 24 reserved
bytes, then the report.

Errors come back three ways and all are mapped to a named check: the ioctl's
errno, ``exitinfo2`` (low 32 bits firmware status, high 32 bits VMM/host
error), and MSG_REPORT_RSP.status. An extended request whose certificate
buffer is too small fails with EIO and VMM error INVALID_LEN, and the kernel
writes the needed length back into ``certs_len``; we then retry once with a
buffer of that size.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from attestation.providers._blobs import (
    SNP_REPORT_SIZE,
    check_report_data,
    check_snp_report,
    snp_signed_by_vlek,
)
from attestation.providers._ioctl import IoctlFn, iowr, linux_ioctl
from attestation.providers.base import Evidence
from attestation.providers.cert_table import parse_cert_table
from attestation.providers.errors import ProviderError, ProviderUnavailable
from attestation.tee import Tee

SEV_GUEST_DEVICE = Path("dev/sev-guest")

PAGE_SIZE = 4096
SEV_FW_BLOB_MAX_SIZE = 0x4000  # drivers/virt/coco/sev-guest: largest certificate buffer
SNP_MSG_VERSION = 1  # MSG_REPORT_REQ message version
MSG_REPORT_RSP_HEADER = 0x20

# include/uapi/linux/sev-guest.h: exitinfo2 = vmm_error << 32 | fw_error.
SNP_GUEST_VMM_ERR_INVALID_LEN = 1
SNP_GUEST_VMM_ERR_BUSY = 2
SNP_GUEST_VMM_ERR_GENERIC = 1 << 31


class SnpReportReq(ctypes.Structure):
    """struct snp_report_req."""

    _fields_ = [
        ("user_data", ctypes.c_uint8 * 64),
        ("vmpl", ctypes.c_uint32),
        ("rsvd", ctypes.c_uint8 * 28),
    ]


class SnpReportResp(ctypes.Structure):
    """struct snp_report_resp (holds a MSG_REPORT_RSP)."""

    _fields_ = [("data", ctypes.c_uint8 * 4000)]


class SnpExtReportReq(ctypes.Structure):
    """struct snp_ext_report_req."""

    _fields_ = [
        ("data", SnpReportReq),
        ("certs_address", ctypes.c_uint64),
        ("certs_len", ctypes.c_uint32),
    ]


class SnpGuestRequestIoctl(ctypes.Structure):
    """struct snp_guest_request_ioctl (the ioctl argument)."""

    _fields_ = [
        ("msg_version", ctypes.c_uint8),
        ("req_data", ctypes.c_uint64),
        ("resp_data", ctypes.c_uint64),
        ("exitinfo2", ctypes.c_uint64),
    ]

    @property
    def fw_error(self) -> int:
        """Low 32 bits of exitinfo2: the firmware status."""
        return int(self.exitinfo2) & 0xFFFFFFFF

    @property
    def vmm_error(self) -> int:
        """High 32 bits of exitinfo2: the hypervisor's error."""
        return int(self.exitinfo2) >> 32


SNP_GET_REPORT = iowr("S", 0x0, ctypes.sizeof(SnpGuestRequestIoctl))
SNP_GET_EXT_REPORT = iowr("S", 0x2, ctypes.sizeof(SnpGuestRequestIoctl))

# include/uapi/linux/psp-sev.h, enum sev_ret_code (the ones a guest request can see).
SEV_FW_STATUS = {
    0x01: "INVALID_PLATFORM_STATE",
    0x02: "INVALID_GUEST_STATE",
    0x03: "INVALID_CONFIG",
    0x04: "INVALID_LEN",
    0x07: "POLICY_FAILURE",
    0x08: "INACTIVE",
    0x09: "INVALID_ADDRESS",
    0x0A: "BAD_SIGNATURE",
    0x0B: "BAD_MEASUREMENT",
    0x10: "INVALID_GUEST",
    0x11: "INVALID_COMMAND",
    0x15: "UNSUPPORTED",
    0x16: "INVALID_PARAM",
    0x17: "RESOURCE_LIMIT",
    0x18: "SECURE_DATA_INVALID",
}
# The kernel sets fw_error to this when it never reached the firmware.
SEV_RET_NO_FW_CALL = 0xFFFFFFFF
# MSG_REPORT_RSP.status values (firmware ABI spec).
MSG_REPORT_STATUS = {0x16: "INVALID_PARAMETERS (e.g. VMPL below the guest's own)"}


class SevGuestProvider:
    """``EvidenceProvider`` over ``/dev/sev-guest`` (SNP only).

    ``extended`` asks for the host's certificate table too (SNP_GET_EXT_REPORT);
    ``vmpl`` is the VMPL to report at; ``ioctl`` replaces the system call (tests
    stand in for the kernel with it); ``initial_certs_len`` is the first
    certificate buffer size (page-aligned; the kernel says when it must grow).
    """

    name = "sev-guest"
    tee = Tee.SEV_SNP
    simulated = False

    def __init__(
        self,
        root: Path = Path("/"),
        *,
        extended: bool = True,
        vmpl: int = 0,
        ioctl: IoctlFn = linux_ioctl,
        initial_certs_len: int = 2 * PAGE_SIZE,
    ) -> None:
        if not 0 <= vmpl <= 3:
            raise ProviderError("sev_guest.vmpl", "VMPL out of range", expected="0..3", actual=vmpl)
        if initial_certs_len % PAGE_SIZE or not 0 < initial_certs_len <= SEV_FW_BLOB_MAX_SIZE:
            raise ProviderError(
                "sev_guest.certs_len",
                "certificate buffer must be whole pages, at most the kernel's maximum",
                expected=f"multiple of {PAGE_SIZE} up to {SEV_FW_BLOB_MAX_SIZE}",
                actual=initial_certs_len,
            )
        self.device = Path(root) / SEV_GUEST_DEVICE
        self.extended = extended
        self.vmpl = vmpl
        self._ioctl = ioctl
        self._initial_certs_len = initial_certs_len

    def _open(self) -> int:
        try:
            return os.open(self.device, os.O_RDWR)
        except FileNotFoundError as err:
            raise ProviderUnavailable(
                "sev_guest.device",
                f"{self.device} does not exist (not an SEV-SNP guest, or the sev-guest "
                "module is not loaded)",
            ) from err
        except PermissionError as err:
            raise ProviderUnavailable(
                "sev_guest.permission",
                f"cannot open {self.device}: permission denied (run as root)",
            ) from err
        except OSError as err:
            raise ProviderUnavailable(
                "sev_guest.device", f"cannot open {self.device}: {os.strerror(err.errno or 0)}"
            ) from err

    def get_report(self, report_data: bytes) -> bytes:
        """SNP_GET_REPORT: the 1184-byte report over ``report_data``."""
        report_data = check_report_data(report_data)
        fd = self._open()
        try:
            req = _report_req(report_data, self.vmpl)
            resp = SnpReportResp()
            self._call(fd, SNP_GET_REPORT, req, resp)
            return _unpack_report(resp, report_data)
        finally:
            os.close(fd)

    def get_ext_report(self, report_data: bytes) -> tuple[bytes, bytes]:
        """SNP_GET_EXT_REPORT: (report, raw certificate table; b"" when the host has none)."""
        report_data = check_report_data(report_data)
        fd = self._open()
        try:
            certs_len = self._initial_certs_len
            for attempt in range(2):
                certs = ctypes.create_string_buffer(certs_len)
                ext = SnpExtReportReq(
                    data=_report_req(report_data, self.vmpl),
                    certs_address=ctypes.addressof(certs),
                    certs_len=certs_len,
                )
                resp = SnpReportResp()
                try:
                    self._call(fd, SNP_GET_EXT_REPORT, ext, resp)
                except _CertsTooSmall:
                    needed = int(ext.certs_len)
                    if attempt or needed <= certs_len or needed > SEV_FW_BLOB_MAX_SIZE:
                        raise ProviderError(
                            "sev_guest.certs_len",
                            "the host's certificate table does not fit the kernel's buffer",
                            expected=f"<= {SEV_FW_BLOB_MAX_SIZE} and more than {certs_len}",
                            actual=needed,
                        ) from None
                    certs_len = needed
                    continue
                report = _unpack_report(resp, report_data)
                returned = min(int(ext.certs_len), certs_len)
                return report, certs.raw[:returned]
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            os.close(fd)

    def _call(self, fd: int, request: int, req: ctypes.Structure, resp: SnpReportResp) -> None:
        arg = SnpGuestRequestIoctl(
            msg_version=SNP_MSG_VERSION,
            req_data=ctypes.addressof(req),
            resp_data=ctypes.addressof(resp),
        )
        try:
            self._ioctl(fd, request, arg)
        except OSError as err:
            code = err.errno or 0
            if (
                code == errno.EIO
                and request == SNP_GET_EXT_REPORT
                and arg.vmm_error == SNP_GUEST_VMM_ERR_INVALID_LEN
            ):
                raise _CertsTooSmall from err
            raise _ioctl_error(code, arg) from err

    def get_evidence(self, report_data: bytes) -> Evidence:
        """A fresh report, with the host's VEK/ASK/ARK when ``extended`` and the host has them."""
        if not self.extended:
            return Evidence(tee=self.tee, raw=self.get_report(report_data), provider=self.name)
        raw, table = self.get_ext_report(report_data)
        certs = parse_cert_table(table).chain_pem(vlek=snp_signed_by_vlek(raw))
        return Evidence(tee=self.tee, raw=raw, certs=certs, provider=self.name)


class _CertsTooSmall(Exception):
    pass


def _report_req(report_data: bytes, vmpl: int) -> SnpReportReq:
    req = SnpReportReq(vmpl=vmpl)
    ctypes.memmove(req.user_data, report_data, len(report_data))
    return req


def _unpack_report(resp: SnpReportResp, report_data: bytes) -> bytes:
    data = bytes(resp.data)
    status = int.from_bytes(data[0:4], "little")
    size = int.from_bytes(data[4:8], "little")
    if status:
        raise ProviderError(
            "sev_guest.status",
            f"firmware rejected MSG_REPORT_REQ: {MSG_REPORT_STATUS.get(status, 'unknown status')}",
            expected=0,
            actual=hex(status),
        )
    if size < SNP_REPORT_SIZE or MSG_REPORT_RSP_HEADER + size > len(data):
        raise ProviderError(
            "sev_guest.short_read",
            "MSG_REPORT_RSP.report_size is not a whole report",
            expected=f"{SNP_REPORT_SIZE}..{len(data) - MSG_REPORT_RSP_HEADER}",
            actual=size,
        )
    report = data[MSG_REPORT_RSP_HEADER : MSG_REPORT_RSP_HEADER + size]
    return check_snp_report(report, report_data, source="sev_guest")


def _ioctl_error(code: int, arg: SnpGuestRequestIoctl) -> ProviderError:
    fw, vmm = arg.fw_error, arg.vmm_error
    parts = [os.strerror(code) if code else "ioctl failed"]
    if vmm == SNP_GUEST_VMM_ERR_BUSY or code == errno.ETIMEDOUT:
        parts.append("the host kept throttling guest requests")
    elif vmm == SNP_GUEST_VMM_ERR_GENERIC:
        parts.append("the host failed the request")
    elif vmm:
        parts.append(f"host error {vmm:#x}")
    if fw and fw != SEV_RET_NO_FW_CALL and fw != 0xFF:
        parts.append(f"firmware status {fw:#x} {SEV_FW_STATUS.get(fw, 'UNKNOWN')}")
    if code == errno.ENOTTY:
        parts.append("this kernel's sev-guest driver does not know the request")
    return ProviderError(
        "sev_guest.ioctl",
        "; ".join(parts),
        expected="exitinfo2 0",
        actual=f"{int(arg.exitinfo2):#x}",
    )
