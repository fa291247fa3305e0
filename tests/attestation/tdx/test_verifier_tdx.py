"""attestation.verifier.verify_evidence on TDX quotes: the one entry point every party calls."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest

from attestation.errors import BindingError, PolicyError, UsageError
from attestation.policy import Policy
from attestation.tdx.abi import Quote, parse_quote
from attestation.tdx.collateral import TdxCollateral
from attestation.tdx.verify import INTEL_SGX_ROOT_CA_SHA256
from attestation.verifier import TdxInputs, detect_evidence_type, verify_evidence

V4 = "tdx/dcapqvl_v4_uptodate"
AT = datetime.fromisoformat("2025-07-19T10:00:34Z")


@pytest.fixture
def quote(vector) -> bytes:
    return vector(f"{V4}/quote.bin").read_bytes()


def test_verified_evidence_for_tdx(vector, quote):
    result = verify_evidence(
        quote,
        policy=Policy.unsafe_authenticity_only(),
        at=AT,
        inputs=[TdxInputs(collateral=vector(f"{V4}/collateral.json"))],
    )
    assert (result.tee, result.simulated, result.product) == ("tdx", False, "TDX")
    assert isinstance(result.report, Quote)
    assert result.report_data == result.report.body.report_data and len(result.report_data) == 64
    assert result.measurement == result.report.body.mr_td and len(result.measurement) == 48
    assert result.tcb["tcb_status"] == "UpToDate"
    assert result.tcb["advisory_ids"] == []
    assert result.root_sha256 == INTEL_SGX_ROOT_CA_SHA256
    assert result.verified_at == AT
    summary = result.summary()
    assert summary["td_report"]["mr_td"] == result.measurement.hex()
    assert "SIMULATED" not in result.verdict


@pytest.mark.parametrize("form", ["path", "str", "json_bytes", "json_str", "object"])
def test_collateral_forms(vector, quote, form):
    path = vector(f"{V4}/collateral.json")
    collateral = {
        "path": path,
        "str": str(path),
        "json_bytes": path.read_bytes(),
        "json_str": path.read_text(),
        "object": TdxCollateral.from_json(path.read_text()),
    }[form]
    result = verify_evidence(
        quote,
        policy=Policy.unsafe_authenticity_only(),
        at=AT,
        inputs=[TdxInputs(collateral=collateral)],
    )
    assert result.tcb["fmspc"] == "b0c06f000000"


def test_base64_quote(vector, quote):
    encoded = base64.b64encode(quote)
    assert detect_evidence_type(encoded) == "tdx"
    result = verify_evidence(
        encoded,
        policy=Policy.unsafe_authenticity_only(),
        at=AT,
        inputs=[TdxInputs(collateral=vector(f"{V4}/collateral.json"))],
    )
    assert result.report.raw == quote


def test_tdx_table_of_the_policy_applies(vector, quote):
    skip = {"skip": True}
    policy = Policy.from_dict(
        {
            "accept": ["tdx"],
            "tdx": {
                "mrtd": ["00" * 48],
                "rtmr0": skip,
                "rtmr1": skip,
                "rtmr2": skip,
                "xfam": ["00" * 8],
            },
        }
    )
    with pytest.raises(PolicyError) as info:
        verify_evidence(
            quote,
            policy=policy,
            at=AT,
            inputs=[TdxInputs(collateral=vector(f"{V4}/collateral.json"))],
        )
    assert [v.check for v in info.value.violations] == ["mrtd", "xfam"]


def test_binding(vector, quote):
    collateral = vector(f"{V4}/collateral.json")
    good = quote[48 + 0x208 : 48 + 0x248]  # REPORTDATA of a v4 TD report
    verify_evidence(
        quote,
        policy=Policy.unsafe_authenticity_only(),
        at=AT,
        expected_report_data=good,
        inputs=[TdxInputs(collateral=collateral)],
    )
    with pytest.raises(BindingError):
        verify_evidence(
            quote,
            policy=Policy.unsafe_authenticity_only(),
            at=AT,
            expected_report_data=bytes(64),
            inputs=[TdxInputs(collateral=collateral)],
        )


def test_no_collateral_is_a_usage_error(quote):
    with pytest.raises(UsageError) as info:
        verify_evidence(quote, policy=Policy.unsafe_authenticity_only(), at=AT)
    assert info.value.check == "collateral"


def test_genuine_tdx_quote_vs_snp_only_policy_fail(vector, quote):
    # The attack: a party pins only its SEV-SNP measurement; a hostile proxy answers with a
    # genuine TDX quote from an unrelated TD. The kind comes from the bytes, so only the
    # policy's accept list can stop it, before any TDX check runs.
    snp_only = Policy.from_dict(
        {"accept": ["sev-snp"], "snp": {"allowed_measurements": ["00" * 48]}}
    )
    with pytest.raises(PolicyError) as info:
        verify_evidence(
            quote,
            policy=snp_only,
            at=AT,
            inputs=[TdxInputs(collateral=vector(f"{V4}/collateral.json"))],
        )
    assert info.value.check == "tee.accept"
    assert (info.value.expected, info.value.actual) == ("one of sev-snp", "tdx")
    assert "TDX evidence, but the policy accepts only sev-snp" in info.value.message()


def test_tdx_launch_identity_pinned_accepts_the_real_quote(vector, quote):
    body = parse_quote(quote).body
    policy = Policy.from_dict(
        {
            "accept": ["tdx"],
            "tdx": {
                "mrtd": [body.mr_td.hex()],
                **{f"rtmr{i}": [body.rtmrs[i].hex()] for i in range(3)},
            },
        }
    )
    result = verify_evidence(
        quote, policy=policy, at=AT, inputs=[TdxInputs(collateral=vector(f"{V4}/collateral.json"))]
    )
    assert result.tee == "tdx" and result.skipped == () and result.reference_values_checked
