"""The Azure vTPM provider against a real software TPM (swtpm), provisioned with tpm2-tools.

The vTPM is real (swtpm); the paravisor and AMD are stood in for by
``tests.attestation.azure.simulated_cvm`` (simulated SNP root) or by a real vector's HCL
report stored in NV. Skips, saying why, when swtpm or tpm2-tools are missing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from attestation.azure.evidence import parse_azure_evidence
from attestation.azure.hcl import REPORT_TYPE_TDX, build_hcl_report, parse_hcl_report
from attestation.azure.policy import AzurePolicy
from attestation.azure.quote import verify_pcr_digest, verify_quote_signature
from attestation.azure.runtime_data import parse_runtime_data
from attestation.azure.tpm import parse_attest
from attestation.azure.verify import parse_parts, verify_azure_evidence
from attestation.errors import BindingError, SignatureError
from attestation.policy import Policy
from attestation.providers.azure_vtpm import AzureVtpmProvider
from attestation.providers.errors import ProviderError, ProviderUnavailable
from attestation.providers.tpm2 import Tpm, TpmError
from attestation.snp.verify import load_cert_bundle
from attestation.tee import Tee
from tests.attestation.azure.simulated_cvm import SimulatedAzureCvm, missing_tools

pytestmark = pytest.mark.skipif(
    bool(missing_tools()),
    reason=f"swtpm/tpm2-tools missing ({', '.join(missing_tools())}): apt-get install swtpm "
    "tpm2-tools (.ci/run installs them)",
)

HW = {"snp": {"allowed_measurements": {"skip": True}}}  # the simulated paravisor's
SKIP_PCRS = AzurePolicy.from_dict({**HW, "pcrs": {"skip": True}})
BINDING = hashlib.sha512(b"claims, contract, session, nonce").digest()


@pytest.fixture
def cvm(tmp_path):
    with SimulatedAzureCvm(tmp_path / "vtpm") as machine:
        yield machine


@pytest.fixture
def provisioned(cvm, sim):
    cvm.provision(sim)
    return cvm


def _provider(cvm, sim, **kw):
    return AzureVtpmProvider(cvm.transport(), certs=sim.certs_pem(), simulated=True, **kw)


def _verify(evidence, certs, **kw):
    kw.setdefault("azure_policy", SKIP_PCRS)
    policy = Policy(
        accept=(Tee.AZ_SNP_VTPM,),
        tables={"azure": kw["azure_policy"]},
        allow_simulated=True,
        simulated_ark_sha256=(load_cert_bundle(bytes(certs)).root_sha256,),  # this test's root
    )
    return verify_azure_evidence(evidence, policy=policy, certs=certs, **kw)


def test_quote_through_the_vtpm_verifies(provisioned, sim):
    provider = _provider(provisioned, sim)
    assert provider.tee == "az-snp-vtpm"
    evidence = provider.get_evidence(BINDING)
    result = _verify(evidence.raw, evidence.certs, expected_report_data=BINDING)
    assert result.simulated and result.tee == "az-snp-vtpm"
    assert result.report_data == BINDING  # the whole 64-byte binding is the qualifying data
    parts = parse_azure_evidence(evidence.raw)
    assert parts.version == 1 and len(parts.quote_signature) == 256  # the CoCo (raw) form
    assert parts.pcrs[4] != bytes(32)  # the PCRs the simulation extended are quoted


def test_pcr_policy_pins_the_swtpm_values(provisioned, sim):
    evidence = _provider(provisioned, sim).get_evidence(BINDING)
    pcrs = parse_azure_evidence(evidence.raw).pcrs
    pinned = AzurePolicy.from_dict({**HW, "pcrs": {"4": pcrs[4].hex(), "others": {"skip": True}}})
    _verify(evidence.raw, evidence.certs, expected_report_data=BINDING, azure_policy=pinned)
    wrong = AzurePolicy.from_dict({**HW, "pcrs": {"4": "00" * 32, "others": {"skip": True}}})
    with pytest.raises(Exception, match=r"azure\.pcr4"):
        _verify(evidence.raw, evidence.certs, expected_report_data=BINDING, azure_policy=wrong)


def test_other_binding_fail(provisioned, sim):
    evidence = _provider(provisioned, sim).get_evidence(BINDING)
    with pytest.raises(BindingError, match=r"azure\.quote\.extra_data"):
        _verify(evidence.raw, evidence.certs, expected_report_data=bytes(64))


def test_simulated_root_refused_without_allow_simulated(provisioned, sim):
    evidence = _provider(provisioned, sim).get_evidence(BINDING)
    with pytest.raises(Exception, match="simulated"):
        verify_azure_evidence(
            evidence.raw,
            policy=Policy.unsafe_authenticity_only(),
            azure_policy=SKIP_PCRS,
            certs=evidence.certs,
            expected_report_data=BINDING,
        )


class _CappedTransport:
    """Stands in for a vTPM whose TPM2B_DATA holds only 32 bytes (no SHA-512 bank)."""

    def __init__(self, inner):
        self.inner = inner

    def transact(self, command: bytes) -> bytes:
        code = int.from_bytes(command[6:10], "big")
        if code == 0x158:  # TPM2_Quote: handle, auth area (4 + 9), then qualifyingData
            size = int.from_bytes(command[27:29], "big")
            if size > 32:
                return (
                    (0x8001).to_bytes(2, "big")
                    + (10).to_bytes(4, "big")
                    + (0x1D5).to_bytes(4, "big")
                )
        return self.inner.transact(command)


def test_capped_vtpm_quotes_the_digest_of_the_binding(provisioned, sim):
    provider = AzureVtpmProvider(
        _CappedTransport(provisioned.transport()), certs=sim.certs_pem(), simulated=True
    )
    evidence = provider.get_evidence(BINDING)
    attest = parse_attest(parse_azure_evidence(evidence.raw).quote_message)
    assert attest.extra_data == hashlib.sha256(BINDING).digest()
    _verify(evidence.raw, evidence.certs, expected_report_data=BINDING)


def test_vector_hcl_report_read_back_from_nv(cvm, vectors):
    """A real Azure HCL report (acvm, 2048 bytes) in NV reads back byte for byte."""
    hcl = (vectors / "azure/acvm_snp_milan_v2/hcl_report.bin").read_bytes()
    cvm.store_hcl_report(hcl)
    assert Tpm(cvm.transport()).nv_read(0x01400001) == hcl


def test_quote_by_another_ak_than_the_hcl_names_fail(cvm, vectors, sim):
    """The vector's HCL names Azure's AK; swtpm's AK signs: the quote must not verify."""
    hcl = (vectors / "azure/acvm_snp_milan_v2/hcl_report.bin").read_bytes()
    cvm.store_hcl_report(hcl)
    cvm._tool(  # an AK at the Azure handle, unknown to the HCL report
        "tpm2_createprimary", "-C", "o", "-G", "rsa2048:rsassa-sha256:null",
        "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda",
        "-c", str(cvm.directory / "ak.ctx"), "-Q",
    )  # fmt: skip
    cvm._tool("tpm2_evictcontrol", "-C", "o", "-c", str(cvm.directory / "ak.ctx"), "0x81000003")
    provider = AzureVtpmProvider(cvm.transport(), certs=b"unused", simulated=True)
    evidence = provider.get_evidence(BINDING)
    parts, _hcl, runtime, attest = parse_parts(evidence.raw)
    with pytest.raises(SignatureError, match=r"azure\.quote\.signature"):
        verify_quote_signature(attest, parts.quote_signature, runtime.ak)


class _Imds(BaseHTTPRequestHandler):
    """Answers as Azure's IMDS does: POST /acc/tdquote (a fixed TD quote) and
    GET /metadata/THIM/amd/certification (the AMD certificates, Metadata: true only)."""

    quote = b""
    certs: typing.ClassVar[dict[str, str]] = {}
    seen: typing.ClassVar[list[bytes]] = []

    def do_GET(self):
        ok = self.path == "/metadata/THIM/amd/certification" and self.headers["Metadata"] == "true"
        data = json.dumps(self.certs).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        report = body["report"]
        type(self).seen.append(base64.urlsafe_b64decode(report + "=" * (-len(report) % 4)))
        answer = {"quote": base64.urlsafe_b64encode(self.quote).rstrip(b"=").decode()}
        data = json.dumps(answer).encode()
        self.send_response(200 if self.path == "/acc/tdquote" else 404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_tdx_td_quote_through_an_imds_stand_in(cvm, vectors, sim):
    folder = vectors / "azure/trustee_tdx_v4"
    real = parse_hcl_report((folder / "hcl_report.bin").read_bytes())
    # swtpm's NV holds 2048 bytes: keep the TDREPORT, shorten the runtime data to our AK's.
    cvm.provision(sim)
    ours = parse_hcl_report(Tpm(cvm.transport()).nv_read(0x01400001))
    cvm._tool("tpm2_nvundefine", "0x01400001", "-C", "o")
    hcl = build_hcl_report(
        real.hardware_report, ours.variable_data, report_type=REPORT_TYPE_TDX, buffer_size=2048
    )
    cvm.store_hcl_report(hcl)
    _Imds.quote = (folder / "td_quote.bin").read_bytes()
    _Imds.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        provider = AzureVtpmProvider(
            cvm.transport(), imds_url=f"http://127.0.0.1:{server.server_port}"
        )
        assert provider.tee == "az-tdx-vtpm"
        evidence = provider.get_evidence(BINDING)
    finally:
        server.shutdown()
    assert _Imds.seen == [real.hardware_report]  # IMDS got exactly the HCL's TDREPORT
    parts, _hcl, runtime, attest = parse_parts(evidence.raw)
    assert parts.td_quote == _Imds.quote and parts.vcek is None
    sig = verify_quote_signature(attest, parts.quote_signature, runtime.ak)
    verify_pcr_digest(attest, parts.pcrs, sig)
    assert attest.extra_data == BINDING


def test_no_hcl_report_is_unavailable(cvm, tmp_path):
    with pytest.raises(TpmError):
        AzureVtpmProvider(cvm.transport())
    with pytest.raises(ProviderUnavailable, match="does not exist"):
        AzureVtpmProvider.from_device(tmp_path)


def test_report_data_must_be_64_bytes(provisioned, sim):
    with pytest.raises(ProviderError) as err:
        _provider(provisioned, sim).get_evidence(b"short")
    assert (err.value.check, err.value.actual) == ("provider.report_data", 5)


def test_runtime_data_names_the_swtpm_ak(provisioned, sim):
    hcl = parse_hcl_report(Tpm(provisioned.transport()).nv_read(0x01400001))
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    ak = load_pem_public_key((provisioned.directory / "ak.pem").read_bytes())
    assert parse_runtime_data(hcl.variable_data).ak.public_numbers() == ak.public_numbers()


def test_doctor_reports_the_azure_vtpm(tmp_path):
    from attestation.providers.select import diagnose

    status = {s.name: s for s in diagnose(tmp_path)}["azure-vtpm"]
    assert not status.available and "tpmrm0 does not exist" in status.reason


def test_snp_certificates_from_imds(provisioned, sim):
    vcek, *chain = sim.certs_pem().split(b"-----END CERTIFICATE-----\n")[:3]
    _Imds.certs = {
        "vcekCert": (vcek + b"-----END CERTIFICATE-----\n").decode(),
        "certificateChain": b"-----END CERTIFICATE-----\n".join(chain).decode()
        + "-----END CERTIFICATE-----\n",
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = AzureVtpmProvider(
            provisioned.transport(), imds_url=f"http://127.0.0.1:{server.server_port}"
        )
        evidence = provider.get_evidence(BINDING)
    finally:
        server.shutdown()
    assert evidence.certs == sim.certs_pem()
    _verify(evidence.raw, evidence.certs, expected_report_data=BINDING)


def test_no_imds_leaves_certificates_to_the_host(provisioned, sim):
    provider = AzureVtpmProvider(provisioned.transport(), imds_url="http://127.0.0.1:9")
    assert provider.get_evidence(BINDING).certs == b""


def test_evidence_carries_the_vcek_as_coco_does(provisioned, sim):
    from attestation.snp import _x509

    evidence = _provider(provisioned, sim).get_evidence(BINDING)
    parts = parse_azure_evidence(evidence.raw)
    assert parts.vcek == _x509.split_certificates(sim.certs_pem())[0]
    doc = json.loads(evidence.raw)
    assert set(doc) == {"version", "tpm_quote", "hcl_report", "vcek"}  # Trustee's v1 keys


@pytest.mark.parametrize("scheme", ["rsapss-sha256", "rsassa-sha384"])
def test_other_ak_schemes_verify_through_tpmt_signature(cvm, sim, scheme):
    """An AK with another scheme: the evidence carries the whole TPMT_SIGNATURE."""
    cvm.provision(sim, scheme=scheme)
    evidence = _provider(cvm, sim).get_evidence(BINDING)
    parts = parse_azure_evidence(evidence.raw)
    assert len(parts.quote_signature) == 256 + 6  # sigAlg, hash, size, then the signature
    result = _verify(evidence.raw, evidence.certs, expected_report_data=BINDING)
    expected = "RSASSA-PSS sha256" if scheme == "rsapss-sha256" else "RSASSA-PKCS1-v1_5 sha384"
    assert result.summary()["quote_signature"] == expected
