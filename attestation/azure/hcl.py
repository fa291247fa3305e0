"""What do the bytes say? A pure, bounds-checked parser for Azure HCL reports.

The paravisor (HCL/OpenHCL) writes an "HCL report" (an IGVM attestation report)
into vTPM NV index ``0x01400001``. One declared layout, every integer u32
little-endian (Microsoft ``az-cvm-vtpm`` ``hcl`` module; checked on every real
vector, see ``vectors/README.md`` section 4.0):

======  ==========================================================================
offset  field
======  ==========================================================================
0x000   signature ``"HCLA"``
0x004   header version: 1 (older Milan reports) or 2
0x008   report_size = 0x4D4 + variable_data_size
0x00C   request_type: 2 (the report the paravisor keeps in the vTPM)
0x010   status: 0
0x014   3 reserved u32, zero
0x020   hardware report area, 1184 bytes: the SEV-SNP ATTESTATION_REPORT, or the
        1024-byte TDREPORT followed by 160 zero bytes
0x4C0   IGVM request data: data_size (= 20 + variable_data_size), version (1),
        report_type (2 = SEV-SNP, 4 = TDX), report_data_hash_type (1 = SHA-256,
        2 = SHA-384, 3 = SHA-512), variable_data_size
0x4D4   variable ("runtime") data: UTF-8 JSON, exactly variable_data_size bytes
...     zero up to the end of the buffer (the NV index is larger than the report)
======  ==========================================================================

The hardware report's REPORT_DATA holds ``hash(variable data)`` followed by
zeros: that is what ties the runtime data (and the vTPM AK in it) to the
hardware. Nothing here verifies anything.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from attestation.errors import ParseError

HCL_MAGIC = b"HCLA"
HEADER_VERSIONS = (1, 2)
REQUEST_TYPE_AK_CERT = 2  # every report the paravisor stores in the vTPM
HARDWARE_REPORT_OFFSET = 0x020
HARDWARE_REPORT_AREA = 0x4A0  # 1184: the size of an SEV-SNP report
TD_REPORT_SIZE = 0x400  # 1024: TDREPORT_STRUCT (Intel TDX Module ABI, "TDREPORT_STRUCT")
IGVM_REQUEST_OFFSET = 0x4C0
IGVM_REQUEST_HEADER_SIZE = 20  # data_size, version, report_type, hash_type, var size
IGVM_REQUEST_VERSION = 1
VARIABLE_DATA_OFFSET = 0x4D4
REPORT_DATA_SIZE = 64  # the hardware REPORT_DATA / REPORTDATA field
MAX_HCL_REPORT_SIZE = 64 * 1024  # the NV index holds 2600 bytes today; refuse absurd input

REPORT_TYPE_SNP = 2
REPORT_TYPE_TDX = 4
REPORT_TYPES = {REPORT_TYPE_SNP: "sev-snp", REPORT_TYPE_TDX: "tdx"}

# IGVM_HASH_TYPE: how the paravisor hashed the variable data into REPORT_DATA.
HASH_TYPES = {1: "sha256", 2: "sha384", 3: "sha512"}

# Offsets of REPORT_DATA inside each hardware report (SNP: AMD #56860 Table 23;
# TDX: REPORTMACSTRUCT.REPORTDATA at TDREPORT offset 128).
SNP_REPORT_DATA_OFFSET = 0x50
TD_REPORT_DATA_OFFSET = 0x80

_HEADER = struct.Struct("<4sIIII12s")
_IGVM_REQUEST = struct.Struct("<IIIII")
assert _HEADER.size == HARDWARE_REPORT_OFFSET
assert HARDWARE_REPORT_OFFSET + HARDWARE_REPORT_AREA == IGVM_REQUEST_OFFSET
assert IGVM_REQUEST_OFFSET + _IGVM_REQUEST.size == VARIABLE_DATA_OFFSET


@dataclass(frozen=True)
class HclReport:
    """A well-formed HCL report (not yet verified).

    ``hardware_report``: the 1184-byte SEV-SNP report, or the 1024-byte TDREPORT
    (its 160 padding bytes checked zero and dropped). ``variable_data``: the exact
    runtime-data bytes the paravisor hashed.
    """

    header_version: int
    request_type: int
    report_type: int
    hash_type: int
    hardware_report: bytes
    variable_data: bytes
    raw: bytes

    @property
    def tee(self) -> str:
        """ "sev-snp" or "tdx": which hardware report the paravisor embedded."""
        return REPORT_TYPES[self.report_type]

    @property
    def hash_name(self) -> str:
        """The hashlib name of ``report_data_hash_type``."""
        return HASH_TYPES[self.hash_type]

    @property
    def hardware_report_data(self) -> bytes:
        """The 64-byte REPORT_DATA of the embedded hardware report (unverified)."""
        offset = (
            SNP_REPORT_DATA_OFFSET
            if self.report_type == REPORT_TYPE_SNP
            else (TD_REPORT_DATA_OFFSET)
        )
        return self.hardware_report[offset : offset + REPORT_DATA_SIZE]

    def runtime_data_digest(self) -> bytes:
        """``hash_type``'s digest of the variable data."""
        return hashlib.new(self.hash_name, self.variable_data).digest()

    def expected_report_data(self) -> bytes:
        """What the hardware REPORT_DATA must be: the digest, then zeros to 64 bytes."""
        digest = self.runtime_data_digest()
        return digest + bytes(REPORT_DATA_SIZE - len(digest))

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly fields for ``tcme evidence show``."""
        return {
            "header_version": self.header_version,
            "request_type": self.request_type,
            "report_type": f"{self.report_type} ({self.tee})",
            "report_data_hash_type": f"{self.hash_type} ({self.hash_name})",
            "hardware_report_size": len(self.hardware_report),
            "variable_data_size": len(self.variable_data),
            "buffer_size": len(self.raw),
        }


def parse_hcl_report(data: bytes) -> HclReport:
    """Parse an HCL report; strict: every size field agrees, reserved and padding are zero.

    Raises ``ParseError`` naming the failed check (``hcl.<field>``).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ParseError("hcl.type", "HCL report must be bytes", actual=type(data).__name__)
    data = bytes(data)
    if not VARIABLE_DATA_OFFSET <= len(data) <= MAX_HCL_REPORT_SIZE:
        raise ParseError(
            "hcl.size",
            "not an Azure HCL report",
            expected=f"{VARIABLE_DATA_OFFSET}..{MAX_HCL_REPORT_SIZE} bytes",
            actual=len(data),
        )
    magic, version, report_size, request_type, status, reserved = _HEADER.unpack_from(data, 0)
    _expect("hcl.signature", magic, HCL_MAGIC, "not an HCL report")
    if version not in HEADER_VERSIONS:
        raise ParseError(
            "hcl.version", "unsupported HCL header version", expected="1 or 2", actual=version
        )
    _expect("hcl.request_type", request_type, REQUEST_TYPE_AK_CERT, "unexpected request type")
    _expect("hcl.status", status, 0, "the paravisor reported a failure")
    _mbz(reserved, 0x014)
    data_size, igvm_version, report_type, hash_type, var_size = _IGVM_REQUEST.unpack_from(
        data, IGVM_REQUEST_OFFSET
    )
    _expect("hcl.igvm.version", igvm_version, IGVM_REQUEST_VERSION, "unsupported request version")
    if report_type not in REPORT_TYPES:
        raise ParseError(
            "hcl.igvm.report_type",
            "unsupported hardware report type",
            expected="2 (SEV-SNP) or 4 (TDX)",
            actual=report_type,
        )
    if hash_type not in HASH_TYPES:
        raise ParseError(
            "hcl.igvm.hash_type",
            "unsupported report-data hash type",
            expected="1 (SHA-256), 2 (SHA-384) or 3 (SHA-512)",
            actual=hash_type,
        )
    end = VARIABLE_DATA_OFFSET + var_size
    if end > len(data):
        raise ParseError(
            "hcl.igvm.variable_data_size",
            "variable data runs past the end of the report",
            expected=f"<= {len(data) - VARIABLE_DATA_OFFSET}",
            actual=var_size,
        )
    _expect("hcl.igvm.data_size", data_size, IGVM_REQUEST_HEADER_SIZE + var_size, "size mismatch")
    _expect("hcl.report_size", report_size, end, "report size disagrees with the variable data")
    _mbz(data[end:], end)
    area = data[HARDWARE_REPORT_OFFSET:IGVM_REQUEST_OFFSET]
    if report_type == REPORT_TYPE_TDX:
        _mbz(area[TD_REPORT_SIZE:], HARDWARE_REPORT_OFFSET + TD_REPORT_SIZE)
        area = area[:TD_REPORT_SIZE]
    return HclReport(
        header_version=version,
        request_type=request_type,
        report_type=report_type,
        hash_type=hash_type,
        hardware_report=area,
        variable_data=data[VARIABLE_DATA_OFFSET:end],
        raw=data,
    )


def build_hcl_report(
    hardware_report: bytes,
    variable_data: bytes,
    *,
    report_type: int = REPORT_TYPE_SNP,
    header_version: int = 2,
    buffer_size: int = 2600,
) -> bytes:
    """The HCL report bytes for ``hardware_report`` and ``variable_data`` (SHA-256 hash type).

    The inverse of ``parse_hcl_report``; used to stand in for the paravisor in
    simulated runs and tests (a real HCL report comes only from Azure's vTPM).
    """
    area = hardware_report + bytes(HARDWARE_REPORT_AREA - len(hardware_report))
    end = VARIABLE_DATA_OFFSET + len(variable_data)
    header = _HEADER.pack(HCL_MAGIC, header_version, end, REQUEST_TYPE_AK_CERT, 0, bytes(12))
    request = _IGVM_REQUEST.pack(
        IGVM_REQUEST_HEADER_SIZE + len(variable_data),
        IGVM_REQUEST_VERSION,
        report_type,
        1,
        len(variable_data),
    )
    body = header + area + request + variable_data
    return body + bytes(max(0, buffer_size - len(body)))


def _expect(check: str, actual: object, expected: object, detail: str) -> None:
    if actual != expected:
        raise ParseError(check, detail, expected=expected, actual=actual)


def _mbz(chunk: bytes, lo: int) -> None:
    """Bytes from offset ``lo`` must be zero (reserved fields, padding)."""
    if chunk.count(0) != len(chunk):
        raise ParseError(
            f"hcl.reserved[0x{lo:x}:0x{lo + len(chunk):x}]",
            "reserved or padding bytes must be zero",
            expected="all zero",
            actual=chunk.hex() if len(chunk) <= 64 else f"{len(chunk) - chunk.count(0)} non-zero",
        )
