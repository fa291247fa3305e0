"""GPU evidence end to end: an enclave with (stand-in) GPUs, parties verifying under ``[gpu]``.

The GPUs are stand-ins (the one permitted fake): ``SimulatedGpuProvider`` signs
real-layout SPDM reports over the nonce the enclave derives from the session
binding; ``RecordedGpuStandIn`` returns real NVIDIA evidence recorded earlier
(the vectors), as a host replaying a genuine GPU's old answer would. The
enclave, host proxy, gRPC, claims, binding and verification are production code.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest

from attestation.errors import BindingError, PolicyError
from attestation.nvidia.binding import gpu_nonce_for
from attestation.nvidia.verify import DeviceEvidence
from attestation.policy import simulated_policy
from attestation.providers.nvidia_gpu import RecordedGpuStandIn, SimulatedGpuProvider
from tcme.cli._party import print_summary
from tcme.client import PartyPolicy, TcmeClient
from tcme.v1 import tcme_pb2
from tcme.wire import parse_claims
from tcme.wire.claims import with_gpu_evidence

GPU_TABLE = {"count": 2, "architectures": ["HOPPER"], "rims": {"skip": True}}


def _start(tmp_path: Path, gpu_provider, collateral_dir: Path | None = None) -> tuple:
    from attestation.providers.simulated import SimulatedSnpProvider
    from enclave.runtime import Enclave
    from enclave.server import create_server as create_enclave_server
    from enclave.server import shutdown
    from host.server import create_server as create_host_server
    from tcme.model import ModelVerifier, sign_model, verify_model
    from tcme.model.keys import generate_signing_key

    tiny = tmp_path / "tiny.gguf"
    tiny.write_bytes(b"GGUF not a real model: only its signed digest is used here\n")
    private, public = generate_signing_key(tmp_path / "model-key")
    sign_model(tiny, tmp_path / "tiny.sig", private_key=private)
    identity = verify_model(tiny, tmp_path / "tiny.sig", ModelVerifier.public_key(public))
    provider = SimulatedSnpProvider(tmp_path / "sim")

    def no_model(contract, values):
        raise AssertionError("no model here")

    enclave = Enclave(provider=provider, model=identity, runner=no_model, gpu_provider=gpu_provider)
    server, port = create_enclave_server("127.0.0.1:0", enclave)
    server.start()
    proxy, proxy_port = create_host_server(
        "127.0.0.1:0", f"127.0.0.1:{port}", health_interval=0.2, collateral_dir=collateral_dir
    )
    proxy.start()
    base = {
        **simulated_policy(provider.ark_sha256, provider.measurement),
        "model": {"root_digest": identity.root_digest, "signer": identity.signer},
    }

    def stop():
        proxy.stop(0)
        shutdown(server, enclave, grace=0)

    return f"127.0.0.1:{proxy_port}", base, enclave, stop


@pytest.fixture(scope="module")
def gpu_stack(tmp_path_factory):
    target, base, enclave, stop = _start(tmp_path_factory.mktemp("gpu"), SimulatedGpuProvider(2))
    yield target, base, enclave
    stop()


def _policy(base, contract=None, **gpu):
    data = dict(base)
    if gpu.get("table", True) is not None:
        data["accept"] = [*base["accept"], "nvidia-gpu"]
        data["gpu"] = {**GPU_TABLE, **{k: v for k, v in gpu.items() if k != "table"}}
    if contract is not None:
        data["contract"] = {"digest": hashlib.sha256(contract).hexdigest()}
    return PartyPolicy.from_dict(data)


def test_each_party_verifies_cpu_and_gpu_of_one_session(gpu_stack, contract_factory):
    target, base, enclave = gpu_stack
    contract = contract_factory()
    with TcmeClient(target) as client:
        session_id = client.create_session(contract).session_id
        results = [client.attest(_policy(base, contract), session_id) for _ in ("alice", "bob")]
    for result in results:
        assert result.gpus is not None and len(result.gpus.gpus) == 2
        assert all(gpu.simulated for gpu in result.gpus.gpus)
        claims = result.claims
        assert claims.has_gpu and claims.identity_digest == enclave.claims_digest
        assert claims.digest != claims.identity_digest
        nonce = gpu_nonce_for(
            claims.identity_digest, hashlib.sha256(contract).digest(), session_id, result.nonce
        )
        assert all(gpu.report.nonce == nonce for gpu in result.gpus.gpus)
        assert result.summary()["gpus"]["gpus"][0]["simulated"] is True
        printed = io.StringIO()
        print_summary(result, stream=printed)
        assert "GPU 1" in printed.getvalue() and "[SIMULATED]" in printed.getvalue()
    # Two parties, two nonces: two different GPU nonces and claims, one identity.
    assert results[0].claims.digest != results[1].claims.digest


def test_policy_without_gpu_table_refuses_gpu_claims(gpu_stack):
    # The policy does not accept nvidia-gpu (and so has no [gpu]): GPUs in the claims are
    # evidence of a kind it did not name.
    target, base, _ = gpu_stack
    with TcmeClient(target) as client, pytest.raises(PolicyError) as err:
        client.attest(_policy(base, table=None), b"")
    assert err.value.check == "tee.accept"
    assert err.value.actual.startswith("nvidia-gpu")


def test_gpu_policy_rules_all_reported(gpu_stack):
    target, base, _ = gpu_stack
    policy = _policy(base, count=3, min_driver_version="560.0.0")
    with TcmeClient(target) as client, pytest.raises(PolicyError) as err:
        client.attest(policy, b"")
    checks = {v.check for v in err.value.violations}
    assert {"gpu.count", "gpu[0].driver_version", "gpu[1].driver_version"} <= checks


def test_simulated_gpus_refused_without_allow_simulated():
    # The CPU side stays simulated-allowed; the GPU decision reads the same switch, so
    # a genuine-only policy cannot be met by simulated GPUs: shown on the verifier directly.
    from attestation.nvidia.verify import verify_system
    from attestation.providers.nvidia_gpu import SimulatedGpuProvider as Sim

    evidence = Sim(1).gpu_evidence(bytes(32))
    with pytest.raises(PolicyError) as err:
        verify_system(evidence, nonce=bytes(32))
    assert err.value.check == "simulated"


def test_party_rim_file_that_does_not_verify_fail(gpu_stack, vectors):
    # A party's own RIM file is verified like any other: this genuine 2023 RIM's signer
    # has expired by now, and the edited one fails on its digest.
    target, base, _ = gpu_stack
    folder = vectors / "nvidia/nvsdk_gh100_535_86_rims"
    for name, check in (
        ("vbios_rim_96.00.5E.00.01_2023-12.xml", "nvidia.rim.chain.validity"),
        ("driver_rim_535.86.09_modified.xml", "nvidia.rim.digest"),
    ):
        policy = _policy(base, rims={"required": True, "files": [str(folder / name)]})
        with TcmeClient(target) as client, pytest.raises(Exception) as err:
            client.attest(policy, b"")
        assert err.value.check == check


def test_rims_required_and_none_usable_fail(tmp_path, vectors):
    # The host's cache holds NVIDIA RIMs and attaches them; none verifies now or fits
    # the GPUs' versions, so every GPU is reported without RIMs (fail closed).
    cache = tmp_path / "cache"
    (cache / "nvidia" / "rims").mkdir(parents=True)
    folder = vectors / "nvidia/nvsdk_gh100_535_86_rims"
    for name in ("vbios_rim_96.00.5E.00.01_2023-06.swidtag", "driver_rim_535.86.09_modified.xml"):
        (cache / "nvidia" / "rims" / name.replace(".swidtag", ".xml")).write_bytes(
            (folder / name).read_bytes()
        )
    target, base, _, stop = _start(tmp_path, SimulatedGpuProvider(2), collateral_dir=cache)
    try:
        with TcmeClient(target) as client:
            raw = client._call("Attest", tcme_pb2.AttestRequest(session_id=b"", nonce=b"z" * 32))
            assert len(raw.collateral.nvidia_rims) == 2
            with pytest.raises(PolicyError) as err:
                client.attest(_policy(base, rims={"required": True}), b"")
        checks = {v.check for v in err.value.violations}
        assert {"gpu[0].rims", "gpu[1].rims"} <= checks
    finally:
        stop()


def test_rims_table_must_be_explicit(gpu_stack):
    target, base, _ = gpu_stack
    for table in ({}, {"required": False}, {"files": []}, {"skip": False}, {"required": 1}):
        with TcmeClient(target) as client, pytest.raises(Exception) as err:
            client.attest(_policy(base, rims=table), b"")
        assert getattr(err.value, "check", "") == "policy.gpu.rims"


def test_devtools_gpu_refused(tmp_path):
    target, base, _, stop = _start(tmp_path, SimulatedGpuProvider(2, devtools=True))
    try:
        with TcmeClient(target) as client, pytest.raises(PolicyError) as err:
            client.attest(_policy(base), b"")
        assert "gpu.debug" in {v.check for v in err.value.violations}
    finally:
        stop()


# --- hostile proxy / host cases for the GPU part ------------------------------------


def test_proxy_stripping_gpu_evidence_fail(gpu_stack, hostile_factory):
    target, base, _ = gpu_stack
    hostile = hostile_factory(_Stackish(target))

    def strip(response):
        obj = json.loads(response.claims)
        obj.pop("gpu")
        response.claims = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
        return response

    hostile.responses["Attest"] = strip
    with TcmeClient(hostile.target) as client, pytest.raises(BindingError) as err:
        client.attest(_policy(base), b"")
    assert err.value.check == "report_data"


def test_proxy_swapping_in_other_gpu_evidence_fail(gpu_stack, hostile_factory):
    # The proxy swaps the two GPUs' order / evidence in the claims: the CPU report binds
    # the original claims, so the swap breaks REPORT_DATA.
    target, base, _ = gpu_stack
    hostile = hostile_factory(_Stackish(target))

    def swap(response):
        claims = parse_claims(response.claims)
        identity = json.loads(response.claims)
        identity.pop("gpu")
        raw = json.dumps(identity, separators=(",", ":"), sort_keys=True).encode()
        devices = [DeviceEvidence(r, c) for r, c in reversed(claims.gpu_devices)]
        response.claims = with_gpu_evidence(
            raw, claims.gpu_mode, [(d.report, d.certs, d.digest) for d in devices]
        )
        return response

    hostile.responses["Attest"] = swap
    with TcmeClient(hostile.target) as client, pytest.raises(BindingError) as err:
        client.attest(_policy(base), b"")
    assert err.value.check == "report_data"


def test_host_replaying_genuine_gpu_evidence_fail(tmp_path, vectors):
    """A compromised host feeds the enclave genuine NVIDIA evidence recorded for another nonce."""
    folder = vectors / "nvidia" / "nvtrust_ppcie_8xgh100_4xls10"
    recorded = [
        DeviceEvidence(base64.b64decode(e["evidence"]), base64.b64decode(e["certificate"]))
        for name in ("gpu_evidence.json", "switch_evidence.json")
        for e in json.loads((folder / name).read_text())
    ]
    target, base, _, stop = _start(tmp_path, RecordedGpuStandIn(recorded))
    try:
        with TcmeClient(target) as client, pytest.raises(BindingError) as err:
            client.attest(_policy(base, count=8), b"")
        assert err.value.check == "nvidia.nonce"
    finally:
        stop()


def test_attest_response_tampered_gpu_report_fail(gpu_stack, hostile_factory):
    target, base, _ = gpu_stack
    hostile = hostile_factory(_Stackish(target))
    other = hostile.call("Attest", tcme_pb2.AttestRequest(session_id=b"", nonce=b"y" * 32))

    def replay_claims(response):
        response.claims = other.claims  # genuine GPU evidence, for another party's nonce
        return response

    hostile.responses["Attest"] = replay_claims
    with TcmeClient(hostile.target) as client, pytest.raises(BindingError):
        client.attest(_policy(base), b"")


class _Stackish:
    """What ``hostile_factory`` needs from a stack: its target."""

    def __init__(self, target: str) -> None:
        self.target = target


@pytest.mark.model
def test_whole_session_with_gpus_each_party_verifies(
    loaded_model, tmp_path, contract_factory, party_keys
):
    """A full two-party session on the real model, with (simulated) GPUs attested by each party."""
    from concurrent.futures import ThreadPoolExecutor

    from attestation.providers.simulated import SimulatedSnpProvider
    from enclave.inference import Inference
    from enclave.runtime import Enclave
    from enclave.server import create_server as create_enclave_server
    from enclave.server import shutdown
    from host.server import create_server as create_host_server
    from tcme.client import Party

    provider = SimulatedSnpProvider(tmp_path / "sim")
    enclave = Enclave(
        provider=provider,
        model=loaded_model.identity,
        runner=Inference(loaded_model.llama).run,
        gpu_provider=SimulatedGpuProvider(2),
    )
    server, port = create_enclave_server("127.0.0.1:0", enclave)
    server.start()
    proxy, proxy_port = create_host_server("127.0.0.1:0", f"127.0.0.1:{port}", health_interval=0.2)
    proxy.start()
    target = f"127.0.0.1:{proxy_port}"
    identity = loaded_model.identity
    base = {
        **simulated_policy(provider.ark_sha256, provider.measurement),
        "model": {"root_digest": identity.root_digest, "signer": identity.signer},
    }
    try:
        contract = contract_factory()
        policy = _policy(base, contract)
        with TcmeClient(target) as client:
            session_id = client.create_session(contract).session_id
        values = {"alice": {"alice_wealth": 3_000_000}, "bob": {"bob_wealth": 5}}

        def one(name):
            with TcmeClient(target) as client:
                return Party(name, party_keys[name], policy, client).run(
                    session_id, values[name], timeout=120
                )

        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {name: pool.submit(one, name) for name in values}
            results = {name: f.result(timeout=200) for name, f in futures.items()}
        (alice_att, alice), (bob_att, bob) = results["alice"], results["bob"]
        for attestation in (alice_att, bob_att):
            assert attestation.gpus is not None and len(attestation.gpus.gpus) == 2
        # Each party verified GPU evidence made for its own nonce...
        assert alice_att.claims.digest != bob_att.claims.digest
        # ...of one enclave identity, which the one receipt names.
        assert alice.receipt.raw == bob.receipt.raw
        assert alice.receipt.claims_digest == alice_att.claims.identity_digest
        assert alice_att.claims.identity_digest == bob_att.claims.identity_digest
        assert alice.outputs == bob.outputs
    finally:
        proxy.stop(0)
        shutdown(server, enclave, grace=0)


def _ocsp_cache(tmp_path: Path, provider: SimulatedGpuProvider, **kw) -> Path:
    cache = tmp_path / "cache"
    (cache / "nvidia" / "ocsp").mkdir(parents=True)
    for serial, der in provider.ocsp_responses(**kw).items():
        (cache / "nvidia" / "ocsp" / f"{serial}.der").write_bytes(der)
    return cache


def test_fresh_ocsp_from_the_host_cache_passes_and_stripping_it_fail(tmp_path, hostile_factory):
    provider = SimulatedGpuProvider(2)
    target, base, _, stop = _start(
        tmp_path, provider, collateral_dir=_ocsp_cache(tmp_path, provider)
    )
    try:
        policy = _policy(base, require_ocsp=True)
        with TcmeClient(target) as client:
            result = client.attest(policy, b"")
        assert all(gpu.ocsp_checked for gpu in result.gpus.gpus)
        # A hostile proxy hides the answers (say, to hide a revocation): the party notices.
        hostile = hostile_factory(_Stackish(target))

        def strip(response):
            response.collateral.ClearField("nvidia_ocsp")
            return response

        hostile.responses["Attest"] = strip
        with TcmeClient(hostile.target) as client, pytest.raises(Exception) as err:
            client.attest(policy, b"")
        assert err.value.check == "nvidia.ocsp.missing"
        # Without require_ocsp the same stripped answer is tolerated.
        with TcmeClient(hostile.target) as client:
            assert client.attest(_policy(base), b"").gpus is not None
    finally:
        stop()


def test_revoked_gpu_fail_even_without_require_ocsp(tmp_path):
    provider = SimulatedGpuProvider(1)
    cache = _ocsp_cache(tmp_path, provider, revoked=True)
    target, base, _, stop = _start(tmp_path, provider, collateral_dir=cache)
    try:
        with TcmeClient(target) as client, pytest.raises(Exception) as err:
            client.attest(_policy(base, count=1), b"")
        assert err.value.check == "nvidia.ocsp.revoked"
    finally:
        stop()
