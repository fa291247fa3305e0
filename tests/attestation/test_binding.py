"""report_data binding: exact encoding, sensitivity to every field, mismatch errors."""

from __future__ import annotations

import hashlib
import struct

import pytest

from attestation.binding import check_binding, report_data_for
from attestation.errors import BindingError
from attestation.nvidia.binding import gpu_nonce_for

CLAIMS = hashlib.sha256(b"claims").digest()
CONTRACT = hashlib.sha256(b"contract").digest()
SESSION = bytes(range(16))
NONCE = bytes(range(100, 132))


def _independent(claims: bytes, contract: bytes, session: bytes, nonce: bytes) -> bytes:
    """The DESIGN.md formula written out separately from attestation.binding."""
    parts = [b"tcme/v1/report-data", claims, contract, session, nonce]
    return hashlib.sha512(b"".join(struct.pack(">I", len(p)) + p for p in parts)).digest()


def test_report_data_matches_documented_encoding():
    value = report_data_for(CLAIMS, CONTRACT, SESSION, NONCE)
    assert len(value) == 64
    assert value == _independent(CLAIMS, CONTRACT, SESSION, NONCE)


def test_report_data_known_answer():
    # Pins the wire format: a change here breaks every deployed verifier.
    value = report_data_for(b"\x01" * 32, b"\x02" * 32, b"\x03" * 16, b"\x04" * 32)
    assert value.hex() == (
        "cc2b49bf6811f039327e041c42b3d333761538e724ecb4d7246146453b625814"
        "e7c1f0b135a1f358543b7d04875e945218fdace7918fbbaf02e307ab0ace5bc8"
    )


@pytest.mark.parametrize("field", ["claims", "contract", "session", "nonce"])
def test_report_data_changes_with_every_field(field):
    args = {"claims": CLAIMS, "contract": CONTRACT, "session": SESSION, "nonce": NONCE}
    base = report_data_for(*args.values())
    changed = dict(args)
    value = bytearray(changed[field])
    value[0] ^= 1
    changed[field] = bytes(value)
    assert report_data_for(*changed.values()) != base


def test_length_prefix_separates_session_and_nonce():
    # Moving one byte from the session id to the nonce must change the binding.
    a = report_data_for(CLAIMS, CONTRACT, SESSION + NONCE[:1], NONCE[1:])
    b = report_data_for(CLAIMS, CONTRACT, SESSION, NONCE)
    assert a != b


def test_sessionless_binding_uses_empty_fields():
    empty_contract = hashlib.sha256(b"").digest()
    value = report_data_for(CLAIMS, empty_contract, b"", NONCE)
    assert value == _independent(CLAIMS, empty_contract, b"", NONCE)


def test_check_binding_accepts_match():
    actual = report_data_for(CLAIMS, CONTRACT, SESSION, NONCE)
    check_binding(actual, report_data_for(CLAIMS, CONTRACT, SESSION, NONCE))


def test_check_binding_other_nonce_fail():
    actual = report_data_for(CLAIMS, CONTRACT, SESSION, NONCE)
    other_nonce = bytes(32)
    expected = report_data_for(CLAIMS, CONTRACT, SESSION, other_nonce)
    with pytest.raises(BindingError) as info:
        check_binding(actual, expected)
    err = info.value
    assert err.check == "report_data"
    assert err.actual == actual
    assert err.expected == expected
    assert actual.hex() in err.message()


def test_check_binding_wrong_length_fail():
    expected = report_data_for(CLAIMS, CONTRACT, SESSION, NONCE)
    with pytest.raises(BindingError, match="report_data"):
        check_binding(expected[:32], expected)


@pytest.mark.parametrize(
    ("claims", "contract", "nonce", "check"),
    [
        (b"\x00" * 31, CONTRACT, NONCE, "report_data.claims_digest"),
        (CLAIMS, b"\x00" * 64, NONCE, "report_data.contract_digest"),
        (CLAIMS, CONTRACT, b"\x00" * 15, "report_data.nonce"),
        (CLAIMS, CONTRACT, b"\x00" * 65, "report_data.nonce"),
    ],
)
def test_report_data_bad_sizes_fail(claims, contract, nonce, check):
    with pytest.raises(BindingError) as info:
        report_data_for(claims, contract, SESSION, nonce)
    assert info.value.check == check


def test_gpu_nonce_matches_documented_encoding_and_differs_from_report_data():
    parts = [b"tcme/v1/gpu-nonce", CLAIMS, CONTRACT, SESSION, NONCE]
    expected = hashlib.sha256(b"".join(struct.pack(">I", len(p)) + p for p in parts)).digest()
    assert gpu_nonce_for(CLAIMS, CONTRACT, SESSION, NONCE) == expected
    assert expected != report_data_for(CLAIMS, CONTRACT, SESSION, NONCE)[:32]


@pytest.mark.parametrize(
    ("session", "capability", "check"),
    [
        (b"\x00" * 65, None, "session_id"),
        (SESSION, b"\x00" * 31, "capability_digest"),
    ],
)
@pytest.mark.parametrize(
    ("derive", "prefix"), [(report_data_for, "report_data"), (gpu_nonce_for, "gpu_nonce")]
)
def test_both_bindings_refuse_the_same_bad_sizes(session, capability, check, derive, prefix):
    # One set of checks behind REPORT_DATA and the GPU nonce: an oversized session id or a
    # short capability digest was once accepted by the GPU nonce alone.
    with pytest.raises(BindingError) as info:
        derive(CLAIMS, CONTRACT, session, NONCE, capability)
    assert info.value.check == f"{prefix}.{check}"
