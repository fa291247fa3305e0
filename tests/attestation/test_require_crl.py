"""``[snp] require_crl``: revocation from the party's own KDS cache, never the proxy's say.

The attack: a hostile proxy omits the CRL (or sends a stale or clean one) to hide a
revoked ASK. With ``require_crl = true`` the party reads AMD's CRL from its own cache
(offline: these tests never touch the network) and a missing one fails closed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.errors import PolicyError, SignatureError
from attestation.kds import KdsClient
from attestation.policy import SKIP, Policy, SnpPolicy
from attestation.tee import Tee
from attestation.verifier import SnpInputs, verify_evidence


def _policy(cache, *, simulated_root: str | None = None) -> Policy:
    return Policy(
        accept=(Tee.SEV_SNP,),
        tables={
            "snp": SnpPolicy(allowed_measurements=SKIP, require_crl=True, kds_cache=cache),
        },
        allow_simulated=simulated_root is not None,
        simulated_ark_sha256=(simulated_root,) if simulated_root else (),
    )


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_crl(pem).public_bytes(Encoding.DER)


def _place(cache, snp_sim, **crl) -> None:
    path = cache / "vcek" / "v1" / "SIMULATED" / "crl.der"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_der(snp_sim.crl_pem(**crl)))


def test_proxy_omits_crl_and_the_party_cache_has_none_fail(named_vector, tmp_path):
    vector = named_vector("ms_genoa_v3")
    with pytest.raises(PolicyError) as info:
        verify_evidence(
            vector.report,
            policy=_policy(tmp_path / "kds"),
            at=vector.at,
            inputs=[SnpInputs(certs=vector.certs)],  # no CRL: what the hostile proxy sent
        )
    err = info.value
    assert err.check == "crl.required"
    expected = KdsClient(tmp_path / "kds").crl_path("Genoa")
    assert err.expected == str(expected) and err.actual == "missing"
    assert "kdsintf.amd.com/vcek/v1/Genoa/crl" in err.message()  # where to get it
    assert not (tmp_path / "kds").exists()  # offline: nothing fetched, nothing written


def test_a_crl_from_the_proxy_does_not_count(named_vector, tmp_path):
    vector = named_vector("ms_genoa_v3")
    with pytest.raises(PolicyError) as info:
        verify_evidence(
            vector.report,
            policy=_policy(tmp_path / "kds"),
            at=vector.at,
            inputs=[SnpInputs(certs=vector.certs, crl=b"whatever the proxy likes")],
        )
    assert info.value.check == "crl.required"


def test_without_require_crl_a_missing_crl_is_accepted(named_vector):
    vector = named_vector("ms_genoa_v3")
    policy = Policy(accept=(Tee.SEV_SNP,), tables={"snp": SnpPolicy(allowed_measurements=SKIP)})
    result = verify_evidence(
        vector.report, policy=policy, at=vector.at, inputs=[SnpInputs(certs=vector.certs)]
    )
    assert result.crl_source == ""


def test_own_crl_is_used_when_the_proxy_sends_none(snp_sim, tmp_path):
    cache = tmp_path / "kds"
    _place(cache, snp_sim)
    result = verify_evidence(
        snp_sim.report(bytes(64)),
        policy=_policy(cache, simulated_root=snp_sim.ark_sha256),
        inputs=[SnpInputs(certs=snp_sim.certs_pem())],
    )
    assert result.crl_source.startswith("party CRL cache")
    assert result.summary()["crl_source"] == result.crl_source


def test_revocation_in_the_own_crl_wins_over_a_clean_proxy_crl(snp_sim, tmp_path):
    cache = tmp_path / "kds"
    _place(cache, snp_sim, revoke_ask=True)
    with pytest.raises(SignatureError) as info:
        verify_evidence(
            snp_sim.report(bytes(64)),
            policy=_policy(cache, simulated_root=snp_sim.ark_sha256),
            inputs=[SnpInputs(certs=snp_sim.certs_pem(), crl=snp_sim.crl_pem())],
        )
    assert info.value.check == "crl.revoked"


def test_stale_own_crl_fail(snp_sim, tmp_path):
    cache = tmp_path / "kds"
    _place(cache, snp_sim, next_update=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(SignatureError) as info:
        verify_evidence(
            snp_sim.report(bytes(64)),
            policy=_policy(cache, simulated_root=snp_sim.ark_sha256),
            inputs=[SnpInputs(certs=snp_sim.certs_pem())],
        )
    assert info.value.check == "crl.validity"


def test_simulated_without_a_cached_crl_fail(snp_sim, tmp_path):
    with pytest.raises(PolicyError) as info:
        verify_evidence(
            snp_sim.report(bytes(64)),
            policy=_policy(tmp_path / "kds", simulated_root=snp_sim.ark_sha256),
            inputs=[SnpInputs(certs=snp_sim.certs_pem(), crl=snp_sim.crl_pem())],
        )
    assert info.value.check == "crl.required"
