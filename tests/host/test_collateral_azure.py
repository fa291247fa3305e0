"""The proxy serves Azure vTPM evidence the collateral of the hardware evidence inside it."""

from __future__ import annotations

from host.collateral import SNP_CHIP_ID, SNP_REPORTED_TCB, CollateralCache, attach_collateral
from tcme.v1 import evidence_pb2, tcme_pb2


def _response(tee: int, report: bytes) -> tcme_pb2.AttestResponse:
    return tcme_pb2.AttestResponse(evidence=evidence_pb2.Evidence(tee=tee, report=report))


def test_az_snp_gets_the_embedded_reports_vcek_chain(vectors, tmp_path):
    from attestation.azure.evidence import parse_azure_evidence
    from attestation.azure.hcl import parse_hcl_report

    evidence = (vectors / "azure/trustee_snp_genoa_v3/evidence.json").read_bytes()
    report = parse_hcl_report(parse_azure_evidence(evidence).hcl_report).hardware_report
    (tmp_path / "snp").mkdir()
    name = f"{report[SNP_CHIP_ID].hex()}-{report[SNP_REPORTED_TCB].hex()}.pem"
    (tmp_path / "snp" / name).write_bytes(b"THE CHAIN FOR THIS CHIP AND TCB")
    (tmp_path / "snp" / "crl.der").write_bytes(b"CRL")
    response = _response(evidence_pb2.TEE_TYPE_AZ_SNP_VTPM, evidence)
    attach_collateral(response, CollateralCache(tmp_path))
    assert response.collateral.snp_cert_chain_pem == b"THE CHAIN FOR THIS CHIP AND TCB"
    assert response.collateral.snp_crl_der == b"CRL"
    assert response.evidence.report == evidence  # the evidence itself is untouched


def test_az_tdx_gets_tdx_collateral(vectors, tmp_path):
    evidence = (vectors / "azure/trustee_tdx_v4/evidence_v1.json").read_bytes()
    (tmp_path / "tdx").mkdir()
    (tmp_path / "tdx" / "collateral.json").write_bytes(b'{"tcb_info":"..."}')
    response = _response(evidence_pb2.TEE_TYPE_AZ_TDX_VTPM, evidence)
    attach_collateral(response, CollateralCache(tmp_path))
    assert response.collateral.tdx_collateral_json == b'{"tcb_info":"..."}'
    assert not response.collateral.snp_cert_chain_pem


def test_unreadable_azure_evidence_gets_nothing(tmp_path):
    (tmp_path / "snp").mkdir()
    (tmp_path / "snp" / "cert_chain.pem").write_bytes(b"FALLBACK")
    response = _response(evidence_pb2.TEE_TYPE_AZ_SNP_VTPM, b'{"not": "azure"}')
    attach_collateral(response, CollateralCache(tmp_path))
    assert not response.collateral.snp_cert_chain_pem and not response.collateral.source
