"""Evidence from Linux configfs-tsm (``/sys/kernel/config/tsm/report``), SNP and TDX.

The kernel ABI (Documentation/ABI/testing/configfs-tsm, Linux >= 6.7):

1. ``mkdir report/<name>`` creates a report instance (``ENXIO`` when no TSM
   driver, ``sev_guest`` or ``tdx_guest``, has registered);
2. write up to 64 bytes to ``inblob`` and optionally a level to ``privlevel``;
   each write bumps ``generation``;
3. reading ``outblob`` (the SNP report or TD quote) makes the kernel generate
   the report for the current inputs; ``auxblob`` holds the SNP certificate
   table when the host supplied one;
4. ``generation`` must then equal the value read at the start plus our own
   writes: anything more means another writer changed the inputs between our
   write and our read, so the blob may not be ours and we start again;
5. ``rmdir report/<name>``.

Each request uses a fresh, uniquely named instance, so concurrent callers in
this process or others do not share inputs.
"""

from __future__ import annotations

import errno
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from attestation.providers._blobs import (
    check_report_data,
    check_snp_report,
    check_tdx_quote,
    snp_signed_by_vlek,
)
from attestation.providers.base import Evidence
from attestation.providers.cert_table import parse_cert_table
from attestation.providers.errors import ProviderError, ProviderUnavailable
from attestation.tee import Tee

log = logging.getLogger(__name__)

TSM_REPORT_PATH = Path("sys/kernel/config/tsm/report")
# The kernel's ``provider`` attribute value -> our TEE name.
PROVIDER_TEE = {"sev_guest": Tee.SEV_SNP, "tdx_guest": Tee.TDX}
TSM_PRIVLEVEL_MAX = 3  # include/linux/tsm.h
DEFAULT_ATTEMPTS = 3


class ConfigfsIo:
    """File operations on configfs, kept in one place so tests can stand in for the kernel.

    configfs binary attributes (``inblob``) are committed when the file is
    closed, which is where the kernel reports ``EBUSY``, so a write is
    open/write/close and a failing close is a failing write.
    """

    def mkdir(self, path: Path) -> None:
        """Create a report instance."""
        os.mkdir(path)

    def rmdir(self, path: Path) -> None:
        """Remove a report instance (configfs removes its attributes with it)."""
        os.rmdir(path)

    def read(self, path: Path) -> bytes:
        """The whole attribute."""
        fd = os.open(path, os.O_RDONLY)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def write(self, path: Path, data: bytes) -> None:
        """Write the whole attribute in one write(2) and commit it on close."""
        fd = os.open(path, os.O_WRONLY)
        try:
            written = os.write(fd, data)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        if written != len(data):
            raise OSError(errno.EIO, f"short write to {path.name}: {written} of {len(data)} bytes")


@dataclass(frozen=True)
class TsmReport:
    """One generated report: the provider name and both blobs, as the kernel gave them."""

    provider: str
    outblob: bytes
    auxblob: bytes


class _Raced(Exception):
    def __init__(self, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"generation {actual}, expected {expected}")


class ConfigfsTsmProvider:
    """``EvidenceProvider`` over configfs-tsm; ``tee`` follows the kernel's provider.

    ``root`` prefixes every path (``/`` on a real guest, a temporary tree in
    tests); ``privlevel`` is written when given (SEV-SNP VMPL); ``io`` replaces
    the file operations (tests use it to stand in for the kernel).
    """

    name = "configfs-tsm"
    simulated = False

    def __init__(
        self,
        root: Path = Path("/"),
        *,
        privlevel: int | None = None,
        attempts: int = DEFAULT_ATTEMPTS,
        io: ConfigfsIo | None = None,
    ) -> None:
        if privlevel is not None and not 0 <= privlevel <= TSM_PRIVLEVEL_MAX:
            raise ProviderError(
                "configfs_tsm.privlevel",
                "privilege level out of range",
                expected=f"0..{TSM_PRIVLEVEL_MAX}",
                actual=privlevel,
            )
        self.report_dir = Path(root) / TSM_REPORT_PATH
        self.privlevel = privlevel
        self.attempts = max(1, attempts)
        self._io = io or ConfigfsIo()
        self.tsm_provider = self.probe()
        self.tee = PROVIDER_TEE[self.tsm_provider]

    # -- instance lifecycle -------------------------------------------------

    def _create_entry(self) -> Path:
        if not self.report_dir.is_dir():
            raise ProviderUnavailable(
                "configfs_tsm.mount",
                f"{self.report_dir} does not exist (configfs not mounted at "
                "/sys/kernel/config, or kernel older than 6.7 without CONFIG_TSM_REPORTS)",
            )
        entry = self.report_dir / f"tcme-{os.getpid()}-{uuid.uuid4().hex[:16]}"
        try:
            self._io.mkdir(entry)
        except OSError as err:
            if err.errno == errno.ENXIO:
                raise ProviderUnavailable(
                    "configfs_tsm.provider",
                    "configfs-tsm is mounted but no TSM driver is registered "
                    "(load sev_guest or tdx_guest)",
                ) from err
            if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise ProviderUnavailable(
                    "configfs_tsm.permission",
                    f"cannot create a report instance in {self.report_dir}: "
                    f"{os.strerror(err.errno)} (run as root)",
                ) from err
            raise ProviderError(
                "configfs_tsm.mkdir", f"mkdir {entry}: {os.strerror(err.errno or 0)}"
            ) from err
        return entry

    def _remove_entry(self, entry: Path) -> None:
        try:
            self._io.rmdir(entry)
        except OSError as err:  # a leftover instance is harmless; never mask the real result
            log.warning("configfs-tsm: could not remove %s: %s", entry, err.strerror)

    def _read_attr(self, entry: Path, attr: str) -> bytes:
        try:
            return self._io.read(entry / attr)
        except OSError as err:
            raise _attr_error(attr, "read", err) from err

    def _write_attr(self, entry: Path, attr: str, data: bytes) -> None:
        try:
            self._io.write(entry / attr, data)
        except OSError as err:
            if err.errno == errno.EBUSY:
                raise _Raced(-1, -1) from err  # the kernel refuses writes until a read
            raise _attr_error(attr, "write", err) from err

    def _generation(self, entry: Path) -> int:
        text = self._read_attr(entry, "generation").strip()
        try:
            return int(text)
        except ValueError:
            raise ProviderError(
                "configfs_tsm.generation",
                "generation attribute is not a decimal number (short read?)",
                expected="decimal integer",
                actual=text[:32],
            ) from None

    # -- public -------------------------------------------------------------

    def probe(self) -> str:
        """The kernel's provider name (``sev_guest``/``tdx_guest``), via a throwaway instance.

        Raises ProviderUnavailable when configfs-tsm cannot work here or the
        provider is one tcme does not read.
        """
        entry = self._create_entry()
        try:
            provider = self._read_attr(entry, "provider").decode("ascii", "replace").strip()
        finally:
            self._remove_entry(entry)
        if provider not in PROVIDER_TEE:
            raise ProviderUnavailable(
                "configfs_tsm.provider",
                "configfs-tsm provider is not one tcme can read",
                expected=" or ".join(PROVIDER_TEE),
                actual=provider or "(empty)",
            )
        return provider

    def generate(self, inblob: bytes) -> TsmReport:
        """One report for ``inblob``, retried while other writers race the instance."""
        last: _Raced | None = None
        for _ in range(self.attempts):
            try:
                return self._generate_once(inblob)
            except _Raced as raced:
                last = raced
        assert last is not None
        raise ProviderError(
            "configfs_tsm.generation",
            f"the report instance was written by someone else in each of {self.attempts} "
            "attempts (busy generation counter)",
            expected=last.expected if last.expected >= 0 else "a write the kernel accepts",
            actual=last.actual if last.actual >= 0 else "EBUSY",
        )

    def _generate_once(self, inblob: bytes) -> TsmReport:
        entry = self._create_entry()
        try:
            provider = self._read_attr(entry, "provider").decode("ascii", "replace").strip()
            expected = self._generation(entry)
            if self.privlevel is not None:
                self._write_attr(entry, "privlevel", f"{self.privlevel}\n".encode())
                expected += 1
            self._write_attr(entry, "inblob", inblob)
            expected += 1
            outblob = self._read_attr(entry, "outblob")
            auxblob = self._read_optional(entry, "auxblob")
            actual = self._generation(entry)
            if actual != expected:
                raise _Raced(expected, actual)
            return TsmReport(provider=provider, outblob=outblob, auxblob=auxblob)
        finally:
            self._remove_entry(entry)

    def _read_optional(self, entry: Path, attr: str) -> bytes:
        # auxblob is visible only for providers that emit one (sev_guest).
        try:
            return self._io.read(entry / attr)
        except FileNotFoundError:
            return b""
        except OSError as err:
            raise _attr_error(attr, "read", err) from err

    def get_evidence(self, report_data: bytes) -> Evidence:
        """A fresh SNP report (with the host's certificates, if any) or TD quote."""
        report_data = check_report_data(report_data)
        report = self.generate(report_data)
        if report.provider != self.tsm_provider:
            raise ProviderError(
                "configfs_tsm.provider",
                "the TSM provider changed since this provider was set up",
                expected=self.tsm_provider,
                actual=report.provider,
            )
        if self.tsm_provider == "sev_guest":
            raw = check_snp_report(report.outblob, report_data, source="configfs_tsm")
            table = parse_cert_table(report.auxblob)
            certs = table.chain_pem(vlek=snp_signed_by_vlek(raw))
            return Evidence(tee=Tee.SEV_SNP, raw=raw, certs=certs, provider=self.name)
        quote = check_tdx_quote(report.outblob, report_data, source="configfs_tsm")
        return Evidence(tee=Tee.TDX, raw=quote, provider=self.name)


def _attr_error(attr: str, op: str, err: OSError) -> ProviderError:
    code = err.errno or 0
    reason = {
        errno.EINVAL: "the kernel has no inblob for this instance",
        errno.ENOTTY: "the TSM driver unregistered while the instance was open",
        errno.EIO: "the TSM driver failed (firmware or host error)",
        errno.EAGAIN: "the host throttled the request; try again later",
        errno.ETIMEDOUT: "the host did not answer in time (throttled)",
        errno.ENOENT: "attribute missing (is this really configfs-tsm?)",
    }.get(code, os.strerror(code) if code else str(err))
    return ProviderError(f"configfs_tsm.{attr}", f"{op} {attr}: {reason}")
