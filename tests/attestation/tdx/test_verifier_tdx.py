"""attestation.verifier.verify_evidence on TDX quotes: the one entry point every party calls."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest

from attestation.errors import BindingError, PolicyError, UsageError
from attestation.policy import Policy
from attestation.tdx.abi import Quote
from attestation.tdx.collateral import TdxCollateral
from attestation.tdx.verify import INTEL_SGX_ROOT_CA_SHA256
from attestation.verifier import detect_evidence_type, verify_evidence

V4 = "tdx/dcapqvl_v4_uptodate"
AT = datetime.fromisoformat("2025-07-19T10:00:34Z")


@pytest.fixture
def quote(vector) -> bytes:
    return vector(f"{V4}/quote.bin").read_bytes()


def test_verified_evidence_for_tdx(vector, quote):
    result = verify_evidence(
        quote, policy=Policy(), collateral=vector(f"{V4}/collateral.json"), at=AT
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
    result = verify_evidence(quote, policy=Policy(), collateral=collateral, at=AT)
    assert result.tcb["fmspc"] == "b0c06f000000"


def test_base64_quote(vector, quote):
    encoded = base64.b64encode(quote)
    assert detect_evidence_type(encoded) == "tdx"
    result = verify_evidence(
        encoded, policy=Policy(), collateral=vector(f"{V4}/collateral.json"), at=AT
    )
    assert result.report.raw == quote


def test_tdx_table_of_the_policy_applies(vector, quote):
    policy = Policy.from_dict({"tdx": {"mrtd": ["00" * 48], "xfam": ["00" * 8]}})
    with pytest.raises(PolicyError) as info:
        verify_evidence(quote, policy=policy, collateral=vector(f"{V4}/collateral.json"), at=AT)
    assert [v.check for v in info.value.violations] == ["mrtd", "xfam"]


def test_binding(vector, quote):
    collateral = vector(f"{V4}/collateral.json")
    good = quote[48 + 0x208 : 48 + 0x248]  # REPORTDATA of a v4 TD report
    verify_evidence(quote, policy=Policy(), collateral=collateral, at=AT, expected_report_data=good)
    with pytest.raises(BindingError):
        verify_evidence(
            quote, policy=Policy(), collateral=collateral, at=AT, expected_report_data=bytes(64)
        )


def test_no_collateral_is_a_usage_error(quote):
    with pytest.raises(UsageError) as info:
        verify_evidence(quote, policy=Policy(), at=AT)
    assert info.value.check == "collateral"


def test_wrong_product_is_refused(vector, quote):
    with pytest.raises(PolicyError) as info:
        verify_evidence(
            quote,
            policy=Policy(),
            collateral=vector(f"{V4}/collateral.json"),
            at=AT,
            product="Milan",
        )
    assert info.value.check == "product"
