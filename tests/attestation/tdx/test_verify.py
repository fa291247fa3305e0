"""attestation.tdx.verify: dcap-qvl with injected time, root and collateral, on every TDX vector.

Expected outcomes are those of ../shared/vectors/README.md section 2.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.errors import ParseError, PolicyError, SignatureError, UsageError
from attestation.tdx import abi
from attestation.tdx.collateral import collateral_for_quote, load_collateral
from attestation.tdx.verify import (
    INTEL_SGX_ROOT_CA_SHA256,
    VerifyOptions,
    intel_sgx_root_ca_der,
    load_pinned_root,
    verify_quote,
)


def test_bundled_root_is_pinned_and_not_a_copy_of_the_vector_file(vector):
    der = intel_sgx_root_ca_der()
    assert hashlib.sha256(der).hexdigest() == INTEL_SGX_ROOT_CA_SHA256
    from importlib import resources

    bundled = resources.files("attestation.roots").joinpath("intel_sgx_root_ca.pem").read_bytes()
    vector_pem = vector("tdx/intel_sgx_root_ca.pem").read_bytes()
    assert bundled != vector_pem  # written with its own header, not copied
    assert x509.load_pem_x509_certificate(vector_pem).public_bytes(Encoding.DER) == der


def test_a_different_root_is_refused_by_the_pin(vector):
    # The TCB Signing chain's first certificate is an Intel certificate, but not the root.
    other = vector("tdx/gotdxguest_v4_spr/tcb_info_issuer_chain.pem").read_bytes()
    with pytest.raises(SignatureError) as info:
        load_pinned_root(other, source="tcb_info_issuer_chain.pem")
    assert info.value.check == "trust_root.intel_sgx_root_ca"
    assert info.value.expected == INTEL_SGX_ROOT_CA_SHA256


def test_uptodate_vectors_verify_at_their_time(vector, uptodate_case):
    quote, collateral, now = uptodate_case.load(vector)
    verified = verify_quote(quote, VerifyOptions(collateral=collateral, now=now))
    assert verified.tcb_status == "UpToDate"
    assert verified.advisory_ids == ()
    assert verified.fmspc == collateral.fmspc
    assert verified.verified_at == now
    assert verified.quote.body.report_data == quote.body.report_data


def test_raw_bytes_are_accepted_too(vector, uptodate_case):
    quote, collateral, now = uptodate_case.load(vector)
    verified = verify_quote(quote.raw, VerifyOptions(collateral=collateral, now=now))
    assert verified.tcb_status == "UpToDate"
    assert verified.quote.body == quote.body


def test_v5_no_tcb_level_match_rejects_with_that_reason(vector, no_tcb_level_case):
    quote, collateral, now = no_tcb_level_case.load(vector)
    with pytest.raises(PolicyError, match="no TCB level in the TCB Info matches") as info:
        verify_quote(quote, VerifyOptions(collateral=collateral, now=now))
    assert info.value.check == "tcb_level"
    assert info.value.actual == "none"


def test_spr_quote_has_no_matching_tcb_level_as_is(vector, spr_case):
    # go-tdx-guest's own test zeroes every SVN of this TCB Info before matching; as-is,
    # dcap-qvl (like the README's checker) finds no level, after all signatures passed.
    quote, collateral, now = spr_case.load(vector)
    with pytest.raises(PolicyError, match="no TCB level in the TCB Info matches") as info:
        verify_quote(quote, VerifyOptions(collateral=collateral, now=now))
    assert info.value.check == "tcb_level"


# Each tampered go-tdx-guest quote (TestNegativeVerification) with the check that rejects it.
# Their source's errors: version -> "quote format not supported"; 0x278 -> certificate data
# size; 0x1343 -> PCK chain invalid; 0x1329 -> root signature; 0xF5F -> intermediate
# signature; 0xB77 -> PCK leaf signature; 0x1E and 0x3C -> quote signature.
TAMPERED = [
    ("quote_version_byte_0x00_set_0x03.bin", ParseError, "quote.version"),
    (
        "quote_signed_data_size_byte_0x278_set_0x10.bin",
        ParseError,
        "quote.certification_data.size",
    ),
    ("quote_cert_chain_byte_0x1343_set_0x32.bin", ParseError, "quote.pck_cert_chain"),
    ("quote_root_ca_byte_0x1329_set_0x32.bin", SignatureError, "pck_chain.root"),
    ("quote_intermediate_ca_byte_0xf5f_set_0x32.bin", SignatureError, "pck_chain.intermediate"),
    ("quote_pck_leaf_byte_0xb77_set_0x32.bin", SignatureError, "pck_chain.leaf"),
    ("quote_header_byte_0x1e_set_0x32.bin", SignatureError, "quote.signature"),
    ("quote_td_body_byte_0x3c_set_0x32.bin", SignatureError, "quote.signature"),
]


@pytest.mark.parametrize(("name", "error", "check"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_each_tampered_spr_quote_fails_for_its_own_reason(vector, spr_case, name, error, check):
    # The untampered quote fails only at TCB-level matching (PolicyError "tcb_level"); each
    # tampered one must fail earlier, at parse or signature stage, naming its own check.
    collateral = load_collateral(vector(spr_case.collateral), fmspc="50806f000000")
    raw = vector(f"tdx/gotdxguest_v4_spr/tampered/{name}").read_bytes()
    now = datetime.fromisoformat(spr_case.time)
    with pytest.raises(error) as info:
        verify_quote(raw, VerifyOptions(collateral=collateral, now=now))
    assert type(info.value) is error
    assert info.value.check == check
    assert "No matching TCB level" not in info.value.message()


def test_tinfoil_collateral_window_edges(vector, tdx_case):
    quote, collateral, _ = tdx_case("tinfoil_v4_agpl").load(vector)
    start = datetime.fromisoformat("2026-01-12T16:03:13Z")
    end = datetime.fromisoformat("2026-02-11T15:46:45Z")
    assert collateral.validity() == (start, end)
    for ok in (start, end):
        verified = verify_quote(quote, VerifyOptions(collateral=collateral, now=ok))
        assert verified.tcb_status == "UpToDate"
    with pytest.raises(SignatureError) as early:
        verify_quote(quote, VerifyOptions(collateral=collateral, now=start - timedelta(seconds=1)))
    assert early.value.check == "collateral.qe_identity"
    with pytest.raises(SignatureError) as late:
        verify_quote(quote, VerifyOptions(collateral=collateral, now=end + timedelta(seconds=1)))
    assert late.value.check == "collateral.tcb_info"


def test_dcapqvl_v4_one_second_after_its_window_fails_on_the_crl(vector, tdx_case):
    quote, collateral, now = tdx_case("dcapqvl_v4_uptodate").load(vector)
    with pytest.raises(SignatureError) as info:
        verify_quote(quote, VerifyOptions(collateral=collateral, now=now + timedelta(seconds=2)))
    assert info.value.check == "collateral.crl.freshness"
    assert "2025-07-19T10:00:35Z" in info.value.message()  # dcap-qvl's times made readable


def test_default_time_is_now(vector, uptodate_case):
    # Without `now`, today's clock applies, and this 2025 collateral has long expired.
    quote, collateral, _ = uptodate_case.load(vector)
    _, valid_until = collateral.validity()
    if datetime.now(UTC) <= valid_until:
        pytest.skip("the vector's collateral is still fresh on this machine's clock")
    with pytest.raises(SignatureError):
        verify_quote(quote, VerifyOptions(collateral=collateral))


def test_naive_time_is_utc_as_for_snp(vector, uptodate_case):
    # One time rule for every TEE (attestation._internal.clock): a naive time is UTC.
    quote, collateral, now = uptodate_case.load(vector)
    naive = now.astimezone(UTC).replace(tzinfo=None)
    verified = verify_quote(quote, VerifyOptions(collateral=collateral, now=naive))
    assert verified.verified_at == now


def test_another_trusted_root_rejects_genuine_quotes(vector, uptodate_case):
    quote, collateral, now = uptodate_case.load(vector)
    intermediate = quote.signature_data.certification.pck_cert_chain[1]
    options = VerifyOptions(collateral=collateral, now=now, trusted_root_der=intermediate)
    with pytest.raises(SignatureError) as info:
        verify_quote(quote, options)
    assert info.value.check == "pck_chain.root"
    assert info.value.expected == hashlib.sha256(intermediate).hexdigest()


def test_collateral_for_another_platform_is_refused(vector):
    quote = abi.parse_quote(vector("tdx/tinfoil_v4_agpl/quote.bin").read_bytes())
    with pytest.raises(UsageError) as info:
        load_collateral(vector("tdx/dcapqvl_v4_uptodate/collateral.json"), fmspc="90c06f000000")
    assert info.value.check == "collateral.fmspc"
    assert info.value.expected == "90c06f000000"
    assert info.value.actual == "b0c06f000000"
    # The tinfoil folder also holds another FMSPC's TCB Info; the quote's own is chosen.
    assert collateral_for_quote(vector("tdx/tinfoil_v4_agpl/collateral"), quote).fmspc == (
        "90c06f000000"
    )


def test_mismatched_collateral_fails_in_dcap_qvl_too(vector):
    # Bypassing the reader's FMSPC check, dcap-qvl still refuses the wrong platform's TCB Info.
    quote = abi.parse_quote(vector("tdx/tinfoil_v4_agpl/quote.bin").read_bytes())
    other = load_collateral(vector("tdx/gotdxguest_v4_spr"), fmspc="50806f000000")
    with pytest.raises(SignatureError):
        verify_quote(
            quote,
            VerifyOptions(collateral=other, now=datetime.fromisoformat("2023-07-01T01:00:00Z")),
        )


def _folder_with(vector, tmp_path, tcb_info_chain: str):
    # tinfoil's collateral, but go-tdx-guest's own 2026 v5 TCB Info and the chosen TCB chain.
    for item in vector("tdx/tinfoil_v4_agpl/collateral").iterdir():
        shutil.copy(item, tmp_path / item.name)
    shutil.copy(
        vector("tdx/gotdxguest_v5/tcb_info_90c06f000000.json"),
        tmp_path / "tcb_info_90c06f000000.json",
    )
    shutil.copy(vector(tcb_info_chain), tmp_path / "tcb_info_90c06f000000_chain.txt")
    return tmp_path


def test_gotdxguest_v5_own_tcb_info_with_the_renewed_tcb_signing_cert(vector, tmp_path):
    folder = _folder_with(
        vector, tmp_path, "tdx/tinfoil_v4_agpl/collateral/tcb_info_90c06f000000_chain.txt"
    )
    quote = abi.parse_quote(vector("tdx/gotdxguest_v5/quote.bin").read_bytes())
    collateral = collateral_for_quote(folder, quote)
    assert collateral.tcb_info_fields["issueDate"] == "2026-02-01T14:49:26Z"
    now = datetime.fromisoformat("2026-02-03T01:00:00Z")
    assert verify_quote(quote, VerifyOptions(collateral=collateral, now=now)).tcb_status == (
        "UpToDate"
    )


def test_gotdxguest_v5_with_the_expired_2018_tcb_signing_cert_fails(vector, tmp_path):
    # README: go-tdx-guest's own TCB Signing certificate expired on 2025-05-21; Intel renewed
    # it with the same key. Signed by the same key, but the old certificate is out of date.
    folder = _folder_with(vector, tmp_path, "tdx/gotdxguest_v4_spr/tcb_info_issuer_chain.pem")
    quote = abi.parse_quote(vector("tdx/gotdxguest_v5/quote.bin").read_bytes())
    collateral = collateral_for_quote(folder, quote)
    now = datetime.fromisoformat("2026-02-03T01:00:00Z")
    with pytest.raises(SignatureError) as info:
        verify_quote(quote, VerifyOptions(collateral=collateral, now=now))
    assert info.value.check == "certificate_chain.validity"
    assert "2025-05-21" in info.value.message()


def test_time_before_1970_is_a_usage_error(vector, uptodate_case):
    quote, collateral, _ = uptodate_case.load(vector)
    with pytest.raises(UsageError) as info:
        verify_quote(
            quote, VerifyOptions(collateral=collateral, now=datetime(1960, 1, 1, tzinfo=UTC))
        )
    assert info.value.check == "verification_time"
