"""Stand-ins for the Linux kernel, so providers can be tested without a confidential VM.

Nothing here is the code under test. Each class imitates one kernel interface
as Linux implements it (drivers/virt/coco/tsm.c, drivers/virt/coco/sev-guest,
drivers/virt/coco/tdx-guest), including its error returns, and produces
evidence with the project's simulated SEV-SNP signer (SNP) or by splicing
REPORT_DATA into a real TD quote from the vectors (TDX; its signature then no
longer verifies, which providers never check).
"""

from __future__ import annotations

import ctypes
import errno
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from attestation.providers._blobs import (
    tdx_quote_report_data,
)
from attestation.providers.cert_table import (
    ARK_GUID,
    ASK_GUID,
    VCEK_GUID,
    build_cert_table,
)
from attestation.providers.configfs_tsm import TSM_REPORT_PATH, ConfigfsIo
from attestation.providers.sev_guest import (
    MSG_REPORT_RSP_HEADER,
    PAGE_SIZE,
    SEV_FW_BLOB_MAX_SIZE,
    SNP_GET_EXT_REPORT,
    SNP_GET_REPORT,
    SNP_GUEST_VMM_ERR_BUSY,
    SNP_GUEST_VMM_ERR_INVALID_LEN,
    SnpExtReportReq,
    SnpGuestRequestIoctl,
    SnpReportReq,
    SnpReportResp,
)
from attestation.snp import _x509
from attestation.snp.simulate import SimulatedSnp

Driver = Callable[[bytes, int], tuple[bytes, bytes]]


@dataclass
class _Instance:
    inblob: bytes | None = None
    privlevel: int = 0
    write_generation: int = 0
    read_generation: int = 0
    outblob: bytes | None = None
    auxblob: bytes = b""


@dataclass
class FakeTsm(ConfigfsIo):
    """configfs-tsm as drivers/virt/coco/tsm.c behaves, over a real temporary tree.

    ``driver(inblob, privlevel) -> (outblob, auxblob)`` plays the TSM driver.
    Knobs for the kernel's error cases: ``provider=None`` (no driver registered:
    mkdir fails ENXIO), ``races`` (that many times, another writer rewrites
    inblob between our write and our read), ``busy_writes`` (write returns
    EBUSY), ``report_errno`` (the driver fails report generation),
    ``truncate_to`` (the driver returns a short outblob).
    """

    root: Path
    provider: str | None
    driver: Driver
    privlevel_floor: int = 0
    races: int = 0
    busy_writes: int = 0
    report_errno: int | None = None
    truncate_to: int | None = None
    instances: dict[str, _Instance] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    reports_generated: int = 0

    def __post_init__(self) -> None:
        (self.root / TSM_REPORT_PATH).mkdir(parents=True, exist_ok=True)

    # Attribute files exist so directory listings look like configfs; their
    # contents are never read: every read and write goes through the methods.
    def mkdir(self, path: Path) -> None:
        if self.provider is None:
            raise OSError(errno.ENXIO, "No such device or address")
        path.mkdir()
        attrs = ["inblob", "outblob", "provider", "generation", "privlevel", "privlevel_floor"]
        if self.provider == "sev_guest":
            attrs.append("auxblob")
        for attr in attrs:
            (path / attr).touch()
        self.instances[path.name] = _Instance()
        self.created.append(path.name)

    def rmdir(self, path: Path) -> None:
        self.instances.pop(path.name)
        shutil.rmtree(path)

    def _instance(self, path: Path) -> _Instance:
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        return self.instances[path.parent.name]

    def write(self, path: Path, data: bytes) -> None:
        state = self._instance(path)
        if self.busy_writes:
            self.busy_writes -= 1
            raise OSError(errno.EBUSY, "Device or resource busy")
        if path.name == "inblob":
            if len(data) > 64:
                raise OSError(errno.EFBIG, "File too large")
            state.inblob = data
        elif path.name == "privlevel":
            level = int(data.strip())
            if level < self.privlevel_floor or level > 3:
                raise OSError(errno.EINVAL, "Invalid argument")
            state.privlevel = level
        else:
            raise OSError(errno.EACCES, "Permission denied")
        state.write_generation += 1

    def read(self, path: Path) -> bytes:
        state = self._instance(path)
        name = path.name
        if name == "provider":
            return f"{self.provider}\n".encode()
        if name == "generation":
            return f"{state.write_generation}\n".encode()
        if name == "privlevel_floor":
            return f"{self.privlevel_floor}\n".encode()
        if name not in ("outblob", "auxblob"):
            raise OSError(errno.EACCES, "Permission denied")
        if self.races and name == "outblob":
            # Another process writes the same instance before our read.
            self.races -= 1
            self.write(path.parent / "inblob", b"\xee" * 64)
        if state.inblob is None:
            raise OSError(errno.EINVAL, "Invalid argument")
        if state.outblob is None or state.read_generation != state.write_generation:
            if self.report_errno is not None:
                raise OSError(self.report_errno, "driver failed")
            out, aux = self.driver(state.inblob, state.privlevel)
            self.reports_generated += 1
            if self.truncate_to is not None:
                out = out[: self.truncate_to]
            state.outblob, state.auxblob = out, aux
            state.read_generation = state.write_generation
        return state.outblob if name == "outblob" else state.auxblob


def sim_cert_table(sim: SimulatedSnp) -> bytes:
    """The simulated VCEK/ASK/ARK as a host would put them in the GHCB certificate table."""
    vcek, ask, ark = _x509.split_certificates(sim.certs_pem())
    return build_cert_table({VCEK_GUID: vcek, ASK_GUID: ask, ARK_GUID: ark})


@pytest.fixture
def sim(tmp_path_factory) -> SimulatedSnp:
    return SimulatedSnp(tmp_path_factory.mktemp("sim"))


@pytest.fixture
def snp_driver(sim) -> Driver:
    """sev_guest's TSM driver: a report at VMPL=privlevel plus the host's cert table."""

    def driver(inblob: bytes, privlevel: int) -> tuple[bytes, bytes]:
        return sim.report(inblob.ljust(64, b"\0"), vmpl=privlevel), sim_cert_table(sim)

    return driver


@pytest.fixture
def tdx_driver(vector) -> Driver:
    """tdx_guest's TSM driver: a real v4 quote with REPORT_DATA replaced by inblob."""
    quote = bytearray(vector("tdx/dcapqvl_v4_uptodate/quote.bin").read_bytes())
    offset = bytes(quote).index(tdx_quote_report_data(bytes(quote)))

    def driver(inblob: bytes, privlevel: int) -> tuple[bytes, bytes]:
        out = bytearray(quote)
        out[offset : offset + 64] = inblob.ljust(64, b"\0")
        return bytes(out), b""

    return driver


@dataclass
class FakeSevGuest:
    """/dev/sev-guest's ioctl handler as drivers/virt/coco/sev-guest implements it.

    Reads the request through the addresses in ``struct snp_guest_request_ioctl``
    and writes the MSG_REPORT_RSP and certificate table back, like copy_to_user.
    Knobs: ``certs`` (the host's table; b"" = none), ``fw_error`` (firmware
    failure: EIO with exitinfo2), ``busy`` (the host throttles until the driver
    gives up: ETIMEDOUT), ``status`` (MSG_REPORT_RSP.status), ``report_size``.
    """

    sim: SimulatedSnp
    certs: bytes = b""
    fw_error: int = 0
    busy: bool = False
    status: int = 0
    report_size: int | None = None
    calls: list[tuple[int, int]] = field(default_factory=list)

    def __call__(self, fd: int, request: int, arg: SnpGuestRequestIoctl) -> int:
        if request not in (SNP_GET_REPORT, SNP_GET_EXT_REPORT):
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        if arg.msg_version != 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        certs_len = None
        if request == SNP_GET_EXT_REPORT:
            ext = SnpExtReportReq.from_address(arg.req_data)
            req = ext.data
            certs_len = int(ext.certs_len)
            self.calls.append((request, certs_len))
            bad_len = certs_len > SEV_FW_BLOB_MAX_SIZE or certs_len % PAGE_SIZE
            if certs_len and ext.certs_address and bad_len:
                raise OSError(errno.EINVAL, "Invalid argument")
            needed = -(-len(self.certs) // PAGE_SIZE) * PAGE_SIZE
            if needed > certs_len:
                # The host said INVALID_LEN; the driver reports the size and EIO.
                ext.certs_len = needed
                arg.exitinfo2 = SNP_GUEST_VMM_ERR_INVALID_LEN << 32
                raise OSError(errno.EIO, "Input/output error")
        else:
            req = SnpReportReq.from_address(arg.req_data)
            self.calls.append((request, 0))
        if self.busy:
            arg.exitinfo2 = SNP_GUEST_VMM_ERR_BUSY << 32
            raise OSError(errno.ETIMEDOUT, "Connection timed out")
        if self.fw_error:
            arg.exitinfo2 = self.fw_error
            raise OSError(errno.EIO, "Input/output error")
        report = self.sim.report(bytes(req.user_data), vmpl=int(req.vmpl))
        resp = SnpReportResp.from_address(arg.resp_data)
        size = len(report) if self.report_size is None else self.report_size
        payload = (
            self.status.to_bytes(4, "little")
            + size.to_bytes(4, "little")
            + bytes(MSG_REPORT_RSP_HEADER - 8)
            + report
        )
        ctypes.memmove(resp.data, payload, len(payload))
        if certs_len and self.certs:
            ctypes.memmove(ext.certs_address, self.certs, len(self.certs))
        arg.exitinfo2 = 0
        return 0


def make_device(root: Path, relative: str) -> Path:
    """A regular file where the device node would be, so open(2) succeeds."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


# Test modules cannot import this file (pytest's importlib mode), so the stand-ins
# are handed out through fixtures.


@pytest.fixture
def fake_tsm(tmp_path, snp_driver) -> Callable[..., FakeTsm]:
    """``fake_tsm(provider="sev_guest", driver=None, **knobs)`` under ``tmp_path``."""

    def make(provider: str | None = "sev_guest", driver: Driver | None = None, **knobs) -> FakeTsm:
        return FakeTsm(root=tmp_path, provider=provider, driver=driver or snp_driver, **knobs)

    return make


@pytest.fixture
def fake_sev_guest(tmp_path, sim) -> Callable[..., FakeSevGuest]:
    """``fake_sev_guest(**knobs)``; also creates ``tmp_path/dev/sev-guest``."""
    make_device(tmp_path, "dev/sev-guest")

    def make(**knobs) -> FakeSevGuest:
        return FakeSevGuest(sim=sim, **knobs)

    return make


@pytest.fixture
def tdx_guest_device(tmp_path) -> Path:
    """A stand-in ``tmp_path/dev/tdx_guest`` (select only checks that it opens)."""
    return make_device(tmp_path, "dev/tdx_guest")


@pytest.fixture
def host_cert_table(sim) -> bytes:
    """The simulated chain as a GHCB certificate table."""
    return sim_cert_table(sim)
