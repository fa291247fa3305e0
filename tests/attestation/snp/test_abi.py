"""attestation.snp.abi: every field at AMD's offsets, strict checks, exact round trips."""

from __future__ import annotations

import base64
import struct

import pytest

from attestation.errors import ParseError
from attestation.snp.abi import (
    REPORT_SIZE,
    SIGNED_SIZE,
    TcbVersion,
    decode_report_input,
    parse_report,
    product_from_cpuid,
)


def test_every_vector_round_trips_byte_exact(snp_vector):
    report = parse_report(snp_vector.report)
    assert report.to_bytes() == snp_vector.report
    assert report.signed_bytes() == snp_vector.report[:SIGNED_SIZE]
    assert report.version == snp_vector.version
    assert report.signing_key == snp_vector.signing_key
    if report.version >= 3:
        assert report.cpuid_product == snp_vector.product
    else:
        assert report.cpuid_fam_id is None and report.cpuid_product is None


def test_turin_v5_fields(named_vector):
    report = parse_report(named_vector("ms_turin_v5").report)
    # README 1.2: CPUID 1A/02/01, TCB bytes 01 01 01 04 00 00 00 51, policy 0x3001F.
    assert (report.cpuid_fam_id, report.cpuid_mod_id, report.cpuid_step) == (0x1A, 0x02, 0x01)
    assert report.reported_tcb == TcbVersion(
        fmc=1, bootloader=1, tee=1, snp=4, microcode=0x51, raw=0x5100000004010101
    )
    assert report.reported_tcb.is_turin_layout
    assert report.policy == 0x3001F
    assert report.launch_mit_vector is not None and report.current_mit_vector is not None
    assert report.chip_id[8:] == bytes(56)
    assert report.platform.iommu_write_safe  # Turin's PLATFORM_INFO bit 6


def test_milan_v2_fields(named_vector):
    report = parse_report(named_vector("gosevguest_milan_v2").report)
    assert report.policy == 0xB0000 and report.guest_policy.debug
    assert report.chip_id.hex().startswith("3ac3fe21e13fb099")
    assert report.reported_tcb.components() == {
        "bootloader": 2,
        "tee": 0,
        "snp": 5,
        "microcode": 68,
    }
    assert report.reported_tcb.fmc is None
    assert report.launch_mit_vector is None


def test_trustee_current_tcb_differs_from_reported(named_vector):
    report = parse_report(named_vector("trustee_milan_v2_vcek").report)
    assert report.current_tcb.microcode == 0xCE
    assert report.reported_tcb.microcode == 0x73


def test_vlek_report_fields(named_vector):
    report = parse_report(named_vector("trustee_milan_v3_vlek").report)
    assert report.key_info.signing_key == 1 and report.signing_key == "VLEK"
    assert report.vmpl == 1
    assert report.chip_id == bytes(64)


def test_azure_hcl_report_is_recognised(vectors):
    folder = vectors / "snp" / "azure_genoa_v3"
    hcl = (folder / "hcl_report.bin").read_bytes()
    assert hcl[:4] == b"HCLA"
    assert decode_report_input(hcl) == (folder / "report.bin").read_bytes()


def test_hcl_report_with_tdx_payload_fail(vectors):
    hcl = bytearray((vectors / "snp" / "azure_genoa_v3" / "hcl_report.bin").read_bytes())
    struct.pack_into("<I", hcl, 0x20 + REPORT_SIZE + 8, 4)  # report type 4 = TDX
    with pytest.raises(ParseError, match=r"hcl\.report_type"):
        decode_report_input(bytes(hcl))


def test_hex_and_base64_inputs(vectors):
    folder = vectors / "snp" / "virtee_milan_v2"
    raw = (folder / "report.bin").read_bytes()
    assert decode_report_input((folder / "report.hex").read_bytes()) == raw
    assert decode_report_input(base64.b64encode(raw)) == raw
    assert decode_report_input(base64.encodebytes(raw)) == raw  # with line breaks
    assert decode_report_input(base64.urlsafe_b64encode(raw)) == raw
    assert decode_report_input(raw.hex().upper().encode() + b"\n") == raw


@pytest.mark.parametrize(
    ("data", "check"),
    [
        (b"", "input.empty"),
        (b"\x02" * 100, "input.format"),
        (b"\x02" + bytes(REPORT_SIZE), "input.format"),  # oversized
        (b"!?" * 600, "input.format"),
        (b"ab" * 100, "input.size"),  # valid hex, wrong size
        (base64.b64encode(bytes(100)), "input.size"),
    ],
)
def test_decode_rejects_fail(data, check):
    with pytest.raises(ParseError) as err:
        decode_report_input(data)
    assert err.value.check == check


def _modified(raw: bytes, offset: int, value: bytes) -> bytes:
    out = bytearray(raw)
    out[offset : offset + len(value)] = value
    return bytes(out)


@pytest.mark.parametrize(
    ("offset", "value", "check"),
    [
        (0x000, struct.pack("<I", 4), "report.version"),
        (0x000, struct.pack("<I", 1), "report.version"),
        (0x008, struct.pack("<Q", 0x1F), "report.policy.reserved_bit17"),
        (0x008, struct.pack("<Q", 0x30000 | 1 << 40), "report.policy.reserved"),
        (0x034, struct.pack("<I", 2), "report.signature_algo"),
        (0x048, struct.pack("<I", 1 << 5), "report.key_info.reserved"),
        (0x048, struct.pack("<I", 2 << 2), "report.key_info.signing_key"),
        (0x04C, b"\x01", "report.reserved[0x4c:0x50]"),
        (0x18B, b"\x01", "report.reserved[0x18b:0x1a0]"),
        (0x1EB, b"\x01", "report.reserved[0x1eb:0x1ec]"),
        (0x1EF, b"\x01", "report.reserved[0x1ef:0x1f0]"),
        (0x1F8, b"\x01", "report.reserved[0x1f8:0x2a0]"),  # v3: no MIT vectors
        (0x29F, b"\x01", "report.reserved[0x1f8:0x2a0]"),
        (0x330, b"\x01", "report.reserved[0x330:0x4a0]"),
        (0x49F, b"\x01", "report.reserved[0x330:0x4a0]"),
    ],
)
def test_strict_parse_fail(named_vector, offset, value, check):
    raw = named_vector("ms_milan_v3").report
    with pytest.raises(ParseError) as err:
        parse_report(_modified(raw, offset, value))
    assert err.value.check == check
    assert err.value.expected is not None and err.value.actual is not None


def test_v2_cpuid_bytes_are_reserved_fail(named_vector):
    raw = named_vector("virtee_milan_v2").report
    with pytest.raises(ParseError, match=r"report.reserved\[0x188:0x1a0\]"):
        parse_report(_modified(raw, 0x188, b"\x19"))


def test_v5_reserved_starts_after_mit_vectors_fail(named_vector):
    raw = named_vector("ms_turin_v5").report
    with pytest.raises(ParseError, match=r"report.reserved\[0x208:0x2a0\]"):
        parse_report(_modified(raw, 0x208, b"\x01"))


@pytest.mark.parametrize("size", [0, 1, REPORT_SIZE - 1, REPORT_SIZE + 1, 4096])
def test_wrong_size_fail(size):
    with pytest.raises(ParseError) as err:
        parse_report(bytes(size))
    assert err.value.check == "report.size"
    assert err.value.actual == size


@pytest.mark.parametrize("turin", [False, True])
def test_tcb_layouts_round_trip(turin):
    fmc = 7 if turin else None
    tcb = TcbVersion.from_components(bootloader=1, tee=2, snp=3, microcode=4, fmc=fmc)
    assert TcbVersion.from_raw(tcb.raw, turin=turin) == tcb
    layout = bytes([7, 1, 2, 3, 0, 0, 0, 4]) if turin else bytes([1, 2, 0, 0, 0, 0, 3, 4])
    assert tcb.raw.to_bytes(8, "little") == layout


@pytest.mark.parametrize(
    ("family", "model", "product"),
    [
        (0x19, 0x01, "Milan"),
        (0x19, 0x11, "Genoa"),
        (0x19, 0xA0, "Genoa"),  # Siena shares Genoa's ARK
        (0x1A, 0x02, "Turin"),
        (0x1A, 0x11, "Turin"),
        (0x17, 0x31, None),
        (0x19, 0x21, None),  # a Zen 3 desktop part: not an SEV-SNP product line
    ],
)
def test_product_from_cpuid(family, model, product):
    assert product_from_cpuid(family, model) == product


def test_to_dict_names_every_field(named_vector):
    fields = parse_report(named_vector("ms_turin_v5").report).to_dict()
    assert fields["reported_tcb"] == {
        "raw": "0x5100000004010101",
        "fmc": 1,
        "bootloader": 1,
        "tee": 1,
        "snp": 4,
        "microcode": 81,
    }
    assert fields["key_info"]["signing_key"] == "VCEK"
    assert fields["cpuid_product"] == "Turin"
    assert fields["policy"]["smt"] is True and fields["policy"]["debug"] is False
    assert len(fields["signature_r"]) == 144
