"""Properties: no single-bit change of a real report survives verification, and arbitrary
input only ever yields the library's own errors (never a crash)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.errors import ParseError, SignatureError, TcmeError
from attestation.policy import Policy
from attestation.snp.abi import REPORT_SIZE, SIGNED_SIZE, decode_report_input, parse_report
from attestation.snp.verify import VerifyOptions, verify_attestation, verify_vek_chain
from attestation.verifier import SnpInputs, verify_evidence


@pytest.mark.parametrize("name", ["ms_genoa_v3", "ms_turin_v5"])
def test_every_single_bit_flip_is_rejected(named_vector, name):
    vector = named_vector(name)
    options = VerifyOptions(now=vector.at)
    verify_vek_chain(vector.certs, options)  # warm the chain cache: one ECDSA verify per flip
    original = vector.report
    verify_attestation(parse_report(original), vector.certs, options)
    outcomes = {"parse": 0, "signature": 0}
    for bit in range(REPORT_SIZE * 8):
        flipped = bytearray(original)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            report = parse_report(bytes(flipped))
        except ParseError:
            outcomes["parse"] += 1
            continue
        with pytest.raises(SignatureError):
            verify_attestation(report, vector.certs, options)
        outcomes["signature"] += 1
    assert sum(outcomes.values()) == REPORT_SIZE * 8
    # Most of the signed region parses and is then caught by the signature.
    assert outcomes["signature"] > SIGNED_SIZE * 8 // 2


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_random_input_only_raises_parse_errors(data):
    try:
        raw = decode_report_input(data)
        parse_report(raw)
    except ParseError as err:
        assert err.check and "\n" not in err.message()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=REPORT_SIZE, max_size=REPORT_SIZE))
def test_random_report_sized_input_is_rejected(data):
    with pytest.raises(TcmeError):
        verify_evidence(
            data, policy=Policy.unsafe_authenticity_only(), inputs=[SnpInputs(certs=b"-")]
        )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(0, REPORT_SIZE - 1), st.integers(1, 255)), min_size=1, max_size=8
    )
)
def test_random_byte_changes_are_rejected(named_vector, changes):
    vector = named_vector("ms_milan_v3")
    mutated = bytearray(vector.report)
    for offset, xor in changes:
        mutated[offset] ^= xor
    if bytes(mutated) == vector.report:
        return  # the changes cancelled out
    with pytest.raises((ParseError, SignatureError)):
        verify_attestation(parse_report(bytes(mutated)), vector.certs, VerifyOptions(now=vector.at))
