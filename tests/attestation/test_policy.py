"""attestation.policy: the TOML format, strictness, and every SEV-SNP reference-value check."""

from __future__ import annotations

import hashlib
import tomllib

import pytest

from attestation.errors import PolicyError, UsageError
from attestation.policy import Policy, SnpPolicy, validate_report
from attestation.snp.abi import parse_report

FULL_POLICY = """
accept = ["sev-snp"]
allow_simulated = false

[snp]
minimum_report_version = 3
minimum_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }
minimum_launch_tcb = { snp = 1 }
allow_debug = false
allow_migration_agent = false
guest_policy = { smt = true, single_socket = false }
minimum_abi = "0.31"
platform_info = { ecc_enabled = true }
allowed_measurements = ["{m}"]
host_data = "{h}"
id_key_digests = ["{i}"]
family_id = "01000000000000000000000000000000"
image_id = "02000000000000000000000000000000"
vmpl = 0
minimum_guest_svn = 2
allowed_products = ["Genoa", "Turin"]
signing_keys = ["VCEK"]
minimum_firmware = "1.55"
minimum_build = 40

[snp.minimum_tcb_by_product.Genoa]
snp = 23
microcode = 84

[snp.minimum_tcb_by_product.Turin]
fmc = 1
snp = 4
microcode = 81
"""


def _genoa(named_vector):
    return parse_report(named_vector("ms_genoa_v3").report)


def _full_policy_for(report) -> Policy:
    text = (
        FULL_POLICY.replace("{m}", report.measurement.hex())
        .replace("{h}", report.host_data.hex())
        .replace("{i}", report.id_key_digest.hex())
    )
    return Policy.from_dict(tomllib.loads(text))


def test_full_policy_accepts_the_genoa_vector(named_vector):
    report = _genoa(named_vector)
    policy = _full_policy_for(report)
    assert policy.accept == ("sev-snp",) and set(policy.tables) == {"snp"}
    assert policy.skipped() == []
    assert policy.snp.minimum_tcb_for("Genoa")["snp"] == 23
    assert policy.snp.minimum_tcb_for("Milan")["snp"] == 8
    validate_report(report, policy.snp, product="Genoa")


def test_full_policy_against_turin_uses_its_own_minimums(named_vector):
    report = parse_report(named_vector("ms_turin_v5").report)
    policy = _full_policy_for(report)
    # Turin's own SNP level (4) is fine under its product minimum, not under the general 8.
    with pytest.raises(PolicyError) as err:
        validate_report(report, policy.snp, product="Turin")
    checks = {v.check for v in err.value.violations}
    assert "reported_tcb.snp" not in checks
    assert "reported_tcb.bootloader" in checks  # general bootloader 3 > Turin's 1


def test_every_violation_is_reported_at_once(named_vector):
    report = parse_report(named_vector("gosevguest_milan_v2").report)  # debug on, snp 5, v2
    policy = SnpPolicy(
        minimum_report_version=3,
        minimum_tcb={"snp": 8, "bootloader": 3},
        allowed_measurements=(b"\x00" * 48,),
        vmpl=1,
    )
    with pytest.raises(PolicyError) as err:
        validate_report(report, policy)
    lines = [v.message() for v in err.value.violations]
    assert "reported_tcb.snp: 5 < required 8 (expected >= 8, got 5)" in lines
    assert "reported_tcb.bootloader: 2 < required 3 (expected >= 3, got 2)" in lines
    assert any(line.startswith("policy.debug:") for line in lines)
    assert any(line.startswith("report_version: 2 < required 3") for line in lines)
    assert any(line.startswith("measurement: value not in the allowed list") for line in lines)
    assert any(line.startswith("vmpl:") and "expected 1, got 0" in line for line in lines)
    assert len(lines) == 6
    for violation in err.value.violations:
        assert violation.expected is not None and violation.actual is not None
        assert "\n" not in violation.message()


def test_debug_and_migration_agent_forbidden_by_default(snp_sim):
    debug_report = parse_report(snp_sim.report(bytes(64), policy=0x30000 | 1 << 19))
    with pytest.raises(PolicyError) as err:
        validate_report(debug_report, SnpPolicy())
    assert [v.check for v in err.value.violations] == ["policy.debug"]
    validate_report(debug_report, SnpPolicy(allow_debug=True))

    ma_report = parse_report(snp_sim.report(bytes(64), policy=0x30000 | 1 << 18))
    with pytest.raises(PolicyError) as err:
        validate_report(ma_report, SnpPolicy())
    assert [v.check for v in err.value.violations] == ["policy.migrate_ma"]
    validate_report(ma_report, SnpPolicy(allow_migration_agent=True))


def test_guest_policy_and_platform_flags(snp_sim):
    report = parse_report(snp_sim.report(bytes(64), policy=0x30000))  # SMT allowed
    with pytest.raises(PolicyError) as err:
        validate_report(
            report, SnpPolicy(guest_policy={"smt": False}, platform_info={"tsme_enabled": True})
        )
    assert {v.check for v in err.value.violations} == {"policy.smt", "platform_info.tsme_enabled"}
    validate_report(report, SnpPolicy(guest_policy={"smt": True, "single_socket": False}))


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("host_data", bytes(32), b"\x01" * 32),
        ("family_id", bytes(16), b"\x01" * 16),
        ("image_id", bytes(16), b"\x01" * 16),
        ("report_data", b"\x07" * 64, b"\x08" * 64),
    ],
)
def test_exact_byte_fields(snp_sim, field, good, bad):
    report = parse_report(snp_sim.report(b"\x07" * 64))
    validate_report(report, SnpPolicy(**{field: good}))
    with pytest.raises(PolicyError) as err:
        validate_report(report, SnpPolicy(**{field: bad}))
    (violation,) = err.value.violations
    assert violation.check == field
    assert violation.expected == bad.hex() and violation.actual == good.hex()


def test_id_and_author_key_digests(snp_sim):
    report = parse_report(snp_sim.report(bytes(64)))
    validate_report(report, SnpPolicy(id_key_digests=(bytes(48),), author_key_digests=(bytes(48),)))
    with pytest.raises(PolicyError, match="id_key_digest"):
        validate_report(report, SnpPolicy(id_key_digests=(b"\x01" * 48,)))
    with pytest.raises(PolicyError, match="author_key_digest"):
        validate_report(report, SnpPolicy(author_key_digests=()))


def test_fmc_minimum_applies_only_to_turin_layout(named_vector):
    milan = parse_report(named_vector("ms_milan_v3").report)
    validate_report(milan, SnpPolicy(minimum_tcb={"fmc": 5}))
    turin = parse_report(named_vector("ms_turin_v5").report)
    with pytest.raises(PolicyError, match=r"reported_tcb.fmc: 1 < required 5"):
        validate_report(turin, SnpPolicy(minimum_tcb={"fmc": 5}))


def test_product_signing_key_chip_id_firmware(named_vector):
    report = parse_report(named_vector("trustee_milan_v3_vlek").report)
    policy = SnpPolicy(
        allowed_products=("Genoa",),
        signing_keys=("VCEK",),
        allowed_chip_ids=(b"\x01" * 64,),
        minimum_firmware=(1, 56),
        minimum_build=99,
        minimum_guest_svn=1,
        minimum_abi=(1, 0),
    )
    with pytest.raises(PolicyError) as err:
        validate_report(report, policy, product="Milan")
    assert {v.check for v in err.value.violations} == {
        "product",
        "signing_key",
        "chip_id",
        "firmware_version",
        "firmware_build",
        "guest_svn",
        "policy.abi",
    }


@pytest.mark.parametrize(
    ("toml", "check"),
    [
        ("[snp]\nallow_debugg = true", "policy.snp.allow_debugg"),
        ("[snp]\nminimum_tcb = { snpp = 8 }", "policy.snp.minimum_tcb.snpp"),
        ("[snp]\nminimum_tcb = { snp = 256 }", "policy.snp.minimum_tcb.snp"),
        ("[snp]\nminimum_tcb = { snp = true }", "policy.snp.minimum_tcb.snp"),
        (
            "[snp.minimum_tcb_by_product.Genoa]\nsnp = 23\nallow_debug = false",
            "policy.snp.minimum_tcb_by_product.Genoa.allow_debug",
        ),
        ("[snp.minimum_tcb_by_product.Rome]\nsnp = 1", "policy.snp.minimum_tcb_by_product.Rome"),
        ('[snp]\nallowed_measurements = ["abcd"]', "policy.snp.allowed_measurements[0]"),
        ('[snp]\nallowed_measurements = "' + "00" * 48 + '"', "policy.snp.allowed_measurements"),
        ('[snp]\nhost_data = "zz"', "policy.snp.host_data"),
        ("[snp]\nguest_policy = { debug = false }", "policy.snp.guest_policy.debug"),
        ("[snp]\nguest_policy = { smtt = false }", "policy.snp.guest_policy.smtt"),
        ("[snp]\nplatform_info = { ecc = true }", "policy.snp.platform_info.ecc"),
        ("[snp]\nvmpl = 4", "policy.snp.vmpl"),
        ('[snp]\nminimum_firmware = "1"', "policy.snp.minimum_firmware"),
        ('[snp]\nsigning_keys = ["VCEKK"]', "policy.snp.signing_keys"),
        ('[snp]\nallow_debug = "no"', "policy.snp.allow_debug"),
        ('allow_simulated = "yes"', "policy.allow_simulated"),
        ("allow_simulatd = true", "policy.allow_simulatd"),
        ('simulated_ark_sha256 = ["00"]', "policy.simulated_ark_sha256[0]"),
        ("snp = 3", "policy.snp"),
    ],
)
def test_malformed_policy_fail(toml, check):
    with pytest.raises(UsageError) as err:
        Policy.from_dict(tomllib.loads(toml))
    assert err.value.check == check


def test_defaults_are_safe():
    policy = Policy.from_dict({"accept": ["sev-snp"], "snp": {"allowed_measurements": ["00" * 48]}})
    assert policy.allow_simulated is False
    assert policy.snp.allow_debug is False and policy.snp.allow_migration_agent is False
    assert policy.snp.require_crl is False


def test_load_from_file(tmp_path):
    path = tmp_path / "policy.toml"
    fp = hashlib.sha256(b"root").hexdigest()
    path.write_text(
        f'accept = ["sev-snp"]\nallow_simulated = true\nsimulated_ark_sha256 = ["{fp.upper()}"]\n'
        "[snp]\nvmpl = 0\nallowed_measurements = { skip = true }\n"
    )
    policy = Policy.load(path)
    assert policy.allow_simulated and policy.simulated_ark_sha256 == (fp,)
    assert policy.snp.vmpl == 0
    assert policy.skipped() == ["snp.allowed_measurements"]
    with pytest.raises(UsageError, match=r"policy\.file"):
        Policy.load(tmp_path / "missing.toml")
    path.write_text("[snp\n")
    with pytest.raises(UsageError, match=r"policy\.toml"):
        Policy.load(path)
