"""The party policy fails closed: each test is a policy an attacker (or a typo) would love
the verifier to accept, and the exact error that refuses it (issue 11 part 1)."""

from __future__ import annotations

import tomllib

import pytest

from attestation.errors import PolicyError, UsageError
from attestation.policy import SKIP, Policy, SnpPolicy, parse_policy_document
from attestation.snp.simulate import DEFAULT_MEASUREMENT, SimulatedSnp
from attestation.tdx.policy import TdxPolicy
from attestation.tee import Tee
from attestation.verifier import SnpInputs, verify_evidence

M = "00" * 48
ROOT = "11" * 32
SNP_PINNED = f'accept = ["sev-snp"]\n[snp]\nallowed_measurements = ["{M}"]\n'


def _load(text: str) -> Policy:
    return Policy.from_dict(tomllib.loads(text))


def _refused(text: str) -> UsageError:
    with pytest.raises(UsageError) as info:
        _load(text)
    return info.value


# -- unknown names, anywhere ---------------------------------------------------------------


def test_mistyped_table_is_refused_with_the_nearest_name():
    # `[SNP]` used to land in Policy.extra and drop the measurement pin silently.
    err = _refused(f'accept = ["sev-snp"]\n[SNP]\nallowed_measurements = ["{M}"]\n')
    assert err.check == "policy.SNP"
    assert err.expected == "snp"
    assert "unknown table 'SNP'" in err.message() and "did you mean 'snp'?" in err.message()


@pytest.mark.parametrize(
    ("text", "check", "nearest"),
    [
        ('acept = ["sev-snp"]\n', "policy.acept", "accept"),
        (SNP_PINNED + "allowed_measurement = []\n", "policy.snp.allowed_measurement", None),
        (SNP_PINNED + "minimum_tcb = { snpp = 8 }\n", "policy.snp.minimum_tcb.snpp", "snp"),
        (SNP_PINNED + "require_crll = true\n", "policy.snp.require_crll", "require_crl"),
        (SNP_PINNED + "[modle]\nroot_digest = 'x'\n", "policy.modle", None),
    ],
)
def test_unknown_names_anywhere_fail(text, check, nearest):
    err = _refused(text)
    assert err.check == check
    if nearest is not None:
        assert err.expected == nearest


@pytest.mark.parametrize(
    ("text", "check", "nearest"),
    [
        ('accept = ["az-snp-vtpm"]\n[azure]\npcr = { skip = true }\n', "policy.azure.pcr", "pcrs"),
        ('accept = ["az-snp-vtpm"]\n[azure]\npcrs = { skip = true }\n[azure.snp]\n'
         "allowed_measurement = []\n", "policy.azure.snp.allowed_measurement",
         "allowed_measurements"),
        ('accept = ["az-snp-vtpm"]\n[azure]\npcrs = { skip = true }\n[azure.snp]\n'
         "allowed_measurements = []\n", "policy.azure.snp.allowed_measurements", None),
        (SNP_PINNED.replace('["sev-snp"]', '["sev-snp", "nvidia-gpu"]')
         + "[gpu]\nrim = { skip = true }\n", "policy.gpu.rim", "rims"),
    ],
)  # fmt: skip
def test_azure_and_gpu_tables_are_as_strict_at_load(text, check, nearest):
    err = _refused(text)
    assert err.check == check
    if nearest is not None:
        assert err.expected == nearest


def test_unknown_tdx_key_names_the_nearest():
    with pytest.raises(UsageError) as info:
        TdxPolicy.from_dict({"mrtd_": [M]})
    assert (info.value.check, info.value.expected) == ("policy.tdx.mrtd_", "mrtd")


# -- the TEEs the policy accepts -----------------------------------------------------------


def test_accept_is_required_and_says_how_to_pin_or_skip():
    # A policy of the previous release: simulated root and model pinned, no measurement.
    err = _refused(f'allow_simulated = true\nsimulated_ark_sha256 = ["{ROOT}"]\n')
    assert err.check == "policy.accept"
    message = err.message()
    assert 'accept = ["sev-snp"]' in message
    assert "tcme measure snp" in message and "{ skip = true }" in message


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("accept = []\n", "policy.accept"),
        ('accept = "sev-snp"\n', "policy.accept"),
        ('accept = ["sev-snp", "sev-snp"]\n[snp]\nallowed_measurements = { skip = true }\n',
         "policy.accept"),
        ('accept = ["nvidia-gpu"]\n', "policy.accept"),
    ],
)  # fmt: skip
def test_bad_accept_lists_fail(text, check):
    assert _refused(text).check == check


def test_unknown_kind_names_the_nearest():
    err = _refused('accept = ["sev_snp"]\n')
    assert err.check == "policy.accept[0]"
    assert "did you mean 'sev-snp'" in err.message()


def test_table_of_a_kind_not_accepted_fail():
    # [tdx] with accept = ["sev-snp"]: the author meant something; refuse, never ignore.
    err = _refused(SNP_PINNED + f'[tdx]\nmrtd = ["{M}"]\n')
    assert err.check == "policy.tdx"
    assert "accept" in err.message()


def test_accepted_kind_without_its_table_fail():
    err = _refused('accept = ["tdx"]\n')
    assert err.check == "policy.tdx"
    assert "mrtd" in str(err.expected)


# -- launch identity: pinned, or skipped explicitly ----------------------------------------


def test_snp_without_measurement_fail():
    err = _refused('accept = ["sev-snp"]\n[snp]\nminimum_tcb = { snp = 8 }\n')
    assert err.check == "policy.snp.allowed_measurements"
    assert "tcme measure snp" in err.message() and "{ skip = true }" in err.message()


@pytest.mark.parametrize("missing", ["mrtd", "rtmr0", "rtmr1", "rtmr2"])
def test_tdx_without_each_launch_register_fail(missing):
    registers = {"mrtd": [M], "rtmr0": [M], "rtmr1": [M], "rtmr2": [M]}
    del registers[missing]
    with pytest.raises(UsageError) as info:
        Policy.from_dict({"accept": ["tdx"], "tdx": registers})
    assert info.value.check == f"policy.tdx.{missing}"
    assert "tcme measure tdx" in info.value.message()


@pytest.mark.parametrize(
    "value",
    ["[]", "{ skip = false }", "{ skip = true, why = 'x' }", f'"{M}"', "{}"],
)
def test_empty_list_or_half_skip_is_not_a_wildcard_fail(value):
    err = _refused(f'accept = ["sev-snp"]\n[snp]\nallowed_measurements = {value}\n')
    assert err.check == "policy.snp.allowed_measurements"
    if value == "[]":
        assert "not a wildcard" in err.message()


def test_explicit_skip_is_kept_and_listed():
    policy = _load('accept = ["sev-snp"]\n[snp]\nallowed_measurements = { skip = true }\n')
    assert policy.snp.allowed_measurements is SKIP
    assert policy.skipped() == ["snp.allowed_measurements"]
    assert policy.skipped(Tee.TDX) == []


def test_policy_built_in_code_fails_closed_too():
    # No code path builds a measurement-less policy: the rule is the constructor's.
    with pytest.raises(UsageError) as info:
        Policy(accept=(Tee.SEV_SNP,), tables={"snp": SnpPolicy()})
    assert info.value.check == "policy.snp.allowed_measurements"
    with pytest.raises(UsageError):
        Policy(accept=(Tee.SEV_SNP,))


# -- simulated evidence needs its root pinned ------------------------------------------------


def test_allow_simulated_without_root_fail():
    err = _refused("allow_simulated = true\n" + SNP_PINNED)
    assert err.check == "policy.simulated_ark_sha256"
    assert "impersonate" in err.message()


def test_simulated_root_without_allow_simulated_fail():
    assert _refused(f'simulated_ark_sha256 = ["{ROOT}"]\n' + SNP_PINNED).check == (
        "policy.simulated_ark_sha256"
    )


def test_stranger_simulated_chain_is_refused_by_a_pinned_policy(tmp_path):
    # Anyone can make a simulated chain; only the pinned one is accepted.
    operator = SimulatedSnp(tmp_path / "operator")
    stranger = SimulatedSnp(tmp_path / "stranger")
    policy = Policy.from_dict(
        {
            "accept": ["sev-snp"],
            "allow_simulated": True,
            "simulated_ark_sha256": [operator.ark_sha256],
            "snp": {"allowed_measurements": [DEFAULT_MEASUREMENT.hex()]},
        }
    )
    verify_evidence(
        operator.report(bytes(64)), policy=policy, inputs=[SnpInputs(certs=operator.certs_pem())]
    )
    with pytest.raises(PolicyError) as info:
        verify_evidence(
            stranger.report(bytes(64)),
            policy=policy,
            inputs=[SnpInputs(certs=stranger.certs_pem())],
        )
    assert info.value.check == "simulated_ark_sha256"


# -- a MITM guest on the same hardware --------------------------------------------------------


def test_mitm_guest_on_the_same_hardware_is_refused_by_its_measurement(tmp_path):
    # Same (simulated) hardware root, attacker's own image: only the measurement differs.
    hardware = SimulatedSnp(tmp_path / "host")
    mitm_measurement = bytes.fromhex("66" * 48)
    policy = Policy.from_dict(
        {
            "accept": ["sev-snp"],
            "allow_simulated": True,
            "simulated_ark_sha256": [hardware.ark_sha256],
            "snp": {"allowed_measurements": [DEFAULT_MEASUREMENT.hex()]},
        }
    )
    with pytest.raises(PolicyError) as info:
        verify_evidence(
            hardware.report(bytes(64), measurement=mitm_measurement),
            policy=policy,
            inputs=[SnpInputs(certs=hardware.certs_pem())],
        )
    (violation,) = info.value.violations
    assert violation.check == "measurement"
    assert violation.actual == mitm_measurement.hex()


# -- kds_cache and require_crl -----------------------------------------------------------------


def test_require_crl_needs_the_partys_own_cache_fail():
    assert _refused(SNP_PINNED + "require_crl = true\n").check == "policy.snp.kds_cache"


def test_kds_cache_is_relative_to_the_policy_file(tmp_path):
    data = tomllib.loads(SNP_PINNED + 'require_crl = true\nkds_cache = "kds"\n')
    policy, _ = parse_policy_document(data, base=tmp_path)
    assert policy.snp.kds_cache == tmp_path / "kds"
