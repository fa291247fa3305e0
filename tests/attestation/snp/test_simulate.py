"""Simulated SEV-SNP: byte-exact reports, SIMULATED names, accepted only when the policy
says allow_simulated, never as genuine AMD evidence."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta

import pytest

from attestation.errors import PolicyError, SignatureError, UsageError
from attestation.policy import SKIP, Policy, SnpPolicy
from attestation.providers.base import EvidenceProvider
from attestation.providers.errors import ProviderError
from attestation.providers.simulated import SimulatedSnpProvider
from attestation.snp import _x509
from attestation.snp.abi import REPORT_SIZE, parse_report
from attestation.snp.simulate import SimulatedSnp
from attestation.tee import Tee
from attestation.verifier import SnpInputs, verify_evidence

NOT_PINNED = "00" * 32  # a simulated root no test creates


def _allow(*roots: str) -> Policy:
    """Simulated evidence from ``roots`` only; the measurement is skipped (not under test)."""
    return Policy(
        accept=(Tee.SEV_SNP,),
        tables={"snp": SnpPolicy(allowed_measurements=SKIP)},
        allow_simulated=True,
        simulated_ark_sha256=roots,
    )


REPORT_DATA = bytes(range(64))


@pytest.mark.parametrize("version", [2, 3, 5])
def test_report_is_byte_exact_and_carries_the_callers_values(snp_sim, version):
    measurement = hashlib.sha384(b"my runtime").digest()
    host_data = b"\x42" * 32
    raw = snp_sim.report(
        REPORT_DATA,
        measurement=measurement,
        policy=0x30000,
        version=version,
        vmpl=2,
        host_data=host_data,
    )
    assert len(raw) == REPORT_SIZE
    report = parse_report(raw)
    assert report.to_bytes() == raw
    assert report.version == version
    assert report.report_data == REPORT_DATA
    assert report.measurement == measurement
    assert report.host_data == host_data
    assert report.policy == 0x30000 and report.vmpl == 2
    assert report.chip_id == snp_sim.chip_id
    assert report.reported_tcb == snp_sim.tcb
    assert (report.launch_mit_vector is not None) == (version >= 5)


def test_subjects_say_simulated(snp_sim):
    certs = [_x509.load_certificate_der(d) for d in _x509.split_certificates(snp_sim.certs_pem())]
    assert len(certs) == 3  # VCEK, ASK, ARK
    for cert in certs:
        assert "SIMULATED" in cert.subject.rfc4514_string()
    assert _x509.fingerprint(certs[2]) == snp_sim.ark_sha256


def test_reload_keeps_the_same_chain(snp_sim):
    again = SimulatedSnp(snp_sim.directory)
    assert again.ark_sha256 == snp_sim.ark_sha256
    assert again.certs_pem() == snp_sim.certs_pem()
    verify_evidence(
        again.report(REPORT_DATA),
        policy=_allow(snp_sim.ark_sha256),
        inputs=[SnpInputs(certs=snp_sim.certs_pem())],
    )


def test_private_keys_are_not_world_readable(snp_sim):
    for key in (snp_sim.directory / "private").iterdir():
        assert key.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("version", [3, 5])
def test_accepted_with_allow_simulated(snp_sim, version):
    raw = snp_sim.report(REPORT_DATA, version=version)
    result = verify_evidence(
        raw,
        policy=_allow(snp_sim.ark_sha256),
        expected_report_data=REPORT_DATA,
        inputs=[SnpInputs(certs=snp_sim.certs_pem())],
    )
    assert result.simulated is True
    assert result.product == "SIMULATED"
    assert "SIMULATED" in result.verdict
    assert result.summary()["simulated"] is True
    assert "SIMULATED" in result.summary()["verdict"]


def test_rejected_without_allow_simulated_fail(snp_sim):
    with pytest.raises(PolicyError) as err:
        verify_evidence(
            snp_sim.report(REPORT_DATA),
            policy=Policy.unsafe_authenticity_only(),
            inputs=[SnpInputs(certs=snp_sim.certs_pem())],
        )
    assert err.value.check == "simulated"
    assert "SIMULATED" in err.value.message()


def test_pinned_simulated_root(snp_sim, tmp_path):
    pinned = _allow(snp_sim.ark_sha256)
    verify_evidence(
        snp_sim.report(REPORT_DATA), policy=pinned, inputs=[SnpInputs(certs=snp_sim.certs_pem())]
    )
    other = SimulatedSnp(tmp_path / "other")
    with pytest.raises(PolicyError) as err:
        verify_evidence(
            other.report(REPORT_DATA), policy=pinned, inputs=[SnpInputs(certs=other.certs_pem())]
        )
    assert err.value.check == "simulated_ark_sha256"


def _split(pem: bytes) -> list[bytes]:
    end = b"-----END CERTIFICATE-----\n"
    return [block + end for block in pem.split(end) if block.strip()]


def test_rejected_against_real_amd_roots_fail(snp_sim, vectors):
    vcek, _, _ = _split(snp_sim.certs_pem())
    raw = snp_sim.report(REPORT_DATA)
    # Only the simulated VCEK: its issuer is no AMD ASK, so no AMD root is reachable.
    with pytest.raises(SignatureError, match=r"chain\.ask"):
        verify_evidence(
            raw, policy=_allow(snp_sim.ark_sha256), inputs=[SnpInputs(certs=vcek, product="Genoa")]
        )
    # The simulated VCEK presented with AMD's real Genoa ASK and ARK.
    amd = (vectors / "snp" / "amd_chains" / "genoa_vcek_cert_chain.pem").read_bytes()
    with pytest.raises(SignatureError, match=r"chain\.ask"):
        verify_evidence(
            raw, policy=_allow(snp_sim.ark_sha256), inputs=[SnpInputs(certs=vcek + amd)]
        )


def test_simulated_chain_with_real_ark_swapped_in_fail(snp_sim, vectors):
    vcek, ask, _ = _split(snp_sim.certs_pem())
    amd_ark = (vectors / "snp" / "ms_genoa_v3" / "ark.pem").read_bytes()
    with pytest.raises(SignatureError, match=r"chain\.ark"):
        verify_evidence(
            snp_sim.report(REPORT_DATA),
            policy=_allow(snp_sim.ark_sha256),
            inputs=[SnpInputs(certs=vcek + ask + amd_ark)],
        )


def test_simulated_never_claims_a_real_product_fail(snp_sim):
    with pytest.raises(SignatureError, match=r"chain\.product"):
        verify_evidence(
            snp_sim.report(REPORT_DATA),
            policy=_allow(snp_sim.ark_sha256),
            inputs=[SnpInputs(certs=snp_sim.certs_pem(), product="Genoa")],
        )


def test_real_evidence_is_never_reported_simulated(named_vector):
    vector = named_vector("ms_genoa_v3")
    result = verify_evidence(
        vector.report,
        policy=_allow(NOT_PINNED),
        at=vector.at,
        inputs=[SnpInputs(certs=vector.certs)],
    )
    assert result.simulated is False and result.product == "Genoa"
    assert "SIMULATED" not in result.verdict


def test_simulated_crl(snp_sim):
    raw = snp_sim.report(REPORT_DATA)
    certs = snp_sim.certs_pem()
    verify_evidence(
        raw,
        policy=_allow(snp_sim.ark_sha256),
        inputs=[SnpInputs(certs=certs, crl=snp_sim.crl_pem())],
    )
    with pytest.raises(SignatureError, match=r"crl\.revoked"):
        verify_evidence(
            raw,
            policy=_allow(snp_sim.ark_sha256),
            inputs=[SnpInputs(certs=certs, crl=snp_sim.crl_pem(revoke_ask=True))],
        )
    stale = snp_sim.crl_pem(next_update=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(SignatureError, match=r"crl\.validity"):
        verify_evidence(
            raw, policy=_allow(snp_sim.ark_sha256), inputs=[SnpInputs(certs=certs, crl=stale)]
        )


def test_crl_from_another_root_fail(snp_sim, tmp_path):
    other = SimulatedSnp(tmp_path / "other")
    with pytest.raises(SignatureError, match=r"crl\.signature"):
        verify_evidence(
            snp_sim.report(REPORT_DATA),
            policy=_allow(snp_sim.ark_sha256),
            inputs=[SnpInputs(certs=snp_sim.certs_pem(), crl=other.crl_pem())],
        )


@pytest.mark.parametrize(
    ("kwargs", "check"),
    [
        ({"report_data": b"short"}, "sim.report_data"),
        ({"measurement": b"x" * 32}, "sim.measurement"),
        ({"host_data": b"x" * 31}, "sim.host_data"),
        ({"version": 4}, "sim.version"),
        ({"vmpl": 4}, "sim.vmpl"),
    ],
)
def test_bad_simulator_arguments_fail(snp_sim, kwargs, check):
    kwargs = {"report_data": REPORT_DATA, **kwargs}
    report_data = kwargs.pop("report_data")
    with pytest.raises(UsageError) as err:
        snp_sim.report(report_data, **kwargs)
    assert err.value.check == check


def test_provider_produces_simulated_evidence(tmp_path, caplog):
    measurement = hashlib.sha384(b"enclave").digest()
    with caplog.at_level(logging.WARNING):
        provider = SimulatedSnpProvider(tmp_path / "chain", measurement=measurement)
    assert "SIMULATED evidence" in caplog.text
    assert isinstance(provider, EvidenceProvider)
    assert (provider.name, provider.tee, provider.simulated) == (
        "simulated-sev-snp",
        "sev-snp",
        True,
    )
    evidence = provider.get_evidence(REPORT_DATA)
    assert evidence.simulated and evidence.tee == "sev-snp"
    assert evidence.provider == "simulated-sev-snp"
    result = verify_evidence(
        evidence.raw,
        policy=_allow(provider.ark_sha256),
        expected_report_data=REPORT_DATA,
        inputs=[SnpInputs(certs=evidence.certs)],
    )
    assert result.measurement == measurement and result.simulated
    with pytest.raises(ProviderError) as err:
        provider.get_evidence(b"\x00" * 63)
    assert (err.value.check, err.value.actual) == ("provider.report_data", 63)
