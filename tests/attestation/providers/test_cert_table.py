"""The GHCB certificate table (auxblob / SNP_GET_EXT_REPORT certs), with real AMD certificates."""

from __future__ import annotations

import struct
import uuid

import pytest

from attestation.providers.cert_table import (
    ARK_GUID,
    ASK_GUID,
    ENTRY_SIZE,
    VCEK_GUID,
    VLEK_GUID,
    build_cert_table,
    parse_cert_table,
    to_pem,
)
from attestation.providers.errors import ProviderError
from attestation.snp import _x509


@pytest.fixture
def milan_certs(vector):
    vcek = vector("snp/gosevguest_milan_v2/vcek.der").read_bytes()
    ask, ark = _x509.split_certificates(
        vector("snp/amd_chains/milan_vcek_cert_chain.pem").read_bytes()
    )
    return vcek, ask, ark


def test_round_trip_orders_vek_ask_ark(milan_certs):
    vcek, ask, ark = milan_certs
    # Hosts may list entries in any order; Evidence.certs is always VEK, ASK, ARK.
    table = build_cert_table({ARK_GUID: ark, VCEK_GUID: vcek, ASK_GUID: ask})
    parsed = parse_cert_table(table + bytes(4096))  # the kernel's buffer is page-sized
    assert parsed.get(VCEK_GUID) == vcek
    assert _x509.split_certificates(parsed.chain_pem()) == [vcek, ask, ark]


def test_guid_bytes_are_rfc4122_order(milan_certs):
    table = build_cert_table({VCEK_GUID: milan_certs[0]})
    assert table[:16] == bytes.fromhex("63da758de6644564adc5f4b93be8accd")
    offset, length = struct.unpack_from("<II", table, 16)
    assert (offset, length) == (2 * ENTRY_SIZE, len(milan_certs[0]))


def test_vlek_report_picks_vlek_entry(vector, milan_certs):
    vlek = vector("snp/trustee_milan_v3_vlek/vlek.der").read_bytes()
    vcek, _ask, ark = milan_certs
    table = parse_cert_table(build_cert_table({VCEK_GUID: vcek, VLEK_GUID: vlek, ARK_GUID: ark}))
    assert _x509.split_certificates(table.chain_pem(vlek=True)) == [vlek, ark]
    assert _x509.split_certificates(table.chain_pem()) == [vcek, ark]


def test_pem_entries_accepted(milan_certs):
    pem = to_pem(milan_certs[0])
    table = parse_cert_table(build_cert_table({VCEK_GUID: pem + b"\0\0"}))
    assert _x509.split_certificates(table.chain_pem()) == [milan_certs[0]]


def test_empty_and_zero_tables_are_empty():
    assert parse_cert_table(b"").entries == {}
    assert parse_cert_table(bytes(8192)).chain_pem() == b""


def test_unknown_guids_are_kept_but_not_in_chain(milan_certs):
    other = uuid.UUID("00000000-0000-0000-0000-000000000001")
    table = parse_cert_table(build_cert_table({other: b"\x30\x00", ASK_GUID: milan_certs[1]}))
    assert table.get(other) == b"\x30\x00"
    assert _x509.split_certificates(table.chain_pem()) == [milan_certs[1]]


def test_unterminated_table_fail(milan_certs):
    table = build_cert_table({VCEK_GUID: milan_certs[0]})
    with pytest.raises(ProviderError, match="terminating") as info:
        parse_cert_table(table[:ENTRY_SIZE])
    assert info.value.check == "cert_table.terminator"


def test_entry_past_the_end_fail(milan_certs):
    table = build_cert_table({VCEK_GUID: milan_certs[0]})
    with pytest.raises(ProviderError, match="runs past the end") as info:
        parse_cert_table(table[:-10])
    assert info.value.check == "cert_table.length"


def test_entry_into_header_fail():
    header = struct.pack("<16sII", VCEK_GUID.bytes, 8, 4) + bytes(ENTRY_SIZE) + b"\x30" * 8
    with pytest.raises(ProviderError, match="header"):
        parse_cert_table(header)


def test_duplicate_guid_fail(milan_certs):
    vcek = milan_certs[0]
    entries = struct.pack("<16sII", VCEK_GUID.bytes, 3 * ENTRY_SIZE, len(vcek)) * 2
    with pytest.raises(ProviderError, match="twice"):
        parse_cert_table(entries + bytes(ENTRY_SIZE) + vcek)


def test_garbage_certificate_fail():
    table = parse_cert_table(build_cert_table({VCEK_GUID: b"hello"}))
    with pytest.raises(ProviderError, match="neither DER"):
        table.chain_pem()
