"""attestation.text: the one parser of each value written as text.

Each test is a spelling someone could send: a person pasting a value, or a
hostile proxy trying a second spelling of a signed or canonical field.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from attestation.errors import ParseError, UsageError
from attestation.text import (
    decode_text_blob,
    format_sha256,
    parse_hex,
    parse_sha256,
    parse_time,
)

DIGEST = bytes(range(32))


def test_pasted_hex_may_carry_surrounding_whitespace() -> None:
    assert parse_hex("  0a0B\n", "--nonce") == b"\x0a\x0b"


@pytest.mark.parametrize("text", ["0a 0b", "0a\n0b", "0a\t0b"])
def test_inner_whitespace_is_refused_although_bytes_fromhex_skips_it(text: str) -> None:
    assert bytes.fromhex(text) == b"\x0a\x0b"  # what a naive parser would accept
    with pytest.raises(UsageError) as err:
        parse_hex(text, "--nonce")
    assert err.value.check == "--nonce"
    assert "not hex" in err.value.message()


def test_exact_refuses_a_second_spelling_of_a_document_field() -> None:
    assert parse_hex("0a0B", "azure.field", exact=True, error=ParseError) == b"\x0a\x0b"
    with pytest.raises(ParseError, match=r"azure\.field: not hex"):
        parse_hex(" 0a0b", "azure.field", exact=True, error=ParseError)


def test_lowercase_only_refuses_uppercase_and_padding() -> None:
    assert parse_hex("0a0b", "wire", lowercase_only=True) == b"\x0a\x0b"
    for spelling in ("0A0B", "0a0b ", " 0a0b"):
        with pytest.raises(UsageError):
            parse_hex(spelling, "wire", lowercase_only=True)


def test_size_is_checked_and_named() -> None:
    with pytest.raises(UsageError) as err:
        parse_hex("00" * 31, "pcr", size=32)
    assert (err.value.expected, err.value.actual) == ("32 bytes", "31 bytes")


@pytest.mark.parametrize("value", [None, 12, b"0a", ["0a"]])
def test_non_strings_are_refused_by_type(value: object) -> None:
    with pytest.raises(UsageError, match="expected a hex string"):
        parse_hex(value, "x")


def test_odd_length_and_long_garbage_are_refused_without_echoing_it_all() -> None:
    with pytest.raises(UsageError, match="not hex"):
        parse_hex("abc", "x")
    with pytest.raises(UsageError) as err:
        parse_hex("zz" * 500, "x")
    assert len(str(err.value.actual)) <= 80


def test_sha256_is_printed_one_way_and_read_both_ways() -> None:
    printed = format_sha256(DIGEST)
    assert printed == "sha256:" + DIGEST.hex()
    assert parse_sha256(printed, "d") == parse_sha256(DIGEST.hex().upper(), "d") == DIGEST
    assert format_sha256(DIGEST.hex().upper()) == printed


def test_time_without_zone_is_utc_and_garbage_is_named() -> None:
    assert parse_time("2025-06-01T00:00:00", "t") == datetime(2025, 6, 1, tzinfo=UTC)
    with pytest.raises(UsageError, match="t: not an RFC 3339 time"):
        parse_time("yesterday", "t")


BLOB = bytes(range(256)) * 3


@pytest.mark.parametrize(
    "text",
    [
        BLOB.hex().encode(),
        BLOB.hex().upper().encode(),
        base64.b64encode(BLOB),
        base64.encodebytes(BLOB),  # wrapped every 76 characters
        base64.urlsafe_b64encode(BLOB).rstrip(b"="),
    ],
    ids=["hex", "HEX", "base64", "base64-wrapped", "base64url-unpadded"],
)
def test_pasted_blob_forms_all_decode_to_the_same_bytes(text: bytes) -> None:
    assert decode_text_blob(text) == BLOB


@pytest.mark.parametrize("data", [b"", b"  \n", b"\x01\x02\xff", b"not base64!", b"abc=def"])
def test_what_is_neither_hex_nor_base64_is_left_to_the_caller(data: bytes) -> None:
    assert decode_text_blob(data) is None
