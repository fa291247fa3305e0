"""attestation.binary.ByteReader: every short or overlong structure fails naming its field."""

from __future__ import annotations

import struct

import pytest

from attestation.azure.tpm import parse_attest
from attestation.binary import ByteReader
from attestation.errors import ParseError
from attestation.providers.tpm2 import TpmError


def test_reads_in_order_and_names_the_field_that_runs_short() -> None:
    r = ByteReader(b"\x00\x02ab\x00\x00\x00\x07", "quote")
    assert r.tpm2b("extra") == b"ab"
    assert r.u32be("clock") == 7
    with pytest.raises(ParseError) as err:
        r.take(1, "firmware")
    assert err.value.check == "quote.firmware"
    assert (err.value.expected, err.value.actual) == ("1 bytes at offset 8", "0 bytes left")


def test_a_size_field_larger_than_its_maximum_is_refused_before_reading() -> None:
    r = ByteReader(b"\xff\xff" + bytes(70000), "signature")
    with pytest.raises(ParseError) as err:
        r.tpm2b("sig", maximum=512)
    assert err.value.check == "signature.sig.size"
    assert err.value.actual == 0xFFFF


def test_trailing_bytes_are_refused() -> None:
    r = ByteReader(b"\x00\x01\x02", "x")
    r.unpack(struct.Struct(">H"), "a")
    with pytest.raises(ParseError, match=r"x\.trailing"):
        r.done()
    assert r.rest() == b"\x02"
    r.done()


def test_a_device_reader_raises_the_device_error() -> None:
    with pytest.raises(TpmError, match=r"tpm\.response\.quoted\.size"):
        ByteReader(b"\x00", "tpm.response", error=TpmError).tpm2b("quoted")


@pytest.mark.parametrize("cut", [0, 3, 5, 6, 40])
def test_every_truncated_tpm_quote_is_a_parse_error_naming_a_quote_field(cut: int) -> None:
    # TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE, then a signer name that is cut short.
    quote = struct.pack(">IH", 0xFF544347, 0x8018) + b"\x00\x22" + bytes(40)
    with pytest.raises(ParseError) as err:
        parse_attest(quote[:cut])
    assert err.value.check.startswith("quote.")
    assert "truncated" in err.value.message()
