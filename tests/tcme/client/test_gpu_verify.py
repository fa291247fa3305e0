"""Step (9) on its own: GPU evidence in the claims, under the party's ``[gpu]`` table."""

from __future__ import annotations

import hashlib

import pytest

from attestation.errors import BindingError, PolicyError
from attestation.nvidia.binding import gpu_nonce_for
from attestation.policy import Policy
from attestation.providers.nvidia_gpu import SimulatedGpuProvider
from enclave.keys import EnclaveKeys
from tcme.client.gpu import verify_gpus
from tcme.wire import parse_claims
from tcme.wire.claims import build_claims, with_gpu_evidence

NONCE = b"n" * 32
EMPTY = hashlib.sha256(b"").digest()


def _identity() -> bytes:
    keys = EnclaveKeys.generate()
    return build_claims(
        runtime="tcme test",
        tee="sev-snp",
        model_root_digest="ab" * 32,
        model_hash_algorithm="sha256",
        model_signer="test",
        model_issuer=None,
        model_method="key",
        hpke_public_key=keys.hpke_public,
        signing_public_key=keys.signing_public,
    )


def _claims(provider, identity: bytes, nonce: bytes = NONCE):
    gpu_nonce = gpu_nonce_for(hashlib.sha256(identity).digest(), EMPTY, b"", nonce)
    devices = provider.gpu_evidence(gpu_nonce)
    return parse_claims(
        with_gpu_evidence(
            identity, provider.mode(), [(d.report, d.certs, d.digest) for d in devices]
        )
    )


def _policy(**gpu):
    return Policy.from_dict(
        {
            "accept": ["sev-snp", "nvidia-gpu"],
            "allow_simulated": True,
            "simulated_ark_sha256": ["cd" * 32],
            "snp": {"allowed_measurements": {"skip": True}},
            "gpu": {"rims": {"skip": True}, **gpu},
        }
    )


def _verify(claims, policy, *, cpu_simulated=True, nonce=NONCE):
    return verify_gpus(
        claims,
        policy,
        contract_digest=EMPTY,
        session_id=b"",
        nonce=nonce,
        capability_digest=None,
        at=None,
        cpu_simulated=cpu_simulated,
    )


def test_simulated_gpus_beside_a_simulated_cpu_pass():
    identity = _identity()
    claims = _claims(SimulatedGpuProvider(2), identity)
    assert claims.identity_digest == hashlib.sha256(identity).digest()
    system = _verify(claims, _policy(count=2))
    assert [gpu.simulated for gpu in system.gpus] == [True, True]


def test_simulated_gpus_beside_a_genuine_cpu_fail():
    # A genuine TEE running the measured enclave with --gpu simulated must not pass a
    # policy that allows simulated evidence for its test enclaves.
    claims = _claims(SimulatedGpuProvider(1), _identity())
    with pytest.raises(PolicyError) as err:
        _verify(claims, _policy(), cpu_simulated=False)
    assert err.value.check == "simulated"


def test_gpu_evidence_for_another_party_nonce_fail():
    claims = _claims(SimulatedGpuProvider(1), _identity(), nonce=b"o" * 32)
    with pytest.raises(BindingError) as err:
        _verify(claims, _policy())
    assert err.value.check == "nvidia.nonce"


def test_no_gpu_claims_under_required_gpu_fail():
    with pytest.raises(PolicyError) as err:
        _verify(parse_claims(_identity()), _policy())
    assert err.value.check == "gpu.required"
    assert _verify(parse_claims(_identity()), _policy(required=False)) is None
