"""attestation.tdx.policy: the [tdx] reference values, on a real verified quote."""

from __future__ import annotations

import dataclasses

import pytest

from attestation.errors import PolicyError, UsageError
from attestation.tdx.policy import TdxPolicy, validate_quote


def _with(verified, *, body=None, **changes):
    if body:
        quote = dataclasses.replace(
            verified.quote, body=dataclasses.replace(verified.quote.body, **body)
        )
        changes["quote"] = quote
    return dataclasses.replace(verified, **changes)


def test_defaults_accept_an_uptodate_non_debug_quote(verified_v4):
    policy = TdxPolicy.from_dict({})
    assert policy.accepted_tcb_statuses == ("UpToDate",)
    assert policy.allow_debug is False
    validate_quote(verified_v4, policy)
    assert "mrtd" in policy.unchecked()


def test_defaults_reject_out_of_date_naming_the_check(verified_v4):
    with pytest.raises(PolicyError) as info:
        validate_quote(_with(verified_v4, tcb_status="OutOfDate"), TdxPolicy())
    [violation] = info.value.violations
    assert violation.check == "tcb_status"
    assert "tcb_status: OutOfDate not in [UpToDate]" in info.value.message()
    assert violation.actual == "OutOfDate"


def test_accepted_statuses_are_configurable(verified_v4):
    policy = TdxPolicy.from_dict({"accepted_tcb_statuses": ["UpToDate", "SWHardeningNeeded"]})
    validate_quote(_with(verified_v4, tcb_status="SWHardeningNeeded"), policy)


def test_forbidden_advisory(verified_v4):
    policy = TdxPolicy.from_dict(
        {
            "accepted_tcb_statuses": ["SWHardeningNeeded"],
            "forbidden_advisory_ids": ["INTEL-SA-00615"],
        }
    )
    flagged = _with(
        verified_v4,
        tcb_status="SWHardeningNeeded",
        advisory_ids=("INTEL-SA-00289", "INTEL-SA-00615"),
    )
    with pytest.raises(PolicyError) as info:
        validate_quote(flagged, policy)
    [violation] = info.value.violations
    assert violation.check == "advisory_ids"
    assert "INTEL-SA-00615" in violation.message()
    validate_quote(_with(flagged, advisory_ids=("INTEL-SA-00289",)), policy)


def test_every_measurement_is_checked_and_all_violations_reported(verified_v4):
    body = verified_v4.quote.body
    good = {
        "mrtd": [body.mr_td.hex()],
        "rtmr0": [body.rtmrs[0].hex()],
        "rtmr1": [body.rtmrs[1].hex()],
        "rtmr2": [body.rtmrs[2].hex()],
        "rtmr3": [body.rtmrs[3].hex()],
        "mrseam": [body.mr_seam.hex()],
        "mrconfigid": [body.mr_config_id.hex()],
        "mrowner": [body.mr_owner.hex()],
        "mrownerconfig": [body.mr_owner_config.hex()],
        "td_attributes": [body.td_attributes.hex()],
        "xfam": [body.xfam.hex()],
        "report_data": body.report_data.hex(),
    }
    validate_quote(verified_v4, TdxPolicy.from_dict(good))
    assert TdxPolicy.from_dict(good).unchecked() == []
    assert TdxPolicy.from_dict(good).missing_identity() == []

    def ff(value):
        return [ff(value[0])] if isinstance(value, list) else "ff" * (len(value) // 2)

    wrong = {key: ff(value) for key, value in good.items()}
    with pytest.raises(PolicyError) as info:
        validate_quote(verified_v4, TdxPolicy.from_dict(wrong))
    checks = [v.check for v in info.value.violations]
    assert sorted(checks) == sorted(good)
    mrtd = next(v for v in info.value.violations if v.check == "mrtd")
    assert mrtd.expected == "ff" * 48
    assert mrtd.actual == body.mr_td


def test_allow_list_takes_any_of_several_values(verified_v4):
    body = verified_v4.quote.body
    policy = TdxPolicy.from_dict({"mrtd": ["00" * 48, body.mr_td.hex()], "rtmr3": {"skip": True}})
    validate_quote(verified_v4, policy)
    assert policy.skipped() == ["rtmr3"]
    assert [m.split(":")[0] for m in policy.missing_identity()] == ["rtmr0", "rtmr1", "rtmr2"]


def test_debug_td_is_rejected_by_default(verified_v4):
    attributes = bytearray(verified_v4.quote.body.td_attributes)
    attributes[0] |= 1
    debug = _with(verified_v4, body={"td_attributes": bytes(attributes)})
    with pytest.raises(PolicyError) as info:
        validate_quote(debug, TdxPolicy())
    assert [v.check for v in info.value.violations] == ["td_attributes.debug"]
    validate_quote(debug, TdxPolicy.from_dict({"allow_debug": True}))


def test_min_tcb_evaluation_data_number(verified_v4):
    assert verified_v4.tcb_evaluation_data_number == 17
    validate_quote(verified_v4, TdxPolicy.from_dict({"min_tcb_evaluation_data_number": 17}))
    with pytest.raises(PolicyError) as info:
        validate_quote(verified_v4, TdxPolicy.from_dict({"min_tcb_evaluation_data_number": 18}))
    assert info.value.violations[0].check == "tcb_evaluation_data_number"


@pytest.mark.parametrize(
    ("table", "check"),
    [
        ({"mrdt": ["00" * 48]}, "policy.tdx.mrdt"),  # a typo must not switch a check off
        ({"mrtd": ["00" * 47]}, "policy.tdx.mrtd[0]"),
        ({"mrtd": ["zz"]}, "policy.tdx.mrtd[0]"),
        ({"mrtd": []}, "policy.tdx.mrtd"),
        ({"mrtd": 5}, "policy.tdx.mrtd"),
        ({"xfam": ["00" * 48]}, "policy.tdx.xfam[0]"),
        ({"mrtd": "00" * 48}, "policy.tdx.mrtd"),  # a list, never a bare string
        ({"mrtd": {"skip": False}}, "policy.tdx.mrtd"),
        ({"report_data": "00" * 32}, "policy.tdx.report_data"),
        ({"accepted_tcb_statuses": ["Uptodate"]}, "policy.tdx.accepted_tcb_statuses"),
        ({"accepted_tcb_statuses": ["Revoked"]}, "policy.tdx.accepted_tcb_statuses"),
        ({"accepted_tcb_statuses": []}, "policy.tdx.accepted_tcb_statuses"),
        ({"allow_debug": "no"}, "policy.tdx.allow_debug"),
        ({"min_tcb_evaluation_data_number": -1}, "policy.tdx.min_tcb_evaluation_data_number"),
    ],
)
def test_bad_policy_tables_are_usage_errors(table, check):
    with pytest.raises(UsageError) as info:
        TdxPolicy.from_dict(table)
    assert info.value.check == check


def test_typo_names_the_nearest_key():
    with pytest.raises(UsageError) as info:
        TdxPolicy.from_dict({"rtmr_0": ["00" * 48]})
    assert info.value.expected == "rtmr0"
    assert "did you mean 'rtmr0'" in info.value.message()
