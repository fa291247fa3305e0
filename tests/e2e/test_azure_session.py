"""Whole sessions whose enclave attests through the Azure vTPM provider, on a real software TPM.

The enclave's provider is ``AzureVtpmProvider`` talking TPM 2.0 commands to swtpm
(provisioned with tpm2-tools like an Azure CVM's vTPM); the hardware root under
the HCL report is the simulated AMD chain, as in simulated mode. Parties verify
with the production pipeline (``az-snp-vtpm``, ``[azure]`` policy) through the
real host proxy, honest and hostile. Skips, saying why, without swtpm/tpm2-tools.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from attestation.azure.evidence import AzureEvidence, parse_azure_evidence
from attestation.binding import report_data_for
from attestation.errors import BindingError, PolicyError, SignatureError, TcmeError
from tcme.client import Party, PartyPolicy, TcmeClient
from tcme.v1 import tcme_pb2
from tests.attestation.azure.simulated_cvm import SimulatedAzureCvm, missing_tools

from .conftest import Stack, _no_model, _sign

pytestmark = pytest.mark.skipif(
    bool(missing_tools()),
    reason=f"swtpm/tpm2-tools missing ({', '.join(missing_tools())}): apt-get install swtpm "
    "tpm2-tools (.ci/run installs them)",
)

HW = {"snp": {"allowed_measurements": {"skip": True}}}  # the simulated paravisor's
SKIP_PCRS = {**HW, "pcrs": {"skip": True}}


def _start_azure_stack(identity: Any, runner: Any, workdir) -> tuple[Stack, SimulatedAzureCvm]:
    from attestation.providers.azure_vtpm import AzureVtpmProvider
    from attestation.snp.simulate import SimulatedSnp
    from enclave.runtime import Enclave
    from enclave.server import create_server as create_enclave_server
    from host.server import create_server as create_host_server

    snp = SimulatedSnp(workdir / "amd")
    cvm = SimulatedAzureCvm(workdir / "vtpm")
    cvm.provision(snp)
    provider = AzureVtpmProvider(cvm.transport(), certs=snp.certs_pem(), simulated=True)
    enclave = Enclave(provider=provider, model=identity, runner=runner)
    server, port = create_enclave_server("127.0.0.1:0", enclave)
    server.start()
    proxy, proxy_port = create_host_server("127.0.0.1:0", f"127.0.0.1:{port}", health_interval=0.2)
    proxy.start()
    stack = Stack(
        enclave=enclave,
        enclave_server=server,
        enclave_target=f"127.0.0.1:{port}",
        proxy=proxy,
        target=f"127.0.0.1:{proxy_port}",
        ark_sha256=snp.ark_sha256,
        identity=identity,
    )
    return stack, cvm


@pytest.fixture(scope="module")
def azure_stack(tmp_path_factory) -> Iterator[Stack]:
    """The attest-only enclave (tiny signed file, no model) on the simulated Azure CVM."""
    workdir = tmp_path_factory.mktemp("azure")
    tiny = workdir / "tiny.gguf"
    tiny.write_bytes(b"GGUF not a real model: only its signed digest is used here\n")
    stack, cvm = _start_azure_stack(_sign(tiny, workdir).identity, _no_model, workdir)
    yield stack
    stack.stop()
    cvm.stop()


def _policy(stack: Stack, contract: bytes | None, **overrides: Any) -> PartyPolicy:
    data = stack.policy_dict(accept=["az-snp-vtpm"], azure=SKIP_PCRS)
    del data["snp"]  # this party accepts only the Azure kind
    data.update(overrides)
    if contract is not None:
        data["contract"] = {"digest": hashlib.sha256(contract).hexdigest()}
    return PartyPolicy.from_dict(data)


@pytest.fixture
def session(azure_stack, contract_factory):
    contract = contract_factory()
    with TcmeClient(azure_stack.target) as client:
        info = client.create_session(contract)
    return info.session_id, contract, _policy(azure_stack, contract)


def _hostile(hostile_factory, stack: Stack, rewrite) -> Any:
    hostile = hostile_factory(stack)
    hostile.responses["Attest"] = rewrite
    return hostile


def test_honest_proxy_accepts_azure_evidence(azure_stack, session):
    session_id, contract, policy = session
    with TcmeClient(azure_stack.target) as client:
        result = client.attest(policy, session_id)
    assert result.evidence.tee == result.claims.tee == "az-snp-vtpm"
    assert result.simulated is True
    expected = report_data_for(
        result.claims.identity_digest
        if hasattr(result.claims, "identity_digest")
        else result.claims.digest,
        hashlib.sha256(contract).digest(),
        session_id,
        result.nonce,
    )
    # The party's binding is the TPM quote's qualifying data, all 64 bytes of it.
    assert result.evidence.report.quote.extra_data == expected
    assert result.summary()["evidence_quote"]["pcr_selection"] == {"sha256": list(range(24))}


def test_swapped_evidence_fail(azure_stack, session, hostile_factory):
    session_id, _, policy = session
    plain = hostile_factory(azure_stack)
    other = plain.call("Attest", tcme_pb2.AttestRequest(session_id=session_id, nonce=b"x" * 32))

    def swap(response):
        response.evidence.CopyFrom(other.evidence)
        return response

    hostile = _hostile(hostile_factory, azure_stack, swap)
    with TcmeClient(hostile.target) as client, pytest.raises(BindingError) as info:
        client.attest(policy, session_id)
    assert info.value.check == "azure.quote.extra_data"


def test_replayed_nonce_fail(azure_stack, session, hostile_factory):
    session_id, _, policy = session
    recorded: list[Any] = []

    def record_or_replay(response):
        if not recorded:
            recorded.append(tcme_pb2.AttestResponse.FromString(response.SerializeToString()))
            return response
        return recorded[0]

    hostile = _hostile(hostile_factory, azure_stack, record_or_replay)
    with TcmeClient(hostile.target) as client:
        client.attest(policy, session_id)
        with pytest.raises(BindingError) as info:
            client.attest(policy, session_id)
    assert info.value.check == "azure.quote.extra_data"


def _rewrite_evidence(change) -> Any:
    def rewrite(response):
        parts = parse_azure_evidence(bytes(response.evidence.report))
        response.evidence.report = AzureEvidence(**{**parts.__dict__, **change(parts)}).to_json()
        return response

    return rewrite


def test_forged_quote_fail(azure_stack, session, hostile_factory):
    session_id, _, policy = session

    def flip_signature(parts):
        signature = bytearray(parts.quote_signature)
        signature[7] ^= 0x10
        return {"quote_signature": bytes(signature)}

    hostile = _hostile(hostile_factory, azure_stack, _rewrite_evidence(flip_signature))
    with TcmeClient(hostile.target) as client, pytest.raises(SignatureError) as info:
        client.attest(policy, session_id)
    assert info.value.check == "azure.quote.signature"


def test_altered_pcr_value_fail(azure_stack, session, hostile_factory):
    session_id, _, policy = session

    def other_boot(parts):
        pcrs = list(parts.pcrs)
        pcrs[4] = hashlib.sha256(b"a kernel the operator prefers").digest()
        return {"pcrs": tuple(pcrs)}

    hostile = _hostile(hostile_factory, azure_stack, _rewrite_evidence(other_boot))
    with TcmeClient(hostile.target) as client, pytest.raises(SignatureError) as info:
        client.attest(policy, session_id)
    assert info.value.check == "azure.quote.pcr_digest"


def test_altered_runtime_data_fail(azure_stack, session, hostile_factory):
    # The operator swaps in an AK of its own: the runtime data no longer hashes to
    # the hardware REPORT_DATA.
    session_id, _, policy = session

    def other_runtime(parts):
        hcl = bytearray(parts.hcl_report)
        hcl[0x4D4 + 20] ^= 0x01
        return {"hcl_report": bytes(hcl)}

    hostile = _hostile(hostile_factory, azure_stack, _rewrite_evidence(other_runtime))
    with TcmeClient(hostile.target) as client, pytest.raises(TcmeError) as info:
        client.attest(policy, session_id)
    assert info.value.check.startswith(("azure.runtime_data", "runtime_data", "evidence."))


def test_pinned_pcr_mismatch_fail(azure_stack, session, contract_factory):
    session_id, contract, _ = session
    pcrs = {"4": "00" * 32, "others": {"skip": True}}
    policy = _policy(azure_stack, contract, azure={**HW, "pcrs": pcrs})
    with TcmeClient(azure_stack.target) as client, pytest.raises(PolicyError) as info:
        client.attest(policy, session_id)
    assert info.value.check == "azure.pcr4"


def test_pinned_pcrs_accept(azure_stack, session):
    session_id, contract, policy = session
    with TcmeClient(azure_stack.target) as client:
        pcrs = client.attest(policy, session_id).evidence.report.evidence.pcrs
        pinned = {str(i): pcrs[i].hex() for i in range(24)}
        client.attest(_policy(azure_stack, contract, azure={**HW, "pcrs": pinned}), session_id)


def test_policy_without_azure_table_refuses(azure_stack, session):
    session_id, contract, _ = session
    data = azure_stack.policy_dict()  # accepts sev-snp only
    data["contract"] = {"digest": hashlib.sha256(contract).hexdigest()}
    with TcmeClient(azure_stack.target) as client, pytest.raises(PolicyError) as info:
        client.attest(PartyPolicy.from_dict(data), session_id)
    assert info.value.check == "tee.accept" and info.value.actual == "az-snp-vtpm"


def test_simulated_root_refused_without_allow_simulated(azure_stack, session):
    session_id, contract, _ = session
    policy = _policy(azure_stack, contract, allow_simulated=False, simulated_ark_sha256=[])
    with TcmeClient(azure_stack.target) as client, pytest.raises(TcmeError) as info:
        client.attest(policy, session_id)
    assert "simulated" in info.value.message().lower()


@pytest.fixture(scope="module")
def azure_model_stack(loaded_model, tmp_path_factory) -> Iterator[Stack]:
    from enclave.inference import Inference

    stack, cvm = _start_azure_stack(
        loaded_model.identity, Inference(loaded_model.llama).run, tmp_path_factory.mktemp("az")
    )
    yield stack
    stack.stop()
    cvm.stop()


@pytest.mark.model
def test_millionaires_on_the_azure_vtpm(azure_model_stack, contract_factory, party_keys):
    contract = contract_factory()
    policy = _policy(azure_model_stack, contract)
    with TcmeClient(azure_model_stack.target) as client:
        session_id = client.create_session(contract).session_id
    values = {"alice": {"alice_wealth": 3_000_000}, "bob": {"bob_wealth": 5}}

    def one(name):
        with TcmeClient(azure_model_stack.target) as client:
            return Party(name, party_keys[name], policy, client).run(
                session_id, values[name], timeout=120
            )

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(one, name) for name in values}
        results = {name: future.result(timeout=300) for name, future in futures.items()}
    (alice_att, alice), (bob_att, bob) = results["alice"], results["bob"]
    assert alice_att.evidence.tee == bob_att.evidence.tee == "az-snp-vtpm"
    assert alice.outputs == bob.outputs and alice.outputs["richer"] in {"first", "second", "equal"}
    assert alice.receipt.raw == bob.receipt.raw  # one receipt, signed once
