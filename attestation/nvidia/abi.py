"""What do the bytes say? A pure, bounds-checked parser for NVIDIA GPU/NVSwitch evidence.

An NVIDIA "attestation report" is an SPDM **1.1** GET_MEASUREMENTS request
followed directly by its MEASUREMENTS response (DMTF DSP0274 1.1.0, tables 40
"GET_MEASUREMENTS request message" and 42 "Successful MEASUREMENTS response
message"); there is no wrapper. One declared layout, read by its length fields:

====================  =========================================================
request  0..37        SPDMVersion 0x11, 0xE0, Param1 0x01 (signature requested),
                      Param2 0xFF (all blocks), Nonce[32] (the verifier's), SlotID
response +0..8        SPDMVersion 0x11, 0x60, Param1, Param2, NumberOfBlocks (u8),
                      MeasurementRecordLength (u24 LE)
record                NumberOfBlocks DMTF measurement blocks, each
                      Index u8, Spec u8 (0x01 = DMTF), Size u16 LE (51), then
                      the DMTF value: Type u8, Size u16 LE (48), SHA-384[48]
then                  responder Nonce[32] (the GPU's, *not* the verifier's),
                      OpaqueLength u16 LE, OpaqueData (TLVs: u16 type, u16 length)
last                  Signature[96]: raw big-endian r || s, ECDSA P-384
====================  =========================================================

The signature covers request || response up to the signature (SPDM 1.1: no
1.2-style signing prefix, no transcript of earlier messages). Bytes after the
signature are tolerated only when they are all zero (one real CoCo report
carries one 0x00 byte of padding), are reported as ``trailing_zero_bytes``,
and are never signed. Nothing here verifies anything: a parsed report is only
well-formed. ``NvidiaReport.to_bytes()`` rebuilds the exact input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from attestation.binary import ByteReader
from attestation.errors import ParseError
from attestation.text import decode_text_blob

# --- SPDM 1.1 constants (DSP0274 1.1.0 tables 4, 40, 42, 45, 46) ----------------
SPDM_VERSION_1_1 = 0x11
GET_MEASUREMENTS = 0xE0
MEASUREMENTS = 0x60
REQUEST_PARAM1_SIGNATURE = 0x01  # "signature requested"
REQUEST_PARAM2_ALL_BLOCKS = 0xFF
NONCE_SIZE = 32
SIGNATURE_SIZE = 96  # ECDSA P-384: r || s, 48 bytes each, big-endian
MEASUREMENT_SPEC_DMTF = 0x01
DMTF_DIGEST_SIZE = 48  # SHA-384
DMTF_VALUE_SIZE = 3 + DMTF_DIGEST_SIZE  # type u8 + size u16 + digest
BLOCK_HEADER_SIZE = 4  # index u8, spec u8, size u16
BLOCK_SIZE = BLOCK_HEADER_SIZE + DMTF_VALUE_SIZE  # 55
MAX_BLOCKS = 255  # the u8 NumberOfBlocks, and indices are 1..254 in SPDM
MAX_REPORT_SIZE = 64 * 1024  # SPDM lengths allow less than this; a bound on input
MAX_TRAILING_ZERO_BYTES = 16  # padding seen in the wild: 1 byte

# The declared layout, little-endian throughout (SPDM is LE).
REQUEST = struct.Struct("<BBBB32sB")  # 37 bytes
RESPONSE_HEADER = struct.Struct("<BBBBB3s")  # 8 bytes: ..., NumberOfBlocks, RecordLength u24
BLOCK_HEADER = struct.Struct("<BBH")
DMTF_HEADER = struct.Struct("<BH")
# One whole block: index, spec, size, then the DMTF value: type, size, SHA-384.
BLOCK = struct.Struct("<BBHBH48s")
OPAQUE_LENGTH = struct.Struct("<H")
TLV_HEADER = struct.Struct("<HH")
# The first four request bytes every NVIDIA report starts with.
_MAGIC = bytes(
    (SPDM_VERSION_1_1, GET_MEASUREMENTS, REQUEST_PARAM1_SIGNATURE, REQUEST_PARAM2_ALL_BLOCKS)
)
assert REQUEST.size == 37 and RESPONSE_HEADER.size == 8 and BLOCK_SIZE == BLOCK.size == 55


class OpaqueType(IntEnum):
    """NVIDIA opaque-data field types (nvtrust ``OpaqueDataParser``, nvsdk ``OpaqueDataType``)."""

    CERT_ISSUER_NAME = 1
    CERT_AUTHORITY_KEY_IDENTIFIER = 2
    DRIVER_VERSION = 3
    GPU_INFO = 4
    SKU = 5
    VBIOS_VERSION = 6
    MANUFACTURER_ID = 7
    TAMPER_DETECTION = 8
    SMC = 9
    VPR = 10
    NVDEC0_STATUS = 11
    MSRSCNT = 12
    CPRINFO = 13
    BOARD_ID = 14
    CHIP_SKU = 15
    CHIP_SKU_MOD = 16
    PROJECT = 17
    PROJECT_SKU = 18
    PROJECT_SKU_MOD = 19
    FWID = 20
    PROTECTED_PCIE_STATUS = 21
    SWITCH_PDI = 22
    FLOORSWEPT_PORTS = 23
    POSITION_ID = 24
    LOCK_SWITCH_STATUS = 25
    SWITCH_GPU_PDIS = 26
    GPU_LINK_CONN = 32
    SYS_ENABLE_STATUS = 33
    OPAQUE_DATA_VERSION = 34
    CHIP_INFO = 35
    FEATURE_FLAG = 36


# Status bytes used by NVDEC0_STATUS and PROTECTED_PCIE_STATUS.
STATUS_ENABLED = 0xAA
STATUS_DISABLED = 0x55
FEATURE_FLAGS = {0: "SPT", 1: "MPT", 2: "PPCIE"}  # single/multi GPU passthrough, protected PCIe
PDI_SIZE = 8
SWITCH_GPU_PDIS_SIZE = 8 * PDI_SIZE + 64  # 8 GPU PDIs then 64 one-byte port ids


@dataclass(frozen=True)
class SpdmRequest:
    """The 37-byte GET_MEASUREMENTS request; ``nonce`` is the verifier's."""

    version: int
    code: int
    param1: int
    param2: int
    nonce: bytes
    slot_id: int

    def to_bytes(self) -> bytes:
        """The request's exact bytes."""
        return REQUEST.pack(
            self.version, self.code, self.param1, self.param2, self.nonce, self.slot_id
        )


@dataclass(frozen=True, slots=True)
class MeasurementBlock:
    """One DMTF measurement block; ``index`` is 1-based (RIM index + 1)."""

    index: int
    spec: int
    value_type: int
    value: bytes

    def to_bytes(self) -> bytes:
        """The block's exact bytes."""
        return (
            BLOCK_HEADER.pack(self.index, self.spec, DMTF_VALUE_SIZE)
            + DMTF_HEADER.pack(self.value_type, len(self.value))
            + self.value
        )


@dataclass(frozen=True)
class OpaqueField:
    """One opaque-data TLV, in the order it appeared."""

    type: int
    value: bytes

    @property
    def name(self) -> str:
        """The type's name (``UNKNOWN_<n>`` for types no NVIDIA source names)."""
        try:
            return OpaqueType(self.type).name.lower()
        except ValueError:
            return f"unknown_{self.type}"


@dataclass(frozen=True)
class OpaqueData:
    """The opaque TLVs, with typed accessors for the fields verification uses."""

    fields: tuple[OpaqueField, ...]

    def get(self, kind: OpaqueType) -> bytes | None:
        """The value of field ``kind``, or None when absent."""
        for item in self.fields:
            if item.type == kind:
                return item.value
        return None

    @property
    def driver_version(self) -> str | None:
        """E.g. "550.90.07" (NUL-padded ASCII in the report)."""
        return _ascii(self.get(OpaqueType.DRIVER_VERSION))

    @property
    def vbios_version(self) -> str | None:
        """E.g. "96.00.9f.00.01": bytes 3,2,1,0 then byte 4 (nvtrust's rendering)."""
        raw = self.get(OpaqueType.VBIOS_VERSION)
        if raw is None or len(raw) < 5:
            return None
        return ".".join(f"{b:02x}" for b in (raw[3], raw[2], raw[1], raw[0], raw[4]))

    @property
    def fwid(self) -> bytes | None:
        """The 48-byte firmware id the leaf certificate must carry (absent on old drivers)."""
        return self.get(OpaqueType.FWID)

    @property
    def chip_sku(self) -> str | None:
        """E.g. "882"."""
        return _ascii(self.get(OpaqueType.CHIP_SKU))

    @property
    def project(self) -> str | None:
        """E.g. "1010"."""
        return _ascii(self.get(OpaqueType.PROJECT))

    @property
    def project_sku(self) -> str | None:
        """E.g. "0200"."""
        return _ascii(self.get(OpaqueType.PROJECT_SKU))

    @property
    def board_id(self) -> str | None:
        """Hex of the board id field."""
        raw = self.get(OpaqueType.BOARD_ID)
        return None if raw is None else raw.hex()

    def status(self, kind: OpaqueType) -> str | None:
        """ "enabled" (0xAA), "disabled" (0x55), "0x.." otherwise, None when absent."""
        raw = self.get(kind)
        if raw is None:
            return None
        if len(raw) == 1 and raw[0] == STATUS_ENABLED:
            return "enabled"
        if len(raw) == 1 and raw[0] == STATUS_DISABLED:
            return "disabled"
        return "0x" + raw.hex()

    @property
    def opaque_data_version(self) -> int | None:
        """The opaque-data format version (absent before driver 5xx)."""
        raw = self.get(OpaqueType.OPAQUE_DATA_VERSION)
        return None if raw is None else int.from_bytes(raw, "little")

    @property
    def feature_flag(self) -> str | None:
        """ "SPT", "MPT", "PPCIE" (or the number); None when absent."""
        raw = self.get(OpaqueType.FEATURE_FLAG)
        if raw is None:
            return None
        value = int.from_bytes(raw, "little")
        return FEATURE_FLAGS.get(value, str(value))

    def switch_pdis(self) -> tuple[bytes, ...]:
        """On a GPU: the distinct NVSwitch PDIs its links name, in each switch's own byte order.

        The GPU stores them byte-reversed (nvsdk ``get_gpu_switch_pdis``); an all-zero
        PDI is an unused link.
        """
        raw = self.get(OpaqueType.SWITCH_PDI)
        if raw is None:
            return ()
        out: list[bytes] = []
        for start in range(0, len(raw) - len(raw) % PDI_SIZE, PDI_SIZE):
            pdi = raw[start : start + PDI_SIZE][::-1]
            if any(pdi) and pdi not in out:
                out.append(pdi)
        return tuple(out)

    def own_switch_pdi(self) -> bytes | None:
        """On an NVSwitch: its own 8-byte PDI."""
        raw = self.get(OpaqueType.SWITCH_PDI)
        return None if raw is None or len(raw) != PDI_SIZE else raw

    def switch_gpu_pdis(self) -> tuple[bytes, ...]:
        """On an NVSwitch: the GPU PDIs it is connected to (type 26, not reversed)."""
        raw = self.get(OpaqueType.SWITCH_GPU_PDIS)
        if raw is None or len(raw) < 8 * PDI_SIZE:
            return ()
        pdis = (raw[i : i + PDI_SIZE] for i in range(0, 8 * PDI_SIZE, PDI_SIZE))
        return tuple(p for p in pdis if any(p))

    def to_dict(self) -> dict[str, Any]:
        """Every field, typed ones rendered, the rest as hex (for ``tcme evidence show``)."""
        out: dict[str, Any] = {}
        for item in self.fields:
            out[item.name] = item.value.hex()
        rendered = {
            "driver_version": self.driver_version,
            "vbios_version": self.vbios_version,
            "chip_sku": self.chip_sku,
            "project": self.project,
            "project_sku": self.project_sku,
            "nvdec0_status": self.status(OpaqueType.NVDEC0_STATUS),
            "protected_pcie_status": self.status(OpaqueType.PROTECTED_PCIE_STATUS),
            "opaque_data_version": self.opaque_data_version,
            "feature_flag": self.feature_flag,
        }
        out.update({k: v for k, v in rendered.items() if v is not None})
        return out


@dataclass(frozen=True)
class NvidiaReport:
    """A parsed GET_MEASUREMENTS request + MEASUREMENTS response (well-formed, unverified)."""

    request: SpdmRequest
    response_param1: int
    response_param2: int
    blocks: tuple[MeasurementBlock, ...]
    responder_nonce: bytes
    opaque_raw: bytes
    opaque: OpaqueData
    signature: bytes
    signed_bytes: bytes = field(repr=False)
    trailing_zero_bytes: int = 0

    @property
    def nonce(self) -> bytes:
        """The verifier's nonce, as the request carried it."""
        return self.request.nonce

    def measurements(self) -> dict[int, bytes]:
        """SPDM block index (1-based) -> 48-byte value."""
        return {block.index: block.value for block in self.blocks}

    @property
    def is_switch(self) -> bool:
        """True for NVSwitch evidence (it names the GPUs it connects: opaque type 26)."""
        return self.opaque.get(OpaqueType.SWITCH_GPU_PDIS) is not None

    def to_bytes(self) -> bytes:
        """The exact input bytes, trailing padding included."""
        return self.signed_bytes + self.signature + bytes(self.trailing_zero_bytes)


def parse_report(data: bytes) -> NvidiaReport:
    """Parse an NVIDIA SPDM 1.1 report by its length fields; ``ParseError`` names the bad field."""
    data = bytes(data)
    if len(data) > MAX_REPORT_SIZE:
        raise ParseError(
            "nvidia.report.size", expected=f"<= {MAX_REPORT_SIZE} bytes", actual=len(data)
        )
    reader = ByteReader(data)
    # Request (DSP0274 table 40).
    version, code, param1, param2, nonce, slot_id = reader.unpack(REQUEST, "nvidia.request")
    _expect("nvidia.request.version", SPDM_VERSION_1_1, version)
    _expect("nvidia.request.code", GET_MEASUREMENTS, code)
    _expect("nvidia.request.param1", REQUEST_PARAM1_SIGNATURE, param1)
    _expect("nvidia.request.param2", REQUEST_PARAM2_ALL_BLOCKS, param2)
    request = SpdmRequest(version, code, param1, param2, nonce, slot_id)
    # Response header (table 42).
    r_version, r_code, r_param1, r_param2, count, length_raw = reader.unpack(
        RESPONSE_HEADER, "nvidia.response.header"
    )
    _expect("nvidia.response.version", SPDM_VERSION_1_1, r_version)
    _expect("nvidia.response.code", MEASUREMENTS, r_code)
    record_length = int.from_bytes(length_raw, "little")
    if count == 0 or record_length != count * BLOCK_SIZE:
        raise ParseError(
            "nvidia.response.measurement_record_length",
            "every block must be one DMTF SHA-384 block",
            expected=f"NumberOfBlocks ({count}) x {BLOCK_SIZE} = {count * BLOCK_SIZE}",
            actual=record_length,
        )
    record = reader.take(record_length, "nvidia.response.measurement_record")
    blocks = tuple(
        _parse_block(i + 1, *fields) for i, fields in enumerate(BLOCK.iter_unpack(record))
    )
    responder_nonce = reader.take(NONCE_SIZE, "nvidia.response.nonce")
    (opaque_length,) = reader.unpack(OPAQUE_LENGTH, "nvidia.response.opaque_length")
    opaque_raw = reader.take(opaque_length, "nvidia.response.opaque_data")
    opaque = parse_opaque_data(opaque_raw)
    signed_end = reader.offset
    signature = reader.take(SIGNATURE_SIZE, "nvidia.response.signature")
    trailing = data[reader.offset :]
    if trailing and (any(trailing) or len(trailing) > MAX_TRAILING_ZERO_BYTES):
        raise ParseError(
            "nvidia.report.trailing",
            "bytes after the signature (only a little zero padding is tolerated)",
            expected=f"0..{MAX_TRAILING_ZERO_BYTES} zero bytes",
            actual=f"{len(trailing)} bytes, {'non-zero' if any(trailing) else 'zero'}",
        )
    return NvidiaReport(
        request=request,
        response_param1=r_param1,
        response_param2=r_param2,
        blocks=blocks,
        responder_nonce=responder_nonce,
        opaque_raw=opaque_raw,
        opaque=opaque,
        signature=signature,
        signed_bytes=data[:signed_end],
        trailing_zero_bytes=len(trailing),
    )


def _parse_block(
    expected_index: int,
    index: int,
    spec: int,
    size: int,
    value_type: int,
    value_size: int,
    value: bytes,
) -> MeasurementBlock:
    if (index, spec, size, value_size) != (
        expected_index,
        MEASUREMENT_SPEC_DMTF,
        DMTF_VALUE_SIZE,
        DMTF_DIGEST_SIZE,
    ):
        check = f"nvidia.measurement[{expected_index}]"
        _expect(f"{check}.index", expected_index, index)
        _expect(f"{check}.spec", MEASUREMENT_SPEC_DMTF, spec)
        _expect(f"{check}.size", DMTF_VALUE_SIZE, size)
        _expect(f"{check}.value_size", DMTF_DIGEST_SIZE, value_size)
    return MeasurementBlock(index=index, spec=spec, value_type=value_type, value=value)


def parse_opaque_data(raw: bytes) -> OpaqueData:
    """TLVs that exactly fill ``raw``; a field type may appear once."""
    reader = ByteReader(raw)
    fields: list[OpaqueField] = []
    seen: set[int] = set()
    while reader.offset < len(raw):
        kind, length = reader.unpack(TLV_HEADER, "nvidia.opaque.tlv")
        value = reader.take(length, f"nvidia.opaque.type_{kind}")
        if kind in seen:
            raise ParseError(f"nvidia.opaque.type_{kind}", "field appears twice")
        seen.add(kind)
        fields.append(OpaqueField(kind, value))
    fwid = next((f.value for f in fields if f.type == OpaqueType.FWID), None)
    if fwid is not None and len(fwid) != DMTF_DIGEST_SIZE:
        raise ParseError("nvidia.opaque.fwid", expected="48 bytes", actual=f"{len(fwid)} bytes")
    return OpaqueData(tuple(fields))


def decode_report_input(data: bytes) -> bytes:
    """Raw report bytes from raw, hex (``report.hex``) or base64 input (else ``data`` as is)."""
    data = bytes(data)
    if data[:2] == _MAGIC[:2]:
        return data
    decoded = decode_text_blob(data)
    if decoded is not None and decoded[:2] == _MAGIC[:2]:
        return decoded
    return data


def looks_like_report(data: bytes) -> bool:
    """True when ``data`` (raw, hex or base64) starts like an NVIDIA SPDM 1.1 report."""
    raw = decode_report_input(data)
    return len(raw) >= REQUEST.size + RESPONSE_HEADER.size and raw[:4] == _MAGIC


def _expect(check: str, expected: int, actual: int) -> None:
    if expected != actual:
        raise ParseError(check, expected=f"0x{expected:02x}", actual=f"0x{actual:02x}")


def _ascii(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace")


def report_to_dict(report: NvidiaReport) -> dict[str, Any]:
    """Every field of a parsed report, for ``tcme evidence show`` (nothing verified)."""
    request = report.request
    return {
        "request": {
            "spdm_version": f"0x{request.version:02x}",
            "code": f"0x{request.code:02x}",
            "param1": f"0x{request.param1:02x}",
            "param2": f"0x{request.param2:02x}",
            "nonce": request.nonce.hex(),
            "slot_id": request.slot_id,
        },
        "response": {
            "spdm_version": f"0x{SPDM_VERSION_1_1:02x}",
            "code": f"0x{MEASUREMENTS:02x}",
            "param1": f"0x{report.response_param1:02x}",
            "param2": f"0x{report.response_param2:02x}",
            "number_of_blocks": len(report.blocks),
            "measurement_record_length": len(report.blocks) * BLOCK_SIZE,
            "responder_nonce": report.responder_nonce.hex(),
            "opaque_length": len(report.opaque_raw),
            "signature": report.signature.hex(),
            "trailing_zero_bytes": report.trailing_zero_bytes,
        },
        "device": "switch" if report.is_switch else "gpu",
        "opaque": report.opaque.to_dict(),
        "measurements": {
            str(b.index): {"type": b.value_type, "value": b.value.hex()} for b in report.blocks
        },
        "signed_bytes": len(report.signed_bytes),
    }
