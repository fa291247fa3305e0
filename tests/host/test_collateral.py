"""The proxy attaches collateral to Attest responses and touches nothing else."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest

from host.collateral import (
    SNP_CHIP_ID,
    SNP_REPORT_SIZE,
    SNP_REPORTED_TCB,
    CollateralCache,
    attach_collateral,
)
from host.server import create_server
from tcme.v1 import evidence_pb2, tcme_pb2

TCME = tcme_pb2.DESCRIPTOR.services_by_name["Tcme"].full_name


def _snp_report(chip: bytes, tcb: bytes) -> bytes:
    report = bytearray(SNP_REPORT_SIZE)
    report[SNP_REPORTED_TCB] = tcb
    report[SNP_CHIP_ID] = chip
    return bytes(report)


def _attest_response(**evidence) -> tcme_pb2.AttestResponse:
    return tcme_pb2.AttestResponse(
        evidence=evidence_pb2.Evidence(**evidence),
        claims=b'{"type":"tcme/v1/claims"}',
        contract=b'{"type":"tcme/v1/contract"}',
        session_id=b"s" * 16,
    )


@pytest.fixture
def cache_dir(tmp_path):
    chip = bytes(range(64))
    tcb = bytes([3, 0, 0, 0, 0, 0, 8, 115])
    (tmp_path / "snp").mkdir()
    (tmp_path / "snp" / f"{chip.hex()}-{tcb.hex()}.pem").write_bytes(b"CHIP-SPECIFIC CHAIN")
    (tmp_path / "snp" / "cert_chain.pem").write_bytes(b"FALLBACK CHAIN")
    (tmp_path / "snp" / "crl.der").write_bytes(b"CRL")
    (tmp_path / "tdx").mkdir()
    (tmp_path / "tdx" / "collateral.json").write_bytes(b'{"tcb_info":"..."}')
    return tmp_path, chip, tcb


def test_snp_certs_from_evidence_preferred(cache_dir):
    directory, chip, tcb = cache_dir
    response = _attest_response(
        tee=evidence_pb2.TEE_TYPE_SEV_SNP, report=_snp_report(chip, tcb), certs_pem=b"FROM ENCLAVE"
    )
    attach_collateral(response, CollateralCache(directory))
    assert response.collateral.snp_cert_chain_pem == b"FROM ENCLAVE"
    assert response.collateral.snp_crl_der == b"CRL"
    assert response.collateral.source == f"evidence,cache:{directory}"


def test_snp_chain_from_cache_by_chip_and_tcb(cache_dir):
    directory, chip, tcb = cache_dir
    response = _attest_response(tee=evidence_pb2.TEE_TYPE_SEV_SNP, report=_snp_report(chip, tcb))
    attach_collateral(response, CollateralCache(directory))
    assert response.collateral.snp_cert_chain_pem == b"CHIP-SPECIFIC CHAIN"


def test_snp_chain_fallback_for_unknown_chip(cache_dir):
    directory, _, tcb = cache_dir
    response = _attest_response(
        tee=evidence_pb2.TEE_TYPE_SEV_SNP, report=_snp_report(b"\xff" * 64, tcb)
    )
    attach_collateral(response, CollateralCache(directory))
    assert response.collateral.snp_cert_chain_pem == b"FALLBACK CHAIN"


def test_tdx_collateral_from_cache(cache_dir):
    directory, _, _ = cache_dir
    response = _attest_response(tee=evidence_pb2.TEE_TYPE_TDX, report=b"quote")
    attach_collateral(response, CollateralCache(directory))
    assert response.collateral.tdx_collateral_json == b'{"tcb_info":"..."}'
    assert not response.collateral.snp_cert_chain_pem


def test_no_cache_no_certs_leaves_collateral_empty():
    response = _attest_response(tee=evidence_pb2.TEE_TYPE_SEV_SNP, report=b"r")
    attach_collateral(response, None)
    assert not response.HasField("collateral")


def test_proxy_attaches_collateral_and_keeps_every_other_byte(cache_dir):
    directory, chip, tcb = cache_dir
    original = _attest_response(tee=evidence_pb2.TEE_TYPE_SEV_SNP, report=_snp_report(chip, tcb))

    def attest(request: bytes, context: grpc.ServicerContext) -> bytes:
        return original.SerializeToString()

    backend = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    backend.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                TCME, {"Attest": grpc.unary_unary_rpc_method_handler(attest)}
            ),
        )
    )
    backend_port = backend.add_insecure_port("127.0.0.1:0")
    backend.start()
    proxy, port = create_server(
        "127.0.0.1:0", f"127.0.0.1:{backend_port}", collateral_dir=directory, health_interval=5
    )
    proxy.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            raw = channel.unary_unary(f"/{TCME}/Attest")(
                tcme_pb2.AttestRequest(nonce=b"n" * 32).SerializeToString(), timeout=5
            )
    finally:
        proxy.stop(0)
        backend.stop(0)
    got = tcme_pb2.AttestResponse.FromString(raw)
    assert got.collateral.snp_cert_chain_pem == b"CHIP-SPECIFIC CHAIN"
    got.ClearField("collateral")
    assert got == original


def test_store_miss_for_unparseable_report_leaves_collateral_empty(tmp_path):
    # Empty cache folder: the file lookup misses, the offline store cannot parse the
    # (garbage) report; the proxy must answer anyway, without collateral.
    response = _attest_response(tee=evidence_pb2.TEE_TYPE_SEV_SNP, report=b"\x00" * 10)
    attach_collateral(response, CollateralCache(tmp_path))
    assert not response.collateral.snp_cert_chain_pem
    tdx = _attest_response(tee=evidence_pb2.TEE_TYPE_TDX, report=b"not a quote")
    attach_collateral(tdx, CollateralCache(tmp_path))
    assert not tdx.collateral.tdx_collateral_json


def test_tdx_collateral_from_the_per_platform_cache_verifies_the_quote(tmp_path, vector):
    """A cache filled by `tcme collateral` (<cache>/tdx/<fmspc>/) serves the proxy offline.

    The attached collateral must be exactly what the party needs: the real quote then
    verifies with it, with no other source.
    """
    from datetime import UTC, datetime

    from attestation.policy import Policy
    from attestation.tdx.collateral import load_collateral, write_cache
    from attestation.verifier import TdxInputs, verify_evidence

    quote = vector("tdx/tinfoil_v4_agpl/quote.bin").read_bytes()
    fmspc = "90c06f000000"
    write_cache(tmp_path, load_collateral(vector("tdx/tinfoil_v4_agpl/collateral"), fmspc=fmspc))
    response = _attest_response(tee=evidence_pb2.TEE_TYPE_TDX, report=quote)
    attach_collateral(response, CollateralCache(tmp_path))
    blob = response.collateral.tdx_collateral_json
    assert blob, "the proxy attached no TDX collateral from the per-platform cache"
    verified = verify_evidence(
        quote,
        policy=Policy.unsafe_authenticity_only(),
        at=datetime(2026, 2, 1, tzinfo=UTC),
        inputs=[TdxInputs(collateral=blob)],
    )
    assert verified.tee == "tdx" and verified.tcb["tcb_status"] == "UpToDate"
    assert response.evidence.report == quote
