"""What do the bytes say? A pure, bounds-checked parser for SEV-SNP attestation reports.

Transcribes the ATTESTATION_REPORT structure of the AMD SEV Secure Nested Paging
Firmware ABI Specification (AMD #56860, Table 23 "ATTESTATION_REPORT Structure"
and Table 22 "TCB_VERSION"), report versions 2, 3 and 5:

* v2: the original layout.
* v3: adds CPUID_FAM_ID / CPUID_MOD_ID / CPUID_STEP at 0x188 (so a verifier
  can tell the product, and Turin's TCB layout, from the report itself).
* v5: adds LAUNCH_MIT_VECTOR (0x1F8) and CURRENT_MIT_VECTOR (0x200).

Nothing here verifies anything: a parsed report is only well-formed. Reserved
ranges must be zero, and ``AttestationReport.to_bytes()`` rebuilds the exact
input from the parsed fields (tests check the round trip on every real vector).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, TypeVar

from attestation.errors import ParseError
from attestation.text import decode_text_blob

_T = TypeVar("_T")

# Sizes, from Table 23.
REPORT_SIZE = 0x4A0  # 1184
SIGNED_SIZE = 0x2A0  # the signature covers bytes 0..0x2A0
SIGNATURE_OFFSET = 0x2A0
SIGNATURE_SIZE = 0x200
ECDSA_COMPONENT_SIZE = 72  # r and s are 72-byte little-endian fields (Table 139/140)
REPORT_DATA_SIZE = 64
MEASUREMENT_SIZE = 48
HOST_DATA_SIZE = 32
CHIP_ID_SIZE = 64

SUPPORTED_VERSIONS = (2, 3, 5)

# SIGNATURE_ALGO values (Table 139): 1 = ECDSA P-384 with SHA-384.
SIG_ALGO_ECDSA_P384_SHA384 = 1

# KEY_INFO (offset 0x48) SIGNING_KEY values, bits 4:2.
SIGNING_KEY_VCEK = 0
SIGNING_KEY_VLEK = 1
SIGNING_KEY_NONE = 7
SIGNING_KEY_NAMES = {SIGNING_KEY_VCEK: "VCEK", SIGNING_KEY_VLEK: "VLEK", SIGNING_KEY_NONE: "NONE"}

# Guest POLICY bits (Table 9 "Guest Policy Structure").
POLICY_SMT_BIT = 16
POLICY_RESERVED_ONE_BIT = 17  # must be 1
POLICY_MIGRATE_MA_BIT = 18
POLICY_DEBUG_BIT = 19
POLICY_SINGLE_SOCKET_BIT = 20
POLICY_CXL_ALLOW_BIT = 21
POLICY_MEM_AES_256_XTS_BIT = 22
POLICY_RAPL_DIS_BIT = 23
POLICY_CIPHERTEXT_HIDING_BIT = 24
POLICY_PAGE_SWAP_DISABLE_BIT = 25
POLICY_HIGHEST_DEFINED_BIT = 25  # bits 63:26 are reserved and must be zero

GUEST_POLICY_FLAGS: dict[str, int] = {
    "smt": POLICY_SMT_BIT,
    "migrate_ma": POLICY_MIGRATE_MA_BIT,
    "debug": POLICY_DEBUG_BIT,
    "single_socket": POLICY_SINGLE_SOCKET_BIT,
    "cxl_allowed": POLICY_CXL_ALLOW_BIT,
    "mem_aes_256_xts": POLICY_MEM_AES_256_XTS_BIT,
    "rapl_dis": POLICY_RAPL_DIS_BIT,
    "ciphertext_hiding_dram": POLICY_CIPHERTEXT_HIDING_BIT,
    "page_swap_disable": POLICY_PAGE_SWAP_DISABLE_BIT,
}

# PLATFORM_INFO bits (Table 23, offset 0x40). Bit 6 is Turin's IOMMU_WRITE_SAFE.
PLATFORM_INFO_FLAGS: dict[str, int] = {
    "smt_enabled": 0,
    "tsme_enabled": 1,
    "ecc_enabled": 2,
    "rapl_disabled": 3,
    "ciphertext_hiding_dram_enabled": 4,
    "alias_check_complete": 5,
    "iommu_write_safe": 6,
    "tio_enabled": 7,
}

# CPUID family / model ranges that name a product line (v3+ reports).
CPUID_FAMILY_ZEN3_4 = 0x19
CPUID_FAMILY_ZEN5 = 0x1A
PRODUCTS = ("Milan", "Genoa", "Turin")


def product_from_cpuid(family: int, model: int) -> str | None:
    """The product line a v3+ report's CPUID_FAM_ID/CPUID_MOD_ID name, or None if unknown."""
    if family == CPUID_FAMILY_ZEN3_4:
        if model >> 4 == 0x0:
            return "Milan"
        if model >> 4 in (0x1, 0xA):  # Genoa, and Siena (same ARK/ASK line)
            return "Genoa"
    if family == CPUID_FAMILY_ZEN5 and model >> 4 in (0x0, 0x1):
        return "Turin"
    return None


@dataclass(frozen=True)
class TcbVersion:
    """A TCB_VERSION (Table 22): security patch levels of each firmware component.

    Milan/Genoa layout: byte 0 BOOT_LOADER, 1 TEE, 2..5 reserved, 6 SNP, 7 MICROCODE.
    Turin layout: byte 0 FMC, 1 BOOT_LOADER, 2 TEE, 3 SNP, 4..6 reserved, 7 MICROCODE.
    ``fmc`` is None on the Milan/Genoa layout. ``raw`` keeps all 64 bits, reserved
    bytes included, so the report round-trips exactly.
    """

    fmc: int | None
    bootloader: int
    tee: int
    snp: int
    microcode: int
    raw: int

    @classmethod
    def from_raw(cls, raw: int, *, turin: bool) -> TcbVersion:
        """Decode a 64-bit TCB_VERSION in the Turin or the Milan/Genoa layout."""
        if turin:
            return _build(
                cls, fmc=raw & 0xFF, bootloader=raw >> 8 & 0xFF, tee=raw >> 16 & 0xFF,
                snp=raw >> 24 & 0xFF, microcode=raw >> 56, raw=raw,
            )  # fmt: skip
        return _build(
            cls, fmc=None, bootloader=raw & 0xFF, tee=raw >> 8 & 0xFF, snp=raw >> 48 & 0xFF,
            microcode=raw >> 56, raw=raw,
        )  # fmt: skip

    @classmethod
    def from_components(
        cls,
        *,
        bootloader: int,
        tee: int,
        snp: int,
        microcode: int,
        fmc: int | None = None,
    ) -> TcbVersion:
        """Encode components (``fmc`` given = Turin layout) with zero reserved bytes."""
        b = bytearray(8)
        if fmc is not None:
            b[0], b[1], b[2], b[3], b[7] = fmc, bootloader, tee, snp, microcode
        else:
            b[0], b[1], b[6], b[7] = bootloader, tee, snp, microcode
        raw = int.from_bytes(b, "little")
        return cls(fmc=fmc, bootloader=bootloader, tee=tee, snp=snp, microcode=microcode, raw=raw)

    @property
    def is_turin_layout(self) -> bool:
        """True when this TCB carries an FMC component (Turin and later)."""
        return self.fmc is not None

    def components(self) -> dict[str, int]:
        """Component name -> SVN (``fmc`` only on the Turin layout)."""
        out: dict[str, int] = {}
        if self.fmc is not None:
            out["fmc"] = self.fmc
        out.update(bootloader=self.bootloader, tee=self.tee, snp=self.snp, microcode=self.microcode)
        return out


@dataclass(frozen=True)
class GuestPolicy:
    """The guest POLICY field (Table 9), decoded."""

    abi_minor: int
    abi_major: int
    smt: bool
    migrate_ma: bool
    debug: bool
    single_socket: bool
    cxl_allowed: bool
    mem_aes_256_xts: bool
    rapl_dis: bool
    ciphertext_hiding_dram: bool
    page_swap_disable: bool
    raw: int

    @classmethod
    def from_raw(cls, raw: int) -> GuestPolicy:
        """Decode a 64-bit guest policy (no validation; see ``parse_report``)."""
        flags = {name: bool(raw >> bit & 1) for name, bit in GUEST_POLICY_FLAGS.items()}
        return cls(abi_minor=raw & 0xFF, abi_major=raw >> 8 & 0xFF, raw=raw, **flags)


@dataclass(frozen=True)
class PlatformInfo:
    """The PLATFORM_INFO field, decoded; ``unknown_bits`` are set bits with no name yet."""

    smt_enabled: bool
    tsme_enabled: bool
    ecc_enabled: bool
    rapl_disabled: bool
    ciphertext_hiding_dram_enabled: bool
    alias_check_complete: bool
    iommu_write_safe: bool
    tio_enabled: bool
    unknown_bits: int
    raw: int

    @classmethod
    def from_raw(cls, raw: int) -> PlatformInfo:
        """Decode a 64-bit PLATFORM_INFO."""
        flags = {name: bool(raw >> bit & 1) for name, bit in PLATFORM_INFO_FLAGS.items()}
        known = sum(1 << bit for bit in PLATFORM_INFO_FLAGS.values())
        return cls(unknown_bits=raw & ~known, raw=raw, **flags)


@dataclass(frozen=True)
class KeyInfo:
    """KEY_INFO at 0x48: AUTHOR_KEY_EN (bit 0), MASK_CHIP_KEY (bit 1), SIGNING_KEY (bits 4:2)."""

    author_key_en: bool
    mask_chip_key: bool
    signing_key: int
    raw: int

    @classmethod
    def from_raw(cls, raw: int) -> KeyInfo:
        """Decode KEY_INFO (no validation; see ``parse_report``)."""
        return cls(
            author_key_en=bool(raw & 1),
            mask_chip_key=bool(raw >> 1 & 1),
            signing_key=raw >> 2 & 0x7,
            raw=raw,
        )

    @property
    def signing_key_name(self) -> str:
        """ "VCEK", "VLEK" or "NONE"."""
        return SIGNING_KEY_NAMES.get(self.signing_key, f"RESERVED({self.signing_key})")


@dataclass(frozen=True)
class AttestationReport:
    """Every field of an SEV-SNP ATTESTATION_REPORT (Table 23), at AMD's offsets.

    Fields that a report version does not have are None (``cpuid_*`` before v3,
    ``*_mit_vector`` before v5). ``signature_r``/``signature_s`` are the raw
    72-byte little-endian fields.
    """

    version: int  # 0x000
    guest_svn: int  # 0x004
    policy: int  # 0x008
    family_id: bytes  # 0x010, 16
    image_id: bytes  # 0x020, 16
    vmpl: int  # 0x030
    signature_algo: int  # 0x034
    current_tcb: TcbVersion  # 0x038
    platform_info: int  # 0x040
    key_info: KeyInfo  # 0x048 (0x04C..0x050 reserved)
    report_data: bytes  # 0x050, 64
    measurement: bytes  # 0x090, 48
    host_data: bytes  # 0x0C0, 32
    id_key_digest: bytes  # 0x0E0, 48
    author_key_digest: bytes  # 0x110, 48
    report_id: bytes  # 0x140, 32
    report_id_ma: bytes  # 0x160, 32
    reported_tcb: TcbVersion  # 0x180
    cpuid_fam_id: int | None  # 0x188 (v3+)
    cpuid_mod_id: int | None  # 0x189 (v3+)
    cpuid_step: int | None  # 0x18A (v3+); 0x18B..0x1A0 reserved
    chip_id: bytes  # 0x1A0, 64
    committed_tcb: TcbVersion  # 0x1E0
    current_build: int  # 0x1E8
    current_minor: int  # 0x1E9
    current_major: int  # 0x1EA (0x1EB reserved)
    committed_build: int  # 0x1EC
    committed_minor: int  # 0x1ED
    committed_major: int  # 0x1EE (0x1EF reserved)
    launch_tcb: TcbVersion  # 0x1F0
    launch_mit_vector: int | None  # 0x1F8 (v5)
    current_mit_vector: int | None  # 0x200 (v5); then reserved to 0x2A0
    signature_r: bytes  # 0x2A0, 72
    signature_s: bytes  # 0x2E8, 72; 0x330..0x4A0 reserved
    # The exact bytes parse_report read (equal to to_bytes(), which tests check), kept so
    # the signature is checked over the bytes received. Not an init field: replace()
    # and hand-built reports never carry stale bytes.
    _raw: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def guest_policy(self) -> GuestPolicy:
        """POLICY decoded into named flags."""
        return GuestPolicy.from_raw(self.policy)

    @property
    def platform(self) -> PlatformInfo:
        """PLATFORM_INFO decoded into named flags."""
        return PlatformInfo.from_raw(self.platform_info)

    @property
    def signing_key(self) -> str:
        """Which key the firmware says signed the report: "VCEK", "VLEK" or "NONE"."""
        return self.key_info.signing_key_name

    @property
    def cpuid_product(self) -> str | None:
        """Product line named by CPUID_FAM_ID/CPUID_MOD_ID (v3+), or None."""
        if self.cpuid_fam_id is None or self.cpuid_mod_id is None:
            return None
        return product_from_cpuid(self.cpuid_fam_id, self.cpuid_mod_id)

    def to_bytes(self) -> bytes:
        """The report in its ABI byte form, rebuilt from the fields (round-trips exactly)."""
        out = bytearray(REPORT_SIZE)
        struct.pack_into("<IIQ", out, 0x000, self.version, self.guest_svn, self.policy)
        out[0x010:0x020] = _sized(self.family_id, 16, "family_id")
        out[0x020:0x030] = _sized(self.image_id, 16, "image_id")
        struct.pack_into(
            "<IIQQI",
            out,
            0x030,
            self.vmpl,
            self.signature_algo,
            self.current_tcb.raw,
            self.platform_info,
            self.key_info.raw,
        )
        out[0x050:0x090] = _sized(self.report_data, REPORT_DATA_SIZE, "report_data")
        out[0x090:0x0C0] = _sized(self.measurement, MEASUREMENT_SIZE, "measurement")
        out[0x0C0:0x0E0] = _sized(self.host_data, HOST_DATA_SIZE, "host_data")
        out[0x0E0:0x110] = _sized(self.id_key_digest, 48, "id_key_digest")
        out[0x110:0x140] = _sized(self.author_key_digest, 48, "author_key_digest")
        out[0x140:0x160] = _sized(self.report_id, 32, "report_id")
        out[0x160:0x180] = _sized(self.report_id_ma, 32, "report_id_ma")
        struct.pack_into("<Q", out, 0x180, self.reported_tcb.raw)
        if self.version >= 3:
            out[0x188] = self.cpuid_fam_id or 0
            out[0x189] = self.cpuid_mod_id or 0
            out[0x18A] = self.cpuid_step or 0
        out[0x1A0:0x1E0] = _sized(self.chip_id, CHIP_ID_SIZE, "chip_id")
        struct.pack_into("<Q", out, 0x1E0, self.committed_tcb.raw)
        out[0x1E8:0x1EB] = bytes((self.current_build, self.current_minor, self.current_major))
        out[0x1EC:0x1EF] = bytes((self.committed_build, self.committed_minor, self.committed_major))
        struct.pack_into("<Q", out, 0x1F0, self.launch_tcb.raw)
        if self.version >= 5:
            struct.pack_into(
                "<QQ", out, 0x1F8, self.launch_mit_vector or 0, self.current_mit_vector or 0
            )
        out[0x2A0:0x2E8] = _sized(self.signature_r, ECDSA_COMPONENT_SIZE, "signature_r")
        out[0x2E8:0x330] = _sized(self.signature_s, ECDSA_COMPONENT_SIZE, "signature_s")
        return bytes(out)

    def signed_bytes(self) -> bytes:
        """Bytes 0..0x2A0: what the VCEK/VLEK signature covers."""
        raw = self._raw if self._raw is not None else self.to_bytes()
        return raw[:SIGNED_SIZE]

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-friendly (bytes as hex, TCBs and bit fields decoded)."""
        pol = self.guest_policy
        plat = self.platform
        return {
            "version": self.version,
            "guest_svn": self.guest_svn,
            "policy": {
                "raw": f"0x{self.policy:x}",
                "abi": f"{pol.abi_major}.{pol.abi_minor}",
                **{name: getattr(pol, name) for name in GUEST_POLICY_FLAGS},
            },
            "family_id": self.family_id.hex(),
            "image_id": self.image_id.hex(),
            "vmpl": self.vmpl,
            "signature_algo": self.signature_algo,
            "current_tcb": _tcb_dict(self.current_tcb),
            "platform_info": {
                "raw": f"0x{self.platform_info:x}",
                **{name: getattr(plat, name) for name in PLATFORM_INFO_FLAGS},
                "unknown_bits": f"0x{plat.unknown_bits:x}",
            },
            "key_info": {
                "raw": f"0x{self.key_info.raw:x}",
                "author_key_en": self.key_info.author_key_en,
                "mask_chip_key": self.key_info.mask_chip_key,
                "signing_key": self.signing_key,
            },
            "report_data": self.report_data.hex(),
            "measurement": self.measurement.hex(),
            "host_data": self.host_data.hex(),
            "id_key_digest": self.id_key_digest.hex(),
            "author_key_digest": self.author_key_digest.hex(),
            "report_id": self.report_id.hex(),
            "report_id_ma": self.report_id_ma.hex(),
            "reported_tcb": _tcb_dict(self.reported_tcb),
            "cpuid_fam_id": _hex_or_none(self.cpuid_fam_id),
            "cpuid_mod_id": _hex_or_none(self.cpuid_mod_id),
            "cpuid_step": _hex_or_none(self.cpuid_step),
            "cpuid_product": self.cpuid_product,
            "chip_id": self.chip_id.hex(),
            "committed_tcb": _tcb_dict(self.committed_tcb),
            "current_version": f"{self.current_major}.{self.current_minor}",
            "current_build": self.current_build,
            "current_minor": self.current_minor,
            "current_major": self.current_major,
            "committed_version": f"{self.committed_major}.{self.committed_minor}",
            "committed_build": self.committed_build,
            "committed_minor": self.committed_minor,
            "committed_major": self.committed_major,
            "launch_tcb": _tcb_dict(self.launch_tcb),
            "launch_mit_vector": _hex_or_none(self.launch_mit_vector),
            "current_mit_vector": _hex_or_none(self.current_mit_vector),
            "signature_r": self.signature_r.hex(),
            "signature_s": self.signature_s.hex(),
        }


# The whole report in one pass (Table 23). Reserved ranges come out as bytes for _mbz.
_LAYOUT = struct.Struct(
    "<IIQ16s16s"  # 0x000 version, guest_svn, policy, family_id, image_id
    "IIQQI4s"  # 0x030 vmpl, signature_algo, current_tcb, platform_info, key_info, reserved
    "64s48s32s48s48s32s32s"  # 0x050 report_data .. report_id_ma
    "Q3s21s64s"  # 0x180 reported_tcb, cpuid fam/mod/step (v3+), reserved, chip_id
    "Q3s1s3s1sQ"  # 0x1E0 committed_tcb, current b/m/M, rsv, committed b/m/M, rsv, launch_tcb
    "QQ152s"  # 0x1F8 launch/current mit vector (v5), reserved
    "72s72s368s"  # 0x2A0 signature r, s, reserved
)
assert _LAYOUT.size == REPORT_SIZE


def parse_report(data: bytes) -> AttestationReport:
    """Parse exactly 1184 raw bytes into an ``AttestationReport``.

    Strict: the size must be exact, the version 2, 3 or 5, the signature algorithm
    ECDSA P-384/SHA-384, KEY_INFO and POLICY free of reserved bits, and every
    reserved byte range zero. Raises ``ParseError`` naming the failed check.
    Input in another encoding (hex, base64, Azure HCL) goes through
    ``decode_report_input`` first.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ParseError("report.type", "report must be bytes", actual=type(data).__name__)
    data = bytes(data)
    if len(data) != REPORT_SIZE:
        raise ParseError(
            "report.size",
            "not an SEV-SNP attestation report",
            expected=REPORT_SIZE,
            actual=len(data),
        )
    (
        version, guest_svn, policy, family_id, image_id,
        vmpl, signature_algo, current_tcb, platform_info, key_info_raw, reserved_4c,
        report_data, measurement, host_data, id_key_digest, author_key_digest, report_id,
        report_id_ma,
        reported_tcb, cpuid, reserved_18b, chip_id,
        committed_tcb, current, reserved_1eb, committed, reserved_1ef, launch_tcb,
        launch_mit_vector, current_mit_vector, reserved_208,
        signature_r, signature_s, reserved_330,
    ) = _LAYOUT.unpack(data)  # fmt: skip
    if version not in SUPPORTED_VERSIONS:
        raise ParseError(
            "report.version", "unsupported report version", expected="2, 3 or 5", actual=version
        )
    _check_policy_bits(policy)
    if signature_algo != SIG_ALGO_ECDSA_P384_SHA384:
        raise ParseError(
            "report.signature_algo",
            "unsupported signature algorithm",
            expected=f"{SIG_ALGO_ECDSA_P384_SHA384} (ECDSA P-384 SHA-384)",
            actual=signature_algo,
        )
    key_info = _parse_key_info(key_info_raw)
    _mbz(reserved_4c, 0x04C)
    if version >= 3:
        cpuid_fam_id, cpuid_mod_id, cpuid_step = cpuid
        _mbz(reserved_18b, 0x18B)
    else:
        cpuid_fam_id = cpuid_mod_id = cpuid_step = None
        _mbz(cpuid + reserved_18b, 0x188)
    _mbz(reserved_1eb, 0x1EB)
    _mbz(reserved_1ef, 0x1EF)
    if version >= 5:
        _mbz(reserved_208, 0x208)
    else:
        _mbz(data[0x1F8:SIGNATURE_OFFSET], 0x1F8)
        launch_mit_vector = current_mit_vector = None
    _mbz(reserved_330, 0x330)
    # Turin (family 1Ah) puts FMC first in every TCB_VERSION; only v3+ reports say so.
    turin = cpuid_fam_id == CPUID_FAMILY_ZEN5
    return _build(
        AttestationReport,
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        family_id=family_id,
        image_id=image_id,
        vmpl=vmpl,
        signature_algo=signature_algo,
        current_tcb=TcbVersion.from_raw(current_tcb, turin=turin),
        platform_info=platform_info,
        key_info=key_info,
        report_data=report_data,
        measurement=measurement,
        host_data=host_data,
        id_key_digest=id_key_digest,
        author_key_digest=author_key_digest,
        report_id=report_id,
        report_id_ma=report_id_ma,
        reported_tcb=TcbVersion.from_raw(reported_tcb, turin=turin),
        cpuid_fam_id=cpuid_fam_id,
        cpuid_mod_id=cpuid_mod_id,
        cpuid_step=cpuid_step,
        chip_id=chip_id,
        committed_tcb=TcbVersion.from_raw(committed_tcb, turin=turin),
        current_build=current[0],
        current_minor=current[1],
        current_major=current[2],
        committed_build=committed[0],
        committed_minor=committed[1],
        committed_major=committed[2],
        launch_tcb=TcbVersion.from_raw(launch_tcb, turin=turin),
        launch_mit_vector=launch_mit_vector,
        current_mit_vector=current_mit_vector,
        signature_r=signature_r,
        signature_s=signature_s,
        _raw=data,
    )


def _build(cls: type[_T], **values: Any) -> _T:
    """An instance of frozen dataclass ``cls`` from all of its field values.

    Frozen dataclasses pay an ``object.__setattr__`` per field in ``__init__``; the
    parser builds five per report on the verification hot path, where that was a
    measurable share of the overhead above the ECDSA verify. Values are stored as
    ``__init__`` would store them (every field must be given).
    """
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


def snp_summary(report: AttestationReport) -> dict[str, Any]:
    """What ``VerifiedEvidence.summary()`` (and the Azure summary) add for an SNP report."""
    return {
        "report_version": report.version,
        "vmpl": report.vmpl,
        "guest_svn": report.guest_svn,
        "policy": f"0x{report.policy:x}",
        "host_data": report.host_data.hex(),
        "chip_id": report.chip_id.hex(),
    }


# Azure confidential VMs wrap the SNP report in an "HCL report" (IGVM attestation
# report): a 32-byte header starting with "HCLA", the hardware report at 0x20, then
# runtime data whose header carries the report type (2 = SEV-SNP, 4 = TDX).
HCL_MAGIC = b"HCLA"
HCL_REPORT_OFFSET = 0x20
HCL_REPORT_TYPE_OFFSET = HCL_REPORT_OFFSET + REPORT_SIZE + 8
HCL_REPORT_TYPE_SNP = 2


def decode_report_input(data: bytes) -> bytes:
    """Raw report bytes from raw, hex text, base64 text or an Azure HCL report.

    Returns exactly ``REPORT_SIZE`` bytes, not yet parsed. Raises ``ParseError``
    when the input is none of those forms.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ParseError("input.type", "evidence must be bytes", actual=type(data).__name__)
    data = bytes(data)
    if not data:
        raise ParseError("input.empty", "no evidence bytes", expected=REPORT_SIZE, actual=0)
    binary = _from_binary(data)
    if binary is not None:
        return binary
    decoded = decode_text_blob(data)
    if decoded is not None:
        binary = _from_binary(decoded)
        if binary is not None:
            return binary
        raise ParseError(
            "input.size",
            "decoded text is not an SEV-SNP report or Azure HCL report",
            expected=REPORT_SIZE,
            actual=len(decoded),
        )
    raise ParseError(
        "input.format",
        "not an SEV-SNP report (raw 1184 bytes, hex, base64 or Azure HCL report)",
        expected=REPORT_SIZE,
        actual=len(data),
    )


def _from_binary(data: bytes) -> bytes | None:
    if data[:4] == HCL_MAGIC:
        return _from_hcl(data)
    if len(data) == REPORT_SIZE and not _looks_like_text(data):
        return data
    return None


def _from_hcl(data: bytes) -> bytes:
    if len(data) < HCL_REPORT_OFFSET + REPORT_SIZE:
        raise ParseError(
            "hcl.size",
            "Azure HCL report too short to hold an SEV-SNP report",
            expected=f">= {HCL_REPORT_OFFSET + REPORT_SIZE}",
            actual=len(data),
        )
    if len(data) >= HCL_REPORT_TYPE_OFFSET + 4:
        (report_type,) = struct.unpack_from("<I", data, HCL_REPORT_TYPE_OFFSET)
        if report_type != HCL_REPORT_TYPE_SNP:
            raise ParseError(
                "hcl.report_type",
                "Azure HCL report does not carry an SEV-SNP report",
                expected=HCL_REPORT_TYPE_SNP,
                actual=report_type,
            )
    return data[HCL_REPORT_OFFSET : HCL_REPORT_OFFSET + REPORT_SIZE]


def _looks_like_text(data: bytes) -> bool:
    # A binary report starts with its little-endian version (02/03/05 00 00 00),
    # never with printable ASCII; 1184 characters of hex or base64 text do.
    return all(0x20 <= c < 0x7F or c in b"\r\n\t" for c in data[:8])


def _check_policy_bits(policy: int) -> None:
    if not policy >> POLICY_RESERVED_ONE_BIT & 1:
        raise ParseError(
            "report.policy.reserved_bit17",
            "policy bit 17 is reserved and must be 1",
            expected=1,
            actual=0,
        )
    reserved = policy >> (POLICY_HIGHEST_DEFINED_BIT + 1)
    if reserved:
        raise ParseError(
            "report.policy.reserved",
            "policy bits 63:26 are reserved and must be zero",
            expected="0x0",
            actual=f"0x{policy:x}",
        )


def _parse_key_info(raw: int) -> KeyInfo:
    if raw >> 5:
        raise ParseError(
            "report.key_info.reserved",
            "KEY_INFO bits 31:5 are reserved and must be zero",
            expected="0x0",
            actual=f"0x{raw:x}",
        )
    info = KeyInfo.from_raw(raw)
    if info.signing_key not in SIGNING_KEY_NAMES:
        raise ParseError(
            "report.key_info.signing_key",
            "reserved SIGNING_KEY value",
            expected="0 (VCEK), 1 (VLEK) or 7 (none)",
            actual=info.signing_key,
        )
    return info


def _mbz(chunk: bytes, lo: int) -> None:
    """The reserved range starting at report offset ``lo`` must be all zero."""
    if chunk.count(0) != len(chunk):
        raise ParseError(
            f"report.reserved[0x{lo:x}:0x{lo + len(chunk):x}]",
            "reserved bytes must be zero",
            expected="all zero",
            actual=chunk.hex(),
        )


def _sized(value: bytes, size: int, name: str) -> bytes:
    if len(value) != size:
        raise ParseError(f"report.{name}", "wrong field length", expected=size, actual=len(value))
    return value


def _tcb_dict(tcb: TcbVersion) -> dict[str, Any]:
    return {"raw": f"0x{tcb.raw:016x}", **tcb.components()}


def _hex_or_none(value: int | None) -> str | None:
    return None if value is None else f"0x{value:x}"
