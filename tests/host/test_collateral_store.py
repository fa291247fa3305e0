"""CollateralStore: the host proxy's collateral, fetched from KDS/PCS stand-ins, then offline.

``collateral_server`` (tests/conftest.py) stands in for AMD KDS and
``tests.attestation.tdx.fake_pcs`` for Intel PCS; both serve the real certificates
and Intel-signed collateral from the vectors. What the store returns is then
verified by the real verifiers, which is what a party does offline.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.errors import ParseError
from attestation.kds import KdsClient, tcb_query
from attestation.policy import Policy
from attestation.snp import _x509
from attestation.snp.abi import parse_report
from attestation.tdx.abi import parse_quote
from attestation.tdx.collateral import TdxCollateral
from attestation.tdx.pcs import CollateralService
from attestation.tdx.verify import VerifyOptions, verify_quote
from attestation.verifier import SnpInputs, verify_evidence
from host.collateral import CollateralCache
from host.collateral_store import CollateralStore, CollateralUnavailable
from tests.attestation.tdx import fake_pcs

TINFOIL_FMSPC = "90c06f000000"


def _kds(cache, server, *, offline=False):
    return KdsClient(
        cache / "kds", base_url=server.url, offline=offline, min_interval_s=0, sleep=lambda s: None
    )


def _serve_vcek(server, vector, folder, product):
    report_bytes = vector(f"snp/{folder}/report.bin").read_bytes()
    report = parse_report(report_bytes)
    path = vector(f"snp/{folder}")
    vcek = (path / "vcek.der").read_bytes() if (path / "vcek.der").exists() else None
    if vcek is None:
        vcek = _x509.split_certificates((path / "vcek.pem").read_bytes())[0]
    hwid = report.chip_id[:8] if product == "Turin" else report.chip_id
    server.serve(f"/vcek/v1/{product}/{hwid.hex()}?{tcb_query(product, report.reported_tcb)}", vcek)
    chain = vector(f"snp/amd_chains/{product.lower()}_vcek_cert_chain.pem").read_bytes()
    server.serve(f"/vcek/v1/{product}/cert_chain", chain)
    return report_bytes, vcek, chain


@pytest.mark.parametrize(
    ("folder", "product"),
    [("ms_milan_v3", "Milan"), ("ms_genoa_v3", "Genoa"), ("ms_turin_v5", "Turin")],
)
def test_snp_certs_fetched_then_verified_offline(
    tmp_path, collateral_server, vector, folder, product
):
    report, vcek, chain = _serve_vcek(collateral_server, vector, folder, product)
    store = CollateralStore(tmp_path, kds=_kds(tmp_path, collateral_server), offline=False)

    pem = store.snp_certs_for(report)
    assert _x509.split_certificates(pem) == [vcek, *_x509.split_certificates(chain)]
    # A party verifies with exactly what the host ships (and its own pinned roots).
    at = datetime(2027, 1, 1, tzinfo=UTC)
    verified = verify_evidence(
        report, policy=Policy.unsafe_authenticity_only(), at=at, inputs=[SnpInputs(certs=pem)]
    )
    assert verified.product == product
    # The proxy's existing cache reader serves the assembled chain too.
    assert CollateralCache(tmp_path).snp_chain(report) == pem

    collateral_server.stop()
    offline = CollateralStore(tmp_path)  # offline is the default
    assert offline.snp_certs_for(report) == pem
    assert offline.kds.requests_made == 0


def test_v2_report_without_cpuid_tries_products(tmp_path, collateral_server, vector):
    report, vcek, _ = _serve_vcek(collateral_server, vector, "gosevguest_milan_v2", "Milan")
    store = CollateralStore(tmp_path, kds=_kds(tmp_path, collateral_server), offline=False)
    pem = store.snp_certs_for(report)
    assert _x509.split_certificates(pem)[0] == vcek
    at = datetime(2025, 1, 1, tzinfo=UTC)
    debug_ok = Policy.from_dict(
        {
            "accept": ["sev-snp"],
            "snp": {"allow_debug": True, "allowed_measurements": {"skip": True}},
        }
    )  # this VM was launched debuggable
    assert (
        verify_evidence(report, policy=debug_ok, at=at, inputs=[SnpInputs(certs=pem)]).product
        == "Milan"
    )


def test_kds_rate_limit_is_absorbed(tmp_path, collateral_server, vector):
    report, vcek, _ = _serve_vcek(collateral_server, vector, "ms_milan_v3", "Milan")
    first = next(
        p for p in collateral_server.routes if p.startswith("/vcek/v1/Milan/") and "?" in p
    )
    collateral_server.script(first, [(429, {"Retry-After": "1"}, b"")])
    slept: list[float] = []
    kds = KdsClient(
        tmp_path / "kds", base_url=collateral_server.url, min_interval_s=0, sleep=slept.append
    )
    pem = CollateralStore(tmp_path, kds=kds, offline=False).snp_certs_for(report)
    assert _x509.split_certificates(pem)[0] == vcek
    assert slept == [1.0]


def test_snp_crl_cached_and_published(tmp_path, collateral_server, vector):
    # No AMD CRL is among the vectors; this one is made here and only tests plumbing.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test CRL issuer")])
    now = datetime.now(UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(now)
        .next_update(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    collateral_server.serve("/vcek/v1/Genoa/crl", crl)
    report = vector("snp/ms_genoa_v3/report.bin").read_bytes()
    store = CollateralStore(tmp_path, kds=_kds(tmp_path, collateral_server), offline=False)
    assert store.snp_crl_for(report) == crl
    assert CollateralCache(tmp_path).snp_crl() == crl
    collateral_server.stop()
    assert CollateralStore(tmp_path).snp_crl_for(report) == crl


def test_offline_miss_names_the_cache_path_fail(tmp_path, vector):
    report = vector("snp/ms_genoa_v3/report.bin").read_bytes()
    with pytest.raises(CollateralUnavailable) as info:
        CollateralStore(tmp_path).snp_certs_for(report)
    message = info.value.message()
    assert info.value.check == "collateral.snp"
    assert str(tmp_path / "kds" / "vcek" / "v1" / "Genoa") in message and "offline" in message


def test_vlek_comes_from_the_cache_only(tmp_path, vector):
    raw = vector("snp/trustee_milan_v3_vlek/report.bin").read_bytes()
    report = parse_report(raw)
    store = CollateralStore(tmp_path)
    with pytest.raises(CollateralUnavailable, match="hashstick"):
        store.snp_certs_for(raw)
    vlek = vector("snp/trustee_milan_v3_vlek/vlek.der").read_bytes()
    chain = vector("snp/amd_chains/milan_vlek_cert_chain.pem").read_bytes()
    store.kds.vlek_path("Milan", report.reported_tcb).parent.mkdir(parents=True)
    store.kds.vlek_path("Milan", report.reported_tcb).write_bytes(vlek)
    store.kds.chain_path("Milan", key="vlek").write_bytes(chain)

    pem = store.snp_certs_for(raw)
    at = datetime(2025, 6, 1, tzinfo=UTC)  # inside the VLEK's one-year validity
    verified = verify_evidence(
        raw, policy=Policy.unsafe_authenticity_only(), at=at, inputs=[SnpInputs(certs=pem)]
    )
    assert verified.signing_key == "VLEK"


def test_malformed_report_is_a_parse_error_fail(tmp_path):
    with pytest.raises(ParseError):
        CollateralStore(tmp_path).snp_certs_for(b"\x02" * 100)


def _pcs(url: str) -> CollateralService:
    return CollateralService.pcs(url, root_ca_crl_url=url + fake_pcs.ROOT_CA_CRL_PATH, timeout=5)


def test_tdx_collateral_fetched_then_served_offline(tmp_path, vector):
    raw = vector("tdx/tinfoil_v4_agpl/quote.bin").read_bytes()
    routes = fake_pcs.routes_from_folder(vector("tdx/tinfoil_v4_agpl/collateral"), TINFOIL_FMSPC)
    with fake_pcs.serve(routes) as url:
        store = CollateralStore(tmp_path, pcs=_pcs(url), offline=False)
        blob = store.tdx_collateral_for(raw)
    assert len(routes.requests) == 4

    collateral = TdxCollateral.from_json(blob)
    now = datetime.fromisoformat("2026-02-01T00:00:00Z")
    verified = verify_quote(parse_quote(raw), VerifyOptions(collateral=collateral, now=now))
    assert verified.tcb_status == "UpToDate"

    # The service is gone; the cache answers, byte for byte the same collateral.
    assert CollateralStore(tmp_path).tdx_collateral_for(raw) == blob
    assert (tmp_path / "tdx" / TINFOIL_FMSPC).is_dir()


def test_tdx_offline_miss_fail(tmp_path, vector):
    raw = vector("tdx/dcapqvl_v4_uptodate/quote.bin").read_bytes()
    with pytest.raises(CollateralUnavailable, match="b0c06f000000") as info:
        CollateralStore(tmp_path).tdx_collateral_for(raw)
    assert str(tmp_path / "tdx" / "b0c06f000000") in info.value.message()


def test_tdx_service_failure_fail(tmp_path, vector):
    raw = vector("tdx/dcapqvl_v4_uptodate/quote.bin").read_bytes()
    with fake_pcs.serve(fake_pcs.FakePcsRoutes()) as url:
        store = CollateralStore(tmp_path, pcs=_pcs(url), offline=False)
        with pytest.raises(CollateralUnavailable, match="cannot fetch"):
            store.tdx_collateral_for(raw)
