"""The CoCo attestation-agent provider against a stand-in of the agent's REST API.

The stand-in (``coco_agent_standin``) speaks the API the way guest-components
does and returns real SEV-SNP reports and a real TDX quote from the vectors
(each for the REPORT_DATA it was made with), or SIMULATED SNP reports for any
REPORT_DATA. The provider, selection and ``tcme doctor`` are the real code.
"""

from __future__ import annotations

import json
import socket

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.errors import SignatureError
from attestation.providers import coco_aa
from attestation.providers.coco_aa import CocoAgentProvider
from attestation.providers.errors import ProviderError, ProviderUnavailable
from attestation.providers.select import diagnose, select_provider
from attestation.snp import _x509
from attestation.snp.abi import parse_report
from attestation.snp.verify import VerifyOptions, verify_attestation
from tcme.cli import main
from tests.attestation.providers.coco_agent_standin import CocoAgentStandIn

# Vectors whose folder (or amd_chains/) gives the whole VEK -> ASK/ASVK -> ARK chain.
CHAINS = {
    "ms_milan_v3": None,
    "ms_genoa_v3": None,
    "ms_turin_v5": None,
    "virtee_milan_v2": None,
    "trustee_milan_v3_vlek": "milan_vlek_cert_chain.pem",
    "gosevguest_milan_v2": "milan_vcek_cert_chain.pem",
}


def _split_chain(pem: bytes) -> dict[str, bytes]:
    """Certificates by the agent's cert_type names, as DER."""
    out: dict[str, bytes] = {}
    for der in _x509.split_certificates(pem):
        cert = _x509.load_certificate_der(der)
        if isinstance(cert.public_key(), ec.EllipticCurvePublicKey):  # the P-384 VEK
            out["VCEK"] = der
        elif cert.issuer == cert.subject:
            out["ARK"] = der
        else:
            out["ASK"] = der
    return out


def _vector_source(vector, extra_chain: bytes):
    report = vector.report
    wanted = parse_report(report).report_data
    certs = _split_chain(vector.certs + extra_chain)
    if vector.signing_key == "VLEK" and "VCEK" in certs:
        certs["VLEK"] = certs.pop("VCEK")
    return lambda data: ("sev-snp", report, certs) if data == wanted else None


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_real_snp_report_comes_back_byte_exact_and_verifies(name, named_vector, vectors):
    vector = named_vector(name)
    extra = (vectors / "snp" / "amd_chains" / CHAINS[name]).read_bytes() if CHAINS[name] else b""
    with CocoAgentStandIn(_vector_source(vector, extra)) as agent:
        provider = CocoAgentProvider(agent.url)
        evidence = provider.get_evidence(parse_report(vector.report).report_data)
    # The report crossed the agent as serde fields and was re-encoded at AMD's offsets:
    # the bytes are the firmware's, so the VEK's signature over them still verifies.
    assert evidence.raw == vector.report
    assert (evidence.tee, evidence.provider, evidence.simulated) == ("sev-snp", "coco-aa", False)
    chain = verify_attestation(
        parse_report(evidence.raw), evidence.certs, VerifyOptions(now=vector.at)
    )
    assert chain.signing_key == vector.signing_key
    assert agent.requests[-1].endswith("&encoding=base64")


def test_real_tdx_quote_passes_through(vector):
    from attestation.providers._blobs import tdx_quote_report_data

    quote = vector("tdx/dcapqvl_v4_uptodate/quote.bin").read_bytes()
    wanted = tdx_quote_report_data(quote)
    with CocoAgentStandIn(
        lambda data: ("tdx", quote, {}) if data == wanted else None, tee="tdx"
    ) as agent:
        evidence = CocoAgentProvider(agent.url).get_evidence(wanted)
    assert (evidence.tee, evidence.raw, evidence.certs) == ("tdx", quote, b"")


@pytest.fixture
def simulated_agent(snp_sim):
    """An agent whose 'hardware' is the SIMULATED SNP signer: any REPORT_DATA works."""
    certs = _split_chain(snp_sim.certs_pem())
    return CocoAgentStandIn(lambda data: ("sev-snp", snp_sim.report(data), certs))


def test_runtime_data_is_the_report_data_exactly(simulated_agent, snp_sim):
    report_data = bytes(range(64))  # binary, with bytes UTF-8 could not carry
    with simulated_agent as agent:
        evidence = CocoAgentProvider(agent.url).get_evidence(report_data)
    assert parse_report(evidence.raw).report_data == report_data
    verify_attestation(
        parse_report(evidence.raw),
        evidence.certs,
        VerifyOptions(trusted_arks={snp_sim.ark_sha256: "SIMULATED"}),
    )


def test_agent_answering_for_other_report_data_is_refused_fail(snp_sim):
    certs = _split_chain(snp_sim.certs_pem())
    other = b"\x07" * 64  # a confused or hostile agent: evidence, but not for our data
    standin = CocoAgentStandIn(lambda data: ("sev-snp", snp_sim.report(other), certs))
    with standin as agent, pytest.raises(ProviderError) as err:
        CocoAgentProvider(agent.url).get_evidence(b"\x01" * 64)
    assert err.value.check == "coco_aa.report_data"


def test_a_changed_report_field_fails_the_signature_fail(named_vector, monkeypatch):
    vector = named_vector("ms_genoa_v3")
    real = coco_aa.snp_report_from_json

    def tampered(value):
        value = dict(value, measurement=[0] * 48)
        return real(value)

    monkeypatch.setattr(coco_aa, "snp_report_from_json", tampered)
    with CocoAgentStandIn(_vector_source(vector, b"")) as agent:
        evidence = CocoAgentProvider(agent.url).get_evidence(
            parse_report(vector.report).report_data
        )
    with pytest.raises(SignatureError):
        verify_attestation(parse_report(evidence.raw), evidence.certs, VerifyOptions(now=vector.at))


@pytest.mark.parametrize(
    ("body", "check"),
    [
        (b"not json", "coco_aa.json"),
        (b"[]", "coco_aa.json"),
        (b'{"sample": 1}', "coco_aa.tee"),
        (b'{"quote": "%%%"}', "coco_aa.tdx.quote"),
        (b'{"attestation_report": {"version": 2}}', "coco_aa.snp.signature"),
    ],
)
def test_malformed_agent_json_is_a_named_error_fail(body, check):
    with pytest.raises(ProviderError) as err:
        coco_aa.evidence_from_agent_json(body, b"\0" * 64)
    assert err.value.check == check


def test_attestation_feature_off_says_so_fail():
    with CocoAgentStandIn(lambda data: None, attestation_feature=False) as agent:
        with pytest.raises(ProviderUnavailable) as err:
            CocoAgentProvider(agent.url).get_evidence(b"\0" * 64)
        assert err.value.check == "coco_aa.feature"
        with pytest.raises(ProviderUnavailable):
            CocoAgentProvider(agent.url).probe()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_no_agent_is_unavailable_fail():
    with pytest.raises(ProviderUnavailable) as err:
        CocoAgentProvider(_closed_port_url()).get_evidence(b"\0" * 64)
    assert err.value.check == "coco_aa.connect"


def test_agent_tee_tcme_does_not_verify_is_unavailable_fail():
    standin = CocoAgentStandIn(lambda data: None, tee="cca")
    with standin as agent, pytest.raises(ProviderUnavailable) as err:
        CocoAgentProvider(agent.url).probe()
    assert err.value.check == "coco_aa.tee"


def test_selected_in_a_coco_pod_and_reported_by_doctor(
    simulated_agent, tmp_path, monkeypatch, capsys
):
    with simulated_agent as agent:
        monkeypatch.setenv(coco_aa.URL_ENV, agent.url)
        statuses = {s.name: s for s in diagnose(tmp_path)}  # no devices under tmp_path
        assert statuses["coco-aa"].available and statuses["coco-aa"].tee == "sev-snp"
        provider, why = select_provider(root=tmp_path)
        assert isinstance(provider, CocoAgentProvider) and provider.tee == "sev-snp"
        assert "coco-aa" in why
        assert provider.get_evidence(b"\x05" * 64).provider == "coco-aa"
        assert main(["doctor", "--root", str(tmp_path), "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
    assert (result["selected"], result["tee"]) == ("coco-aa", "sev-snp")


def test_doctor_explains_a_missing_agent(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(coco_aa.URL_ENV, _closed_port_url())
    assert main(["doctor", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "coco-aa" in out and "not a CoCo pod" in out
