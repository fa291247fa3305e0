"""attestation.tdx.abi: the pure quote parser, on real quotes and on broken ones."""

from __future__ import annotations

import dataclasses
import random
import struct

import dcap_qvl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.errors import ParseError
from attestation.tdx import abi


def _load(vector, relative: str) -> bytes:
    return vector(relative).read_bytes()


def test_real_quotes_parse_and_round_trip(vector, quote_path):
    raw = _load(vector, quote_path)
    quote = abi.parse_quote(raw)
    assert quote.header.tee_type == abi.TEE_TYPE_TDX
    assert len(quote.signature_data.certification.pck_cert_chain) == 3
    assert abi.quote_to_bytes(quote) == raw
    assert abi.quote_to_bytes(quote, trailing=False) + quote.trailing == raw


def test_fields_agree_with_dcap_qvl_parser(vector, quote_path):
    # An independent parser (dcap-qvl's Rust decoder) must read the same values.
    raw = _load(vector, quote_path)
    ours = abi.parse_quote(raw)
    theirs = dcap_qvl.parse_quote(raw)
    assert ours.version == theirs.header.version
    report = theirs.report
    body = ours.body
    assert body.tee_tcb_svn == report.tee_tcb_svn
    assert body.mr_seam == report.mr_seam
    assert body.mr_signer_seam == report.mr_signer_seam
    assert body.seam_attributes == report.seam_attributes
    assert body.td_attributes == report.td_attributes
    assert body.xfam == report.xfam
    assert body.mr_td == report.mr_td
    assert body.mr_config_id == report.mr_config_id
    assert body.mr_owner == report.mr_owner
    assert body.mr_owner_config == report.mr_owner_config
    assert body.rtmrs == (report.rt_mr0, report.rt_mr1, report.rt_mr2, report.rt_mr3)
    assert body.report_data == report.report_data
    if body.td_report_version == "1.5":
        assert body.tee_tcb_svn_2 == report.tee_tcb_svn2
        assert body.mr_service_td == report.mr_service_td
    chain_pem = theirs.cert_chain_pem_bytes()
    assert chain_pem is not None
    assert chain_pem.rstrip(b"\0") == ours.signature_data.certification.pck_cert_chain_pem.rstrip(
        b"\0"
    )


@pytest.mark.parametrize(
    ("relative", "version", "td_report", "trailing"),
    [
        ("tdx/dcapqvl_v4_uptodate/quote.bin", 4, "1.0", b"\0" * 70),
        ("tdx/dcapqvl_v5_no_tcb_level_match/quote.bin", 5, "1.5", b""),
        ("tdx/gotdxguest_v4_spr/quote.bin", 4, "1.0", b"\nextra bytes(only for testing purpose)\n"),
        ("tdx/gotdxguest_v5/quote.bin", 5, "1.5", b""),
        ("tdx/tinfoil_v4_agpl/quote.bin", 4, "1.0", b"\0" * 70),
    ],
)
def test_versions_bodies_and_trailing_padding(vector, relative, version, td_report, trailing):
    quote = abi.parse_quote(_load(vector, relative))
    assert quote.version == version
    assert quote.body.td_report_version == td_report
    assert quote.body_type == (abi.BODY_TYPE_TD_REPORT_15 if td_report == "1.5" else 2)
    assert quote.trailing == trailing
    assert quote.signed_size == (0x36 + 0x288 if version == 5 else 0x30 + 0x248)


def test_tinfoil_measurements_match_its_source_test(vector):
    # tinfoil's TestGuestVerify asserts an all-zero RTMR3; and no TD here is a debug TD.
    quote = abi.parse_quote(_load(vector, "tdx/tinfoil_v4_agpl/quote.bin"))
    assert quote.body.rtmrs[3] == bytes(48)
    assert not quote.body.debug
    assert quote.signature_data.certification.qe_report.report_data[32:] == bytes(32)


def test_pem_chain_nul_terminator_is_tolerated_and_kept(vector):
    quote = abi.parse_quote(_load(vector, "tdx/dcapqvl_v4_uptodate/quote.bin"))
    pem = quote.signature_data.certification.pck_cert_chain_pem
    assert pem.endswith(b"-----END CERTIFICATE-----\n\0")


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("quote_version_byte_0x00_set_0x03.bin", "quote.version"),
        ("quote_signed_data_size_byte_0x278_set_0x10.bin", "quote.certification_data.size"),
        ("quote_cert_chain_byte_0x1343_set_0x32.bin", "quote.pck_cert_chain"),
    ],
)
def test_structurally_tampered_quotes_fail_parsing(vector, name, check):
    raw = _load(vector, f"tdx/gotdxguest_v4_spr/tampered/{name}")
    with pytest.raises(ParseError) as info:
        abi.parse_quote(raw)
    assert info.value.check == check


def _rebuild(quote: abi.Quote, **certification_changes) -> bytes:
    cert = dataclasses.replace(quote.signature_data.certification, **certification_changes)
    sig = dataclasses.replace(quote.signature_data, certification=cert)
    return abi.quote_to_bytes(dataclasses.replace(quote, signature_data=sig))


@pytest.fixture
def v4(vector) -> abi.Quote:
    return abi.parse_quote(_load(vector, "tdx/dcapqvl_v4_uptodate/quote.bin"))


def test_two_certificate_chain_fails(v4):
    pem = v4.signature_data.certification.pck_cert_chain_pem
    end = pem.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----\n")
    end = pem.index(b"-----END CERTIFICATE-----", end) + len(b"-----END CERTIFICATE-----\n")
    raw = _rebuild(v4, pck_cert_chain_pem=pem[:end])
    with pytest.raises(ParseError, match="wrong number of certificates") as info:
        abi.parse_quote(raw)
    assert info.value.expected == 3
    assert info.value.actual == 2


def test_text_after_the_chain_fails(v4):
    pem = v4.signature_data.certification.pck_cert_chain_pem.rstrip(b"\0")
    with pytest.raises(ParseError, match=r"certificate 3 .* not a well-formed PEM block"):
        abi.parse_quote(_rebuild(v4, pck_cert_chain_pem=pem + b"junk"))
    with pytest.raises(ParseError, match="unexpected bytes"):
        abi.parse_quote(_rebuild(v4, pck_cert_chain_pem=pem + b"\0junk"))


def test_non_base64_inside_a_certificate_fails(v4):
    pem = bytearray(v4.signature_data.certification.pck_cert_chain_pem)
    pem[100] = ord("!")
    with pytest.raises(ParseError, match="certificate 0"):
        abi.parse_quote(_rebuild(v4, pck_cert_chain_pem=bytes(pem)))


def test_nonzero_qe_report_reserved_bytes_fail(v4):
    raw = bytearray(v4.signature_data.certification.qe_report_raw)
    raw[abi.QE_RESERVED3[0]] = 1
    with pytest.raises(ParseError) as info:
        abi.parse_quote(_rebuild(v4, qe_report_raw=bytes(raw)))
    assert info.value.check == "quote.qe_report.reserved3"


def test_header_fields_are_checked(v4):
    raw = bytearray(v4.raw)
    struct.pack_into("<I", raw, abi.HEADER_TEE_TYPE, 0)  # SGX
    with pytest.raises(ParseError) as info:
        abi.parse_quote(bytes(raw))
    assert info.value.check == "quote.tee_type"

    raw = bytearray(v4.raw)
    struct.pack_into("<H", raw, abi.HEADER_ATTESTATION_KEY_TYPE, 3)  # ECDSA-384
    with pytest.raises(ParseError) as info:
        abi.parse_quote(bytes(raw))
    assert info.value.check == "quote.attestation_key_type"

    raw = bytearray(v4.raw)
    raw[abi.HEADER_QE_VENDOR_ID] ^= 0xFF
    with pytest.raises(ParseError) as info:
        abi.parse_quote(bytes(raw))
    assert info.value.check == "quote.qe_vendor_id"


def test_v5_body_descriptor_is_checked(vector):
    raw = _load(vector, "tdx/gotdxguest_v5/quote.bin")
    bad_type = bytearray(raw)
    struct.pack_into("<H", bad_type, abi.V5_BODY_TYPE, 4)  # TD report 1.5ex: not supported
    with pytest.raises(ParseError) as info:
        abi.parse_quote(bytes(bad_type))
    assert info.value.check == "quote.body_type"
    bad_size = bytearray(raw)
    struct.pack_into("<I", bad_size, abi.V5_BODY_SIZE, abi.TD_REPORT_10_SIZE)  # type 3, 1.0 size
    with pytest.raises(ParseError) as info:
        abi.parse_quote(bytes(bad_size))
    assert info.value.check == "quote.body_size"
    assert info.value.expected == abi.TD_REPORT_15_SIZE


def test_signature_data_running_past_the_end_fails(v4):
    raw = bytearray(v4.raw[: len(v4.raw) - len(v4.trailing)])
    struct.pack_into("<I", raw, v4.signed_size, v4.signature_data_size + 1)
    with pytest.raises(ParseError) as info:
        abi.parse_quote(bytes(raw))
    assert info.value.check == "quote.signature_data_size"


def test_debug_bit(v4):
    attributes = bytearray(v4.body.td_attributes)
    attributes[0] |= 1
    debug = dataclasses.replace(v4.body, td_attributes=bytes(attributes))
    assert debug.debug and not v4.body.debug


def test_every_truncation_fails_cleanly(v4):
    raw = v4.raw[: len(v4.raw) - len(v4.trailing)]
    # Every prefix shorter than the signature data end must raise ParseError, nothing else.
    for size in sorted({*range(0, 700), *range(len(raw) - 300, len(raw))}):
        with pytest.raises(ParseError):
            abi.parse_quote(raw[:size])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=6000))
def test_random_bytes_fail_cleanly(data):
    with pytest.raises(ParseError):
        abi.parse_quote(data)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_random_byte_flips_never_crash(v4, seed):
    # A flipped byte anywhere gives either a parse or a ParseError; never another exception.
    rng = random.Random(seed)
    raw = bytearray(v4.raw)
    for _ in range(rng.randint(1, 4)):
        raw[rng.randrange(len(raw))] = rng.randrange(256)
    try:
        quote = abi.parse_quote(bytes(raw))
    except ParseError:
        return
    assert abi.quote_to_bytes(quote) == bytes(raw)
