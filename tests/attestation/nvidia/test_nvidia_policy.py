"""The ``[gpu]`` table: strict parsing, fail-closed RIM choice, every rule on real systems."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from attestation.errors import PolicyError, UsageError
from attestation.nvidia.policy import GpuPolicy, validate_system, version_key
from attestation.nvidia.rim import match_measurements, verify_rim
from attestation.nvidia.verify import VerifiedSystem, verify_device_evidence, verify_system

AT = datetime(2025, 10, 1, tzinfo=UTC)
SKIP = {"rims": {"skip": True}}
CC_ON = {"cc_mode": "on", "devtools": False}


def _checks(err) -> set[str]:
    return {v.check for v in err.value.violations}


@pytest.mark.parametrize(
    ("table", "check"),
    [
        ({}, "policy.gpu.rims"),
        ({"rims": {"required": False}}, "policy.gpu.rims"),
        ({"rims": {"required": True, "url": "x"}}, "policy.gpu.rims.url"),
        ({"rims": {"required": True, "sha384": ["ab"]}}, "policy.gpu.rims.sha384"),
        ({**SKIP, "cc_mode": "off"}, "policy.gpu.cc_mode"),
        ({**SKIP, "debug": True}, "policy.gpu.debug"),
        ({**SKIP, "count": 0}, "policy.gpu.count"),
        ({**SKIP, "architectures": ["AMPERE"]}, "policy.gpu.architectures"),
        ({**SKIP, "min_driver_version": "five"}, "policy.gpu.min_driver_version"),
        ({**SKIP, "requird": True}, "policy.gpu.requird"),
    ],
)
def test_bad_tables_fail(table, check):
    with pytest.raises(UsageError) as err:
        GpuPolicy.from_dict(table)
    assert err.value.check == check


def test_versions_compare_numerically():
    assert version_key("550.90.07") > version_key("535.86.09")
    assert version_key("96.00.9f.00.01") > version_key("96.00.5e.00.01")  # VBIOS parts are hex
    assert version_key("580.159.03") > version_key("580.95.05")


def test_ppcie_system_meets_a_strict_policy(ppcie):
    devices, nonce = ppcie
    system = verify_system(devices, nonce=nonce, at=AT)
    policy = GpuPolicy.from_dict(
        {
            **SKIP,
            "count": 8,
            "architectures": ["HOPPER"],
            "protected_pcie": True,
            "min_driver_version": "590.12",
            "min_vbios_version": "96.00.a5.00.01",
        }
    )
    validate_system(system, policy, claimed=CC_ON)


def test_every_violation_is_listed(ppcie):
    devices, nonce = ppcie
    system = verify_system(devices, nonce=nonce, at=AT)
    policy = GpuPolicy.from_dict(
        {**SKIP, "count": 4, "architectures": ["BLACKWELL"], "min_driver_version": "600.0"}
    )
    with pytest.raises(PolicyError) as err:
        validate_system(system, policy, claimed={"cc_mode": "off", "devtools": True})
    checks = _checks(err)
    assert {
        "gpu.count",
        "gpu.cc_mode",
        "gpu.debug",
        "gpu[0].arch",
        "gpu[7].driver_version",
    } <= checks


def test_required_gpu_absent_fail():
    with pytest.raises(PolicyError) as err:
        validate_system(None, GpuPolicy.from_dict(SKIP))
    assert err.value.check == "gpu.required"
    validate_system(None, GpuPolicy.from_dict({**SKIP, "required": False}))


def test_old_driver_without_fwid_fail_unless_allowed(named_gpu):
    vector = named_gpu("nvsdk_gh100_535_86_rims")
    device = verify_device_evidence(vector.evidence, nonce=vector.nonce, at=AT)
    system = VerifiedSystem(gpus=(device,), switches=(), protected_pcie=False)
    with pytest.raises(PolicyError) as err:
        validate_system(system, GpuPolicy.from_dict(SKIP), claimed=CC_ON)
    assert _checks(err) == {"gpu[0].fwid"}
    validate_system(system, GpuPolicy.from_dict({**SKIP, "require_fwid": False}), claimed=CC_ON)


def test_rims_required_reports_mismatch_and_uncovered(vectors, named_gpu):
    vector = named_gpu("nvsdk_gh100_535_86_rims")
    at = datetime(2024, 6, 1, tzinfo=UTC)
    device = verify_device_evidence(vector.evidence, nonce=vector.nonce, at=at)
    folder = vectors / "nvidia/nvsdk_gh100_535_86_rims"
    rim = verify_rim((folder / "vbios_rim_96.00.5E.00.01_2023-12.xml").read_bytes(), at=at)
    match = match_measurements(device.report, [rim], chip="GH100")
    system = VerifiedSystem(gpus=(device,), switches=(), protected_pcie=False)
    policy = GpuPolicy.from_dict({"rims": {"required": True}, "require_fwid": False})
    with pytest.raises(PolicyError) as err:
        validate_system(system, policy, matches=[match], claimed=CC_ON)
    violation = err.value.violations[0]
    assert violation.check == "gpu[0].measurements"
    assert "[10]" in str(violation.actual)  # SPDM block 10 = RIM index 9
    with pytest.raises(PolicyError) as err:
        validate_system(system, policy, matches=[None], claimed=CC_ON)
    assert _checks(err) == {"gpu[0].rims"}
